"""Scrubbing sensitive data out of telemetry before it leaves the process.

A scrubbed value becomes ``[REDACTED:<pattern>]`` and never echoes any part of the secret. The
patterns (``patterns.py``) are compiled once and linear-time, so a hostile attribute value cannot
make the export thread backtrack for seconds. Each finding is reported (field and pattern name,
never the value) so the ``security.sensitive_data`` rule can fire.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import semconv as sc
from . import patterns as p
from . import sql
from .patterns import luhn_valid

_PATTERN = sc.B2bScrubPatternValues

PATTERN_NAMES = sc.B2B_SCRUB_PATTERN_VALUES

# Attributes holding a URL (or its query): parsed, so that secret-named parameters are redacted.
_URL_KEYS = frozenset((sc.URL_FULL, sc.URL_QUERY, sc.URL_ORIGINAL, sc.HTTP_URL, sc.HTTP_TARGET))

# Attribute keys already judged (keys repeat: a few hundred in an application); cleared when full.
_KEY_CACHE_SIZE = 4096

# Nested values deeper than this are not walked: they are replaced, never exported unchecked.
MAX_DEPTH = 16
UNCHECKED = "[REDACTED:scrub_failed]"

# Lower-case pieces one of which every secret-naming key holds (a cheap test before the key scan).
_KEY_HINTS = (
    "pass",
    "pwd",
    "secret",
    "key",
    "token",
    "cookie",
    "sess",
    "sid",
    "credential",
    "auth",
    "sig",
    "cvv",
    "cvc",
)
# The keys of a language model's logprobs entry: its "token" is text the model wrote, not a credential.
_LLM_TOKEN = "token"
_LOGPROB = "logprob"
_LOGPROB_WINDOW = 96
# arn:aws:secretsmanager:<region>:<account>:secret:<name>; the name is looked up, it is not the secret.
_ARN_WINDOW = 64
_PROSE_HINTS = ("pass", "secret", "key", "token", "credential")
_SQL_HINTS = (
    "select",
    "insert",
    "update",
    "delete",
    "merge",
    "replace",
    "values",
    "create",
    "alter",
    "comment",
    "set",
    "call",
    "do",
    "exec",
)
# SQL that carries a secret without a secret word: IDENTIFIED BY 'x', crypt('x', ...), hmac(d, 'k').
_SQL_SECRET_HINTS = ("identified", "crypt", "hmac")
_MARKERS = re.compile(r"\[REDACTED:[a-z_]{1,32}\]?")
# What may surround a redacted value without being part of it: quotes, escapes, an auth scheme.
_WRAPPING = re.compile(
    r"(?i)^(?:basic|bearer|token|negotiate|ntlm|apikey|digest|aws4-hmac-sha256|hoba|mutual)?[\s\"'\\]*$"
)


def marker(pattern: str) -> str:
    """The replacement text for a value caught by ``pattern``."""
    return f"[REDACTED:{pattern}]"


@dataclass(frozen=True)
class Finding:
    """Sensitive data caught in one field: where (``field``) and by which pattern; never the value."""

    field: str
    pattern: str


Report = Callable[[Finding], None]


class Scrubber:
    """Scrubs strings, attribute maps (nested too), URLs and SQL; configured once, used from export threads.

    Example::

        scrubber = Scrubber(allow_keys={"user.email"})
        scrubber.text("card 4111 1111 1111 1111")  # 'card [REDACTED:credit_card]'
        scrubber.value("ctx", {"db_password": "x"})  # {'db_password': '[REDACTED:secret_key]'}
    """

    def __init__(self, allow_keys: Iterable[str] = (), enabled: bool = True) -> None:
        self.allow_keys = frozenset(allow_keys)
        self.enabled = enabled
        # key -> (the key scrubbed, None when it is clean; the patterns found in it)
        self._keys: dict[str, tuple[str | None, tuple[str, ...]]] = {}
        self._clean_keys: set[str] = set()

    # --- free text

    def text(self, value: str, field: str = "", report: Report | None = None) -> str:
        """``value`` with every secret replaced by its marker; ``field`` names where it was found."""
        if not self.enabled or not value:
            return value
        found: list[str] = []
        result = value
        lowered = value.lower()
        if "PRIVATE KEY" in result:
            result = _sub(p.PEM, result, _PATTERN.PRIVATE_KEY, found)
        if "eyJ" in result:
            result = _sub(p.JWT, result, _PATTERN.JWT, found)
        if "bearer" in lowered:
            result = _sub(p.BEARER, result, _PATTERN.BEARER_TOKEN, found)
        if "basic" in lowered:
            result = _basic(result, found)
        if "@" in result:
            if "://" in result:
                result = _url_userinfo(result, found)
            if ":" in result:
                result = _bare_userinfo(result, found)
        if any(c.isdigit() for c in result):
            result = _cards(result, field, found)
            result = _sub(p.SSN, result, _PATTERN.US_SSN, found)
        if "A" in result:
            result = _sub(p.AWS_KEY_ID, result, _PATTERN.AWS_ACCESS_KEY_ID, found)
        has_key_hint = any(hint in lowered for hint in _KEY_HINTS)
        judgement = sql.NOTHING
        sql_hint = has_key_hint or any(hint in lowered for hint in _SQL_SECRET_HINTS)
        if sql_hint and any(hint in lowered for hint in _SQL_HINTS):
            result, judgement = _sql(result, found)
        after_sql = result
        if has_key_hint and ("=" in result or ":" in result or "%3" in result):
            result = _key_values(result, found, judgement.judged)
        if has_key_hint and "-" in result:
            result = _cli_flags(result, found)
        if has_key_hint and "</" in result:
            result = _xml_elements(result, found)
        if any(hint in lowered for hint in _PROSE_HINTS):
            # The SQL reading's positions hold while nothing between changed the text.
            result = _prose(result, found, judgement.prose_judged if result == after_sql else frozenset())
        if report is not None:
            for pattern in found:
                report(Finding(field, pattern))
        return result

    # --- structured values

    def is_secret_key(self, key: str) -> bool:
        """Whether an attribute key itself names a secret (``http.request.header.authorization``)."""
        return key not in self.allow_keys and p.names_secret(key)

    def value(self, key: str, value: Any, report: Report | None = None) -> Any:
        """One attribute value, scrubbed according to its key and content; maps and lists walked."""
        if not self.enabled or key in self.allow_keys:
            return value
        return self._value(key, value, report, 0)

    def _value(self, key: str, value: Any, report: Report | None, depth: int) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if p.names_secret(key):
            if report is not None:
                report(Finding(key, _PATTERN.SECRET_KEY))
            if isinstance(value, (list, tuple)):
                return tuple(marker(_PATTERN.SECRET_KEY) for _ in value)
            return marker(_PATTERN.SECRET_KEY)
        if isinstance(value, str):
            if key in _URL_KEYS:
                value = self.url(value, key, report)
            return self.text(value, key, report)
        if isinstance(value, (int, float)):
            return value
        if depth >= MAX_DEPTH:
            return UNCHECKED
        if isinstance(value, Mapping):
            return self._mapping(key, value, report, depth + 1)
        if isinstance(value, (list, tuple)):
            items = tuple(self._value(key, item, report, depth + 1) for item in value)
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        if isinstance(value, (bytes, bytearray)):
            return self._bytes(key, bytes(value), report)
        if isinstance(value, (set, frozenset)):
            return tuple(self._value(key, item, report, depth + 1) for item in value)
        # A datetime, Decimal, UUID or any object in a log body or a nested attribute: OTLP has no
        # type for it (its encoder would refuse the whole batch), and its str() may hold a secret.
        return self.text(_safe_str(value), key, report)

    def _mapping(self, key: str, value: Mapping[Any, Any], report: Report | None, depth: int) -> Any:
        changed: dict[Any, Any] | None = None
        # A language model's logprobs ({"token": " the", "logprob": -0.1}): "token" is a piece of text.
        llm_token = _LLM_TOKEN in value and _LOGPROB in value
        for name, item in value.items():
            child = name if isinstance(name, str) else _safe_str(name)
            path = f"{key}.{child}" if key else child
            if path in self.allow_keys or child in self.allow_keys:
                continue
            clean_name = name
            clean_child, patterns = self._key_verdict(child)
            if clean_child is not None:
                # The field of a finding never holds the secret: it names the key as scrubbed.
                path = f"{key}.{clean_child}" if key else clean_child
                if isinstance(name, str):
                    clean_name = clean_child
                if report is not None:
                    for pattern in patterns:
                        report(Finding(path, pattern))
            if llm_token and name == _LLM_TOKEN and isinstance(item, str):
                clean = self.text(item, path, report)
            else:
                clean = self._value(path, item, report, depth)
            if clean is not item or clean_name is not name:
                if changed is None:
                    changed = dict(value)
                if clean_name != name:
                    del changed[name]
                changed[clean_name] = clean
        return value if changed is None else changed

    def _bytes(self, key: str, value: bytes, report: Report | None) -> bytes:
        # Bytes that are not all UTF-8 are still searched: a secret in ASCII next to one stray byte
        # must not pass. The stray bytes go through unchanged (surrogateescape).
        decoded = value.decode("utf-8", "surrogateescape")
        clean = self.text(decoded, key, report)
        return value if clean == decoded else clean.encode("utf-8", "surrogateescape")

    def attributes(
        self, attributes: Mapping[str, Any] | None, report: Report | None = None
    ) -> dict[str, Any] | None:
        """A scrubbed copy of an attribute map, or None when nothing had to change."""
        if not self.enabled or not attributes:
            return None
        changed: dict[str, Any] | None = None
        clean_keys = self._clean_keys
        for key, value in attributes.items():
            if key in clean_keys:  # the common case, kept cheap
                clean = self.value(key, value, report)
                if clean is not value and clean != value:
                    if changed is None:
                        changed = dict(attributes)
                    changed[key] = clean
                continue
            clean_key, patterns = self._key_verdict(key)
            if clean_key is not None and report is not None:
                for pattern in patterns:
                    report(Finding(clean_key, pattern))
            clean = self.value(key if clean_key is None else clean_key, value, report)
            if clean_key is not None:
                if changed is None:
                    changed = dict(attributes)
                del changed[key]
                changed[clean_key] = clean
            elif clean is not value and clean != value:
                if changed is None:
                    changed = dict(attributes)
                changed[key] = clean
        return changed

    def _key_verdict(self, key: str) -> tuple[str | None, tuple[str, ...]]:
        """A key with a secret in it (``{f"header.{raw}": ...}``) redacted, or None when it is clean;
        and the patterns found. Keys repeat, so the verdict is cached per key."""
        cached = self._keys.get(key)
        if cached is None:
            found: list[Finding] = []
            clean = self.text(key, "", found.append) if key not in self.allow_keys else key
            cached = (None if clean == key else clean, tuple(f.pattern for f in found))
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.clear()
                self._clean_keys.clear()
            self._keys[key] = cached
            if cached[0] is None:
                self._clean_keys.add(key)
        return cached

    def mapping(self, data: Mapping[str, Any], report: Report | None = None) -> dict[str, Any]:
        """A scrubbed copy of a nested mapping (``audit()`` details): keys judged, values walked."""
        if not self.enabled:
            return dict(data)
        clean = self._mapping("", data, report, 0)
        return dict(clean)

    def url(self, value: str, field: str = "", report: Report | None = None) -> str:
        """A URL with secret-named query parameters and userinfo passwords redacted."""
        try:
            parts = urlsplit(value)
        except ValueError:
            return value
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user, colon, password = userinfo.partition(":")
            found: list[str] = []
            clean = _userinfo(parts.scheme, user, password if colon else None, found)
            if clean is not None:
                netloc = f"{clean}@{host}"
                if report is not None:
                    report(Finding(field, _PATTERN.SECRET_KEY))
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            cleaned = []
            for name, val in pairs:
                if self.is_secret_key(name) and val:
                    if report is not None:
                        report(Finding(field, _PATTERN.SECRET_KEY))
                    cleaned.append((name, marker(_PATTERN.SECRET_KEY)))
                else:
                    cleaned.append((name, val))
            query = urlencode(cleaned, safe="[]:")
        if netloc == parts.netloc and query == parts.query:
            return value
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

    def body(self, body: Any, report: Report | None = None, field: str = sc.SCRUB_FIELD_LOG_BODY) -> Any:
        """A log body: strings scrubbed; mappings and sequences walked (``log.body.<key>`` fields)."""
        if not self.enabled:
            return body
        if isinstance(body, str):
            return self.text(body, field, report)
        if isinstance(body, Mapping):
            return self._mapping(field, body, report, 1)
        if isinstance(body, Sequence) and not isinstance(body, (bytes, bytearray)):
            return [self.body(v, report, field) for v in body]
        return self._value(field, body, report, 1)


# --------------------------------------------------------------------------- the text passes


def _safe_str(value: Any) -> str:
    """``str(value)``, or its type's name when its ``__str__`` raises (never raises itself)."""
    try:
        return str(value)
    except Exception:
        try:
            return f"<{type(value).__name__}>"
        except Exception:
            return "<object>"


def _sub(pattern: re.Pattern[str], value: str, name: str, found: list[str]) -> str:
    result, count = pattern.subn(marker(name), value)
    if count:
        found.append(name)
    return result


_MARKER_START = "[REDACTED:"


def _marker_end(value: str, start: int) -> int:
    """The end of the marker that starts at ``start``."""
    match = _MARKERS.match(value, start)
    return match.end() if match is not None else start


def _is_redacted(value: str) -> bool:
    """Whether ``value`` holds nothing but markers (and quotes or an auth scheme around them)."""
    if "[REDACTED:" not in value:
        return False
    return bool(_WRAPPING.match(_MARKERS.sub("", value)))


def _basic(value: str, found: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if not p.basic_credentials(match.group("credentials")):
            return match.group(0)
        found.append(_PATTERN.SECRET_KEY)
        return match.group(0)[: match.start("credentials") - match.start()] + marker(_PATTERN.SECRET_KEY)

    return p.BASIC.sub(replace, value)


def _userinfo(scheme: str, user: str, password: str | None, found: list[str]) -> str | None:
    """The replacement of a userinfo (without its ``@``), or None when nothing of it is secret."""
    if password is not None and _is_redacted(password):
        return None
    secret = p.userinfo_secret(scheme, user, password)
    if secret == "none":
        return None
    found.append(_PATTERN.SECRET_KEY)
    mark = marker(_PATTERN.SECRET_KEY)
    return f"{user}:{mark}" if secret == "password" else mark


def _url_userinfo(value: str, found: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        clean = _userinfo(match.group("scheme"), match.group("user"), match.group("password"), found)
        if clean is None:
            return match.group(0)
        return f"{match.group(0)[: match.start('user') - match.start()]}{clean}@"

    return p.URL_USERINFO.sub(replace, value)


def _bare_userinfo(value: str, found: list[str]) -> str:
    """``user:password@host`` without a scheme (a DSN, a proxy): the password goes, the user stays."""

    def replace(match: re.Match[str]) -> str:
        user, password = match.group("user"), match.group("password")
        if user.lower() in p.BARE_USERINFO_NOT_A_USER or _is_redacted(password):
            return match.group(0)
        clean = _userinfo("", user, password, found)
        return match.group(0) if clean is None else f"{clean}@"

    return p.BARE_USERINFO.sub(replace, value)


def _cards(value: str, field: str, found: list[str]) -> str:
    if not p.CARD_RUN.search(value):
        return value  # no run of 13 digits: no card (the common case; the keys are not looked at)
    keyed = bool(field) and bool(p.CARD_KEY.search(field))
    id_keyed = bool(field) and not keyed and bool(p.CARD_NOT_KEY.search(field))

    def replace(match: re.Match[str]) -> str:
        text = match.string
        before = max(0, match.start() - p.CARD_CONTEXT_WINDOW)
        context = keyed or bool(
            p.CARD_CONTEXT.search(text, before, match.start())
            or p.CARD_CONTEXT.search(text, match.end(), match.end() + p.CARD_CONTEXT_WINDOW // 2)
        )
        identifier = not context and (
            id_keyed or bool(p.CARD_NOT_CONTEXT.search(text, before, match.start()))
        )
        run = match.group(0)
        clean = _card_run(run, context, identifier)
        if clean != run:
            found.append(_PATTERN.CREDIT_CARD)
        return clean

    return p.CARD_RUN.sub(replace, value)


_CARD_SEPARATOR = re.compile(r"([ .\-])")


def _card_run(run: str, context: bool, identifier: bool = False) -> str:
    """A digit run with every card number in it replaced.

    Every sub-run of consecutive groups with 13 to 19 digits is a candidate ("4111 1111 1111 1111
    123": a card and its CVV; "qty 2 4111 1111 1111 1111"). A candidate is a card when it passes
    Luhn and either the text around it says card (``context``) or it starts with a known issuer
    prefix and is grouped like a card, except a run of digits without separators right after a word
    naming another identifier (``identifier``: "order 4111111111111111"). Every group of a card is
    redacted, so overlapping candidates cannot leave a group behind. A sub-run spans at most 19
    digits, so this stays linear in the run.
    """
    low, high = p.CARD_DIGITS
    pieces = _CARD_SEPARATOR.split(run)
    groups, separators = pieces[0::2], pieces[1::2]
    covered = [False] * len(groups)
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            digits += groups[last]
            if len(digits) > high:
                break
            if (
                len(digits) >= low
                and luhn_valid(digits)
                and (
                    context
                    or (
                        p.issuer_prefix(digits)
                        and p.card_like_grouping(groups[first : last + 1], separators[first:last])
                        and not (identifier and len(groups) == 1)
                    )
                )
            ):
                for index in range(first, last + 1):
                    covered[index] = True
    if not any(covered):
        return run
    out: list[str] = []
    for index, group in enumerate(groups):
        if covered[index] and index > 0 and covered[index - 1]:
            continue
        if index > 0:
            out.append(separators[index - 1])
        out.append(marker(_PATTERN.CREDIT_CARD) if covered[index] else group)
    return "".join(out)


def _sql(value: str, found: list[str]) -> tuple[str, sql.Judgement]:
    """SQL values bound to secrets redacted (``sql.judge``); and the judgement, positions as in the result.

    A statement that only names a secret column (DDL, a ``SELECT`` of it, a placeholder) keeps its
    literals; one that binds a value to it loses that value. One finding per statement.
    """
    if not sql.looks_like_sql(value):
        return value, sql.NOTHING
    judgement = _judge_sql(value)
    if not judgement.secrets:
        return value, judgement
    out: list[str] = []
    position = 0
    shifts: list[tuple[int, int]] = []  # (position in value, growth of the text before it)
    growth = 0
    statements: set[int] = set()
    for start, end, statement in judgement.secrets:
        if start < position:
            continue
        secret = value[start:end]
        if _is_redacted(secret):
            continue
        replacement = _sql_redacted_form(secret)
        out.append(value[position:start])
        out.append(replacement)
        growth += len(replacement) - len(secret)
        shifts.append((end, growth))
        position = end
        statements.add(statement)
    if not statements:
        return value, judgement
    out.append(value[position:])
    found.extend(_PATTERN.SECRET_KEY for _ in statements)
    shifted = sql.Judgement((), _shifted(judgement.judged, shifts), _shifted(judgement.prose_judged, shifts))
    return "".join(out), shifted


# SQL texts repeat (a parameterized query runs a thousand times): judgements of texts that hold no
# secret are kept, a bounded number, so the same statement is read once. Texts with secrets are not.
_SQL_CACHE_SIZE = 512
_SQL_CACHE_TEXT = 4096
_sql_clean: dict[str, sql.Judgement] = {}


def _judge_sql(value: str) -> sql.Judgement:
    cached = _sql_clean.get(value)
    if cached is not None:
        return cached
    judgement = sql.judge(value, p.names_secret)
    if not judgement.secrets and len(value) <= _SQL_CACHE_TEXT:
        if len(_sql_clean) >= _SQL_CACHE_SIZE:
            _sql_clean.clear()
        _sql_clean[value] = judgement
    return judgement


def _shifted(positions: frozenset[int], shifts: list[tuple[int, int]]) -> frozenset[int]:
    """``positions`` in the text after the replacements that ``shifts`` describe (none overlaps one)."""
    out: set[int] = set()
    ends = [end for end, _ in shifts]
    for position in positions:
        index = bisect_right(ends, position)
        out.add(position + (shifts[index - 1][1] if index else 0))
    return frozenset(out)


def _sql_redacted_form(secret: str) -> str:
    """The marker for a SQL value, keeping its quoting: ``'x'``, ``E'x'``, ``"x"``, ``$$x$$``."""
    mark = marker(_PATTERN.SECRET_KEY)
    quote = secret.find("'")
    if quote == 0 or (0 < quote <= 2 and secret[:quote].replace("&", "").isalpha()):  # 'x', E'x', U&'x'
        opening = secret[: quote + 1]
        closed = len(secret) > len(opening) and secret.endswith("'")
        return f"{opening}{mark}'" if closed else f"{opening}{mark}"
    if secret.startswith('"'):
        return f'"{mark}"' if len(secret) > 1 and secret.endswith('"') else f'"{mark}'
    if secret.startswith("$"):
        opening = secret[: secret.index("$", 1) + 1]
        closed = len(secret) >= 2 * len(opening) and secret.endswith(opening)
        return f"{opening}{mark}{opening}" if closed else f"{opening}{mark}"
    return mark


def _key_values(value: str, found: list[str], judged: frozenset[int] = frozenset()) -> str:
    """``key=value``, ``key: value``, JSON (escaped too), headers: values under secret-naming keys.

    A key at a position in ``judged`` is a SQL name whose use the SQL reading judged already
    (``password_hash = %s``, ``password_hash::text``): it is left alone.
    """
    if "ookie" in value or "OOKIE" in value:
        value = p.COOKIE.sub(lambda m: _redact_value(m, found), value)
    out: list[str] = []
    position = 0
    search = p.KEY.search
    while True:
        match = search(value, position)
        if match is None:
            break
        key = match.group("key")
        if (
            match.start("key") in judged
            or not _names_secret_here(value, match.start(), key)
            or _llm_token_here(value, match)
            or _secret_arn_here(value, match)
        ):
            # Only the key and separator are consumed: a secret key may follow in what looked
            # like this key's value ("note: password=x").
            out.append(value[position : match.end()])
            position = match.end()
            continue
        secret = p.VALUE.match(value, match.end())
        if secret is None:
            out.append(value[position : match.end()])
            position = match.end()
            continue
        end = secret.end()
        if value[secret.start()] not in "\"'\\" and not p.PARAMETER_SCHEME.match(value, secret.start()):
            # An unquoted value that runs into a marker goes on after it: one secret, one marker.
            while value.startswith(_MARKER_START, end) and (after := _marker_end(value, end)) > end:
                more = p.VALUE_CONTINUED.match(value, after)
                end = after if more is None else more.end()
            end = p.plain_value_end(value, secret.start(), end, match.start())
        out.append(value[position : match.end()])
        out.append(_redacted_form(value[secret.start() : end], found))
        position = end
    if not out:
        return value
    out.append(value[position:])
    return "".join(out)


def _secret_arn_here(text: str, match: re.Match[str]) -> bool:
    """Whether ``secret:NAME`` is the resource part of a Secrets Manager ARN (a name, not a value)."""
    start = match.start()
    if match.group("key") != "secret" or match.group("sep") != ":" or text[start - 1 : start] != ":":
        return False
    return ":secretsmanager:" in text[max(0, start - _ARN_WINDOW) : start]


def _llm_token_here(text: str, match: re.Match[str]) -> bool:
    """Whether ``"token": "x"`` is an entry of a language model's logprobs (``"logprob"`` beside it)."""
    if match.group("key") != _LLM_TOKEN:
        return False
    start = match.start()
    window = text[max(0, start - _LOGPROB_WINDOW) : match.end() + _LOGPROB_WINDOW]
    return f'"{_LOGPROB}"' in window or f"'{_LOGPROB}'" in window


def _cli_flags(value: str, found: list[str]) -> str:
    """``--password Zr8k`` on a command line: the value of a flag naming a secret."""

    def replace(match: re.Match[str]) -> str:
        secret = match.group("value")
        if not p.names_secret(match.group("key")) or secret.startswith(_MARKER_START):
            return match.group(0)
        head = match.group(0)[: match.start("value") - match.start()]
        return head + _redacted_form(secret, found)

    return p.CLI_FLAG.sub(replace, value)


def _xml_elements(value: str, found: list[str]) -> str:
    """``<password>x</password>``: the text of an element naming a secret."""

    def replace(match: re.Match[str]) -> str:
        if not p.names_secret(match.group("name")) or _is_redacted(match.group("value")):
            return match.group(0)
        found.append(_PATTERN.SECRET_KEY)
        whole = match.group(0)
        start, end = match.start("value") - match.start(), match.end("value") - match.start()
        return f"{whole[:start]}{marker(_PATTERN.SECRET_KEY)}{whole[end:]}"

    return p.XML_ELEMENT.sub(replace, value)


def _names_secret_here(text: str, start: int, key: str) -> bool:
    if p.names_secret(key):
        return True
    if len(key) > 24 or not key.isalpha():
        return False
    previous = p.PREVIOUS_WORD.search(text, max(0, start - 24), start)
    return previous is not None and p.names_secret_with(previous.group(1), key)


def _redacted_form(secret: str, found: list[str]) -> str:
    """The marker that replaces ``secret``, keeping its quoting and auth scheme."""
    if _is_redacted(secret):
        return secret
    found.append(_PATTERN.SECRET_KEY)
    mark = marker(_PATTERN.SECRET_KEY)
    if secret.startswith('"'):
        return f'"{mark}"' if len(secret) > 1 and secret.endswith('"') else f'"{mark}'
    if secret.startswith("'"):
        return f"'{mark}'" if len(secret) > 1 and secret.endswith("'") else f"'{mark}"
    if secret.startswith("\\"):
        escape = secret[: len(secret) - len(secret.lstrip("\\"))]
        closed = secret.endswith('"') and len(secret) > len(escape) + 1
        return f'{escape}"{mark}{escape}"' if closed else f'{escape}"{mark}'
    scheme = p.AUTH_SCHEME.match(secret)
    if scheme is not None:
        return f"{scheme.group(0)}{mark}"
    return mark


def _redact_value(match: re.Match[str], found: list[str]) -> str:
    secret = match.group("value")
    if _is_redacted(secret):
        return match.group(0)
    found.append(_PATTERN.SECRET_KEY)
    return f"{match.group('key')}{match.group('sep')}{marker(_PATTERN.SECRET_KEY)}"


def _prose(value: str, found: list[str], judged: frozenset[int] = frozenset()) -> str:
    """``the password is x``; not a SQL name the SQL reading judged (``COMMENT ON COLUMN t.token IS``)."""

    def replace(match: re.Match[str]) -> str:
        if match.start() in judged:
            return match.group(0)
        secret = match.group("value")
        word = secret.strip(".!?:").lower()
        if not word or word in p.PROSE_NOT_A_VALUE or secret.startswith(_MARKER_START):
            return match.group(0)
        found.append(_PATTERN.SECRET_KEY)
        end = p.plain_value_end(match.string, match.start("value"), match.end("value"), match.start())
        rest = match.string[end : match.end("value")]
        return f"{match.group('key')}{match.group('sep')}{marker(_PATTERN.SECRET_KEY)}{rest}"

    return p.PROSE.sub(replace, value)

"""Scrubbing sensitive data out of telemetry before it leaves the process.

A scrubbed value becomes ``[REDACTED:<pattern>]`` and never echoes any part of the secret. Every
pattern is compiled once and is linear-time (no nested quantifiers, bounded repetition), so a
hostile attribute value cannot make the export thread backtrack for seconds. Each finding is
reported (attribute key and pattern name, never the value) so the ``security.sensitive_data``
rule can fire.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import semconv as sc

_PATTERN = sc.B2bScrubPatternValues

# Keys that name a secret. "token" only as a word of its own: gen_ai.usage.input_tokens and
# friends are counts, not credentials.
_SECRET_WORDS = (
    r"password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|apikey|x[_-]api[_-]key"
    r"|authorization|auth[_-]?token|access[_-]?token|refresh[_-]?token|id[_-]?token|token"
    r"|cookie|set[_-]?cookie|session(?:[_-]?id)?|private[_-]?key|credentials?"
)
SECRET_KEY = re.compile(rf"(?i)(?:^|[._\-\s])(?:{_SECRET_WORDS})$")
# key=value or key: value inside free text (URLs, SQL, log lines, JSON-ish payloads). The value
# quantifiers are unbounded on purpose: a bound would let the tail of a long secret through. Each is
# a single character class with nothing ambiguous after it, so the match stays linear.
_KEY_VALUE = re.compile(
    rf"(?i)\b(?P<key>{_SECRET_WORDS})\b(?P<sep>[\"']?\s{{0,3}}[:=]\s{{0,3}})"
    r"(?P<value>(?i:basic|digest|negotiate|bearer)\s{1,5}[^\s,;&\"')]+"
    r"|\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"')]+)"
)
# A Cookie / Set-Cookie header line carries several name=value pairs: the whole rest of the line goes.
_COOKIE = re.compile(r"(?i)\b(?P<key>(?:set[_-]?)?cookie)(?P<sep>[\"']?\s{0,3}:\s{0,3})(?P<value>[^\r\n]+)")
# A run of digits with single space/dash separators; the Luhn check (over sub-runs) happens in code.
_CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,4096}(?!\d)")
_CARD_DIGITS = (13, 19)
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
# The look-behind (rather than \b) lets a token start only at the beginning of a [A-Za-z0-9_-] run, so
# "eyJ-eyJ-eyJ-..." cannot make every occurrence rescan the rest of the run (quadratic).
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\bbearer\s{1,5}[A-Za-z0-9._~+/-]{8,}=*")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b")
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----"
    r"(?:[^-]|-(?!----END))*"
    r"(?:-----END (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----)?"
)

PATTERN_NAMES = sc.B2B_SCRUB_PATTERN_VALUES


# Attributes holding a URL (or its query): parsed, so that secret-named parameters are redacted.
_URL_KEYS = frozenset((sc.URL_FULL, sc.URL_QUERY, sc.URL_ORIGINAL, sc.HTTP_URL, sc.HTTP_TARGET))


def marker(pattern: str) -> str:
    """The replacement text for a value caught by ``pattern``."""
    return f"[REDACTED:{pattern}]"


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@dataclass(frozen=True)
class Finding:
    """Sensitive data caught in one field: where (``field``) and by which pattern; never the value."""

    field: str
    pattern: str


Report = Callable[[Finding], None]


class Scrubber:
    """Scrubs strings, attribute maps, URLs and SQL; configured once, used from the export thread.

    Example::

        scrubber = Scrubber(allow_keys={"user.email"})
        scrubber.text("card 4111 1111 1111 1111")  # 'card [REDACTED:credit_card]'
    """

    def __init__(self, allow_keys: Iterable[str] = (), enabled: bool = True) -> None:
        self.allow_keys = frozenset(allow_keys)
        self.enabled = enabled

    # --- free text

    def text(self, value: str, field: str = "", report: Report | None = None) -> str:
        """``value`` with every secret replaced by its marker."""
        if not self.enabled or not value:
            return value
        found: list[str] = []
        result = value
        if "PRIVATE KEY" in result:
            result = _sub(_PEM, result, _PATTERN.PRIVATE_KEY, found)
        if "eyJ" in result:
            result = _sub(_JWT, result, _PATTERN.JWT, found)
        lowered = result.lower()
        if "bearer" in lowered:
            result = _sub(_BEARER, result, _PATTERN.BEARER_TOKEN, found)
        if any(c.isdigit() for c in result):
            result = self._cards(result, found)
            result = _sub(_SSN, result, _PATTERN.US_SSN, found)
        if "A" in result:
            result = _sub(_AWS_KEY_ID, result, _PATTERN.AWS_ACCESS_KEY_ID, found)
        if "=" in result or ":" in result:
            result = self._key_values(result, found)
        if report is not None:
            for pattern in found:
                report(Finding(field, pattern))
        return result

    def _cards(self, value: str, found: list[str]) -> str:
        def replace(match: re.Match[str]) -> str:
            run = match.group(0)
            clean = _card_run(run)
            if clean != run:
                found.append(_PATTERN.CREDIT_CARD)
            return clean

        return _CARD.sub(replace, value)

    def _key_values(self, value: str, found: list[str]) -> str:
        def replace(match: re.Match[str]) -> str:
            secret = match.group("value")
            if secret.startswith("[REDACTED:") and secret.endswith("]"):
                return match.group(0)
            found.append(_PATTERN.SECRET_KEY)
            return f"{match.group('key')}{match.group('sep')}{marker(_PATTERN.SECRET_KEY)}"

        if "ookie" in value or "OOKIE" in value:
            value = _COOKIE.sub(replace, value)
        return _KEY_VALUE.sub(replace, value)

    # --- structured values

    def is_secret_key(self, key: str) -> bool:
        """Whether an attribute key itself names a secret (``http.request.header.authorization``)."""
        return key not in self.allow_keys and bool(SECRET_KEY.search(key))

    def value(self, key: str, value: Any, report: Report | None = None) -> Any:
        """One attribute value, scrubbed according to its key and content."""
        if not self.enabled or key in self.allow_keys:
            return value
        if self.is_secret_key(key) and not isinstance(value, bool):
            if report is not None:
                report(Finding(key, _PATTERN.SECRET_KEY))
            if isinstance(value, (list, tuple)):
                return tuple(marker(_PATTERN.SECRET_KEY) for _ in value)
            return marker(_PATTERN.SECRET_KEY)
        if isinstance(value, str):
            if key in _URL_KEYS:
                value = self.url(value, key, report)
            return self.text(value, key, report)
        if isinstance(value, (list, tuple)):
            return tuple(self.text(v, key, report) if isinstance(v, str) else v for v in value)
        return value

    def attributes(
        self, attributes: Mapping[str, Any] | None, report: Report | None = None
    ) -> dict[str, Any] | None:
        """A scrubbed copy of an attribute map, or None when nothing had to change."""
        if not self.enabled or not attributes:
            return None
        changed: dict[str, Any] | None = None
        for key, value in attributes.items():
            clean = self.value(key, value, report)
            if clean is not value and clean != value:
                if changed is None:
                    changed = dict(attributes)
                changed[key] = clean
        return changed

    def url(self, value: str, field: str = "", report: Report | None = None) -> str:
        """A URL with secret-named query parameters and userinfo passwords redacted."""
        try:
            parts = urlsplit(value)
        except ValueError:
            return value
        netloc = parts.netloc
        if "@" in netloc and ":" in netloc.split("@", 1)[0]:
            user = netloc.split("@", 1)[0].split(":", 1)[0]
            netloc = f"{user}:{marker(_PATTERN.SECRET_KEY)}@{netloc.split('@', 1)[1]}"
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
        """A log body: strings scrubbed; mappings and sequences walked."""
        if not self.enabled:
            return body
        if isinstance(body, str):
            return self.text(body, field, report)
        if isinstance(body, Mapping):
            return {
                k: self.value(str(k), self.body(v, report, f"{field}.{k}"), report) for k, v in body.items()
            }
        if isinstance(body, Sequence) and not isinstance(body, (bytes, bytearray)):
            return [self.body(v, report, field) for v in body]
        return body


def _card_run(run: str) -> str:
    """A digit run with every Luhn-valid card number in it replaced.

    The whole run is tried first; otherwise every sub-run of space-separated groups with 13 to 19
    digits ("4111 1111 1111 1111 123": a card and its CVV; "qty 2 4111 1111 1111 1111"). Every group
    of any valid sub-run is redacted, so overlapping candidates cannot leave a group of a card behind.
    A sub-run spans at most 19 digits, so this stays linear in the run.
    """
    low, high = _CARD_DIGITS
    digits = run.replace(" ", "").replace("-", "")
    if low <= len(digits) <= high and luhn_valid(digits):
        return marker(_PATTERN.CREDIT_CARD)
    groups = run.split(" ")
    counts = [len(g) - g.count("-") for g in groups]
    covered = [False] * len(groups)
    for first in range(len(groups)):
        total = 0
        for last in range(first, len(groups)):
            total += counts[last]
            if total > high:
                break
            if total >= low and luhn_valid("".join(groups[first : last + 1]).replace("-", "")):
                for index in range(first, last + 1):
                    covered[index] = True
    if not any(covered):
        return run
    out: list[str] = []
    for index, group in enumerate(groups):
        if not covered[index]:
            out.append(group)
        elif index == 0 or not covered[index - 1]:
            out.append(marker(_PATTERN.CREDIT_CARD))
    return " ".join(out)


def _sub(pattern: re.Pattern[str], value: str, name: str, found: list[str]) -> str:
    result, count = pattern.subn(marker(name), value)
    if count:
        found.append(name)
    return result

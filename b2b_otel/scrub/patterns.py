"""What counts as a secret: secret-naming keys, the text patterns, and the card rule.

Every regular expression here is compiled once (the scrubber's at their first use) and runs in
linear time: each repetition is a single character class, or alternatives that start with different
characters, and every look-around is bounded. A hostile 100 KB attribute value therefore cannot make
the export thread backtrack.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import Any

# The patterns the scrubber reads as module attributes are compiled at their first use, in the export
# thread, rather than when b2b_otel is imported (a few milliseconds of every start-up otherwise).
_SOURCES: dict[str, tuple[str, int]] = {}


def _lazy(name: str, pattern: str, flags: int = 0) -> None:
    _SOURCES[name] = (pattern, flags)


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    compiled = re.compile(*source)
    globals()[name] = compiled  # later reads find it directly, without this function
    return compiled


# --------------------------------------------------------------------------- secret-naming keys

# Found anywhere inside one word of a key: "userpassword", "JSESSIONID", "x_apikey", "cookies".
_STEMS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "credential",
    "authorization",
    "cookie",
    "sessionid",
    "sessid",
    "privatekey",
    "accesskey",
)
# Words holding a stem that name no secret: services that keep secrets, ways to do without one.
_NOT_SECRETS = frozenset({"secretsmanager", "secretmanager", "passwordless", "cookieless", "credentialless"})
# Whole words that name a secret on their own.
_WORDS = frozenset(
    # pass: DB_PASS, user/pass; sig: an Azure SAS token's signature; cvv/cvc: a card's security code.
    {"pwd", "pass", "token", "session", "sid", "sig", "cvv", "cvc", "cvv2", "cvc2"}
)
# Two words that name a secret together ("api key", "private_key", "session id").
_PAIRS = frozenset(
    {
        ("api", "key"),
        ("private", "key"),
        ("secret", "key"),
        ("access", "key"),
        ("signing", "key"),
        ("encryption", "key"),
        ("master", "key"),
        ("session", "id"),
        ("client", "secret"),
        # A presigned URL's signature grants what the key would (a public-key signature, such as an
        # audit checkpoint's, is not a secret: "signature" alone names none).
        ("amz", "signature"),
        ("goog", "signature"),
    }
)
# A secret word followed by one of these names something about the secret, not the secret itself:
# token_count, password_policy, session_duration, secret_name.
_ABOUT = frozenset(
    [
        "count",
        "counts",
        "total",
        "limit",
        "limits",
        "budget",
        "budgets",
        "usage",
        "used",
        "type",
        "types",
        "kind",
        "length",
        "len",
        "size",
        "min",
        "max",
        "ttl",
        "timeout",
        "expiry",
        "expires",
        "expiration",
        "expired",
        "exp",
        "policy",
        "encryption",  # password_encryption, PostgreSQL's setting of how passwords are hashed
        "reset",
        "required",
        "enabled",
        "disabled",
        "changed",
        "rotation",
        "rotated",
        "age",
        "duration",
        "start",
        "started",
        "end",
        "ended",
        "name",
        "names",
        "field",
        "fields",
        "hint",
        "strength",
        "attempt",
        "attempts",
        "retries",
        "status",
        "state",
        "format",
        "algorithm",
        "alg",
        "version",
        "mode",
        "method",
        "scheme",
        "provider",
        "source",
        "path",
        "file",
        "store",
        "index",
        "number",
        "num",
        "rate",
        "ratio",
        "remaining",
        "id",
        "ids",
        # where a secret is fetched or kept, and facts about it: token_endpoint, secret_arn,
        # password_last_changed, token_issued_at, api_key_prefix, cookie_consent, token_logprob
        "endpoint",
        "url",
        "uri",
        "ref",
        "arn",
        "last",
        "issued",
        "issuer",
        "prefix",
        "last4",
        "estimate",
        "consent",
        "domain",
        "secure",
        "samesite",
        "affinity",
        "logprob",
        "logprobs",
    ]
)
# A token word preceded by one of these is a count of language-model tokens: max_token, input_token.
_COUNTED = frozenset(
    [
        "max",
        "min",
        "input",
        "output",
        "prompt",
        "completion",
        "total",
        "num",
        "reasoning",
        "cached",
        "cache",
        "read",
        "write",
    ]
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
# Only the tail of a huge key is looked at: the classification is cached per key.
_KEY_TAIL = 96


def _words(segment: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", segment).lower()) if w]


@lru_cache(maxsize=4096)
def names_secret(key: str) -> bool:
    """Whether the key ``key`` names a secret, judged on its last dotted segment.

    ``db.password``, ``db_password``, ``userPassword``, ``aws_secret_access_key``, ``session_token``,
    ``JSESSIONID``, ``x-api-key`` name secrets; ``gen_ai.usage.input_tokens``, ``max_tokens``,
    ``token_count``, ``session.id`` (the session's id attribute) and ``password_policy`` do not.

    Example::

        names_secret("apiKey")  # True
        names_secret("gen_ai.request.max_tokens")  # False
    """
    segment = key[-_KEY_TAIL:].rsplit(".", 1)[-1]
    words = _words(segment)
    last_hit = -1
    for index, word in enumerate(words):
        previous = words[index - 1] if index else ""
        if word in _NOT_SECRETS:
            hit = False
        elif word in _WORDS or any(stem in word for stem in _STEMS):
            hit = not (word == "token" and previous in _COUNTED)
        elif word.endswith("token") and word != "token":
            hit = True  # accesstoken, csrftoken, sessiontoken
        else:
            hit = (previous, word) in _PAIRS
        if hit:
            last_hit = index
    if last_hit < 0:
        return False
    # "session_id" is a pair; "token_count" is about a token.
    after = words[last_hit + 1 :]
    if not after:
        return True
    return not (after[0] in _ABOUT and (words[last_hit], after[0]) not in _PAIRS)


def names_secret_with(previous_word: str, key: str) -> bool:
    """Whether ``previous_word key`` (two words of prose, ``the api key: ...``) names a secret."""
    return names_secret(key) or (bool(previous_word) and names_secret(f"{previous_word}_{key}".lower()))


# --------------------------------------------------------------------------- key = value in text

# A key is a run of identifier characters that does not continue a longer run to its left (its
# separator may be percent-encoded, "password%3Dx", as in a query string encoded once more); the run
# is unbounded, but the separator can only start where the run ends, so the match stays linear. The
# value is matched apart (VALUE, from the separator's end), and only after a secret-naming key.
KEY: re.Pattern[str]
_lazy(
    "KEY",
    r"(?<![A-Za-z0-9_.\-])(?P<key>[A-Za-z0-9_.\-]+)"
    r"(?P<sep>\\{0,3}[\"']?[ \t]{0,3}(?::=|=>|[:=]|%3[Dd])[ \t]{0,3})",
)
# An unquoted value runs to white space or a quote: "password=ab,cd;ef" and "pwd=x)y" are secrets
# whole. A ",", ";" or "&" ends it only where the next "key=" begins ("pwd=x;user=bob", a query
# string, an ODBC connection string); the look-ahead is bounded, so the match stays linear.
# Punctuation and closing brackets that end the value in prose are given back in code
# (``plain_value_end``).
_NEXT_PAIR = r"[ \t]?[A-Za-z_][A-Za-z0-9_.\-]{0,63}(?: [A-Za-z][A-Za-z0-9_]{0,31})?[ \t]?="
# A marker left by an earlier pass ends a value too: a value never runs through what is redacted
# already (each character is then read by one value match only, so the key scan stays linear).
_VALUE_PLAIN = r"(?:[^\s\"'\\,;&\[]|\[(?!REDACTED:)|\\(?!\\{0,2}[\"'])|[,;&](?!" + _NEXT_PAIR + r"))+"
AUTH_SCHEME: re.Pattern[str]
_lazy(
    "AUTH_SCHEME",
    r"(?i)(?:basic|bearer|token|negotiate|ntlm|apikey|digest|aws4-hmac-sha256|hoba|mutual)[ \t]{1,5}",
)
VALUE: re.Pattern[str]
_lazy(
    "VALUE",
    r"\"(?:[^\"\\\n]|\\.)*\"?"  # "a JSON string, \" escapes included"
    r"|'(?:[^'\\\n]|\\.|'')*'?"  # 'a quoted value, '' and \' escapes included'
    r"|\\{1,3}\"(?:[^\\\n]|\\(?!\\{0,2}\"))*(?:\\{1,3}\")?"  # \"JSON inside a JSON string\"
    r"|(?i:digest|aws4-hmac-sha256|hoba|mutual)[ \t][^\r\n]*"  # schemes with parameter lists
    r"|(?i:basic|bearer|token|negotiate|ntlm|apikey)[ \t]{1,5}" + _VALUE_PLAIN + r"|" + _VALUE_PLAIN,
)
# What continues a value after a marker inside it ("password=ab[REDACTED:jwt]cd": one secret).
VALUE_CONTINUED: re.Pattern[str]
_lazy("VALUE_CONTINUED", _VALUE_PLAIN)
# The auth schemes whose value is a parameter list, taken to the end of the line.
PARAMETER_SCHEME: re.Pattern[str]
_lazy("PARAMETER_SCHEME", r"(?i)(?:digest|aws4-hmac-sha256|hoba|mutual)[ \t]")
# The word before a key, to read "api key" and "private key" in prose.
PREVIOUS_WORD: re.Pattern[str]
_lazy("PREVIOUS_WORD", r"([A-Za-z]{2,20})[ \t_-]{1,3}$")
# A command line's flag and its value: "--password Zr8k", "-api-key 'x'" (``--password=x`` is a key=value).
CLI_FLAG: re.Pattern[str]
_lazy(
    "CLI_FLAG",
    r"(?<![^\s\"'])--?(?P<key>[A-Za-z][A-Za-z0-9_.\-]{0,63})[ \t]+"
    r"(?P<value>\"[^\"\n]*\"?|'[^'\n]*'?|(?!-)[^\s\"']+)",
)
# An XML element: "<password>x</password>", "<ns:ClientSecret a='1'>x</ns:ClientSecret>"; bounded.
XML_ELEMENT: re.Pattern[str]
_lazy(
    "XML_ELEMENT",
    r"<(?P<tag>(?:[A-Za-z_][\w.\-]{0,31}:)?(?P<name>[A-Za-z_][\w.\-]{0,63}))(?:[ \t][^<>]{0,256})?>"
    r"(?P<value>[^<]{1,4096})</(?P=tag)>",
)
# A Cookie / Set-Cookie header line carries several name=value pairs: the whole rest of the line goes.
COOKIE: re.Pattern[str]
_lazy("COOKIE", r"(?i)\b(?P<key>(?:set[_-]?)?cookie)(?P<sep>[\"']?\s{0,3}:\s{0,3})(?P<value>[^\r\n]+)")
# Prose: "db password is hunter2-Pa55word!", "the api key was abc123", "secret: x".
PROSE: re.Pattern[str]
_lazy(
    "PROSE",
    r"(?i)(?<![A-Za-z0-9_\-])(?P<key>passwords?|passwd|passphrase|pass[ \t]phrase|secret|client[ \t]secret"
    r"|api[ \t_-]?key|private[ \t_-]?key|access[ \t_-]?key|secret[ \t_-]?key|token|credentials?)"
    r"(?P<sep>[ \t]{1,3}(?:is|was|are|were|equals|set[ \t]to|reads)[ \t]{1,3}[:=]?[ \t]{0,3}[\"'`]?)"
    r"(?P<value>(?:[^\s\"'`,;&]|[,;&](?!" + _NEXT_PAIR + r"))+)",
)
# Words that follow "the password is" without being the password.
PROSE_NOT_A_VALUE = frozenset(
    [
        "required",
        "invalid",
        "incorrect",
        "wrong",
        "missing",
        "empty",
        "expired",
        "not",
        "too",
        "also",
        "still",
        "now",
        "being",
        "about",
        "correct",
        "valid",
        "set",
        "reset",
        "changed",
        "null",
        "none",
        "nil",
        "blank",
        "weak",
        "strong",
        "ok",
        "okay",
        "needed",
        "mandatory",
        "optional",
        "accepted",
        "rejected",
        "locked",
        "disabled",
        "enabled",
        "unknown",
        "unset",
        "updated",
        "present",
        "absent",
        "different",
        "same",
        "longer",
        "shorter",
        "stored",
        "hashed",
        "encrypted",
        "redacted",
        "hidden",
        "masked",
        "configured",
        "defined",
        "provided",
        "given",
        "sent",
        "used",
        "active",
        "revoked",
        "rotated",
        "the",
        "a",
        "an",
        "in",
        "on",
        "at",
        "of",
        "to",
        "for",
        "by",
        "from",
        "with",
        "as",
        "this",
        "that",
        # what happens to a secret, said in a log line: "token was refreshed", "secret was created"
        "refreshed",
        "renewed",
        "issued",
        "reissued",
        "generated",
        "regenerated",
        "created",
        "deleted",
        "removed",
        "invalidated",
        "verified",
        "validated",
        "checked",
        "cached",
        "loaded",
        "saved",
        "found",
        "exchanged",
        "granted",
        "denied",
        "expiring",
        "unavailable",
        "unchanged",
        "received",
        "fetched",
        "retrieved",
        "malformed",
        "truncated",
        "ignored",
        "distinct",
    ]
)

# --------------------------------------------------------------------------- fixed patterns

SSN: re.Pattern[str]
_lazy("SSN", r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
# The look-behind (rather than \b) lets a token start only at the beginning of a [A-Za-z0-9_-] run, so
# "eyJ-eyJ-eyJ-..." cannot make every occurrence rescan the rest of the run (quadratic).
JWT: re.Pattern[str]
_lazy("JWT", r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
BEARER: re.Pattern[str]
_lazy("BEARER", r"(?i)\bbearer\s{1,5}[A-Za-z0-9._~+/-]{8,}=*")
# "Basic <base64 of user:password>" outside a key: only when it decodes to a user:password pair.
BASIC: re.Pattern[str]
_lazy(
    "BASIC", r"(?i)(?<![A-Za-z0-9_])basic[ \t]{1,5}(?P<credentials>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])"
)
AWS_KEY_ID: re.Pattern[str]
_lazy("AWS_KEY_ID", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b")
PEM: re.Pattern[str]
_lazy(
    "PEM",
    r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----"
    r"(?:[^-]|-(?!----END))*"
    r"(?:-----END (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----)?",
)
# A URL's userinfo anywhere in text: "see https://bob:s3cret@host/x", "https://ghp_x@github.com/o/r".
# Free text does not percent-encode: the password runs to the last "@" before a space or "/"
# ("p#ss@rd@host"). What of it is secret is decided by ``userinfo_secret``.
URL_USERINFO: re.Pattern[str]
_lazy(
    "URL_USERINFO",
    r"(?i)(?<![A-Za-z0-9+.\-])(?P<scheme>[a-z][a-z0-9+.\-]{0,30})://(?P<user>[^\s:/?#@\[\]]{0,256})"
    r"(?::(?P<password>[^\s/]+))?@",
)
# Userinfo without a scheme: "alice:pw@db:5432", Go's "app:pw@tcp(10.0.0.5:3306)/db", a proxy
# "user:pw@proxy:8080". Starts only at the beginning of a word; the password is bounded.
BARE_USERINFO: re.Pattern[str]
_lazy(
    "BARE_USERINFO",
    r"(?<![^\s\"'(<{=,;])(?P<user>[A-Za-z_][A-Za-z0-9._~%+\-]{0,63}):"
    r"(?P<password>[^\s/\"'<>]{1,128})@(?=[A-Za-z0-9\[])",
)
# "word:x@host" forms that are not credentials: URIs without "//" (mailto:bob@example.com) and
# fields holding an address (from:alice@example.com).
BARE_USERINFO_NOT_A_USER = frozenset(
    [
        "mailto",
        "sip",
        "sips",
        "xmpp",
        "tel",
        "cid",
        "mid",
        "urn",
        "tag",
        "news",
        "im",
        "pres",
        "acct",
        "did",
        "email",
        "e-mail",
        "mail",
        "from",
        "to",
        "cc",
        "bcc",
        "sender",
        "recipient",
        "reply-to",
        "contact",
    ]
)
# Schemes whose user-only userinfo is a login name, the credential being a key or asked for apart.
LOGIN_SCHEMES = frozenset(["ssh", "sftp", "scp", "git+ssh", "ssh+git", "svn+ssh", "rsync"])
# Access tokens that services take as the user name of a URL (GitHub, GitLab, Slack, Stripe, AWS).
_TOKEN_PREFIXES = (
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "gldt-",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxs-",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "AKIA",
    "ASIA",
)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def token_like(user: str) -> bool:
    """Whether a URL's user name looks like an access token rather than a login name.

    A known token prefix (``ghp_``, ``glpat-``, ``xoxb-``, ``sk-``...), 32 characters or more, or 20
    or more mixing letters and digits (percent escapes aside: ``john.smith%40corp.com`` is a login).
    """
    if user.startswith(_TOKEN_PREFIXES) or len(user) >= 32:
        return True
    if len(user) < 20:
        return False
    bare = _PERCENT_ESCAPE.sub("", user)
    return any(c.isdigit() for c in bare) and any(c.isalpha() for c in bare)


def userinfo_secret(scheme: str, user: str, password: str | None) -> str:
    """What of a URL's userinfo is secret: ``"none"``, ``"password"`` or ``"all"``.

    - With a password: the password; the user name too when it looks like a token
      (``https://ghp_...:x-oauth-basic@github.com``). A login name (``alice``) is an identity the
      reader needs, not a secret.
    - Without one: services take a token as the user name (``https://<token>@github.com``, a Sentry
      DSN's key, ``https://<api key>@api.example.com``), so a user-only userinfo is secret, except a
      login name under the SSH-family schemes (``ssh://git@github.com``), whose credential is a key.
    """
    if password is not None:
        return "all" if token_like(user) else "password"
    if not user:
        return "none"
    if scheme.lower() in LOGIN_SCHEMES and not token_like(user):
        return "none"
    return "all"


def basic_credentials(encoded: str) -> bool:
    """Whether ``encoded`` is the base64 of a ``user:password`` pair (HTTP Basic credentials)."""
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return ":" in text and text.isprintable()


# --------------------------------------------------------------------------- cards

# A run of digits with single space, dash or dot separators; which parts are cards is decided in code.
CARD_RUN: re.Pattern[str]
_lazy("CARD_RUN", r"(?<!\d)\d(?:[ .\-]?\d){12,4096}(?!\d)")
CARD_DIGITS = (13, 19)
# Words that make a number nearby a card number (looked for shortly before it, or in the key).
CARD_CONTEXT: re.Pattern[str]
_lazy(
    "CARD_CONTEXT",
    r"(?i)(?<![a-z])(?:card|cards|cc|ccn|pan|visa|mastercard|master card|amex|american express|discover"
    r"|jcb|diners|maestro|credit|debit|payment|paid|pay|charged|charge|cardholder|cardnumber)(?![a-z])",
)
CARD_KEY: re.Pattern[str]
_lazy("CARD_KEY", r"(?i)card|(?<![a-z])(?:cc|ccn|pan|payment)(?![a-z])")
CARD_CONTEXT_WINDOW = 40
# Identifiers that are not cards, whatever their digits: "order 4111111111111111", "invoice no.
# 5500000000000004", "tracking#: ...". Only a contiguous run right after one of these words (or
# under a key naming one, ``b2b.order.id``) is spared, and only when no card word is near: a card
# written in groups, or next to "card", "paid", "visa"..., is still a card. The list is short on
# purpose: a word that also goes with cards ("transaction", "account", "customer", "payment",
# "reference", "receipt") or that names anything at all ("case", "request", "record", "event") is
# not in it, because leaking a card is worse than redacting an identifier.
_ID_WORDS = (
    r"order|invoice|inv|ticket|tracking|shipment|parcel|consignment|sku|isbn|imei|iccid|serial|po"
    r"|booking|reservation|confirmation|build|job|trace|span"
)
_ID_SUFFIX = r"(?:[ _.\-]?(?:id|ids|no|nr|num|number|code|key))"
CARD_NOT_CONTEXT: re.Pattern[str]
_lazy(
    "CARD_NOT_CONTEXT",
    r"(?i)(?<![a-z])(?:" + _ID_WORDS + r")s?" + _ID_SUFFIX + r"?\.?"
    r"[ \t]{0,3}(?:is|was|[:=#]{1,2})?[ \t]{0,3}[\"'#]?[ \t]{0,3}\Z",
)
CARD_NOT_KEY: re.Pattern[str]
_lazy("CARD_NOT_KEY", r"(?i)(?<![a-z])(?:" + _ID_WORDS + r")s?" + _ID_SUFFIX + r"\Z")


def plain_value_end(text: str, start: int, end: int, key_start: int) -> int:
    """Where an unquoted value ``text[start:end]`` after the key at ``key_start`` really ends.

    A value is matched to white space; what closes the sentence or the structure around it is given
    back: a trailing ``.``, ``,``, ``;`` or ``:`` ("password=x, then"), and a closing bracket that
    closes one opened before the key on the same line ("f(pwd=x)", "{password=x}"), never one that
    the value opened itself or that nothing opened ("pwd=x)y" and "pwd=x)" are secrets whole). At most
    a few characters are given back, never the first one; the counts are bounded, so this is linear.
    """
    line_start = max(text.rfind("\n", max(0, key_start - _OPENER_WINDOW), key_start) + 1, 0)
    line_start = max(line_start, key_start - _OPENER_WINDOW)
    balance: dict[str, int] = {}
    opened_before: dict[str, int] = {}
    given = 0
    while end > start + 1 and given < _MAX_GIVEN_BACK:
        char = text[end - 1]
        if char in _TRAILING_PUNCTUATION:
            pass
        elif char in _CLOSERS:
            opener = _CLOSERS[char]
            if char not in balance:
                balance[char] = text.count(opener, start, end) - text.count(char, start, end)
                opened_before[char] = text.count(opener, line_start, key_start) - text.count(
                    char, line_start, key_start
                )
            if balance[char] >= 0 or opened_before[char] <= 0:
                break
            balance[char] += 1
            opened_before[char] -= 1
        else:
            break
        end -= 1
        given += 1
    return end


_TRAILING_PUNCTUATION = ".,;:"
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}
_MAX_GIVEN_BACK = 8
_OPENER_WINDOW = 256


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


def issuer_prefix(digits: str) -> bool:
    """Whether ``digits`` starts with a known issuer prefix (IIN) and has that network's length.

    Visa 4 (13, 16, 19 digits), Mastercard 51-55 and 2221-2720 (16), Amex 34/37 (15),
    Discover 6011/65/644-649 (16-19), JCB 3528-3589 (16-19), Diners 300-305/36/38 (14-19).
    """
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if 300 <= int(digits[:3]) <= 305 or two in (36, 38):
        return 14 <= n <= 19
    return False


def card_like_grouping(groups: list[str], separators: list[str]) -> bool:
    """Whether digit groups are written the way card numbers are.

    No separator at all; or one kind of separator (space, dash or dot) between groups of four with a
    shorter last group (4111 1111 1111 1111, 4111.1111.1111.1111, 6011-0009-9013-9424-123), or the
    4-6-5 / 4-6-4 grouping of Amex and Diners (3782 822463 10005).
    """
    if len(groups) == 1:
        return True
    if len(set(separators)) != 1:
        return False
    sizes = [len(g) for g in groups]
    if sizes in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4

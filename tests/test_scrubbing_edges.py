"""Scrubbing at the edges (issue 9): each finding is one member of a class, and these are other members
of the same classes, written the way an attacker (or an unlucky application) writes them.

- an unquoted value holding ``, ; & ) } ]`` is a secret whole, and the prose after it is kept;
- URL userinfo: what of ``user:password@`` and of a user-only userinfo is secret, with and without a
  scheme, in free text and in URL attributes;
- the card rule spares a contiguous number right after a word naming another identifier, and only that;
- secrets in attribute keys, non-UTF-8 bytes, and values OTLP has no type for;
- every new form in linear time, on 1 MB, measured as a ratio of CPU times.
"""

from __future__ import annotations

import datetime
import decimal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from b2b_otel.export.scrubbing import ScrubbingLogExporter
from b2b_otel.scrub import Finding, Scrubber, luhn_valid

MARK = "[REDACTED:secret_key]"
CARD = "[REDACTED:credit_card]"


def scrub(text: str, field: str = "app.note") -> tuple[str, list[Finding]]:
    findings: list[Finding] = []
    return Scrubber().text(text, field, findings.append), findings


def pieces(secret: str, size: int = 3) -> set[str]:
    """Every piece of ``secret`` of ``size`` characters that holds something other than punctuation."""
    return {
        secret[i : i + size]
        for i in range(len(secret) - size + 1)
        if any(c.isalnum() for c in secret[i : i + size])
    }


def assert_gone(out: str, secret: str, size: int = 3) -> None:
    leaked = sorted(piece for piece in pieces(secret, size) if piece in out)
    assert not leaked, f"pieces {leaked} of {secret!r} survived in {out!r}"


# --------------------------------------------------------------------------- (b) unquoted values

# (text, the secret in it): a separator inside the value must not end it.
UNQUOTED = [
    ("password=ab,cd;ef", "ab,cd;ef"),
    ("pwd=x)y", "x)y"),
    ("pwd=Zr8k)Qw2m}Xv9p]Tq7", "Zr8k)Qw2m}Xv9p]Tq7"),
    ("token=Zr8k&Qw2m&Xv9p", "Zr8k&Qw2m&Xv9p"),
    ("secret=Zr8k;Qw2m;Xv9p done", "Zr8k;Qw2m;Xv9p"),
    ("api_key: Zr8k,Qw2m,Xv9p", "Zr8k,Qw2m,Xv9p"),
    ("db_password=(Zr8k)Qw2m", "(Zr8k)Qw2m"),
    ("client_secret=Zr8k}]);Qw2m", "Zr8k}]);Qw2m"),
    ("Authorization: Token Zr8k,Qw2m;Xv9p", "Zr8k,Qw2m;Xv9p"),
    ("the password is Zr8k,Qw2m;Xv9p ok", "Zr8k,Qw2m;Xv9p"),
    ("the api key was Zr8k&Qw2m)Xv9p.", "Zr8k&Qw2m)Xv9p"),
    ('{"msg": "password=Zr8k,Qw2m;Xv9p"}', "Zr8k,Qw2m;Xv9p"),
    ("password=Zr8k[REDACTED:jwt]Qw2mXv9p rest", "Qw2mXv9p"),
    ("pwd=x)" + "y" * 500, "x)" + "y" * 500),
]


@pytest.mark.parametrize(("text", "secret"), UNQUOTED)
def test_an_unquoted_value_with_separators_in_it_is_redacted_whole(text: str, secret: str) -> None:
    out, findings = scrub(text)
    assert MARK in out, out
    assert_gone(out, secret, 2 if len(secret) < 5 else 3)
    assert findings


# (text, what it becomes): what closes the sentence or the structure around the value stays.
AROUND = [
    ("password=abc, then we retried", f"password={MARK}, then we retried"),
    ("password=abc. Retrying", f"password={MARK}. Retrying"),
    ("login(user=bob, password=abc) failed", f"login(user=bob, password={MARK}) failed"),
    ("{password=abc, user=bob}", f"{{password={MARK}, user=bob}}"),
    ("{user=bob, password=abc}", f"{{user=bob, password={MARK}}}"),
    ("[password=abc]", f"[password={MARK}]"),
    ("User(name=bob, password=ab)cd)", f"User(name=bob, password={MARK})"),
    ("Server=db;Password=ab;cd;User Id=sa;Database=x", f"Server=db;Password={MARK};User Id=sa;Database=x"),
    ("GET /x?password=abc&page=2&sort=asc", f"GET /x?password={MARK}&page=2&sort=asc"),
    ("token=a;secret=b;x=1", f"token={MARK};secret={MARK};x=1"),
    ("password=a,b,c;note=hello", f"password={MARK};note=hello"),
    ("(the password is abc)", f"(the password is {MARK})"),
    ("the password is abc, as agreed", f"the password is {MARK}, as agreed"),
]


@pytest.mark.parametrize(("text", "expected"), AROUND)
def test_the_text_around_an_unquoted_value_is_kept(text: str, expected: str) -> None:
    assert scrub(text)[0] == expected


# Other forms of a secret-naming key: abbreviations, a command line's flags, XML, presigned URLs.
KEY_FORMS = [
    ("DB_PASS=Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("smtp.pass: Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("mysql --user bob --password Zr8kQw2mXv9p -h db", "Zr8kQw2mXv9p"),
    ("exec tool --api-key 'Zr8k Qw2m Xv9p' --verbose", "Zr8k Qw2m Xv9p"),
    ("run -client-secret Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("<password>Zr8kQw2mXv9p</password>", "Zr8kQw2mXv9p"),
    ("<soap:Body><wsse:Password Type='x'>Zr8kQw2mXv9p</wsse:Password></soap:Body>", "Zr8kQw2mXv9p"),
    ("GET /b/o?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE&X-Amz-Signature=Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("https://acct.blob.core.windows.net/c/b?sv=2021-08-06&sig=Zr8kQw2mXv9p%3D&se=2025", "Zr8kQw2mXv9p"),
    ("card cvv=123, cvc2: 456", "123"),
    ("body user%3Dbob%26password%3DZr8kQw2mXv9p", "Zr8kQw2mXv9p"),  # a query string encoded again
]


@pytest.mark.parametrize(("text", "secret"), KEY_FORMS)
def test_other_forms_of_a_secret_naming_key_are_redacted(text: str, secret: str) -> None:
    out, findings = scrub(text)
    assert secret not in out, out
    assert MARK in out and findings


@pytest.mark.parametrize(
    "text",
    [
        "--verbose --name bob --port 8080",
        "signature_version=4",
        "b2b.audit.checkpoint.signature=9f2c4e5d6a7b8c9d0e1f",  # a public-key signature is public
        "the pass rate is 3",
        "<user>bob</user><role>admin</role>",
        "a - b - c",
    ],
)
def test_ordinary_flags_elements_and_words_are_kept(text: str) -> None:
    assert scrub(text) == (text, [])


# --------------------------------------------------------------------------- (a) URL userinfo

GHP = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"

# (URL, what it becomes): in free text and as a URL attribute alike.
USERINFO = [
    # A login name is an identity the reader needs; the password is the secret.
    ("https://alice:Zr8kQw2mXv9p@db.example.com/x", f"https://alice:{MARK}@db.example.com/x"),
    ("amqp://guest:Zr8kQw2mXv9p@rabbit:5672/vh", f"amqp://guest:{MARK}@rabbit:5672/vh"),
    ("redis://:Zr8kQw2mXv9p@cache:6379/0", f"redis://:{MARK}@cache:6379/0"),
    ("https://oauth2:glpat-Zr8kQw2mXv9pLm3N@gitlab.com/g/r.git", f"https://oauth2:{MARK}@gitlab.com/g/r.git"),
    # A user name that is a token goes with the password.
    (f"https://{GHP}:x-oauth-basic@github.com/o/r", f"https://{MARK}@github.com/o/r"),
    ("https://svc0123456789abcdef01:x@api.example.com/", f"https://{MARK}@api.example.com/"),
    # A user-only userinfo is a credential (services take tokens as the user name)...
    (f"https://{GHP}@github.com/o/r.git", f"https://{MARK}@github.com/o/r.git"),
    ("https://Zr8kQw2mXv9pLm3N@api.example.com/v1", f"https://{MARK}@api.example.com/v1"),
    (
        "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/1",
        f"https://{MARK}@o1.ingest.sentry.io/1",
    ),
    ("https://alice@bitbucket.org/team/r.git", f"https://{MARK}@bitbucket.org/team/r.git"),
    ("ftp://Zr8kQw2mXv9p@files.example.com/", f"ftp://{MARK}@files.example.com/"),
    # ... except a login name under the SSH family, whose credential is a key.
    ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
    ("git+ssh://deploy@git.example.com/r", "git+ssh://deploy@git.example.com/r"),
    (f"ssh://{GHP}@github.com/o/r", f"ssh://{MARK}@github.com/o/r"),
]


@pytest.mark.parametrize(("url", "expected"), USERINFO)
def test_url_userinfo_in_free_text(url: str, expected: str) -> None:
    out, findings = scrub(f"cloning {url} now")
    assert out == f"cloning {expected} now"
    assert bool(findings) == (expected != url)


@pytest.mark.parametrize(("url", "expected"), USERINFO)
@pytest.mark.parametrize("key", ["url.full", "http.url", "app.endpoint"])
def test_url_userinfo_in_url_attributes(url: str, expected: str, key: str) -> None:
    findings: list[Finding] = []
    assert Scrubber().value(key, url, findings.append) == expected
    assert bool(findings) == (expected != url)


# Userinfo without a scheme: a DSN, a proxy, a command line.
BARE = [
    ("dsn app:Zr8kQw2mXv9p@tcp(10.0.0.5:3306)/orders", f"dsn app:{MARK}@tcp(10.0.0.5:3306)/orders"),
    ("proxy=alice:Zr8kQw2mXv9p@proxy.corp:8080", f"proxy=alice:{MARK}@proxy.corp:8080"),
    ("mysql -h db admin:Zr8k@Qw2m@db.example.com", f"mysql -h db admin:{MARK}@db.example.com"),
    ('{"dsn": "root:Zr8kQw2mXv9p@localhost/db"}', f'{{"dsn": "root:{MARK}@localhost/db"}}'),
]


@pytest.mark.parametrize(("text", "expected"), BARE)
def test_userinfo_without_a_scheme_loses_its_password(text: str, expected: str) -> None:
    out, findings = scrub(text)
    assert out == expected and findings


NOT_USERINFO = [
    "mailto:bob@example.com",
    "reply to from:alice@example.com",
    "see https://medium.com/@alice/post",
    "see https://db.example.com:5432/x",
    "ping at 10:30@office",
    "user bob@example.com logged in",
    "ssh://git@github.com/o/r.git",
    "git@github.com:org/repo.git",
]


@pytest.mark.parametrize("text", NOT_USERINFO)
def test_addresses_and_logins_that_are_not_credentials_are_kept(text: str) -> None:
    assert scrub(text) == (text, [])


# --------------------------------------------------------------------------- (c) the card rule

VISA, MASTERCARD, AMEX = "4111111111111111", "5500000000000004", "378282246310005"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (f"order {VISA} shipped", "app.note"),
        (f"Order #{VISA} confirmed", "app.note"),
        (f"invoice no. {MASTERCARD} is due", "app.note"),
        (f"tracking#: {VISA}", "app.note"),
        (f"orderId={VISA}", "app.note"),
        (f"shipment_number: {AMEX}", "app.note"),
        (f"PO {MASTERCARD} approved", "app.note"),
        (f"serial {VISA}", "app.note"),
        (VISA, "b2b.order.id"),
        (MASTERCARD, "app.invoice_number"),
        (VISA, "shop.orderId"),
    ],
)
def test_a_contiguous_number_right_after_another_identifiers_name_is_not_a_card(
    text: str, field: str
) -> None:
    assert all(luhn_valid(n) for n in (VISA, MASTERCARD, AMEX))
    assert scrub(text, field) == (text, [])


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (f"card {VISA}", "app.note"),
        (f"order {VISA} paid with visa", "app.note"),  # a card word near wins
        (f"charged order {VISA}", "app.note"),
        (f"order {VISA[:4]} {VISA[4:8]} {VISA[8:12]} {VISA[12:]}", "app.note"),  # written as a card
        (f"order {VISA[:4]}-{VISA[4:8]}-{VISA[8:12]}-{VISA[12:]}", "app.note"),
        (f"case {VISA}", "app.note"),  # words that name anything are not spared
        (f"transaction {VISA}", "app.note"),
        (f"customer {VISA} account", "app.note"),
        (f"reference {VISA}", "app.note"),
        (f"request failed: {VISA}", "app.note"),
        (f"order shipped; {VISA}", "app.note"),  # the word is not right before it
        (VISA, "payment.order_id"),  # a card key wins over an identifier's
        (VISA, "exception.message"),
        (f"order 12 {VISA}", "app.note"),  # the word names the 12, not what follows
    ],
)
def test_a_card_anywhere_else_is_still_redacted(text: str, field: str) -> None:
    out, findings = scrub(text, field)
    assert CARD in out, out
    assert Finding(field, "credit_card") in findings


# --------------------------------------------------------------------------- keys, bytes, types


SECRET_KEYS = [
    ("header.Bearer zQ8vTkLmN3pRsW7xYq", "zQ8vTkLmN3pRsW7xYq"),
    ("param.password=Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("ssn 219-09-9999", "219-09-9999"),
    ("https://alice:Zr8kQw2mXv9p@db/x", "Zr8kQw2mXv9p"),
]


@pytest.mark.parametrize(("key", "secret"), SECRET_KEYS)
def test_a_secret_in_an_attribute_key_is_redacted_and_no_finding_names_it(key: str, secret: str) -> None:
    findings: list[Finding] = []
    clean = Scrubber().attributes({key: "x", "app.other": "kept"}, findings.append)
    assert clean is not None and clean["app.other"] == "kept"
    assert key not in clean and "[REDACTED:" in next(k for k in clean if k != "app.other")
    assert_gone(repr(clean), secret, 4)
    assert findings and not [f for f in findings if any(p in f.field for p in pieces(secret, 4))]


def test_a_secret_in_a_nested_key_is_redacted_and_no_finding_names_it() -> None:
    findings: list[Finding] = []
    body = Scrubber().body({"ctx": {"Bearer zQ8vTkLmN3pRsW7xYq": {"n": "ssn 219-09-9999"}}}, findings.append)
    assert "zQ8vTkLm" not in repr(body) and "219-09" not in repr(body)
    assert findings and not [f for f in findings if "zQ8v" in f.field]


def test_bytes_that_are_not_all_utf8_are_still_scrubbed() -> None:
    raw = b"\xff\xfe header password=Hunter2xyz \x80 ssn 219-09-9999 \xc3"
    out = Scrubber().value("app.raw", raw)
    assert isinstance(out, bytes)
    assert b"Hunter2" not in out and b"219-09" not in out
    assert out.startswith(b"\xff\xfe header password=[REDACTED:") and out.endswith(b"\xc3")


class _Secretive:
    def __str__(self) -> str:
        return "Creds(password=Hunter2xyz)"


class _Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def test_log_bodies_of_any_type_are_exported_scrubbed_not_refused() -> None:
    # OTLP has no type for a datetime, Decimal, UUID, set or object: its encoder refused the whole batch.
    memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(ScrubbingLogExporter(memory, Scrubber())))
    logger = provider.get_logger("t")
    bodies: list[Any] = [
        {
            "when": datetime.datetime(2025, 6, 20, 1, 52),
            "amount": decimal.Decimal("1.50"),
            "id": uuid.UUID(int=1),
        },
        {"tags": {"password=Hunter2xyz"}, "creds": _Secretive(), "bad": _Hostile()},
        [b"\xffpassword=Hunter2xyz", ("ssn 219-09-9999",)],
        _Secretive(),
        frozenset({"token=Hunter2xyz"}),
    ]
    for body in bodies:
        logger.emit(body=body)
    provider.shutdown()
    records = memory.get_finished_logs()
    assert len(records) == len(bodies)
    encoded = encode_logs(records).SerializeToString()  # the whole batch encodes
    assert b"Hunter2" not in encoded and b"219-09" not in encoded
    assert b"2025-06-20 01:52:00" in encoded and b"1.50" in encoded and b"<_Hostile>" in encoded


# --------------------------------------------------------------------------- linear time on 1 MB

MB = 1_000_000
HUGE: dict[str, Callable[[int], str]] = {
    "value_with_commas": lambda n: "password=" + "a," * (n // 2),
    "value_next_pair_almost": lambda n: "password=a" + ",b" * (n // 2),
    "value_next_pair_long_keys": lambda n: "password=a" + (",b" + "c" * 70 + "=") * (n // 74),
    "value_of_closers": lambda n: "password=" + ")" * n,
    "openers_then_closers": lambda n: "(" * (n // 2) + "password=abc" + ")" * (n // 2),
    "calls_with_keys": lambda n: "f(pwd=x) " * (n // 9),
    "markers_after_keys": lambda n: "token:[REDACTED:secret_key]" * (n // 27),
    "value_through_markers": lambda n: "password=" + "a[REDACTED:jwt]" * (n // 15),
    "bare_userinfo_starts": lambda n: "=a:" * (n // 3) + "@x",
    "bare_userinfo_long": lambda n: " a:" + "b" * n + "@x",
    "url_user_only_long": lambda n: "https://" + "a" * n + "@",
    "url_user_only_repeated": lambda n: "a://b@" * (n // 6),
    "url_password_no_at": lambda n: "x://u:" + "a" * n,
    "user_at_colons": lambda n: "a:b@" * (n // 4),
    "prose_with_commas": lambda n: "the password is " + "a," * (n // 2),
    "id_words": lambda n: "order " * (n // 6) + VISA,
    "id_words_and_numbers": lambda n: f"order {VISA} " * (n // 23),
    "secret_keys_in_a_key": lambda n: "header.Bearer " + "a" * n,
    "cli_flags": lambda n: "-a " * (n // 3) + "--password x",
    "cli_flag_long_value": lambda n: "--password " + "a" * n,
    "xml_unclosed": lambda n: "<password>" + "a" * n,
    "xml_open_tags": lambda n: "<password>x<" * (n // 12) + "/password>",
    "xml_empty_tags": lambda n: "<a>" * (n // 3) + "</a> pass",
}


def _cpu(func: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        func()
        best = min(best, time.thread_time() - started)
    return best


@pytest.mark.parametrize("shape", sorted(HUGE))
def test_a_1mb_adversarial_value_scrubs_in_linear_time(shape: str) -> None:
    scrubber = Scrubber()
    small, large = HUGE[shape](MB // 10), HUGE[shape](MB)
    assert len(large) >= 0.9 * MB
    if shape == "secret_keys_in_a_key":
        small_s = _cpu(lambda: scrubber.attributes({small: 1}), 3)
        large_s = _cpu(lambda: Scrubber().attributes({large: 1}), 1)
    else:
        scrubber.text(small, "app.note")
        small_s = _cpu(lambda: scrubber.text(small, "app.note"), 3)
        large_s = _cpu(lambda: scrubber.text(large, "app.note"), 1)
    # CPU time of this thread, as a ratio: linear is ~10x for 10x the input, quadratic ~100x. The
    # slack absorbs the timer's resolution and cache effects only.
    assert large_s < 30 * small_s + 0.05, (
        f"{shape}: 100 KB {small_s * 1e3:.1f} ms, 1 MB {large_s * 1e3:.1f} ms"
    )

"""Scrubbing (SPEC section 5): every pattern in every field, no false positives, allow-list, linear time.

These tests drive the scrubber and the scrubbing exporters directly, with a private tracer and logger
provider and in-memory exporters; ``test_scrubbing_e2e.py`` checks the bytes that leave ``instrument()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from b2b_otel.export.fanout import FanOutSpanExporter
from b2b_otel.export.scrubbing import ScrubbingLogExporter, ScrubbingSpanExporter
from b2b_otel.scrub import PATTERN_NAMES, Finding, Scrubber, luhn_valid, marker
from tests.support.timing import best_time

# --------------------------------------------------------------------------- the secrets


@dataclass(frozen=True)
class Secret:
    """A text carrying one secret: ``text`` goes into the field, ``value`` must not come out."""

    pattern: str
    text: str
    value: str


PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\nMGZaqPz3kPqQ9\n-----END PRIVATE KEY-----"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

SECRETS: dict[str, Secret] = {
    "secret_key": Secret("secret_key", "login with password=Hunter2xyz now", "Hunter2xyz"),
    "credit_card": Secret("credit_card", "charged card 4111 1111 1111 1111 ok", "4111 1111 1111 1111"),
    "us_ssn": Secret("us_ssn", "applicant ssn 123-45-6789 on file", "123-45-6789"),
    "jwt": Secret("jwt", f"session jwt {JWT} expired", JWT),
    "bearer_token": Secret("bearer_token", "sent Bearer zQ8vTkLmN3pRsW7x to upstream", "zQ8vTkLmN3pRsW7x"),
    "aws_access_key_id": Secret(
        "aws_access_key_id", "using AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"
    ),
    "private_key": Secret("private_key", f"loaded key {PEM} from disk", PEM_BODY),
}


def test_the_secret_table_covers_every_pattern() -> None:
    assert set(SECRETS) == set(PATTERN_NAMES)


def attrs(attributes: Any) -> dict[str, Any]:
    """An exported attribute map as a plain dict (empty when None)."""
    return dict(attributes or {})


def fragments(secret: str, size: int = 4) -> set[str]:
    """Every substring of ``secret`` of length ``size`` (and of its digits-only form)."""
    forms = {secret, "".join(c for c in secret if c.isdigit())}
    return {form[i : i + size] for form in forms if len(form) >= size for i in range(len(form) - size + 1)}


def assert_scrubbed(output: Any, secret: Secret) -> None:
    """``output`` carries the pattern's marker and no 4-character piece of the secret."""
    text = repr(output)
    assert marker(secret.pattern) in text, f"no {marker(secret.pattern)} in {text!r}"
    leaked = sorted(f for f in fragments(secret.value) if f in text)
    assert not leaked, f"pieces of the {secret.pattern} secret survived: {leaked} in {text!r}"


# --------------------------------------------------------------------------- exporter harness


class Harness:
    """A tracer and a logger provider whose exports go through the scrubbing exporters."""

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        self.scrubber = scrubber or Scrubber()
        self.findings: list[tuple[Finding, int, int]] = []
        self.spans = InMemorySpanExporter()
        self.logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(
            SimpleSpanProcessor(ScrubbingSpanExporter(self.spans, self.scrubber, self._found))
        )
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(ScrubbingLogExporter(self.logs, self.scrubber, self._found))
        )
        self.tracer = self.tracer_provider.get_tracer("test")
        self.logger = self.logger_provider.get_logger("test")

    def _found(self, finding: Finding, trace_id: int, span_id: int) -> None:
        self.findings.append((finding, trace_id, span_id))

    def span(self) -> ReadableSpan:
        finished = self.spans.get_finished_spans()
        assert len(finished) == 1
        return finished[0]

    def log(self) -> ReadableLogRecord:
        finished = self.logs.get_finished_logs()
        assert len(finished) == 1
        return finished[0]

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def _raise_with(text: str) -> None:
    raise ValueError(f"request failed: {text}")


# Each field: put ``text`` there, return what was exported in that field.
def field_span_name(h: Harness, text: str) -> Any:
    h.tracer.start_span(text).end()
    return h.span().name


def field_attribute_string(h: Harness, text: str) -> Any:
    h.tracer.start_span("op", attributes={"app.note": text}).end()
    return attrs(h.span().attributes)["app.note"]


def field_attribute_string_array(h: Harness, text: str) -> Any:
    h.tracer.start_span("op", attributes={"app.notes": ["first", text, "last"]}).end()
    values = attrs(h.span().attributes)["app.notes"]
    assert values[0] == "first" and values[2] == "last"
    return values


def field_event_attribute(h: Harness, text: str) -> Any:
    span = h.tracer.start_span("op")
    span.add_event("note", {"app.note": text})
    span.end()
    return attrs(h.span().events[0].attributes)["app.note"]


def field_exception_message(h: Harness, text: str) -> Any:
    span = h.tracer.start_span("op")
    try:
        _raise_with(text)
    except ValueError as exc:
        span.record_exception(exc)
    span.end()
    return attrs(h.span().events[0].attributes)["exception.message"]


def field_exception_stacktrace(h: Harness, text: str) -> Any:
    span = h.tracer.start_span("op")
    try:
        _raise_with(text)
    except ValueError as exc:
        span.record_exception(exc)
    span.end()
    return attrs(h.span().events[0].attributes)["exception.stacktrace"]


def field_status_description(h: Harness, text: str) -> Any:
    span = h.tracer.start_span("op")
    span.set_status(Status(StatusCode.ERROR, text))
    span.end()
    return h.span().status.description


def field_link_attribute(h: Harness, text: str) -> Any:
    other = h.tracer.start_span("other")
    other.end()
    h.spans.clear()
    h.tracer.start_span("op", links=[Link(other.get_span_context(), {"app.note": text})]).end()
    return attrs(h.span().links[0].attributes)["app.note"]


def field_log_body_string(h: Harness, text: str) -> Any:
    h.logger.emit(body=text)
    return h.log().log_record.body


def field_log_body_dict(h: Harness, text: str) -> Any:
    h.logger.emit(body={"message": text, "nested": {"detail": text}, "items": [text]})
    body = h.log().log_record.body
    assert isinstance(body, dict)
    return body


def field_log_attribute(h: Harness, text: str) -> Any:
    h.logger.emit(body="event", attributes={"app.note": text})
    return attrs(h.log().log_record.attributes)["app.note"]


FIELDS: dict[str, Callable[[Harness, str], Any]] = {
    "span_name": field_span_name,
    "attribute_string": field_attribute_string,
    "attribute_string_array": field_attribute_string_array,
    "event_attribute": field_event_attribute,
    "exception_message": field_exception_message,
    "exception_stacktrace": field_exception_stacktrace,
    "status_description": field_status_description,
    "link_attribute": field_link_attribute,
    "log_body_string": field_log_body_string,
    "log_body_dict": field_log_body_dict,
    "log_attribute": field_log_attribute,
}


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("pattern", sorted(SECRETS))
def test_every_pattern_is_redacted_in_every_field(harness: Harness, pattern: str, field: str) -> None:
    secret = SECRETS[pattern]
    exported = FIELDS[field](harness, secret.text)
    assert_scrubbed(exported, secret)


def test_text_around_a_secret_is_kept(harness: Harness) -> None:
    assert (
        field_attribute_string(harness, SECRETS["us_ssn"].text) == "applicant ssn [REDACTED:us_ssn] on file"
    )


# --------------------------------------------------------------------------- secret-named keys


SECRET_KEYS = [
    "password",
    "db.password",
    "user.passwd",
    "app.secret",
    "oauth.client_secret",
    "api_key",
    "x-api-key",
    "apiKey",
    "http.request.header.authorization",
    "http.request.header.cookie",
    "http.response.header.set-cookie",
    "user.session",
    "session_id",
    "auth.token",
    "access_token",
    "refresh_token",
    "private_key",
    "tls.private-key",
    "credentials",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_named_attribute_key_redacts_its_value(harness: Harness, key: str) -> None:
    harness.tracer.start_span("op", attributes={key: "Hunter2xyz"}).end()
    assert attrs(harness.span().attributes)[key] == "[REDACTED:secret_key]"


@pytest.mark.parametrize("key", ["http.request.header.authorization", "http.request.header.cookie"])
def test_secret_named_attribute_key_redacts_every_item_of_an_array(harness: Harness, key: str) -> None:
    harness.tracer.start_span("op", attributes={key: ["Basic dXNlcjpwYXNz", "sid=Hunter2xyz"]}).end()
    assert tuple(attrs(harness.span().attributes)[key]) == ("[REDACTED:secret_key]",) * 2


def test_secret_named_attribute_key_redacts_a_numeric_value(harness: Harness) -> None:
    harness.tracer.start_span("op", attributes={"user.password": 123456}).end()
    assert attrs(harness.span().attributes)["user.password"] == "[REDACTED:secret_key]"


@pytest.mark.parametrize("key", ["password", "api_key", "token", "secret", "authorization", "session"])
def test_secret_named_key_in_a_log_dict_body_redacts_its_value(harness: Harness, key: str) -> None:
    harness.logger.emit(body={key: "Hunter2xyz", "user": "alice"})
    body = harness.log().log_record.body
    assert body == {key: "[REDACTED:secret_key]", "user": "alice"}


@pytest.mark.parametrize(
    "text",
    [
        "password=Hunter2xyz",
        "PASSWORD: Hunter2xyz",
        "passwd=Hunter2xyz",
        "secret=Hunter2xyz",
        "client_secret=Hunter2xyz",
        "api_key=Hunter2xyz",
        "apikey: Hunter2xyz",
        "token=Hunter2xyz",
        "access_token=Hunter2xyz",
        "session=Hunter2xyz",
        "private_key=Hunter2xyz",
        '{"password": "Hunter2xyz"}',
        "password='Hunter2xyz'",
        "Authorization: Basic Hunter2xyz",
        "Cookie: theme=dark; sid=Hunter2xyz",
    ],
)
def test_secret_named_key_in_free_text_redacts_its_value(text: str) -> None:
    out = Scrubber().text(f"request with {text} done")
    assert "[REDACTED:secret_key]" in out
    assert not {f for f in fragments("Hunter2xyz") if f in out}, out


def test_a_secret_longer_than_any_bound_is_redacted_whole() -> None:
    value = "Q" * 20_000
    out = Scrubber().text(f"token={value} end")
    assert out == "token=[REDACTED:secret_key] end"


# --------------------------------------------------------------------------- URLs and SQL


def test_url_query_secrets_are_redacted_and_other_parameters_kept(harness: Harness) -> None:
    url = "https://api.example.com/v1/orders?api_key=Hunter2xyz&token=Zebra9876&page=2"
    harness.tracer.start_span("GET", attributes={"url.full": url}).end()
    out = attrs(harness.span().attributes)["url.full"]
    assert out.startswith("https://api.example.com/v1/orders?")
    assert "api_key=[REDACTED:secret_key]" in out and "token=[REDACTED:secret_key]" in out
    assert "page=2" in out
    assert not {f for f in fragments("Hunter2xyz") | fragments("Zebra9876") if f in out}, out


def test_url_userinfo_password_is_redacted(harness: Harness) -> None:
    url = "https://alice:Hunter2xyz@db.example.com/x"
    harness.tracer.start_span("GET", attributes={"url.full": url}).end()
    out = attrs(harness.span().attributes)["url.full"]
    assert out == "https://alice:[REDACTED:secret_key]@db.example.com/x"


def test_sql_card_literal_is_redacted(harness: Harness) -> None:
    sql = "SELECT * FROM payments WHERE card = '4111 1111 1111 1111'"
    harness.tracer.start_span("SELECT", attributes={"db.query.text": sql}).end()
    out = attrs(harness.span().attributes)["db.query.text"]
    assert out == "SELECT * FROM payments WHERE card = '[REDACTED:credit_card]'"


def test_sql_statement_loses_the_literal_bound_to_a_secret_column_and_keeps_the_others(
    harness: Harness,
) -> None:
    # More forms in test_scrubbing_sql.py.
    sql = "SELECT id FROM users WHERE name = 'alice' AND password = 'x'"
    harness.tracer.start_span("SELECT", attributes={"db.query.text": sql}).end()
    out = attrs(harness.span().attributes)["db.query.text"]
    assert out == "SELECT id FROM users WHERE name = 'alice' AND password = '[REDACTED:secret_key]'"


def test_sql_statement_without_a_secret_column_keeps_its_literals(harness: Harness) -> None:
    sql = "SELECT id FROM orders WHERE status = 'shipped' AND region = 'emea'"
    harness.tracer.start_span("SELECT", attributes={"db.query.text": sql}).end()
    assert attrs(harness.span().attributes)["db.query.text"] == sql


def test_sql_long_password_literal_leaves_no_fragment(harness: Harness) -> None:
    sql = "UPDATE users SET password = 'Hunter2xyz' WHERE id = 7"
    harness.tracer.start_span("UPDATE", attributes={"db.query.text": sql}).end()
    out = attrs(harness.span().attributes)["db.query.text"]
    assert "[REDACTED:secret_key]" in out and "WHERE id = 7" in out
    assert not {f for f in fragments("Hunter2xyz") if f in out}, out


# --------------------------------------------------------------------------- cards


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "3782 822463 10005",
        "6011000990139424",
        "4222222222222",
    ],
)
def test_luhn_valid_card_numbers_are_redacted(card: str) -> None:
    assert luhn_valid(card.replace(" ", "").replace("-", ""))
    assert Scrubber().text(f"paid with {card}.") == "paid with [REDACTED:credit_card]."


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1111 123",  # followed by a CVV
        "qty 2 4111 1111 1111 1111",  # preceded by a number
        "1111 2222 4111 1111 1111 1111",  # inside a longer run of groups
        "ref-4111111111111111",  # after a dash
    ],
)
def test_card_number_next_to_other_digits_is_still_redacted(text: str) -> None:
    out = Scrubber().text(text)
    assert "[REDACTED:credit_card]" in out
    assert "4111" not in out and "1111 1111" not in out, out


# --------------------------------------------------------------------------- no false positives


NOT_SECRETS = [
    "4111111111111112",  # fails Luhn
    "order 1234567890123456 shipped",  # 16 digits, fails Luhn
    "order 9876543210987654 shipped",
    "550e8400-e29b-41d4-a716-446655440000",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "00f067aa0ba902b7",
    "2025-06-20T01:52:00.123Z",
    "2025-06-20 01:52:00,123 WARNING AGENT_SLOW: agent exceeded 3s threshold (4.1s)",
    "+1 415-555-0132",
    "(415) 555-0132",
    "+44 20 7946 0958",
    "192.168.1.10",
    "2001:db8::8a2e:370:7334",
    "ROI 1234567.89 EUR",
    "max_tokens=512",
    "input_tokens: 1200, output_tokens: 340",
    "the token budget was exceeded",
    "use the bearer of bad news",
    "session started",
    "ASIA pacific region",
    "000-12-3456 is not an SSN",
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_ordinary_text_is_not_redacted(text: str) -> None:
    findings: list[Finding] = []
    assert Scrubber().text(text, "app.note", findings.append) == text
    assert findings == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("gen_ai.usage.input_tokens", 1200),
        ("gen_ai.usage.output_tokens", 340),
        ("gen_ai.usage.input_tokens", "1200"),
        ("gen_ai.usage.output_tokens", "340"),
        ("gen_ai.request.max_tokens", 512),
        ("gen_ai.request.max_tokens", "512"),
        ("b2b.data_quality.score", 0.93),
        ("b2b.data_quality.score", "0.93"),
        ("b2b.roi.value", 1234567.89),
        ("b2b.roi.value", "1234567.89"),
        ("b2b.order.id", "1234567890123456"),
        ("trace.parent", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("app.request.id", "550e8400-e29b-41d4-a716-446655440000"),
        ("client.address", "10.0.0.12"),
        ("user.phone", "+1 415-555-0132"),
        ("app.started", "2025-06-20T01:52:00Z"),
        ("session.id", "abc123"),
        ("app.flag.password_reset", True),
    ],
)
def test_ordinary_attribute_is_not_redacted(harness: Harness, key: str, value: Any) -> None:
    harness.tracer.start_span("op", attributes={key: value}).end()
    assert attrs(harness.span().attributes)[key] == value
    assert harness.findings == []


# --------------------------------------------------------------------------- allow-list and switch


def test_allow_listed_key_is_never_scrubbed(harness: Harness) -> None:
    h = Harness(Scrubber(allow_keys={"app.test_card", "http.request.header.authorization"}))
    try:
        attributes = {
            "app.test_card": "4111 1111 1111 1111",
            "http.request.header.authorization": "Bearer zQ8vTkLmN3pRsW7x",
            "app.other_card": "4111 1111 1111 1111",
        }
        h.tracer.start_span("op", attributes=attributes).end()
        exported = h.span().attributes or {}
        assert exported["app.test_card"] == "4111 1111 1111 1111"
        assert exported["http.request.header.authorization"] == "Bearer zQ8vTkLmN3pRsW7x"
        assert exported["app.other_card"] == "[REDACTED:credit_card]"
        assert [f for f, _, _ in h.findings] == [Finding("app.other_card", "credit_card")]
    finally:
        h.close()


def test_allow_listed_key_is_not_scrubbed_in_log_attributes() -> None:
    h = Harness(Scrubber(allow_keys={"app.test_card"}))
    try:
        h.logger.emit(body="x", attributes={"app.test_card": "4111 1111 1111 1111"})
        assert attrs(h.log().log_record.attributes)["app.test_card"] == "4111 1111 1111 1111"
    finally:
        h.close()


def test_disabled_scrubber_changes_nothing() -> None:
    h = Harness(Scrubber(enabled=False))
    try:
        for secret in SECRETS.values():
            h.tracer.start_span(secret.text, attributes={"password": "Hunter2xyz"}).end()
            h.logger.emit(body=secret.text)
        assert [s.name for s in h.spans.get_finished_spans()] == [s.text for s in SECRETS.values()]
        assert [r.log_record.body for r in h.logs.get_finished_logs()] == [s.text for s in SECRETS.values()]
        assert h.findings == []
    finally:
        h.close()


# --------------------------------------------------------------------------- findings


@pytest.mark.parametrize("pattern", sorted(SECRETS))
def test_finding_names_field_and_pattern_never_the_value(harness: Harness, pattern: str) -> None:
    secret = SECRETS[pattern]
    span = harness.tracer.start_span("op", attributes={"app.note": secret.text})
    span.end()
    findings = [f for f, _, _ in harness.findings]
    assert findings == [Finding("app.note", pattern)]
    # The findings themselves, not the random trace and span ids beside them (whose digits may hold
    # any short fragment of a secret's digits).
    assert not {f for f in fragments(secret.value) if f in repr(findings)}
    _, trace_id, span_id = harness.findings[0]
    assert (trace_id, span_id) == (span.get_span_context().trace_id, span.get_span_context().span_id)


def test_finding_for_a_secret_named_key_names_the_key(harness: Harness) -> None:
    harness.tracer.start_span("op", attributes={"http.request.header.authorization": "Basic abc"}).end()
    assert [f for f, _, _ in harness.findings] == [Finding("http.request.header.authorization", "secret_key")]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("span_name", "span.name"),
        ("status_description", "status.description"),
        ("exception_message", "exception.message"),
        ("log_body_string", "log.body"),
    ],
)
def test_finding_names_the_non_attribute_field(harness: Harness, field: str, expected: str) -> None:
    FIELDS[field](harness, SECRETS["us_ssn"].text)
    assert Finding(expected, "us_ssn") in [f for f, _, _ in harness.findings]


def test_same_secret_twice_in_one_attribute_gives_one_finding(harness: Harness) -> None:
    text = "card 4111 1111 1111 1111, again 4111 1111 1111 1111"
    harness.tracer.start_span("op", attributes={"app.note": text}).end()
    assert [f for f, _, _ in harness.findings] == [Finding("app.note", "credit_card")]


def test_one_span_scrubbed_once_for_every_exporter() -> None:
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    findings: list[Finding] = []
    exporter = ScrubbingSpanExporter(
        FanOutSpanExporter([first, second]), Scrubber(), lambda f, _t, _s: findings.append(f)
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("op", attributes={"app.note": "ssn 123-45-6789"}).end()
    provider.shutdown()
    assert findings == [Finding("app.note", "us_ssn")]
    for inner in (first, second):
        assert attrs(inner.get_finished_spans()[0].attributes)["app.note"] == "ssn [REDACTED:us_ssn]"


def test_log_record_findings_carry_its_trace_context(harness: Harness) -> None:
    with harness.tracer.start_as_current_span("op") as span:
        harness.logger.emit(body="ssn 123-45-6789")
    _, trace_id, span_id = harness.findings[-1]
    assert (trace_id, span_id) == (span.get_span_context().trace_id, span.get_span_context().span_id)


# --------------------------------------------------------------------------- linear time

# Adversarial shapes of about ``size`` characters, one or more per pattern.
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "digits_and_spaces": lambda n: "1 " * (n // 2),
    "digits_and_dashes": lambda n: "1-" * (n // 2),
    "digit_groups_trailing_dash": lambda n: "1 1-" * (n // 4) + "-",
    "long_digit_run": lambda n: "7" * n,
    "ssn_prefixes": lambda n: "123-45-" * (n // 7),
    "jwt_prefix_then_letters": lambda n: "eyJ" + "a" * n,
    "jwt_headers_dashed": lambda n: "eyJ-" * (n // 4),
    "jwt_headers_dotted": lambda n: "eyJaaaa." * (n // 8),
    "jwt_header_and_payload_prefix": lambda n: "eyJaaaa.eyJ" + "a" * n,
    "pem_begin_then_dashes": lambda n: "-----BEGIN PRIVATE KEY-----" + "-" * n,
    "pem_begin_repeated": lambda n: "-----BEGIN PRIVATE KEY-----" * (n // 27),
    "pem_begin_then_near_end": lambda n: "-----BEGIN RSA PRIVATE KEY-----" + "----EN" * (n // 6),
    "key_then_equals": lambda n: "password" + "=" * n,
    "key_value_repeated": lambda n: "password=" * (n // 9),
    "key_open_quote": lambda n: 'password="' + "a" * n,
    "key_open_quotes_repeated": lambda n: "token: '" * (n // 8),
    "keys_with_spaces": lambda n: "secret   " * (n // 9),
    "cookie_header": lambda n: "Cookie: " + "a=b; " * (n // 5),
    "bearer_repeated": lambda n: "bearer " * (n // 7),
    "bearer_long_token": lambda n: "Bearer " + "a" * n,
    "aws_prefixes": lambda n: "AKIA" * (n // 4),
    "plain_letters": lambda n: "a" * n,
}


@pytest.mark.parametrize("shape", sorted(ADVERSARIAL))
def test_adversarial_input_scrubs_in_linear_time(shape: str) -> None:
    scrubber = Scrubber()
    small, large = ADVERSARIAL[shape](10_000), ADVERSARIAL[shape](100_000)
    assert len(large) >= 90_000
    scrubber.text(small, "f")  # warm up
    small_s = best_time(lambda: scrubber.text(small, "f"))
    large_s = best_time(lambda: scrubber.text(large, "f"), repeat=3)
    # Linear: ~10x for 10x the input. Quadratic would be ~100x; the slack absorbs timer noise only.
    assert large_s < 50 * small_s + 0.02, (
        f"{shape}: 10 KB {small_s * 1e3:.2f} ms, 100 KB {large_s * 1e3:.2f} ms"
    )


@pytest.mark.parametrize("key", ["url.full", "db.query.text", "app.note"])
def test_adversarial_attribute_value_scrubs_in_linear_time(key: str) -> None:
    scrubber = Scrubber()

    def shape(n: int) -> str:
        return "https://x.example/?" + "token=a&" * (n // 8)

    small, large = shape(10_000), shape(100_000)
    scrubber.value(key, small)
    small_s = best_time(lambda: scrubber.value(key, small))
    large_s = best_time(lambda: scrubber.value(key, large), repeat=3)
    assert large_s < 50 * small_s + 0.02, (
        f"{key}: 10 KB {small_s * 1e3:.2f} ms, 100 KB {large_s * 1e3:.2f} ms"
    )


def test_scrubbing_an_attribute_map_reports_through_the_callback() -> None:
    found: list[Finding] = []
    clean = Scrubber().attributes({"a": "ssn 123-45-6789", "b": 3}, found.append)
    assert clean == {"a": "ssn [REDACTED:us_ssn]", "b": 3}
    assert found == [Finding("a", "us_ssn")]


# --------------------------------------------------------------------------- forms the key patterns must read

# (text, the secret in it): each a form of a secret that names itself, written as applications write it.
SECRET_FORMS = [
    ("db password is hunter2-Pa55word!", "hunter2-Pa55word!"),
    ("the password was Zr8kQw2mXv9p.", "Zr8kQw2mXv9p"),
    ("the api key: Kd93jfLqP0xZ2wYt", "Kd93jfLqP0xZ2wYt"),
    ("private key is Kd93jfLqP0xZ2wYt", "Kd93jfLqP0xZ2wYt"),
    ("db_password=Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY"),
    ("session_token=Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("Cookie-less: JSESSIONID=A1B2C3D4E5F6G7H8", "A1B2C3D4E5F6G7H8"),
    ("PHPSESSID=9f8e7d6c5b4a3210", "9f8e7d6c5b4a3210"),
    ("userPassword: Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("apiKey=Kd93jfLqP0xZ2wYt", "Kd93jfLqP0xZ2wYt"),
    ('{"clientSecret": "Kd93jfLqP0xZ2wYt"}', "Kd93jfLqP0xZ2wYt"),
    ("Authorization: Token Kd93jfLqP0xZ2wYt", "Kd93jfLqP0xZ2wYt"),
    ("Authorization: Basic Ym9iOmh1bnRlcjI=", "Ym9iOmh1bnRlcjI="),
    ("sent Basic Ym9iOmh1bnRlcjI= upstream", "Ym9iOmh1bnRlcjI="),
    ('Authorization: Digest username="bob", response="6629fae49393a054"', "6629fae49393a054"),
    ("proxy-authorization: Negotiate YIIFpAYGKwYBBQUC", "YIIFpAYGKwYBBQUC"),
    ('{"payload": "{\\"password\\": \\"Zr8kQw2mXv9p\\"}"}', "Zr8kQw2mXv9p"),
    ('{"payload": "{\\"password\\": \\"correct horse battery\\"}"}', "correct horse battery"),
    ("see https://bob:s3cretPa55@db.example.com/x for details", "s3cretPa55"),
    ("connecting to postgresql://app:Zr8kQw2mXv9p@10.0.0.5:5432/db", "Zr8kQw2mXv9p"),
    ("see https://bob:#x6pk^MR9?ncoK@b0Gkk@db.example.com/x", "#x6pk^MR9?ncoK@b0Gkk"),
    ("INSERT INTO users (name, password) VALUES ('bob', 'Zr8kQw2mXv9p')", "Zr8kQw2mXv9p"),
    ("INSERT INTO users (name, api_key) VALUES ('bob', 'Kd93'), ('eve', 'O''Zr8kQw2mXv9p')", "Zr8kQw2mXv9p"),
    ("UPDATE accounts SET session_token = 'Zr8kQw2mXv9p' WHERE id = 7", "Zr8kQw2mXv9p"),
    ("password=abc\\Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    ("note: password=Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
]


@pytest.mark.parametrize(("text", "secret"), SECRET_FORMS)
def test_secret_written_in_any_common_form_is_redacted(text: str, secret: str) -> None:
    findings: list[Finding] = []
    out = Scrubber().text(text, "app.note", findings.append)
    assert "[REDACTED:" in out, out
    # Six characters: "word" of the secret "hunter2-Pa55word!" is also in the key "password".
    leaked = sorted(f for f in fragments(secret, 6) if f in out)
    assert not leaked, f"{leaked} survived in {out!r}"
    assert findings


def test_json_inside_a_json_string_stays_valid_json() -> None:
    import json

    text = json.dumps({"payload": json.dumps({"password": "Zr8kQw2mXv9p", "user": "bob"})})
    inner = json.loads(json.loads(Scrubber().text(text))["payload"])
    assert inner == {"password": "[REDACTED:secret_key]", "user": "bob"}


def test_authorization_scheme_is_kept_and_credentials_redacted() -> None:
    out = Scrubber().text("Authorization: Token Kd93jfLqP0xZ2wYt")
    assert out == "Authorization: Token [REDACTED:secret_key]"


def test_url_userinfo_in_free_text_keeps_the_user_and_host() -> None:
    out = Scrubber().text("see https://bob:s3cretPa55@db.example.com/x")
    assert out == "see https://bob:[REDACTED:secret_key]@db.example.com/x"


NOT_SECRET_FORMS = [
    "gen_ai.usage.input_tokens=1200 gen_ai.usage.output_tokens=340",
    "max_tokens=512",
    "maxTokens: 512",
    "token_count=42, token_limit=4096",
    "the password is required",
    "password_policy=strict",
    "secret_name=db-creds",
    "session.id=abc123",
    "the basic plan costs 10",
    "Basic usage: 42 calls",
    "SELECT name FROM users WHERE status = 'active'",
    "see https://db.example.com:5432/x",
    "primary key: id",
]


@pytest.mark.parametrize("text", NOT_SECRET_FORMS)
def test_names_and_counts_around_secret_words_are_kept(text: str) -> None:
    findings: list[Finding] = []
    assert Scrubber().text(text, "app.note", findings.append) == text
    assert findings == []


@pytest.mark.parametrize(
    "key",
    [
        "db_password",
        "aws_secret_access_key",
        "session_token",
        "JSESSIONID",
        "userPassword",
        "apiKey",
        "csrftoken",
    ],
)
def test_secret_word_inside_a_longer_attribute_key_redacts_its_value(harness: Harness, key: str) -> None:
    harness.tracer.start_span("op", attributes={key: "Zr8kQw2mXv9p"}).end()
    assert attrs(harness.span().attributes)[key] == "[REDACTED:secret_key]"


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.request.max_tokens",
        "llm.token_count",
        "app.maxTokens",
        "session.id",
    ],
)
def test_token_count_and_id_keys_are_not_secret_keys(harness: Harness, key: str) -> None:
    harness.tracer.start_span("op", attributes={key: "512"}).end()
    assert attrs(harness.span().attributes)[key] == "512"
    assert harness.findings == []


def test_nested_attribute_values_are_walked(harness: Harness) -> None:
    value = {"user": "bob", "db_password": "Zr8kQw2mXv9p", "deep": {"items": ["ssn 123-45-6789"]}}
    harness.tracer.start_span("op", attributes={"app.ctx": value}).end()  # type: ignore[dict-item]
    assert attrs(harness.span().attributes)["app.ctx"] == {
        "user": "bob",
        "db_password": "[REDACTED:secret_key]",
        "deep": {"items": ("ssn [REDACTED:us_ssn]",)},
    }
    assert {f for f, _, _ in harness.findings} == {
        Finding("app.ctx.db_password", "secret_key"),
        Finding("app.ctx.deep.items", "us_ssn"),
    }


def test_nested_log_attribute_values_are_walked(harness: Harness) -> None:
    harness.logger.emit(body="x", attributes={"ctx": {"token": "Zr8kQw2mXv9p", "n": 3}})
    assert attrs(harness.log().log_record.attributes)["ctx"] == {"token": "[REDACTED:secret_key]", "n": 3}


def test_too_deep_a_value_is_replaced_not_exported_unchecked() -> None:
    value: Any = "ssn 123-45-6789"
    for _ in range(40):
        value = {"n": value}
    out = repr(Scrubber().value("app.ctx", value))
    assert "123-45-6789" not in out and "scrub_failed" in out


# --------------------------------------------------------------------------- the card rule


@pytest.mark.parametrize(
    "text",
    [
        "card 4111.1111.1111.1111",
        "4111.1111.1111.1111",
        "visa 4111 1111-11111111",  # irregular grouping, but a card word before it
        "cc: 5555555555554444",
        "pan=6011 0009 9013 9424",
        "amex 3782-822463-10005",
        "paid 2223 0031 2200 3222",  # Mastercard 2-series
        "3530 1113 3330 0000",  # JCB
        "3056 9309 0259 04",  # Diners
    ],
)
def test_card_in_a_card_context_or_with_an_issuer_prefix_is_redacted(text: str) -> None:
    out = Scrubber().text(text)
    assert "[REDACTED:credit_card]" in out, out
    assert not any(c.isdigit() for c in out.split("[REDACTED")[0][-4:]), out


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123452 shipped",  # Luhn-valid, no issuer prefix, no card word
        "ts 1718841600006",  # an epoch in milliseconds that passes Luhn
        "event 1718841600123456785",  # nanoseconds, 19 digits, passes Luhn
        "tracking 9400 1000 0000 0000 0008",
        "4111 1111-1111 1111",  # an issuer prefix, but grouped like no card
        "batch 8888 8888 8888 8888",
    ],
)
def test_luhn_valid_number_without_card_context_or_issuer_prefix_is_kept(text: str) -> None:
    digits = "".join(c for c in text if c.isdigit())
    assert any(
        luhn_valid(digits[i:j])
        for i in range(len(digits))
        for j in range(i + 13, min(len(digits), i + 19) + 1)
    )
    findings: list[Finding] = []
    assert Scrubber().text(text, "app.note", findings.append) == text
    assert findings == []


def test_card_like_attribute_key_is_card_context(harness: Harness) -> None:
    harness.tracer.start_span("op", attributes={"payment.card_number": "1234567890123452"}).end()
    assert attrs(harness.span().attributes)["payment.card_number"] == "[REDACTED:credit_card]"


# --------------------------------------------------------------------------- linear time, new shapes

NEW_ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "identifier_colons": lambda n: "a:" * (n // 2),
    "secret_key_colons": lambda n: "password:" * (n // 9),
    "long_identifier_then_equals": lambda n: "a" * n + "=",
    "dotted_identifier": lambda n: "a." * (n // 2) + "=",
    "camel_case_run": lambda n: "aB" * (n // 2) + "=x",
    "escaped_quotes": lambda n: 'password=\\"' + '\\"' * (n // 2),
    "backslashes": lambda n: "password: " + "\\" * n,
    "json_open_string": lambda n: '{"password": "' + "\\a" * (n // 2),
    "url_schemes": lambda n: "a://b:" * (n // 6),
    "url_long_password": lambda n: "https://bob:" + "x" * n,
    "sql_quotes": lambda n: "insert into t (password) values (" + "'" * n,
    "sql_literals": lambda n: "select password from t where a in (" + "'x'," * (n // 4),
    "prose_repeated": lambda n: "the password is " * (n // 16),
    "basic_repeated": lambda n: "Basic " * (n // 6),
    "basic_long": lambda n: "Basic " + "A" * n + "==",
    "dotted_digits": lambda n: "1." * (n // 2),
    "digit_groups_mixed": lambda n: "4111 1111.1111-" * (n // 15),
    "card_context_repeated": lambda n: "card 1 " * (n // 7),
}


@pytest.mark.parametrize("shape", sorted(NEW_ADVERSARIAL))
def test_adversarial_input_for_the_new_forms_scrubs_in_linear_time(shape: str) -> None:
    scrubber = Scrubber()
    small, large = NEW_ADVERSARIAL[shape](10_000), NEW_ADVERSARIAL[shape](100_000)
    assert len(large) >= 90_000
    scrubber.text(small, "f")
    small_s = best_time(lambda: scrubber.text(small, "f"))
    large_s = best_time(lambda: scrubber.text(large, "f"), repeat=3)
    assert large_s < 50 * small_s + 0.02, (
        f"{shape}: 10 KB {small_s * 1e3:.2f} ms, 100 KB {large_s * 1e3:.2f} ms"
    )


def test_bytes_attribute_holding_text_is_scrubbed(harness: Harness) -> None:
    harness.tracer.start_span("op", attributes={"app.raw": b"ssn 123-45-6789"}).end()
    assert attrs(harness.span().attributes)["app.raw"] == b"ssn [REDACTED:us_ssn]"

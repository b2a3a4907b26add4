"""Scrubbing end to end: secrets never reach the OTLP bytes on the wire nor the local files.

Each test runs ``b2b_otel.instrument()`` in-process against a real OTLP receiver; the property tests
instrument once and loop over the generated examples inside the test.
"""

from __future__ import annotations

import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry import _logs, trace
from opentelemetry.trace import Status, StatusCode

import b2b_otel
from b2b_otel.setup.telemetry import Telemetry
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver


@pytest.fixture(autouse=True)
def clean_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def start(receiver: OTLPReceiver, log_dir: Path, **overrides: Any) -> Telemetry:
    return b2b_otel.instrument(
        otlp_endpoint=receiver.http_endpoint,
        log_dir=str(log_dir),
        instrumentations="none",
        metrics_exporter="none",
        **overrides,
    )


def flush(telemetry: Telemetry) -> None:
    # Twice: findings raised while exporting become derived records that the second flush sends.
    assert telemetry.force_flush(timeout_s=10)
    assert telemetry.force_flush(timeout_s=10)


def wire_bytes(receiver: OTLPReceiver) -> bytes:
    """Everything that crossed the wire, re-serialized from the decoded requests."""
    return b"\n".join(entry.request.SerializeToString() for entry in receiver.requests())


def file_bytes(log_dir: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(log_dir.rglob("*")) if p.is_file())


def forms(secret: str) -> list[bytes]:
    """The secret, and for a number with separators its digits-only form."""
    out = [secret.encode()]
    digits = "".join(c for c in secret if c.isdigit())
    if len(digits) >= 9 and len(digits) >= len(secret) - 6:
        out.append(digits.encode())
    return out


def assert_absent(secret: str, receiver: OTLPReceiver, log_dir: Path) -> None:
    wire, files = wire_bytes(receiver), file_bytes(log_dir)
    for form in forms(secret):
        assert form not in wire, f"{form!r} crossed the wire"
        assert form not in files, f"{form!r} is in a local file under {log_dir}"


# --------------------------------------------------------------------------- strategies


def _luhn_complete(partial: str) -> str:
    total = 0
    for position, char in enumerate(reversed(partial)):
        value = int(char)
        if position % 2 == 0:  # doubled once the check digit is appended
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return partial + str((10 - total % 10) % 10)


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    prefix, length = draw(st.sampled_from([("4", 16), ("51", 16), ("55", 16), ("6011", 16), ("37", 15)]))
    body = draw(
        st.text(alphabet=string.digits, min_size=length - 1 - len(prefix), max_size=length - 1 - len(prefix))
    )
    number = _luhn_complete(prefix + body)
    separator = draw(st.sampled_from(["", " ", "-", "."]))
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return separator.join(groups)


@st.composite
def cards_in_context(draw: st.DrawFn) -> tuple[str, str]:
    """(text, card): grouped like a card needs no context; grouped any other way, a card word before it."""
    number = "".join(c for c in draw(card_numbers()) if c.isdigit())
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    out = groups[0]
    for group in groups[1:]:
        out += draw(st.sampled_from(["", " ", "-", "."])) + group
    word = draw(st.sampled_from(["card", "cc", "visa", "PAN", "payment"]))
    return f"{word} {out}", out


@st.composite
def ssns(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"


B64URL = string.ascii_letters + string.digits + "_-"


@st.composite
def jwts(draw: st.DrawFn) -> str:
    header = draw(st.text(alphabet=B64URL, min_size=8, max_size=40))
    payload = draw(st.text(alphabet=B64URL, min_size=8, max_size=80))
    signature = draw(st.text(alphabet=B64URL, min_size=8, max_size=60))
    return f"eyJ{header}.eyJ{payload}.{signature}"


@st.composite
def bearer_tokens(draw: st.DrawFn) -> str:
    token = draw(st.text(alphabet=string.ascii_letters + string.digits + "._~+/-", min_size=12, max_size=60))
    return f"{draw(st.sampled_from(['Bearer', 'bearer', 'BEARER']))} {token}"


@st.composite
def aws_key_ids(draw: st.DrawFn) -> str:
    rest = draw(st.text(alphabet=string.ascii_uppercase + string.digits, min_size=16, max_size=16))
    return draw(st.sampled_from(["AKIA", "ASIA"])) + rest


@st.composite
def password_pairs(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.sampled_from(["password", "passwd", "api_key", "token", "secret", "Authorization"]))
    sep = draw(st.sampled_from(["=", ": ", " = ", ":"]))
    value = draw(
        st.text(alphabet=string.ascii_letters + string.digits + "!@#$%^*_+~", min_size=10, max_size=30)
    )
    return f"{key}{sep}{value}", value


# (text to embed, secret that must not come out)
embedded_secrets = st.one_of(
    card_numbers().map(lambda s: (s, s)),
    cards_in_context(),
    ssns().map(lambda s: (s, s)),
    jwts().map(lambda s: (s, s)),
    bearer_tokens().map(lambda s: (s, s.split(" ", 1)[1])),
    aws_key_ids().map(lambda s: (s, s)),
    password_pairs(),
)
# Surrounding text: anything printable but never glued to the secret (a separator is added around it).
surrounding = st.text(alphabet=string.ascii_letters + string.digits + " .,:;/()[]", max_size=40)
PLACES = [
    "span_name",
    "attribute",
    "array_attribute",
    "event_attribute",
    "exception",
    "status",
    "log_body",
    "log_dict_body",
    "log_attribute",
]


def _fail(text: str) -> None:
    raise RuntimeError(f"upstream said {text}")


def emit(place: str, text: str) -> None:
    tracer = trace.get_tracer("app")
    logger = _logs.get_logger_provider().get_logger("app")
    if place == "span_name":
        tracer.start_span(text).end()
    elif place == "attribute":
        tracer.start_span("op", attributes={"app.note": text}).end()
    elif place == "array_attribute":
        tracer.start_span("op", attributes={"app.notes": ["a", text]}).end()
    elif place == "event_attribute":
        span = tracer.start_span("op")
        span.add_event("note", {"app.note": text})
        span.end()
    elif place == "exception":
        span = tracer.start_span("op")
        try:
            _fail(text)
        except RuntimeError as exc:
            span.record_exception(exc)
        span.end()
    elif place == "status":
        span = tracer.start_span("op")
        span.set_status(Status(StatusCode.ERROR, text))
        span.end()
    elif place == "log_body":
        logger.emit(body=text)
    elif place == "log_dict_body":
        logger.emit(body={"message": text, "extra": {"detail": text}})
    else:
        logger.emit(body="event", attributes={"app.note": text})


def test_property_generated_secrets_never_leave_the_process(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = start(otlp_receiver, tmp_path)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        secret=embedded_secrets,
        before=surrounding,
        after=surrounding,
        place=st.sampled_from(PLACES),
    )
    def check(secret: tuple[str, str], before: str, after: str, place: str) -> None:
        text, value = secret
        assume(not any(form.decode() in before + " " + after for form in forms(value)))
        otlp_receiver.clear()
        emit(place, f"{before} {text} {after}")
        flush(telemetry)
        assert otlp_receiver.requests(), "nothing was exported"
        assert_absent(value, otlp_receiver, tmp_path)

    check()


def test_property_generated_secrets_never_leave_the_process_over_grpc(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=otlp_receiver.grpc_endpoint,
        otlp_protocol="grpc",
        otlp_insecure=True,
        log_dir=str(tmp_path),
        instrumentations="none",
        metrics_exporter="none",
    )

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(secret=embedded_secrets, place=st.sampled_from(PLACES))
    def check(secret: tuple[str, str], place: str) -> None:
        text, value = secret
        otlp_receiver.clear()
        emit(place, f"value {text} end")
        flush(telemetry)
        assert otlp_receiver.requests(), "nothing was exported"
        assert_absent(value, otlp_receiver, tmp_path)

    check()


# --------------------------------------------------------------------------- fixed cases on the wire


def test_sensitive_data_finding_becomes_a_security_event_without_the_value(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    trace.get_tracer("app").start_span("op", attributes={"app.note": "card 4111 1111 1111 1111"}).end()
    flush(telemetry)
    events = [
        r
        for r in otlp_receiver.logs("b2b.security.event")
        if r["attributes"].get("b2b.rule.id") == "security.sensitive_data"
    ]
    assert len(events) == 1, otlp_receiver.summary()
    assert events[0]["attributes"]["b2b.scrub.field"] == "app.note"
    assert events[0]["attributes"]["b2b.scrub.pattern"] == "credit_card"
    security_log = (tmp_path / "security.log").read_text()
    assert "security.sensitive_data" in security_log or "SECURITY_SENSITIVE_DATA" in security_log
    assert_absent("4111 1111 1111 1111", otlp_receiver, tmp_path)
    assert b"1111" not in wire_bytes(otlp_receiver) + file_bytes(tmp_path)


def test_url_and_sql_secrets_never_cross_the_wire(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    tracer = trace.get_tracer("app")
    tracer.start_span(
        "GET", attributes={"url.full": "https://api.example.com/x?api_key=Hunter2xyz&token=Zebra9876&page=2"}
    ).end()
    tracer.start_span(
        "SELECT",
        attributes={
            "db.query.text": "SELECT 1 FROM t WHERE card = '4111 1111 1111 1111' OR password = 'Qwerty77x'"
        },
    ).end()
    flush(telemetry)
    for secret in ("Hunter2xyz", "Zebra9876", "4111 1111 1111 1111", "Qwerty77x"):
        assert_absent(secret, otlp_receiver, tmp_path)
    assert otlp_receiver.spans("GET")[0]["attributes"]["url.full"].endswith("&page=2")


# --------------------------------------------------------------------------- allow-list and switch


def test_allow_keys_variable_exports_that_key_verbatim(
    otlp_receiver: OTLPReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2B_OTEL_REDACT_ALLOW_KEYS", "app.test_card,http.request.header.authorization")
    telemetry = start(otlp_receiver, tmp_path)
    attributes = {
        "app.test_card": "4111 1111 1111 1111",
        "http.request.header.authorization": "Bearer zQ8vTkLmN3pRsW7x",
        "app.note": "ssn 123-45-6789",
    }
    trace.get_tracer("app").start_span("op", attributes=attributes).end()
    flush(telemetry)
    exported = otlp_receiver.spans("op")[0]["attributes"]
    assert exported["app.test_card"] == "4111 1111 1111 1111"
    assert exported["http.request.header.authorization"] == "Bearer zQ8vTkLmN3pRsW7x"
    assert exported["app.note"] == "ssn [REDACTED:us_ssn]"


def test_redact_false_variable_disables_scrubbing(
    otlp_receiver: OTLPReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2B_OTEL_REDACT", "false")
    telemetry = start(otlp_receiver, tmp_path)
    trace.get_tracer("app").start_span(
        "op", attributes={"app.note": "ssn 123-45-6789", "password": "x1"}
    ).end()
    flush(telemetry)
    exported = otlp_receiver.spans("op")[0]["attributes"]
    assert exported["app.note"] == "ssn 123-45-6789"
    assert exported["password"] == "x1"
    assert [
        r for r in otlp_receiver.logs() if r["attributes"].get("b2b.rule.id") == "security.sensitive_data"
    ] == []


# --------------------------------------------------------------------------- local files


def _slow_agent_span(name: str, extra: dict[str, Any] | None = None) -> None:
    now = time.time_ns()
    span = trace.get_tracer("app").start_span(
        f"invoke_agent {name}",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name, **(extra or {})},
        start_time=now - 4_000_000_000,
    )
    span.end(end_time=now)


def test_latency_record_of_an_agent_named_with_a_secret_is_written_without_it(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    _slow_agent_span("billing password=Hunter2xyz")
    flush(telemetry)
    lines = (tmp_path / "performance.log").read_text().splitlines()
    slow = [line for line in lines if "agent.execution.slow" in line]
    assert len(slow) == 1, lines
    assert "Hunter2xyz" not in slow[0]
    assert "[REDACTED:secret_key]" in slow[0]


def test_agent_execution_line_of_an_agent_named_with_a_secret_is_written_without_it(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    _slow_agent_span("billing password=Hunter2xyz")
    flush(telemetry)
    assert_absent("Hunter2xyz", otlp_receiver, tmp_path)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_local_files_never_hold_a_secret_from_a_span(
    otlp_receiver: OTLPReceiver, tmp_path: Path, fmt: str
) -> None:
    telemetry = start(otlp_receiver, tmp_path, log_format=fmt)
    _slow_agent_span("planner", {"app.note": "ssn 123-45-6789 card 4111-1111-1111-1111"})
    trace.get_tracer("app").start_span("login password=Hunter2xyz").end()
    flush(telemetry)
    assert (tmp_path / "security.log").exists()
    for secret in ("123-45-6789", "4111-1111-1111-1111", "Hunter2xyz"):
        assert_absent(secret, otlp_receiver, tmp_path)


def test_audit_record_of_a_workflow_named_with_a_secret_is_written_without_it(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    trace.get_tracer("app").start_span(
        "invoke_workflow onboarding",
        attributes={
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": "onboarding token=Hunter2xyz",
        },
    ).end()
    flush(telemetry)
    assert (tmp_path / "audit.log").exists()
    assert_absent("Hunter2xyz", otlp_receiver, tmp_path)

"""Every channel out of the process is scrubbed: secrets of every pattern never reach any output byte.

``b2b_otel.instrument()`` runs in-process against a real OTLP receiver (HTTP and gRPC), with its local
files in ``tmp_path`` and console exporters on stdout. What is searched: every OTLP request body as it
arrived (decompressed) or, over gRPC, the decoded request serialized again; every file under the log
directory; everything written to the process's stdout and stderr.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import string
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import _logs, metrics, trace
from opentelemetry.trace import Status, StatusCode

import b2b_otel
from b2b_otel.setup import exporters
from b2b_otel.setup.telemetry import Telemetry
from tests.support import otlp_receiver as receiver_module
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

# --------------------------------------------------------------------------- the receiver and its bytes


class Wire:
    """The receiver of this module, and the raw bytes of every request it decoded."""

    def __init__(self, receiver: OTLPReceiver) -> None:
        self.receiver = receiver
        self.raw: list[bytes] = []

    def clear(self) -> None:
        self.receiver.clear()
        self.raw.clear()

    def bytes(self) -> bytes:
        grpc = [e.request.SerializeToString() for e in self.receiver.requests(protocol="grpc")]
        return b"\n".join([*self.raw, *grpc])


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    original = receiver_module._decompress
    with OTLPReceiver() as receiver:
        captured = Wire(receiver)

        def decompress(body: bytes, encoding: str) -> bytes:
            raw = original(body, encoding)
            captured.raw.append(raw)
            return raw

        receiver_module._decompress = decompress  # type: ignore[assignment]
        try:
            yield captured
        finally:
            receiver_module._decompress = original


@pytest.fixture(autouse=True)
def clean_globals(wire: Wire, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(exporters, "_CONSOLE_CLASSES", dict(exporters._CONSOLE_CLASSES))
    reset_otel_globals()
    wire.clear()
    yield
    reset_otel_globals()
    logging.getLogger().handlers[:] = [
        h for h in logging.getLogger().handlers if type(h).__module__.split(".")[0] != "opentelemetry"
    ]


def start(wire: Wire, log_dir: Path, protocol: str = "http/protobuf", **overrides: Any) -> Telemetry:
    # The SDK's console exporters bind sys.stdout when imported; bind the current one (captured).
    for signal, cls in list(exporters._CONSOLE_CLASSES.items()):
        exporters._CONSOLE_CLASSES[signal] = functools.partial(getattr(cls, "func", cls), out=sys.stdout)
    endpoint = wire.receiver.grpc_endpoint if protocol == "grpc" else wire.receiver.http_endpoint
    options: dict[str, Any] = {
        "otlp_endpoint": endpoint,
        "otlp_protocol": protocol,
        "log_dir": str(log_dir),
        "instrumentations": "logging",
        "traces_exporter": "otlp,console",
        "logs_exporter": "otlp,console",
        "metrics_exporter": "otlp,console",
        "metric_export_interval": "1h",
        **overrides,
    }
    if protocol == "grpc":
        options["otlp_insecure"] = True
    return b2b_otel.instrument(**options)


def flush(telemetry: Telemetry) -> None:
    # Twice: findings raised while exporting become derived records that the second flush sends.
    assert telemetry.force_flush(timeout_s=20)
    assert telemetry.force_flush(timeout_s=20)


def file_bytes(log_dir: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(log_dir.rglob("*")) if p.is_file())


_NUMERIC = frozenset("0123456789.-: ")


def pieces(secret: str) -> set[str]:
    """Every substring of ``secret`` of 6 characters (those of digits only are judged apart: ``leaks``).

    A piece of digits and separators only is taken 9 characters long: timestamps print any
    ``SS.mmm`` (``14.113``), while two groups of a card with their separator (``4513.1400``) do not
    come from a clock.
    """
    short = {secret[i : i + 6] for i in range(len(secret) - 5)}
    long = {secret[i : i + 9] for i in range(len(secret) - 8)}
    return {p for p in short if not set(p) <= _NUMERIC} | {p for p in long if set(p) <= _NUMERIC}


_DIGIT_RUN = re.compile(rb"\d{7,}")


def leaks(secrets: list[str], outputs: dict[str, bytes], baseline: bytes = b"") -> list[str]:
    """Pieces of the secrets found in the outputs.

    A piece that a run without the secrets printed too (a name from the code, a run of zeros) says
    nothing and is skipped. Digits are judged by the output's own digit runs: timestamps and float
    fractions hold any six or seven digits somewhere, so a run of 7 or more digits is a leak when it
    is itself a part of a secret's digits (a card written whole, or its first 7 digits).
    """
    found = []
    for secret in secrets:
        digits = "".join(c for c in secret if c.isdigit())
        for where, data in outputs.items():
            for piece in sorted(p for p in pieces(secret) if not p.isdigit()):
                if piece.encode() in data and piece.encode() not in baseline:
                    found.append(f"{piece!r} of {secret!r} in {where}")
            if len(digits) >= 9:
                for run in set(_DIGIT_RUN.findall(data)):
                    if run.decode() in digits:
                        found.append(f"digits {run.decode()!r} of {secret!r} in {where}")
    return found


# --------------------------------------------------------------------------- the secrets, one form each

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "_-"


def _varied(text: str) -> bool:
    """Enough distinct characters that a piece of it cannot be an ordinary part of the output."""
    most = max(text.count(c) for c in set(text))
    return (
        len(set(text)) >= 8
        and most * 4 <= len(text)
        and any(c.isdigit() for c in text)
        and any(c.isalpha() for c in text)
    )


passwords = st.text(alphabet=ALNUM + "!#%^*+~", min_size=12, max_size=24).filter(_varied)


def _luhn_complete(partial: str) -> str:
    total = 0
    for position, char in enumerate(reversed(partial)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return partial + str((10 - total % 10) % 10)


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, str]:
    prefix, length = draw(
        st.sampled_from([("4", 16), ("51", 16), ("2221", 16), ("6011", 16), ("3530", 16), ("37", 15)])
    )
    body = draw(
        st.text(alphabet=string.digits, min_size=length - 1 - len(prefix), max_size=length - 1 - len(prefix))
    )
    number = _luhn_complete(prefix + body)
    if len(set(number)) < 5:
        number = _luhn_complete(prefix + "3141592653589793"[: length - 1 - len(prefix)])
    if length == 15:
        written = f"{number[:4]} {number[4:10]} {number[10:]}"
    else:
        separator = draw(st.sampled_from(["", " ", "-", "."]))
        written = separator.join(number[i : i + 4] for i in range(0, len(number), 4))
    return written, written


@st.composite
def ssns(draw: st.DrawFn) -> tuple[str, str]:
    area = draw(st.integers(101, 899).filter(lambda a: a != 666))
    value = f"{area:03d}-{draw(st.integers(10, 99)):02d}-{draw(st.integers(1000, 9999)):04d}"
    return f"ssn {value}", value


@st.composite
def jwts(draw: st.DrawFn) -> tuple[str, str]:
    parts = [draw(st.text(alphabet=B64URL, min_size=10, max_size=30).filter(_varied)) for _ in range(3)]
    value = f"eyJ{parts[0]}.eyJ{parts[1]}.{parts[2]}"
    return value, value


@st.composite
def bearers(draw: st.DrawFn) -> tuple[str, str]:
    token = draw(st.text(alphabet=ALNUM + "._~+/-", min_size=12, max_size=40).filter(_varied))
    return f"Authorization: Bearer {token}", token


@st.composite
def aws_key_ids(draw: st.DrawFn) -> tuple[str, str]:
    rest = draw(
        st.text(alphabet=string.ascii_uppercase + string.digits, min_size=16, max_size=16).filter(_varied)
    )
    value = draw(st.sampled_from(["AKIA", "ASIA"])) + rest
    return f"using {value}", value


@st.composite
def pem_keys(draw: st.DrawFn) -> tuple[str, str]:
    body = draw(st.text(alphabet=ALNUM + "+/", min_size=40, max_size=64).filter(_varied))
    kind = draw(st.sampled_from(["", "RSA ", "EC "]))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----", body


KEY_FORMS = [
    "password={}",
    "db_password={}",
    "aws_secret_access_key={}",
    "session_token={}",
    "JSESSIONID={}",
    "userPassword: {}",
    "apiKey={}",
    '{{"api_key": "{}"}}',
    '{{"payload": "{{\\"password\\": \\"{}\\"}}"}}',
    "db password is {}",
    "the api key: {}",
    "Authorization: Token {}",
    "see https://bob:{}@db.example.com/x",
    "INSERT INTO users (name, password) VALUES ('bob', '{}')",
]


@st.composite
def keyed_secrets(draw: st.DrawFn) -> tuple[str, str]:
    value = draw(passwords)
    form = draw(st.sampled_from(KEY_FORMS))
    return form.format(value), value


@st.composite
def basic_credentials(draw: st.DrawFn) -> tuple[str, str]:
    # A user name planted nowhere else: the credential's first six base64 characters encode little
    # more than "user:", and another channel's scrubbed bytes value "bob:[REDACTED..." printed as
    # base64 by the console exporter would otherwise match them (found by this very test).
    encoded = base64.b64encode(f"ops-basic-user:{draw(passwords)}".encode()).decode()
    return f"Authorization: Basic {encoded}", encoded


# (text to plant, the secret that must not come out), one strategy per pattern and form.
SECRETS = {
    "secret_key": keyed_secrets(),
    "secret_key_basic": basic_credentials(),
    "credit_card": cards(),
    "us_ssn": ssns(),
    "jwt": jwts(),
    "bearer_token": bearers(),
    "aws_access_key_id": aws_key_ids(),
    "private_key": pem_keys(),
}

# Planted in the resource once per run, through OTEL_RESOURCE_ATTRIBUTES (percent-encoded).
RESOURCE_SECRETS = {
    "app.db_password": ("Zr8kQw2mXv9p", "Zr8kQw2mXv9p"),
    "app.note": ("ssn 219-09-9999 card 4539 1488 0343 6467", "4539 1488 0343 6467"),
    "app.auth": ("Bearer Kd93jfLqP0xZ2wYt", "Kd93jfLqP0xZ2wYt"),
}


def _resource_env(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from urllib.parse import quote

    pairs = ",".join(f"{key}={quote(text)}" for key, (text, _) in RESOURCE_SECRETS.items())
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", pairs)
    return [secret for _, secret in RESOURCE_SECRETS.values()] + ["219-09-9999"]


# --------------------------------------------------------------------------- every channel


class Boom(RuntimeError):
    pass


def plant(text: str, value: str) -> None:
    """``text`` (and ``value`` under secret-naming keys) in every channel the application has."""
    tracer = trace.get_tracer("app")
    otel_logger = _logs.get_logger_provider().get_logger("app")
    std_logger = logging.getLogger("app.channels")
    counter = metrics.get_meter("app").create_counter("app.requests")
    tracer.start_span(f"handle {text}").end()
    tracer.start_span(
        "attributes",
        attributes={
            "app.note": text,
            "app.notes": ["first", text],
            "app.ctx": {"inner": {"note": text}, "items": [text, {"deep": text}]},  # type: ignore[dict-item]
            "app.db_password": value,
            "app.bytes": text.encode(),  # the console exporters print bytes too (as base64)
        },
    ).end()
    span = tracer.start_span("events")
    span.add_event(f"note {text}", {"app.note": text, "app.ctx": {"n": text}})  # type: ignore[dict-item]
    try:
        raise Boom(f"upstream said {text}")
    except Boom as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"failed: {text}"))
    span.end()
    otel_logger.emit(body=text, attributes={"app.note": text})
    otel_logger.emit(body={"message": text, "extra": {"detail": text, "password": value}})
    std_logger.warning(
        "request failed: %s", text, extra={"ctx": {"detail": text, "db_password": value, "deep": [text]}}
    )
    try:
        raise Boom(f"db call failed: {text}")
    except Boom:
        std_logger.exception("call failed")
    counter.add(1, {"app.note": text, "gen_ai.agent.name": text, "app.password": value})
    with b2b_otel.agent_span(f"agent {text}"):
        pass
    with b2b_otel.workflow_span(f"flow {text}", business_case_id=f"case {text}"):
        pass
    b2b_otel.audit(
        f"case.approved {text}",
        actor_id=f"user {text}",
        target=f"case {text}",
        outcome="success",
        note=text,
        nested={"level": {"deeper": text}, "db_password": value, "items": [text, {"x": text}]},
    )


def outputs_of(
    wire: Wire,
    telemetry: Telemetry,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    planted: list[tuple[str, str]],
) -> dict[str, bytes]:
    wire.clear()
    capfd.readouterr()
    for text, value in planted:
        plant(text, value)
    flush(telemetry)
    out, err = capfd.readouterr()
    return {
        "the OTLP requests": wire.bytes(),
        "the local files": file_bytes(tmp_path),
        "stdout": out.encode(),
        "stderr": err.encode(),
    }


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_property_secrets_of_every_pattern_in_every_channel_never_leave_the_process(
    wire: Wire,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
) -> None:
    resource_secrets = _resource_env(monkeypatch)
    telemetry = start(wire, tmp_path, protocol)
    baseline = b"\n".join(
        outputs_of(wire, telemetry, tmp_path, capfd, [("nothing here", "nothing")]).values()
    )

    @settings(
        max_examples=5 if protocol == "grpc" else 10,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    # Metrics are cumulative: a series that leaked once is exported again by every later example, so
    # the example hypothesis reports may only carry the secret that leaked in an earlier one.
    @given(secrets=st.fixed_dictionaries(SECRETS))
    def check(secrets: dict[str, tuple[str, str]]) -> None:
        planted = list(secrets.values())
        outputs = outputs_of(wire, telemetry, tmp_path, capfd, planted)
        assert outputs["the OTLP requests"], wire.receiver.summary()
        for where in ("the OTLP requests", "the local files", "stdout"):
            assert b"[REDACTED:" in outputs[where], f"nothing was scrubbed in {where}"
        found = leaks([value for _, value in planted] + resource_secrets, outputs, baseline)
        assert not found, found[:10]

    check()


# --------------------------------------------------------------------------- one channel at a time


def test_metric_attribute_carrying_a_secret_is_scrubbed_on_the_wire(wire: Wire, tmp_path: Path) -> None:
    telemetry = start(wire, tmp_path, traces_exporter="otlp", logs_exporter="otlp", metrics_exporter="otlp")
    with b2b_otel.agent_span("billing password=Hunter2xyz"):
        pass
    metrics.get_meter("app").create_counter("app.requests").add(
        1, {"b2b.business_case.id": "case ssn 219-09-9999"}
    )
    flush(telemetry)
    points = wire.receiver.metrics()
    names = {p["attributes"].get("gen_ai.agent.name") for p in points} - {None}
    assert names == {"billing password=[REDACTED:secret_key]"}, names
    cases = {p["attributes"].get("b2b.business_case.id") for p in points} - {None}
    assert cases == {"case ssn [REDACTED:us_ssn]"}
    assert b"Hunter2xyz" not in wire.bytes() and b"219-09-9999" not in wire.bytes()


def test_metric_findings_reach_the_sensitive_data_rule(wire: Wire, tmp_path: Path) -> None:
    telemetry = start(wire, tmp_path, traces_exporter="otlp", logs_exporter="otlp", metrics_exporter="otlp")
    metrics.get_meter("app").create_counter("app.requests").add(1, {"app.session_token": "Zr8kQw2mXv9p"})
    flush(telemetry)
    events = [
        r["attributes"]
        for r in wire.receiver.logs("b2b.security.event")
        if r["attributes"].get("b2b.rule.id") == "security.sensitive_data"
    ]
    assert {(e["b2b.scrub.field"], e["b2b.scrub.pattern"]) for e in events} == {
        ("app.session_token", "secret_key")
    }


def test_nested_logging_extra_is_scrubbed_at_every_depth(wire: Wire, tmp_path: Path) -> None:
    telemetry = start(wire, tmp_path, traces_exporter="otlp", logs_exporter="otlp", metrics_exporter="none")
    logging.getLogger("app.extra").warning(
        "login",
        extra={"ctx": {"user": "bob", "db_password": "Zr8kQw2mXv9p", "deep": {"note": "ssn 219-09-9999"}}},
    )
    flush(telemetry)
    record = next(r for r in wire.receiver.logs() if r["body"] == "login")
    assert record["attributes"]["ctx"] == {
        "user": "bob",
        "db_password": "[REDACTED:secret_key]",
        "deep": {"note": "ssn [REDACTED:us_ssn]"},
    }


def test_audit_arguments_and_nested_details_are_scrubbed_in_audit_log(wire: Wire, tmp_path: Path) -> None:
    telemetry = start(wire, tmp_path, traces_exporter="otlp", logs_exporter="otlp", metrics_exporter="none")
    b2b_otel.audit(
        "case.approved token=Zr8kQw2mXv9p",
        actor_id="bob password=Hunter2xyz",
        target="case 4539 1488 0343 6467",
        note="ok",
        nested={
            "level": {"api_key": "Kd93jfLqP0xZ", "note": "ssn 219-09-9999"},
            "items": ["Bearer Qm7vTkLmN3pRsW7x"],
        },
    )
    flush(telemetry)
    text = (tmp_path / "audit.log").read_text()
    for secret in (
        "Zr8kQw2mXv9p",
        "Hunter2xyz",
        "4539 1488 0343 6467",
        "Kd93jfLqP0xZ",
        "219-09-9999",
        "Qm7vTkLmN3pRsW7x",
    ):
        assert secret not in text, secret
    assert '"api_key": "[REDACTED:secret_key]"' in text or '"api_key":"[REDACTED:secret_key]"' in text


def test_audit_log_with_scrubbed_details_still_verifies(wire: Wire, tmp_path: Path) -> None:
    from b2b_otel.audit_trail.verify import verify

    telemetry = start(wire, tmp_path, traces_exporter="none", logs_exporter="none", metrics_exporter="none")
    b2b_otel.audit(
        "case.approved", actor_id="u-1", target="c-1", nested={"db_password": "x", "l": ["ssn 219-09-9999"]}
    )
    b2b_otel.audit("case.closed", actor_id="u-1", target="c-1")
    flush(telemetry)
    report = verify([tmp_path / "audit.log"], None)
    assert report.ok and report.records == 2, report


def test_exception_message_in_prose_is_scrubbed(wire: Wire, tmp_path: Path) -> None:
    telemetry = start(wire, tmp_path, traces_exporter="otlp", logs_exporter="otlp", metrics_exporter="none")

    @b2b_otel.agent("connector")
    def connect() -> None:
        raise ValueError("db password is hunter2-Pa55word!")

    with pytest.raises(ValueError):
        connect()
    flush(telemetry)
    span = next(s for s in wire.receiver.spans() if s["name"] == "invoke_agent connector")
    messages = [e["attributes"].get("exception.message") for e in span["events"]]
    assert messages == ["db password is [REDACTED:secret_key]"]
    assert b"Pa55word" not in wire.bytes() + file_bytes(tmp_path)


def test_resource_attributes_are_scrubbed_on_every_signal(
    wire: Wire, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _resource_env(monkeypatch)
    telemetry = start(wire, tmp_path, traces_exporter="otlp", logs_exporter="otlp", metrics_exporter="otlp")
    trace.get_tracer("app").start_span("op").end()
    _logs.get_logger_provider().get_logger("app").emit(body="hello")
    metrics.get_meter("app").create_counter("app.requests").add(1)
    flush(telemetry)
    for records in (wire.receiver.spans(), wire.receiver.logs(), wire.receiver.metrics()):
        assert records
        resource = records[0]["resource"]
        assert resource["app.db_password"] == "[REDACTED:secret_key]"
        assert resource["app.auth"] == "[REDACTED:bearer_token]"
        assert resource["service.name"] == "unknown_service" or resource["service.name"]
    assert not leaks(secrets, {"wire": wire.bytes()})

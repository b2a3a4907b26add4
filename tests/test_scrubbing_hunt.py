"""Secrets hunted through the channels an application does not think of, out of ``instrument()`` to the
real OTLP receiver: span event names, links' attributes, resource attributes from
``OTEL_RESOURCE_ATTRIBUTES``, attribute keys, log bodies that are dicts, lists, bytes or objects,
exception stack traces holding a local variable's repr or a URL with credentials, ``url.full`` /
``http.url``, captured headers (``http.request.header.*``), baggage copied into attributes; and metric
exemplars. Every byte on the wire and in the local files is searched.
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import _logs, baggage, context, metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link

import b2b_otel
from b2b_otel.export.scrubbing import ScrubbingMetricExporter
from b2b_otel.scrub import Finding, Scrubber
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

# Each secret once, so that a leak names its channel.
SECRETS = {
    "event_name": "Evt0Zr8kQw2mXv9p",
    "link": "Lnk0Zr8kQw2mXv9p",
    "resource_token": "Res0Zr8kQw2mXv9p",
    "resource_note": "Rno0Zr8kQw2mXv9p",
    "attribute_key": "Key0Zr8kQw2mXv9pLmN",
    "body_dict": "Bdy0Zr8kQw2mXv9p",
    "body_list": "Bls0Zr8kQw2mXv9p",
    "body_bytes": "Bby0Zr8kQw2mXv9p",
    "body_object": "Bob0Zr8kQw2mXv9p",
    "stack_local": "Stk0Zr8kQw2mXv9p",
    "stack_url": "Sur0Zr8kQw2mXv9p",
    "url_full": "Ufl0Zr8kQw2mXv9p",
    "url_user_only": "Uuo0Zr8kQw2mXv9pLmN3pRsW7x",
    "http_url": "Hur0Zr8kQw2mXv9p",
    "header_authorization": "Hau0Zr8kQw2mXv9p",
    "header_cookie": "Hck0Zr8kQw2mXv9p",
    "header_api_key": "Hak0Zr8kQw2mXv9p",
    "baggage": "Bag0Zr8kQw2mXv9p",
    "unquoted_tail": "Utl0Zr8k",
}


class _Creds:
    def __init__(self, password: str) -> None:
        self.password = password

    def __repr__(self) -> str:
        return f"Creds(user='bob', password='{self.password}')"

    __str__ = __repr__


def _connect(dsn: str, creds: _Creds) -> None:
    raise ConnectionError(f"could not connect to {dsn} as {creds!r}")


def plant(s: dict[str, str]) -> None:
    tracer = trace.get_tracer("hunt")
    logger = _logs.get_logger_provider().get_logger("hunt")
    with tracer.start_as_current_span("first") as first:
        pass
    span = tracer.start_span(
        "GET /orders",
        attributes={
            f"app.param.token={s['attribute_key']}": 1,
            "url.full": f"https://alice:{s['url_full']}@api.example.com/v1?page=2",
            "app.callback": f"https://{s['url_user_only']}@hooks.example.com/in",
            "http.url": f"https://api.example.com/v1?api_key={s['http_url']}&page=2",
            "http.request.header.authorization": [f"Bearer {s['header_authorization']}"],
            "http.request.header.cookie": [f"theme=dark; sid={s['header_cookie']}"],
            "http.request.header.x-api-key": [s["header_api_key"]],
            "app.note": f"login with password={s['unquoted_tail'][:4]},{s['unquoted_tail'][4:]} retried",
        },
        links=[Link(first.get_span_context(), {"link.note": f"Authorization: Token {s['link']}"})],
    )
    span.add_event(f"login with password={s['event_name']}")
    # What an application copies from the incoming baggage into its spans.
    token = context.attach(baggage.set_baggage("partner.session", f"session={s['baggage']}"))
    try:
        for key, value in baggage.get_all().items():
            span.set_attribute(f"app.baggage.{key}", str(value))
    finally:
        context.detach(token)
    try:
        creds = _Creds(s["stack_local"])
        _connect(f"postgresql://app:{s['stack_url']}@db.internal:5432/orders", creds)
    except ConnectionError as exc:
        span.record_exception(exc)
    span.end()
    logger.emit(body={"message": "login", "ctx": {"password": s["body_dict"]}})
    logger.emit(body=["login", f"token={s['body_list']}"])
    logger.emit(body=f"raw api_key={s['body_bytes']} \xff".encode("utf-8", "surrogateescape"))
    logger.emit(body={"when": datetime.datetime(2025, 6, 20), "creds": _Creds(s["body_object"])})
    logging.getLogger("hunt").warning("stdlib %s", "still fine")


@pytest.fixture
def clean_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()
    logging.getLogger().handlers[:] = [
        h for h in logging.getLogger().handlers if type(h).__module__.split(".")[0] != "opentelemetry"
    ]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_secrets_in_the_channels_applications_forget_never_leave_the_process(
    otlp_receiver: OTLPReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_globals: None,
    protocol: str,
) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        f"deployment.environment=prod,api.token={SECRETS['resource_token']},"
        f"app.note=password%3D{SECRETS['resource_note']}",
    )
    grpc = {"otlp_insecure": True} if protocol == "grpc" else {}
    telemetry = b2b_otel.instrument(
        service_name="hunt",
        otlp_endpoint=otlp_receiver.grpc_endpoint if protocol == "grpc" else otlp_receiver.http_endpoint,
        otlp_protocol=protocol,
        log_dir=str(tmp_path),
        instrumentations="logging",
        metrics_exporter="none",
        **grpc,  # type: ignore[arg-type]
    )
    plant(SECRETS)
    assert telemetry.force_flush(timeout_s=20) and telemetry.force_flush(timeout_s=20)
    otlp_receiver.wait_until(
        lambda: (
            any(s["name"] == "GET /orders" for s in otlp_receiver.spans())
            and sum(1 for r in otlp_receiver.logs() if "login" in str(r["body"])) >= 2
        ),
        timeout=30,
        what="the planted span and logs",
    )
    wire = b"\n".join(entry.request.SerializeToString() for entry in otlp_receiver.requests())
    files = b"\n".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())
    leaked = [
        f"{channel} in {where}"
        for channel, secret in SECRETS.items()
        for where, data in (("the OTLP requests", wire), ("the local files", files))
        if secret.encode() in data or secret[4:].encode() in data
    ]
    assert not leaked, leaked
    # What was scrubbed is still there in shape: the span, its event, link, attributes and the logs.
    span = next(s for s in otlp_receiver.spans() if s["name"] == "GET /orders")
    assert span["attributes"]["url.full"] == "https://alice:[REDACTED:secret_key]@api.example.com/v1?page=2"
    assert span["attributes"]["app.note"] == "login with password=[REDACTED:secret_key] retried"
    assert "page=2" in span["attributes"]["http.url"]
    assert next(e["name"] for e in span["events"]) == "login with password=[REDACTED:secret_key]"
    assert b"Creds(user='bob', password='[REDACTED:secret_key]')" in wire
    assert b"2025-06-20 00:00:00" in wire  # the log body with a datetime was exported, not refused
    resource = span["resource"]
    assert resource["deployment.environment"] == "prod" and resource["api.token"] == "[REDACTED:secret_key]"
    findings = {
        r["attributes"].get("b2b.scrub.field")
        for r in otlp_receiver.logs()
        if r["attributes"].get("b2b.rule.id") == "security.sensitive_data"
    }
    assert findings and not [f for f in findings if f and "Zr8k" in f], findings


class _Capture(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _exemplars(data: MetricsData) -> Sequence[Any]:
    return [
        exemplar
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in metric.data.data_points
        for exemplar in point.exemplars
    ]


def test_metric_exemplars_filtered_attributes_are_scrubbed() -> None:
    # A view that keeps only "route": the measurement's other attributes go to the exemplar's
    # filtered attributes, which reach the backend with the exemplar.
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader], views=[View(instrument_name="hunt.latency", attribute_keys={"route"})]
    )
    histogram = provider.get_meter("hunt").create_histogram("hunt.latency", unit="s")
    tracer = TracerProvider().get_tracer("hunt")
    with tracer.start_as_current_span("request"):
        histogram.record(
            0.25,
            {
                "route": "/login",
                "app.note": "password=Zr8kQw2mXv9p",
                "http.request.header.authorization": "Bearer zQ8vTkLmN3pRsW7xYq",
                "url.full": "https://bob:Hunter2xyz@idp.example.com/token",
            },
        )
    data = reader.get_metrics_data()
    assert data is not None
    raw = _exemplars(data)
    assert raw and "app.note" in raw[0].filtered_attributes
    inner = _Capture()
    findings: list[Finding] = []
    ScrubbingMetricExporter(inner, Scrubber(), lambda f, _t, _s: findings.append(f)).export(data)
    exported = _exemplars(inner.batches[0])
    text = repr([dict(e.filtered_attributes) for e in exported])
    assert "Zr8kQw2mXv9p" not in text and "zQ8vTkLmN3pRsW7xYq" not in text and "Hunter2xyz" not in text
    assert (
        dict(exported[0].filtered_attributes)["url.full"]
        == "https://bob:[REDACTED:secret_key]@idp.example.com/token"
    )
    assert {f.field for f in findings} >= {"app.note", "http.request.header.authorization", "url.full"}
    provider.shutdown()
    metrics.get_meter_provider()  # the global provider is untouched


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", *args], env=clean, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "resource",
    [
        "deployment.environment=prod,api.token=Zr8kQw2mXv9p,app.note=password%3DHunter2xyz",
        "api.token:Zr8kQw2mXv9p,app.note=password%3DHunter2xyz",  # malformed: the SDK warns, quoting it
    ],
    ids=["valid", "malformed"],
)
def test_resource_attributes_carrying_a_token_are_masked_in_config_output_and_warnings(resource: str) -> None:
    done = _cli({"OTEL_RESOURCE_ATTRIBUTES": resource, "B2B_OTEL_LOG_DIR": "none"}, "config", "check")
    output = done.stdout + done.stderr
    assert "OTEL_RESOURCE_ATTRIBUTES" in output, output
    assert "Zr8kQw2mXv9p" not in output and "Hunter2xyz" not in output, output
    assert "[REDACTED:secret_key]" in output


def test_b2b_otels_own_diagnostics_are_scrubbed_before_any_handler() -> None:
    import b2b_otel  # noqa: F401  (attaches the filter)
    from b2b_otel._internal import selflog

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    selflog.logger.addHandler(handler)
    try:
        selflog.warn_once_a_minute("hunt-test", "b2b_otel: failed: %r", ValueError("password=Hunter2xyz"))
    finally:
        selflog.logger.removeHandler(handler)
        selflog.reset()
    assert records and "Hunter2xyz" not in records[0].getMessage()
    assert "[REDACTED:secret_key]" in records[0].getMessage()


def test_instrumentation_scope_attributes_are_scrubbed_on_every_signal(
    otlp_receiver: OTLPReceiver, tmp_path: Path, clean_globals: None
) -> None:
    # get_tracer / get_meter / get_logger(..., attributes=...) export the scope's attributes beside
    # every span, metric and record of that scope.
    secret = "Scp0Zr8kQw2mXv9p"
    scope_attributes = {"library.dsn": f"postgresql://app:{secret}@db/orders", "library.tier": "gold"}
    telemetry = b2b_otel.instrument(
        service_name="hunt-scope",
        otlp_endpoint=otlp_receiver.http_endpoint,
        log_dir=str(tmp_path),
        instrumentations="none",
        metric_export_interval="1h",
    )
    tracer = trace.get_tracer("hunt.scope", attributes=scope_attributes)
    with tracer.start_as_current_span("scoped work"):
        pass
    meter = metrics.get_meter("hunt.scope", attributes=scope_attributes)
    meter.create_counter("hunt.scope.calls").add(1)
    _logs.get_logger("hunt.scope", attributes=scope_attributes).emit(body="scoped record")
    assert telemetry.force_flush(timeout_s=20)
    otlp_receiver.wait_until(
        lambda: (
            any(s["name"] == "scoped work" for s in otlp_receiver.spans())
            and any(r["body"] == "scoped record" for r in otlp_receiver.logs())
            and bool(otlp_receiver.requests("metrics"))
        ),
        timeout=30,
        what="the scoped span, record and metric",
    )
    scopes = [
        *(
            s.scope
            for e in otlp_receiver.requests("traces")
            for r in e.request.resource_spans
            for s in r.scope_spans
        ),
        *(
            s.scope
            for e in otlp_receiver.requests("logs")
            for r in e.request.resource_logs
            for s in r.scope_logs
        ),
        *(
            s.scope
            for e in otlp_receiver.requests("metrics")
            for r in e.request.resource_metrics
            for s in r.scope_metrics
        ),
    ]
    scopes = [scope for scope in scopes if scope.name == "hunt.scope"]
    assert len(scopes) >= 3, "the scope of each signal reached the receiver"
    wire = b"\n".join(entry.request.SerializeToString() for entry in otlp_receiver.requests())
    assert secret.encode() not in wire and secret[4:].encode() not in wire
    for scope in scopes:
        attributes = {a.key: a.value.string_value for a in scope.attributes}
        assert attributes["library.dsn"] == "postgresql://app:[REDACTED:secret_key]@db/orders"
        assert attributes["library.tier"] == "gold"

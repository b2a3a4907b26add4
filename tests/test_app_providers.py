"""An application that installed its own providers and exporters before instrument() (SPEC section 1).

Whatever b2b_otel scrubs is scrubbed on the application's export paths too, every signal carries one
resource (with ``b2b.derived=true``), no span is exported twice, and the self-log says what was decided.
All checked at a real OTLP receiver.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import _logs, trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import b2b_otel
from b2b_otel import semconv as sc
from b2b_otel._internal import selflog
from b2b_otel.export.scrubbing import ScrubbingSpanExporter
from b2b_otel.setup.batching import WatchedBatchSpanProcessor
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

SECRET = "hunter2-Pa55word-7Qx9"
APP_SERVICE = "orders-app"


@pytest.fixture(autouse=True)
def clean_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_EXPORTER",
        "OTEL_LOGS_EXPORTER",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_otel_globals()
    selflog.reset()
    yield
    reset_otel_globals()


def _app_providers(receiver: OTLPReceiver) -> tuple[TracerProvider, LoggerProvider]:
    resource = Resource.create({"service.name": APP_SERVICE, "app.team": "payments"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.http_url("traces")), schedule_delay_millis=100)
    )
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=receiver.http_url("logs")), schedule_delay_millis=100
        )
    )
    _logs.set_logger_provider(logger_provider)
    return tracer_provider, logger_provider


def test_app_providers_are_scrubbed_one_resource_each_span_once(
    otlp_receiver: OTLPReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    tracer_provider, logger_provider = _app_providers(otlp_receiver)

    with caplog.at_level(logging.WARNING, logger=sc.INSTRUMENTATION_SCOPE):
        telemetry = b2b_otel.instrument(
            service_name="b2b-configured-name", log_dir=str(tmp_path), instrumentations="logging"
        )
    decided = [r.getMessage() for r in caplog.records if "installed its own" in r.getMessage()]
    assert len(decided) == 1, caplog.text
    assert "wrapped 2 of its exporter(s)" in decided[0]
    assert "resource merged" in decided[0] and APP_SERVICE in decided[0]
    assert "own exporter skipped for traces, logs" in decided[0]

    tracer = trace.get_tracer("app")
    for index in range(3):
        with tracer.start_as_current_span(f"app-span-{index}") as span:
            span.set_attribute("db.password", SECRET)
            span.set_attribute("order.id", index)
    logging.getLogger("app.orders").warning("login with password=%s failed", SECRET)

    # Spans export (findings made), the findings are judged, their markers and records export.
    for _ in range(2):
        assert telemetry.force_flush(10)
        assert tracer_provider.force_flush(10_000)
        assert logger_provider.force_flush(10_000)
    assert telemetry.shutdown(10)  # b2b_otel's own meter provider: the last metric export
    tracer_provider.shutdown()
    logger_provider.shutdown()

    spans = otlp_receiver.wait_for_spans(lambda s: len(s) >= 3, timeout=10)
    logs = otlp_receiver.wait_for_logs(lambda r: len(r) >= 1, timeout=10)
    points = otlp_receiver.wait_for_metrics(lambda m: len(m) >= 1, timeout=10)

    # No secret reaches the receiver, on any signal.
    for request in otlp_receiver.requests():
        assert SECRET.encode() not in request.request.SerializeToString(), request.signal
    assert {s["name"] for s in spans} >= {"app-span-0", "app-span-1", "app-span-2"}
    assert all(s["attributes"]["db.password"] != SECRET for s in spans if s["name"].startswith("app-span"))
    assert any("login with" in str(r["body"]) for r in logs)

    # Each span exactly once: b2b_otel added no exporter of its own beside the application's.
    counts = Counter(s["span_id"] for s in spans)
    assert set(counts.values()) == {1}, counts
    assert Counter(s["name"] for s in spans)["app-span-1"] == 1

    # One resource: the application's service name, b2b_otel's b2b.derived, on every signal.
    for kind, items in (("span", spans), ("log", logs), ("metric", points)):
        services = {item["resource"].get(sc.SERVICE_NAME) for item in items}
        derived = {item["resource"].get(sc.B2B_DERIVED) for item in items}
        assert services == {APP_SERVICE}, (kind, services)
        assert derived == {True}, (kind, derived)
    assert {item["resource"].get("app.team") for item in points} == {"payments"}

    # The finding on the application's path reached the rules as b2b_otel's own would.
    assert any(s["name"].startswith("alert ") for s in spans) or any(
        r.get("event_name") == "b2b.security.event" for r in logs
    )


def test_explicit_traces_exporter_keeps_b2b_otels_own_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    app_spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(app_spans))
    trace.set_tracer_provider(tracer_provider)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")

    telemetry = b2b_otel.instrument(metrics_exporter="none", logs_exporter="none", log_dir="none")

    processors = tracer_provider._active_span_processor._span_processors
    assert any(isinstance(p, WatchedBatchSpanProcessor) for p in processors)
    assert telemetry.health()["signals"]["traces"]["exporters"] == ["console"]
    assert isinstance(processors[0].span_exporter, ScrubbingSpanExporter)
    with trace.get_tracer("t").start_as_current_span("x") as span:
        span.set_attribute("api_key", SECRET)
    (exported,) = app_spans.get_finished_spans()
    assert exported.attributes is not None and exported.attributes["api_key"] != SECRET
    assert exported.resource.attributes[sc.B2B_DERIVED] is True
    assert telemetry.shutdown(5)


def test_instrument_again_does_not_wrap_twice() -> None:
    app_spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    processor = SimpleSpanProcessor(app_spans)
    tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    quiet = {"metrics_exporter": "none", "logs_exporter": "none", "log_dir": "none"}

    assert b2b_otel.instrument(**quiet) is not None
    assert b2b_otel.shutdown(5)
    assert b2b_otel.instrument(**quiet) is not None
    wrapper = processor.span_exporter
    assert isinstance(wrapper, ScrubbingSpanExporter) and wrapper.inner is app_spans
    assert b2b_otel.shutdown(5)

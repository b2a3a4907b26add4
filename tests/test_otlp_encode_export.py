"""The OTLP/HTTP span exporter with b2b_otel's encoder (export/otlp_http.py) sends what the stock one sends.

Real loopback receivers (tests/support/otlp_receiver.py) decode every request. With the pinned SDK the
fast path is active (an SDK upgrade that breaks it fails here, not in production); when the SDK's
private shape is not the known one the stock ``export`` runs. Compression, the request-size limit, a
dead endpoint, an HTTP error and a shut-down exporter give the stock exporter's results.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_encode
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as StockExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

import b2b_otel
from b2b_otel._internal import sdk_private
from b2b_otel.export import otlp_http
from b2b_otel.setup import exporters
from b2b_otel.setup.settings import resolve
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

SECRET = "hunter2hunter2"


@pytest.fixture(autouse=True)
def clean_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def finished_spans(count: int = 20) -> list[ReadableSpan]:
    """Spans of a real SDK provider: attributes, an event, a link, statuses, a remote parent."""
    captured = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "encode-test"}), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(captured))
    tracer = provider.get_tracer("b2b_otel", "test", attributes={"scope.kind": "test"})
    remote = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1)))
    )
    for index in range(count):
        with tracer.start_as_current_span(
            f"invoke_agent agent-{index % 3}",
            context=remote if index % 4 == 0 else None,
            kind=SpanKind.SERVER if index % 2 else SpanKind.INTERNAL,
            links=[Link(SpanContext(0x1234, 0x5678, is_remote=True), {"link.n": index})],
            attributes={
                "gen_ai.agent.name": f"agent-{index % 3}",
                "n": index,
                "ok": True,
                "ratio": index / 7,
            },
        ) as span:
            span.add_event("step", {"step.n": index, "tags": ("a", "b")})
            if index % 5 == 0:
                span.set_status(Status(StatusCode.ERROR, "boom"))
    return list(captured.get_finished_spans())


def service_of(request: Any) -> str | None:
    for resource in request.resource_spans:
        for attribute in resource.resource.attributes:
            if attribute.key == "service.name":
                return str(attribute.value.string_value)
    return None


def assert_received_as_stock(
    receiver: OTLPReceiver, batches: Sequence[Sequence[ReadableSpan]], service: str | None = None
) -> None:
    received = [entry.request for entry in receiver.requests("traces", "http")]
    if service is not None:
        # An exporter an earlier test left retrying may find its old port reused by this receiver.
        received = [request for request in received if service_of(request) == service]
    expected = [stock_encode(batch) for batch in batches]
    assert len(received) == len(expected)
    for got, want in zip(received, expected, strict=True):
        assert got.SerializeToString() == want.SerializeToString()


# --- the fast path is active, and stands aside when the SDK is not the known shape ----------------------


def test_the_fast_path_is_active_with_the_pinned_sdk() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    ((name, exporter),) = exporters.span_exporters(resolve({"log_dir": "none"}, environ=env))
    assert name == "otlp/http/protobuf"
    assert isinstance(exporter, otlp_http.OTLPSpanExporter)
    assert isinstance(exporter, StockExporter)
    assert type(exporter).__name__ == "OTLPSpanExporter"  # what health snapshots name it by
    assert exporter.fast_path, (
        "the SDK's OTLPSpanExporter.export changed: compare it with sdk_private.otlp_http_span_export and "
        "update _HTTP_SPAN_EXPORT_NAMES"
    )
    exporter.shutdown()


def test_a_changed_stock_export_makes_the_exporter_use_the_stock_export(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sdk_private, "_HTTP_SPAN_EXPORT_NAMES", frozenset({"encode_spans", "a_new_step"}))
    exporter = otlp_http.OTLPSpanExporter(endpoint=otlp_receiver.http_url("traces"))
    assert not exporter.fast_path
    used: list[int] = []
    monkeypatch.setattr(exporter.encoder, "encode", lambda spans: used.append(1) or b"")
    batch = finished_spans(5)
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert used == []  # the stock export encoded it
    assert_received_as_stock(otlp_receiver, [batch])
    exporter.shutdown()


def test_an_exporter_missing_a_private_part_uses_the_stock_export(otlp_receiver: OTLPReceiver) -> None:
    class Odd(otlp_http.OTLPSpanExporter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            StockExporter.__init__(self, *args, **kwargs)
            self._max_request_size = None  # type: ignore[assignment]  # another SDK's shape
            self._fast_export = sdk_private.otlp_http_span_export(self, lambda spans: b"")

    exporter = Odd(endpoint=otlp_receiver.http_url("traces"))
    assert not exporter.fast_path
    assert sdk_private.otlp_http_span_export(object(), lambda spans: b"") is None


# --- end to end ------------------------------------------------------------------------------------------


def test_instrument_sends_over_http_what_the_stock_exporter_would_send(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[list[ReadableSpan]] = []
    original = otlp_http.OTLPSpanExporter.export

    def recording(self: otlp_http.OTLPSpanExporter, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        assert self.fast_path
        result = original(self, spans)
        if result is SpanExportResult.SUCCESS:  # a loaded machine may time one out: compare what arrived
            batches.append(list(spans))
        return result

    monkeypatch.setattr(otlp_http.OTLPSpanExporter, "export", recording)
    service = f"encode-e2e-{uuid.uuid4().hex[:8]}"
    telemetry = b2b_otel.instrument(
        service_name=service,
        otlp_endpoint=otlp_receiver.http_endpoint,
        otlp_protocol="http/protobuf",
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )

    @b2b_otel.agent("roi_calculator_agent")
    def work(index: int) -> int:
        span = trace.get_current_span()
        span.set_attribute("db.query.text", f"SELECT 1 FROM users WHERE password = '{SECRET}'")
        span.add_event("exception", {"exception.type": "ValueError", "exception.message": f"n={index}"})
        return index

    tracer = trace.get_tracer("app", "1.0")
    remote = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(0xFEED, 0xBEEF, is_remote=True, trace_flags=TraceFlags(1)))
    )
    for index in range(30):
        with tracer.start_as_current_span("request", context=remote if index % 3 == 0 else None):
            work(index)
    assert telemetry.force_flush(timeout_s=10)
    assert batches and sum(map(len, batches)) >= 60
    assert_received_as_stock(otlp_receiver, batches, service)
    names = {
        span.name
        for entry in otlp_receiver.requests("traces")
        if service_of(entry.request) == service
        for resource in entry.request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert {"request", "invoke_agent roi_calculator_agent"} <= names
    raw = b"".join(
        entry.request.SerializeToString()
        for entry in otlp_receiver.requests("traces")
        if service_of(entry.request) == service
    )
    assert SECRET.encode() not in raw and b"[REDACTED" in raw  # scrubbing stays in front


def test_gzip_compressed_requests_decode_to_the_stock_request(otlp_receiver: OTLPReceiver) -> None:
    exporter = otlp_http.OTLPSpanExporter(
        endpoint=otlp_receiver.http_url("traces"), compression=Compression.Gzip
    )
    assert exporter.fast_path
    batch = finished_spans()
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    ((entry,),) = [otlp_receiver.requests("traces")]
    assert entry.headers.get("content-encoding") == "gzip"
    assert_received_as_stock(otlp_receiver, [batch])
    assert exporter.encoder.fallbacks == 0
    exporter.shutdown()


def _outcome(exporter: Any, batch: list[ReadableSpan]) -> tuple[SpanExportResult, str | None]:
    last_error = sdk_private.export_error_observer(exporter)
    assert last_error is not None
    result = exporter.export(batch)
    return result, last_error()


def test_a_too_large_batch_is_refused_like_stock(otlp_receiver: OTLPReceiver) -> None:
    batch = finished_spans()
    url = otlp_receiver.http_url("traces")
    ours = _outcome(otlp_http.OTLPSpanExporter(endpoint=url, max_request_size=512), batch)
    stock = _outcome(StockExporter(endpoint=url, max_request_size=512), batch)
    assert ours == stock == (SpanExportResult.FAILURE, "RequestPayloadTooLargeError")
    assert otlp_receiver.requests("traces") == []
    # Under the limit, the same exporter sends.
    exporter = otlp_http.OTLPSpanExporter(
        endpoint=url, max_request_size=len(stock_encode(batch).SerializeToString())
    )
    assert exporter.export(batch) is SpanExportResult.SUCCESS


def test_a_dead_endpoint_gives_failure_without_raising_like_stock() -> None:
    batch = finished_spans(3)
    url = f"http://127.0.0.1:{closed_port()}/v1/traces"
    started = time.monotonic()
    ours = _outcome(otlp_http.OTLPSpanExporter(endpoint=url, timeout=1), batch)
    stock = _outcome(StockExporter(endpoint=url, timeout=1), batch)
    assert time.monotonic() - started < 10
    assert ours == stock
    assert ours[0] is SpanExportResult.FAILURE and ours[1]


def test_an_http_error_status_is_failure_with_its_status_like_stock(otlp_receiver: OTLPReceiver) -> None:
    batch = finished_spans(3)
    url = otlp_receiver.http_url("traces")
    otlp_receiver.fail_with = 400  # not retried
    ours = _outcome(otlp_http.OTLPSpanExporter(endpoint=url, timeout=2), batch)
    stock = _outcome(StockExporter(endpoint=url, timeout=2), batch)
    assert ours == stock
    assert ours[0] is SpanExportResult.FAILURE and "400" in (ours[1] or "")
    rejected = [entry.request for entry in otlp_receiver.rejected_requests("traces")]
    assert rejected == [stock_encode(batch), stock_encode(batch)]


def test_a_shut_down_exporter_refuses_like_stock(otlp_receiver: OTLPReceiver) -> None:
    exporter = otlp_http.OTLPSpanExporter(endpoint=otlp_receiver.http_url("traces"))
    exporter.shutdown()
    assert exporter.export(finished_spans(2)) is SpanExportResult.FAILURE
    assert otlp_receiver.requests("traces") == []


def test_behind_scrubbing_with_one_resource_per_process_every_span_shares_it(
    otlp_receiver: OTLPReceiver,
) -> None:
    from b2b_otel.export.scrubbing import ScrubbingSpanExporter
    from b2b_otel.scrub import Scrubber

    exporter = otlp_http.OTLPSpanExporter(endpoint=otlp_receiver.http_url("traces"))
    scrubbing = ScrubbingSpanExporter(exporter, Scrubber())
    scrubbing.resource = Resource({"service.name": "one-per-process"})
    others = [Resource({"service.name": "a"}), Resource({"service.name": "b"})]
    batch = [
        ReadableSpan(
            f"op-{index}",
            SpanContext(index + 1, index + 1, False),
            resource=others[index % 2],
            attributes={"db.query.text": f"SELECT 1 FROM users WHERE password = '{SECRET}'", "n": index},
        )
        for index in range(6)
    ]
    assert scrubbing.export(batch) is SpanExportResult.SUCCESS
    ((entry,),) = [otlp_receiver.requests("traces")]
    (resource_spans,) = entry.request.resource_spans
    assert service_of(entry.request) == "one-per-process"
    assert [span.name for scope in resource_spans.scope_spans for span in scope.spans] == [
        f"op-{index}" for index in range(6)
    ]
    assert SECRET.encode() not in entry.request.SerializeToString()
    scrubbing.shutdown()

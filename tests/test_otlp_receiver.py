"""The test OTLP receiver decodes what the real OpenTelemetry SDK exporters send, over HTTP and gRPC."""

from __future__ import annotations

import gzip
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Literal

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.support.otlp_receiver import OTLPReceiver

Proto = Literal["http", "grpc"]
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")
# Short exporter timeouts keep the failure tests fast (the exporters' backoff stops at the deadline).
EXPORT_TIMEOUT_S = 2.0


@pytest.fixture(params=["http", "grpc"])
def protocol(request: pytest.FixtureRequest) -> Proto:
    """Run a test once per OTLP transport."""
    value: Proto = request.param
    return value


def _resource() -> Resource:
    return Resource.create({"service.name": "receiver-test", "deployment.environment.name": "test"})


def span_exporter(
    protocol: Proto, receiver: OTLPReceiver, headers: dict[str, str] | None = None, **kwargs: Any
) -> SpanExporter:
    if protocol == "http":
        return HttpSpanExporter(
            endpoint=receiver.http_url("traces"), headers=headers, timeout=EXPORT_TIMEOUT_S, **kwargs
        )
    return GrpcSpanExporter(
        endpoint=receiver.grpc_endpoint, insecure=True, headers=headers, timeout=EXPORT_TIMEOUT_S, **kwargs
    )


def metric_exporter(protocol: Proto, receiver: OTLPReceiver) -> MetricExporter:
    if protocol == "http":
        return HttpMetricExporter(endpoint=receiver.http_url("metrics"), timeout=EXPORT_TIMEOUT_S)
    return GrpcMetricExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)


def log_exporter(protocol: Proto, receiver: OTLPReceiver) -> LogRecordExporter:
    if protocol == "http":
        return HttpLogExporter(endpoint=receiver.http_url("logs"), timeout=EXPORT_TIMEOUT_S)
    return GrpcLogExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)


def finished_spans(*names: str) -> tuple[ReadableSpan, ...]:
    """Real SDK spans, made without any exporter, to feed an exporter's export() directly."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.receiver")
    for name in names:
        with tracer.start_as_current_span(name):
            pass
    provider.shutdown()
    return memory.get_finished_spans()


def post(url: str, body: bytes, content_type: str, **headers: str) -> tuple[int, bytes, str]:
    """Plain HTTP POST that returns (status, body, content type) also for error statuses."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


# --------------------------------------------------------------------------- lifecycle


def test_start_stop_and_endpoints() -> None:
    receiver = OTLPReceiver()
    with pytest.raises(RuntimeError):
        _ = receiver.http_port
    with receiver:
        assert receiver.http_port > 0 and receiver.grpc_port > 0
        assert receiver.http_port != receiver.grpc_port
        assert receiver.http_endpoint == f"http://127.0.0.1:{receiver.http_port}"
        assert receiver.grpc_endpoint == f"http://127.0.0.1:{receiver.grpc_port}"
        assert receiver.http_url("logs") == f"{receiver.http_endpoint}/v1/logs"
        assert receiver.start() is receiver  # idempotent
    with pytest.raises(RuntimeError):
        _ = receiver.grpc_endpoint
    receiver.stop()  # idempotent


def test_fixture_is_started(otlp_receiver: OTLPReceiver) -> None:
    status, _, _ = post(otlp_receiver.http_url("traces"), b"", "application/x-protobuf")
    assert status == 200  # an empty request is a valid, empty ExportTraceServiceRequest
    assert otlp_receiver.spans() == []
    assert len(otlp_receiver.requests("traces")) == 1


# --------------------------------------------------------------------------- the three signals


def test_spans_are_decoded(otlp_receiver: OTLPReceiver, protocol: Proto) -> None:
    provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(span_exporter(protocol, otlp_receiver)))
    tracer = provider.get_tracer("tests.receiver", "1.2.3")
    attributes = {"s": "text", "b": True, "i": 7, "f": 1.5, "ls": ["a", "b"], "li": [1, 2]}
    with (
        tracer.start_as_current_span("parent", attributes=attributes),
        tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child,
    ):
        child.add_event("cache.miss", {"key": "k1", "size": 3})
        child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()

    spans = otlp_receiver.wait_for_spans(lambda items: len(items) >= 2)
    by_name = {s["name"]: s for s in spans}
    parent, child_rec = by_name["parent"], by_name["child"]

    assert HEX32.fullmatch(parent["trace_id"]) and HEX16.fullmatch(parent["span_id"])
    assert parent["parent_span_id"] == ""
    assert child_rec["trace_id"] == parent["trace_id"]
    assert child_rec["parent_span_id"] == parent["span_id"]
    assert parent["kind"] == "SPAN_KIND_INTERNAL" and child_rec["kind"] == "SPAN_KIND_CLIENT"
    assert parent["status_code"] == "STATUS_CODE_UNSET"
    assert (child_rec["status_code"], child_rec["status_message"]) == ("STATUS_CODE_ERROR", "boom")
    assert parent["attributes"] == attributes
    assert child_rec["events"][0]["name"] == "cache.miss"
    assert child_rec["events"][0]["attributes"] == {"key": "k1", "size": 3}
    assert parent["resource"]["service.name"] == "receiver-test"
    assert parent["resource"]["deployment.environment.name"] == "test"
    assert (parent["scope"], parent["scope_version"]) == ("tests.receiver", "1.2.3")
    assert 0 < parent["start_time_unix_nano"] <= child_rec["start_time_unix_nano"]
    assert child_rec["end_time_unix_nano"] <= parent["end_time_unix_nano"]
    assert {s["protocol"] for s in spans} == {protocol}
    assert otlp_receiver.spans("child") == [child_rec]
    assert otlp_receiver.wait_for_span("child") == child_rec


def test_metrics_are_decoded(otlp_receiver: OTLPReceiver, protocol: Proto) -> None:
    reader = PeriodicExportingMetricReader(
        metric_exporter(protocol, otlp_receiver), export_interval_millis=3_600_000
    )
    provider = MeterProvider(
        metric_readers=[reader],
        resource=_resource(),
        views=[View(instrument_name="test.latency", aggregation=ExponentialBucketHistogramAggregation())],
        shutdown_on_exit=False,
    )
    meter = provider.get_meter("tests.metrics")
    counter = meter.create_counter("test.requests", unit="{request}", description="requests served")
    counter.add(3, {"route": "/a"})
    counter.add(2, {"route": "/a"})
    counter.add(1, {"route": "/b"})
    meter.create_up_down_counter("test.inflight").add(-1)
    histogram = meter.create_histogram("test.duration", unit="s")
    histogram.record(0.2)
    histogram.record(3.0)
    meter.create_gauge("test.queue.depth").set(12, {"queue": "q1"})
    meter.create_histogram("test.latency", unit="s").record(0.5)
    assert provider.force_flush(timeout_millis=10_000)
    # Shut down only at the end: shutdown() exports one more (cumulative) collection.
    try:
        _check_metrics(otlp_receiver, protocol)
    finally:
        provider.shutdown()


def _check_metrics(otlp_receiver: OTLPReceiver, protocol: Proto) -> None:
    names = {"test.requests", "test.inflight", "test.duration", "test.queue.depth", "test.latency"}
    points = otlp_receiver.wait_for_metrics(lambda items: names <= {p["name"] for p in items})

    requests_a = next(
        p for p in points if p["name"] == "test.requests" and p["attributes"] == {"route": "/a"}
    )
    assert requests_a["type"] == "sum" and requests_a["value"] == 5
    assert requests_a["is_monotonic"] is True
    assert requests_a["temporality"] == "AGGREGATION_TEMPORALITY_CUMULATIVE"
    assert (requests_a["unit"], requests_a["description"]) == ("{request}", "requests served")
    assert requests_a["resource"]["service.name"] == "receiver-test"
    assert requests_a["scope"] == "tests.metrics" and requests_a["protocol"] == protocol
    assert len(otlp_receiver.metrics("test.requests")) == 2

    inflight = otlp_receiver.metrics("test.inflight")[0]
    assert inflight["value"] == -1 and inflight["is_monotonic"] is False

    duration = otlp_receiver.metrics("test.duration")[0]
    assert duration["type"] == "histogram" and duration["value"] is None
    assert duration["count"] == 2 and duration["sum"] == pytest.approx(3.2)
    assert (duration["min"], duration["max"]) == (pytest.approx(0.2), pytest.approx(3.0))
    assert len(duration["bucket_counts"]) == len(duration["explicit_bounds"]) + 1
    assert sum(duration["bucket_counts"]) == 2

    gauge = otlp_receiver.metrics("test.queue.depth")[0]
    assert gauge["type"] == "gauge" and gauge["value"] == 12 and gauge["attributes"] == {"queue": "q1"}

    latency = otlp_receiver.metrics("test.latency")[0]
    assert latency["type"] == "exponential_histogram"
    assert latency["count"] == 1 and latency["sum"] == pytest.approx(0.5)
    assert sum(latency["positive"]["bucket_counts"]) == 1


def test_logs_are_decoded(otlp_receiver: OTLPReceiver, protocol: Proto) -> None:
    logger_provider = LoggerProvider(resource=_resource(), shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter(protocol, otlp_receiver)))
    logger = logger_provider.get_logger("tests.logs", "0.1")
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    with tracer_provider.get_tracer("tests").start_as_current_span("work") as span:
        logger.emit(
            body={"message": "queue too deep", "depth": 12, "tags": ["a", "b"]},
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            attributes={"b2b.rule.id": "agent.queue.depth", "b2b.observed.value": 12.0},
            event_name="b2b.sla.breach",
        )
        span_context = span.get_span_context()
    logger.emit(body="plain text", severity_number=SeverityNumber.INFO, severity_text="INFO")
    logger_provider.shutdown()
    tracer_provider.shutdown()

    logs = otlp_receiver.wait_for_logs(lambda items: len(items) >= 2)
    breach = otlp_receiver.logs("b2b.sla.breach")[0]
    assert breach["body"] == {"message": "queue too deep", "depth": 12, "tags": ["a", "b"]}
    assert (breach["severity_number"], breach["severity_text"]) == (13, "WARN")
    assert breach["attributes"] == {"b2b.rule.id": "agent.queue.depth", "b2b.observed.value": 12.0}
    assert breach["trace_id"] == format(span_context.trace_id, "032x")
    assert breach["span_id"] == format(span_context.span_id, "016x")
    assert breach["resource"]["service.name"] == "receiver-test"
    assert breach["scope"] == "tests.logs" and breach["protocol"] == protocol

    plain = next(lg for lg in logs if lg["event_name"] == "")
    assert plain["body"] == "plain text" and plain["severity_number"] == 9
    assert (plain["trace_id"], plain["span_id"]) == ("", "")


# --------------------------------------------------------------------------- headers, encodings


def test_headers_are_recorded_lower_cased(otlp_receiver: OTLPReceiver, protocol: Proto) -> None:
    # gRPC metadata keys must be lower case on the wire; HTTP ones may be anything.
    headers = {"x-api-key": "s3cr3t", "x-tenant": "acme"} if protocol == "grpc" else {"X-Api-Key": "s3cr3t"}
    exporter = span_exporter(protocol, otlp_receiver, headers=headers)
    assert exporter.export(finished_spans("with-headers")) == SpanExportResult.SUCCESS
    exporter.shutdown()

    recorded = otlp_receiver.headers("traces")
    assert len(recorded) == 1 and recorded[0]["x-api-key"] == "s3cr3t"
    assert all(key == key.lower() for key in recorded[0])
    if protocol == "http":
        assert recorded[0]["content-type"] == "application/x-protobuf"
    else:
        assert recorded[0]["x-tenant"] == "acme"
        assert "grpc" in recorded[0]["user-agent"]
    assert otlp_receiver.headers("logs") == []
    assert otlp_receiver.headers() == recorded


@pytest.mark.parametrize("compression", [HttpCompression.Gzip, HttpCompression.Deflate])
def test_http_compressed_bodies(otlp_receiver: OTLPReceiver, compression: HttpCompression) -> None:
    exporter = span_exporter("http", otlp_receiver, compression=compression)
    assert exporter.export(finished_spans("compressed")) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert otlp_receiver.headers()[0]["content-encoding"] == compression.value
    assert [s["name"] for s in otlp_receiver.spans()] == ["compressed"]


def test_grpc_compressed_messages(otlp_receiver: OTLPReceiver) -> None:
    exporter = span_exporter("grpc", otlp_receiver, compression=grpc.Compression.Gzip)
    assert exporter.export(finished_spans("compressed")) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert [s["name"] for s in otlp_receiver.spans()] == ["compressed"]


def test_http_json_with_hex_ids(otlp_receiver: OTLPReceiver) -> None:
    payload = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "json.scope"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "json-span",
                                "kind": 3,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [{"key": "n", "value": {"intValue": "42"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(payload).encode())
    status, reply, content_type = post(
        otlp_receiver.http_url("traces"), body, "application/json", **{"Content-Encoding": "gzip"}
    )
    assert (status, content_type) == (200, "application/json")
    assert json.loads(reply) == {}
    (span,) = otlp_receiver.spans()
    assert span["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert (span["span_id"], span["parent_span_id"]) == ("eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert span["kind"] == "SPAN_KIND_CLIENT" and span["attributes"] == {"n": 42}
    assert span["resource"] == {"service.name": "json-svc"} and span["scope"] == "json.scope"


def test_http_rejects_bad_requests(otlp_receiver: OTLPReceiver) -> None:
    assert post(otlp_receiver.http_url("traces"), b"\xff\xff\xff", "application/x-protobuf")[0] == 400
    assert post(f"{otlp_receiver.http_endpoint}/v1/profiles", b"", "application/x-protobuf")[0] == 404
    assert post(otlp_receiver.http_url("logs"), b"", "text/plain")[0] == 415
    assert otlp_receiver.bad_request_count == 3
    assert otlp_receiver.requests() == []


def test_env_configured_exporters_reach_receiver(
    otlp_receiver: OTLPReceiver, protocol: Proto, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in otlp_receiver.otel_env("grpc" if protocol == "grpc" else "http/protobuf").items():
        monkeypatch.setenv(key, value)
    # The HTTP exporter appends /v1/traces to the base endpoint taken from the environment.
    exporter: SpanExporter = GrpcSpanExporter() if protocol == "grpc" else HttpSpanExporter()
    assert exporter.export(finished_spans("from-env")) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert otlp_receiver.spans()[0]["name"] == "from-env"


# --------------------------------------------------------------------------- failures and waiting


def test_fail_with_rejects_then_recovers(otlp_receiver: OTLPReceiver, protocol: Proto) -> None:
    otlp_receiver.fail_with = 503
    exporter = span_exporter(protocol, otlp_receiver)
    started = time.monotonic()
    assert exporter.export(finished_spans("lost")) == SpanExportResult.FAILURE
    assert time.monotonic() - started < EXPORT_TIMEOUT_S + 2
    assert otlp_receiver.rejected_count >= 1
    rejected = otlp_receiver.rejected_requests("traces")
    assert rejected[0].protocol == protocol and rejected[0].rejected
    assert otlp_receiver.spans() == [] and otlp_receiver.requests() == []

    otlp_receiver.fail_with = None
    assert exporter.export(finished_spans("delivered")) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert [s["name"] for s in otlp_receiver.spans()] == ["delivered"]


def test_http_fail_with_non_retryable_status(otlp_receiver: OTLPReceiver) -> None:
    otlp_receiver.fail_with = 400
    exporter = span_exporter("http", otlp_receiver)
    assert exporter.export(finished_spans("bad")) == SpanExportResult.FAILURE
    exporter.shutdown()
    assert otlp_receiver.rejected_count == 1  # 400 is not retried


def test_fail_next_with_retry_after_lets_exporter_retry(otlp_receiver: OTLPReceiver, protocol: Proto) -> None:
    otlp_receiver.retry_after_s = 0.05
    otlp_receiver.fail_next(2)
    exporter = span_exporter(protocol, otlp_receiver)
    assert exporter.export(finished_spans("retried")) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert otlp_receiver.rejected_count == 2
    assert len(otlp_receiver.wait_for_requests(1, "traces")) == 1
    assert [s["name"] for s in otlp_receiver.spans()] == ["retried"]


def test_wait_for_times_out_with_summary(otlp_receiver: OTLPReceiver) -> None:
    exporter = span_exporter("http", otlp_receiver)
    exporter.export(finished_spans("alpha", "beta"))
    exporter.shutdown()
    with pytest.raises(AssertionError, match=r"timed out after 0.3s waiting for spans.*'alpha', 'beta'"):
        otlp_receiver.wait_for_spans(lambda spans: any(s["name"] == "gamma" for s in spans), timeout=0.3)
    with pytest.raises(AssertionError, match="last check raised IndexError"):
        otlp_receiver.wait_for_logs(lambda logs: logs[0]["body"] == "x", timeout=0.2)


def test_wait_for_wakes_on_arrival(otlp_receiver: OTLPReceiver) -> None:
    import threading

    exporter = span_exporter("http", otlp_receiver)
    timer = threading.Timer(0.3, lambda: exporter.export(finished_spans("late")))
    timer.start()
    try:
        spans = otlp_receiver.wait_for_spans(timeout=5)
    finally:
        timer.join()
        exporter.shutdown()
    assert spans[0]["name"] == "late"


def test_clear_forgets_everything(otlp_receiver: OTLPReceiver) -> None:
    exporter = span_exporter("grpc", otlp_receiver)
    exporter.export(finished_spans("one"))
    exporter.shutdown()
    assert otlp_receiver.spans()
    otlp_receiver.clear()
    assert otlp_receiver.spans() == [] and otlp_receiver.requests() == [] and otlp_receiver.headers() == []


@pytest.fixture
def two_receivers() -> Iterator[tuple[OTLPReceiver, OTLPReceiver]]:
    with OTLPReceiver() as first, OTLPReceiver() as second:
        yield first, second


def test_receivers_are_isolated(two_receivers: tuple[OTLPReceiver, OTLPReceiver]) -> None:
    first, second = two_receivers
    assert {first.http_port, first.grpc_port}.isdisjoint({second.http_port, second.grpc_port})
    exporter = span_exporter("grpc", first)
    exporter.export(finished_spans("only-first"))
    exporter.shutdown()
    assert len(first.spans()) == 1 and second.spans() == []

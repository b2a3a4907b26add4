"""The OTLP/gRPC span exporter with b2b_otel's encoder (export/otlp_grpc.py) sends what the stock one sends.

A real gRPC receiver (tests/support/otlp_receiver.py) decodes every request. With the pinned SDK the raw
stub is active; when the SDK's private shape is not the known one the stock stub and encoder run.
Compression, a retried UNAVAILABLE (the channel made again keeps the raw stub) and a dead endpoint give
the stock exporter's results.
"""

from __future__ import annotations

import socket
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_encode
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as StockExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from b2b_otel._internal import sdk_private
from b2b_otel.export import otlp_grpc
from b2b_otel.setup import exporters
from b2b_otel.setup.settings import resolve
from tests.support.otlp_receiver import OTLPReceiver
from tests.test_otlp_encode_export import finished_spans


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def received(receiver: OTLPReceiver) -> list[Any]:
    return [entry.request for entry in receiver.requests("traces", "grpc")]


def test_the_raw_stub_is_active_with_the_pinned_sdk() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    ((name, exporter),) = exporters.span_exporters(resolve({"log_dir": "none"}, environ=env))
    assert name == "otlp/grpc"
    assert isinstance(exporter, otlp_grpc.OTLPSpanExporter) and isinstance(exporter, StockExporter)
    assert type(exporter).__name__ == "OTLPSpanExporter"
    assert exporter.fast_path, (
        "the SDK's OTLPExporterMixin changed: compare it with sdk_private.otlp_grpc_raw_span_stub and "
        "update _GRPC_EXPORT_NAMES / _GRPC_CHANNEL_NAMES"
    )
    exporter.shutdown()


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_requests_decode_to_the_stock_request(otlp_receiver: OTLPReceiver, compression: Any) -> None:
    exporter = otlp_grpc.OTLPSpanExporter(
        endpoint=otlp_receiver.grpc_endpoint, insecure=True, compression=compression
    )
    assert exporter.fast_path
    batches = [finished_spans(20), finished_spans(3)]
    for batch in batches:
        assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert received(otlp_receiver) == [stock_encode(batch) for batch in batches]
    assert exporter.encoder.fallbacks == 0
    exporter.shutdown()


def test_a_changed_mixin_makes_the_exporter_run_as_stock(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sdk_private, "_GRPC_EXPORT_NAMES", frozenset({"Export", "a_new_step"}))
    exporter = otlp_grpc.OTLPSpanExporter(endpoint=otlp_receiver.grpc_endpoint, insecure=True)
    assert not exporter.fast_path
    used: list[int] = []
    monkeypatch.setattr(exporter.encoder, "encode", lambda spans: used.append(1) or b"")
    batch = finished_spans(5)
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert used == []
    assert received(otlp_receiver) == [stock_encode(batch)]
    exporter.shutdown()


def test_a_retried_unavailable_remakes_the_channel_with_the_raw_stub(otlp_receiver: OTLPReceiver) -> None:
    otlp_receiver.retry_after_s = 0.05
    otlp_receiver.fail_next(1)  # UNAVAILABLE: the exporter makes a new channel and retries
    exporter = otlp_grpc.OTLPSpanExporter(endpoint=otlp_receiver.grpc_endpoint, insecure=True, timeout=10)
    batch: list[ReadableSpan] = finished_spans(4)
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert isinstance(exporter._client, sdk_private._RawTraceServiceStub)
    assert received(otlp_receiver) == [stock_encode(batch)]
    assert [entry.request for entry in otlp_receiver.rejected_requests("traces")] == [stock_encode(batch)]
    exporter.shutdown()


def test_a_dead_endpoint_gives_failure_without_raising_like_stock() -> None:
    batch = finished_spans(3)
    endpoint = f"127.0.0.1:{closed_port()}"
    results = []
    for cls in (otlp_grpc.OTLPSpanExporter, StockExporter):
        exporter = cls(endpoint=endpoint, insecure=True, timeout=1)
        last_error = sdk_private.export_error_observer(exporter)
        assert last_error is not None
        results.append((exporter.export(batch), last_error()))
        exporter.shutdown()
    assert results[0] == results[1]
    assert results[0][0] is SpanExportResult.FAILURE and "UNAVAILABLE" in (results[0][1] or "")

"""The exporters of each signal, built from settings: OTLP (gRPC or HTTP/protobuf) and console."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter, LogRecordExporter
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from .settings import OTLPTarget, Settings

# --- construction ------------------------------------------------------------------------------------


def _grpc_compression(name: str) -> Any:
    import grpc  # type: ignore[import-untyped]

    return grpc.Compression.Gzip if name == "gzip" else grpc.Compression.NoCompression


def _http_compression(name: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http import Compression

    return Compression.Gzip if name == "gzip" else Compression.NoCompression


def _otlp_kwargs(target: OTLPTarget) -> dict[str, Any]:
    if target.protocol == "grpc":
        kwargs: dict[str, Any] = {
            "endpoint": target.endpoint,
            "insecure": target.insecure,
            "headers": tuple(target.headers.items()),
            "timeout": target.timeout_s,
            "compression": _grpc_compression(target.compression),
        }
        if target.certificate and not target.insecure:
            import grpc

            with open(target.certificate, "rb") as handle:
                kwargs["credentials"] = grpc.ssl_channel_credentials(handle.read())
        return kwargs
    http_kwargs: dict[str, Any] = {
        "endpoint": target.endpoint,
        "headers": dict(target.headers),
        "timeout": target.timeout_s,
        "compression": _http_compression(target.compression),
    }
    if target.certificate:
        http_kwargs["certificate_file"] = target.certificate
    return http_kwargs


def span_exporters(settings: Settings) -> list[tuple[str, SpanExporter]]:
    """The configured span exporters, unwrapped, as (name, exporter)."""
    result: list[tuple[str, SpanExporter]] = []
    for name in settings.exporters("traces"):
        if name == "console":
            result.append((name, ConsoleSpanExporter()))
        elif name == "otlp":
            target = settings.signal_otlp("traces")
            exporter: SpanExporter
            if target.protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpan

                exporter = GrpcSpan(**_otlp_kwargs(target))
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpan

                exporter = HttpSpan(**_otlp_kwargs(target))
            result.append((f"otlp/{target.protocol}", exporter))
    return result


def metric_exporters(settings: Settings) -> list[tuple[str, MetricExporter]]:
    """The configured metric exporters, unwrapped, as (name, exporter)."""
    result: list[tuple[str, MetricExporter]] = []
    for name in settings.exporters("metrics"):
        if name == "console":
            result.append((name, ConsoleMetricExporter()))
        elif name == "otlp":
            target = settings.signal_otlp("metrics")
            exporter: MetricExporter
            if target.protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                    OTLPMetricExporter as GrpcMetric,
                )

                exporter = GrpcMetric(**_otlp_kwargs(target))
            else:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                    OTLPMetricExporter as HttpMetric,
                )

                exporter = HttpMetric(**_otlp_kwargs(target))
            result.append((f"otlp/{target.protocol}", exporter))
    return result


def log_exporters(settings: Settings) -> list[tuple[str, LogRecordExporter]]:
    """The configured log record exporters, unwrapped, as (name, exporter)."""
    result: list[tuple[str, LogRecordExporter]] = []
    for name in settings.exporters("logs"):
        if name == "console":
            result.append((name, ConsoleLogRecordExporter()))
        elif name == "otlp":
            target = settings.signal_otlp("logs")
            exporter: LogRecordExporter
            if target.protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLog

                exporter = GrpcLog(**_otlp_kwargs(target))
            else:
                from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLog

                exporter = HttpLog(**_otlp_kwargs(target))
            result.append((f"otlp/{target.protocol}", exporter))
    return result

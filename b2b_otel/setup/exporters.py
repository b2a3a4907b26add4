"""The exporters of each signal, built from settings: OTLP (gRPC or HTTP/protobuf) and console."""

from __future__ import annotations

import importlib
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


# The OTLP exporter class of each (signal, protocol), imported only when configured: the gRPC
# stack is heavy, and an application that exports over HTTP never loads it.
_GRPC, _HTTP = "opentelemetry.exporter.otlp.proto.grpc", "opentelemetry.exporter.otlp.proto.http"
_OTLP_CLASSES: dict[tuple[str, str], tuple[str, str]] = {
    ("traces", "grpc"): (f"{_GRPC}.trace_exporter", "OTLPSpanExporter"),
    ("traces", "http/protobuf"): (f"{_HTTP}.trace_exporter", "OTLPSpanExporter"),
    ("metrics", "grpc"): (f"{_GRPC}.metric_exporter", "OTLPMetricExporter"),
    ("metrics", "http/protobuf"): (f"{_HTTP}.metric_exporter", "OTLPMetricExporter"),
    ("logs", "grpc"): (f"{_GRPC}._log_exporter", "OTLPLogExporter"),
    ("logs", "http/protobuf"): (f"{_HTTP}._log_exporter", "OTLPLogExporter"),
}
_CONSOLE_CLASSES: dict[str, type[Any]] = {
    "traces": ConsoleSpanExporter,
    "metrics": ConsoleMetricExporter,
    "logs": ConsoleLogRecordExporter,
}


def _exporters(settings: Settings, signal: str) -> list[tuple[str, Any]]:
    result: list[tuple[str, Any]] = []
    for name in settings.exporters(signal):
        if name == "console":
            result.append((name, _CONSOLE_CLASSES[signal]()))
        elif name == "otlp":
            target = settings.signal_otlp(signal)
            module, cls = _OTLP_CLASSES[(signal, target.protocol)]
            exporter_class = getattr(importlib.import_module(module), cls)
            result.append((f"otlp/{target.protocol}", exporter_class(**_otlp_kwargs(target))))
    return result


def span_exporters(settings: Settings) -> list[tuple[str, SpanExporter]]:
    """The configured span exporters, unwrapped, as (name, exporter)."""
    return _exporters(settings, "traces")


def metric_exporters(settings: Settings) -> list[tuple[str, MetricExporter]]:
    """The configured metric exporters, unwrapped, as (name, exporter)."""
    return _exporters(settings, "metrics")


def log_exporters(settings: Settings) -> list[tuple[str, LogRecordExporter]]:
    """The configured log record exporters, unwrapped, as (name, exporter)."""
    return _exporters(settings, "logs")

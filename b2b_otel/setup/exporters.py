"""The exporters of each signal, built from settings: OTLP (gRPC or HTTP/protobuf) and console."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter, LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

from ..export import console
from .settings import LOGS, METRICS, TRACES, OTLPTarget, Settings

# --- construction ------------------------------------------------------------------------------------


def _grpc_compression(name: str) -> Any:
    import grpc  # type: ignore[import-untyped]

    return grpc.Compression.Gzip if name == "gzip" else grpc.Compression.NoCompression


def _http_compression(name: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http import Compression

    return Compression.Gzip if name == "gzip" else Compression.NoCompression


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as handle:
        return handle.read()


def _grpc_credentials(target: OTLPTarget) -> Any:
    """TLS credentials of a gRPC channel: the CA to trust (system roots when unset) and, for mTLS,
    the client key and certificate chain (validated as a pair by ``resolve()``)."""
    import grpc

    with_client = target.client_key is not None and target.client_certificate is not None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(target.certificate),
        private_key=_read(target.client_key) if with_client else None,
        certificate_chain=_read(target.client_certificate) if with_client else None,
    )


def _session_trusting_only(ca_file: str) -> Any:
    """A requests session that verifies the receiver against ``ca_file`` and nothing else.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` in the environment win over a session's
    own CA, so a configured ``OTEL_EXPORTER_OTLP_CERTIFICATE`` would be ignored wherever those are set.
    Proxies and the rest of the environment still apply.
    """
    import requests

    class _Session(requests.Session):
        def merge_environment_settings(self, *args: Any, **kwargs: Any) -> Any:
            merged = super().merge_environment_settings(*args, **kwargs)
            merged["verify"] = ca_file
            return merged

    return _Session()


def _otlp_kwargs(target: OTLPTarget) -> dict[str, Any]:
    if target.protocol == "grpc":
        kwargs: dict[str, Any] = {
            "endpoint": target.endpoint,
            "insecure": target.insecure,
            "headers": tuple(target.headers.items()),
            "timeout": target.timeout_s,
            "compression": _grpc_compression(target.compression),
        }
        if not target.insecure and (target.certificate or target.client_certificate):
            kwargs["credentials"] = _grpc_credentials(target)
        return kwargs
    http_kwargs: dict[str, Any] = {
        "endpoint": target.endpoint,
        "headers": dict(target.headers),
        "timeout": target.timeout_s,
        "compression": _http_compression(target.compression),
    }
    if target.certificate:
        http_kwargs["certificate_file"] = target.certificate
        http_kwargs["session"] = _session_trusting_only(target.certificate)
    if target.client_certificate and target.client_key:
        # mTLS: the receiver asks for a client certificate during the TLS handshake.
        http_kwargs["client_certificate_file"] = target.client_certificate
        http_kwargs["client_key_file"] = target.client_key
    return http_kwargs


# The OTLP exporter class of each (signal, protocol), imported only when configured: the gRPC
# stack is heavy, and an application that exports over HTTP never loads it.
_GRPC, _HTTP = "opentelemetry.exporter.otlp.proto.grpc", "opentelemetry.exporter.otlp.proto.http"
_OTLP_CLASSES: dict[tuple[str, str], tuple[str, str]] = {
    # The SDK's span exporters with b2b_otel's encoder (the same request bytes, several times cheaper).
    (TRACES, "grpc"): ("b2b_otel.export.otlp_grpc", "OTLPSpanExporter"),
    (TRACES, "http/protobuf"): ("b2b_otel.export.otlp_http", "OTLPSpanExporter"),
    (METRICS, "grpc"): (f"{_GRPC}.metric_exporter", "OTLPMetricExporter"),
    (METRICS, "http/protobuf"): (f"{_HTTP}.metric_exporter", "OTLPMetricExporter"),
    (LOGS, "grpc"): (f"{_GRPC}._log_exporter", "OTLPLogExporter"),
    (LOGS, "http/protobuf"): (f"{_HTTP}._log_exporter", "OTLPLogExporter"),
}
# The SDK's console span and metric exporters cannot print bytes: b2b_otel's print them as base64.
_CONSOLE_CLASSES: dict[str, Callable[..., Any]] = {
    TRACES: console.span_exporter,
    METRICS: console.metric_exporter,
    LOGS: ConsoleLogRecordExporter,
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
    return _exporters(settings, TRACES)


def metric_exporters(settings: Settings) -> list[tuple[str, MetricExporter]]:
    """The configured metric exporters, unwrapped, as (name, exporter)."""
    return _exporters(settings, METRICS)


def log_exporters(settings: Settings) -> list[tuple[str, LogRecordExporter]]:
    """The configured log record exporters, unwrapped, as (name, exporter)."""
    return _exporters(settings, LOGS)

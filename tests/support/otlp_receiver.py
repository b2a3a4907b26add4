"""A real, in-process OTLP receiver for tests.

It listens on loopback with ephemeral ports for OTLP/HTTP (protobuf or JSON, optionally gzip/deflate
compressed) and OTLP/gRPC, decodes every export request into the ``opentelemetry.proto`` messages and
offers flattened, plain-dict views of spans, metric data points and log records, so tests can assert on
exactly what an exporter put on the wire.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import socket
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias, cast

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = ["ExportRequest", "OTLPReceiver", "Protocol", "ReceivedRequest", "Signal"]

Protocol: TypeAlias = Literal["http", "grpc"]
Signal: TypeAlias = Literal["traces", "metrics", "logs"]
ExportRequest: TypeAlias = (
    trace_service_pb2.ExportTraceServiceRequest
    | metrics_service_pb2.ExportMetricsServiceRequest
    | logs_service_pb2.ExportLogsServiceRequest
)
Record: TypeAlias = dict[str, Any]

SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")

# Request/response message classes per signal (the OTLP/HTTP path is /v1/<signal>).
_REQUEST_TYPES: dict[Signal, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
_RESPONSE_TYPES: dict[Signal, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
_PATHS: dict[str, Signal] = {f"/v1/{signal}": signal for signal in SIGNALS}

# OTLP/JSON encodes these byte fields as hex, while protobuf's JSON mapping expects base64.
_HEX_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})

# The SDK's exporters cap requests at 64 MiB; accept at least that much over gRPC.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServerTLS:
    """TLS of both servers (PEM files); with ``client_ca_file`` a client certificate it signed is required."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    """One export request as it arrived (accepted or rejected)."""

    protocol: Protocol
    signal: Signal
    headers: dict[str, str]
    request: ExportRequest
    content_type: str
    rejected: bool
    received_at: float


# --------------------------------------------------------------------------- decoding helpers


def any_value(value: common_pb2.AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` into the matching plain Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    # string/bool/int/double/bytes map directly; string_value_strindex stays the int index.
    return getattr(value, kind)


def attributes_dict(key_values: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """Convert repeated ``KeyValue`` into a dict (later duplicates win, as in most backends)."""
    return {kv.key: any_value(kv.value) for kv in key_values}


def _hex(raw: bytes) -> str:
    return raw.hex()


def _resource(resource: resource_pb2.Resource) -> dict[str, Any]:
    return attributes_dict(resource.attributes)


def _span_record(
    span: trace_pb2.Span, resource: dict[str, Any], scope: common_pb2.InstrumentationScope, protocol: Protocol
) -> Record:
    return {
        "name": span.name,
        "trace_id": _hex(span.trace_id),
        "span_id": _hex(span.span_id),
        "parent_span_id": _hex(span.parent_span_id),
        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
        "status_code": trace_pb2.Status.StatusCode.Name(span.status.code),
        "status_message": span.status.message,
        "attributes": attributes_dict(span.attributes),
        "events": [
            {
                "name": event.name,
                "attributes": attributes_dict(event.attributes),
                "time_unix_nano": event.time_unix_nano,
            }
            for event in span.events
        ],
        "links": [
            {
                "trace_id": _hex(link.trace_id),
                "span_id": _hex(link.span_id),
                "attributes": attributes_dict(link.attributes),
            }
            for link in span.links
        ],
        "trace_state": span.trace_state,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "resource": resource,
        "scope": scope.name,
        "scope_version": scope.version,
        "protocol": protocol,
    }


def _optional_double(point: Message, field: str) -> float | None:
    # Histogram sum/min/max are proto3 `optional`: absent is different from 0.
    return cast(float, getattr(point, field)) if point.HasField(field) else None


def _metric_records(
    metric: metrics_pb2.Metric,
    resource: dict[str, Any],
    scope: common_pb2.InstrumentationScope,
    protocol: Protocol,
) -> list[Record]:
    data_type = metric.WhichOneof("data")
    if data_type is None:
        return []
    base: Record = {
        "name": metric.name,
        "unit": metric.unit,
        "description": metric.description,
        "type": data_type,
        "resource": resource,
        "scope": scope.name,
        "scope_version": scope.version,
        "protocol": protocol,
    }
    records: list[Record] = []
    if data_type in ("sum", "gauge"):
        container = getattr(metric, data_type)
        extra: Record = {}
        if data_type == "sum":
            extra = {
                "is_monotonic": container.is_monotonic,
                "temporality": metrics_pb2.AggregationTemporality.Name(container.aggregation_temporality),
            }
        for point in container.data_points:
            value_kind = point.WhichOneof("value")
            records.append(
                base
                | extra
                | {
                    "attributes": attributes_dict(point.attributes),
                    "value": getattr(point, value_kind) if value_kind else None,
                    "count": None,
                    "sum": None,
                    "bucket_counts": None,
                    "explicit_bounds": None,
                    "start_time_unix_nano": point.start_time_unix_nano,
                    "time_unix_nano": point.time_unix_nano,
                }
            )
    elif data_type == "histogram":
        for hpoint in metric.histogram.data_points:
            records.append(
                base
                | {
                    "temporality": metrics_pb2.AggregationTemporality.Name(
                        metric.histogram.aggregation_temporality
                    ),
                    "attributes": attributes_dict(hpoint.attributes),
                    "value": None,
                    "count": hpoint.count,
                    "sum": _optional_double(hpoint, "sum"),
                    "min": _optional_double(hpoint, "min"),
                    "max": _optional_double(hpoint, "max"),
                    "bucket_counts": list(hpoint.bucket_counts),
                    "explicit_bounds": list(hpoint.explicit_bounds),
                    "start_time_unix_nano": hpoint.start_time_unix_nano,
                    "time_unix_nano": hpoint.time_unix_nano,
                }
            )
    elif data_type == "exponential_histogram":
        for epoint in metric.exponential_histogram.data_points:
            records.append(
                base
                | {
                    "temporality": metrics_pb2.AggregationTemporality.Name(
                        metric.exponential_histogram.aggregation_temporality
                    ),
                    "attributes": attributes_dict(epoint.attributes),
                    "value": None,
                    "count": epoint.count,
                    "sum": _optional_double(epoint, "sum"),
                    "min": _optional_double(epoint, "min"),
                    "max": _optional_double(epoint, "max"),
                    "bucket_counts": None,
                    "explicit_bounds": None,
                    "scale": epoint.scale,
                    "zero_count": epoint.zero_count,
                    "positive": {
                        "offset": epoint.positive.offset,
                        "bucket_counts": list(epoint.positive.bucket_counts),
                    },
                    "negative": {
                        "offset": epoint.negative.offset,
                        "bucket_counts": list(epoint.negative.bucket_counts),
                    },
                    "start_time_unix_nano": epoint.start_time_unix_nano,
                    "time_unix_nano": epoint.time_unix_nano,
                }
            )
    elif data_type == "summary":
        for spoint in metric.summary.data_points:
            records.append(
                base
                | {
                    "attributes": attributes_dict(spoint.attributes),
                    "value": None,
                    "count": spoint.count,
                    "sum": spoint.sum,
                    "bucket_counts": None,
                    "explicit_bounds": None,
                    "quantiles": {q.quantile: q.value for q in spoint.quantile_values},
                    "start_time_unix_nano": spoint.start_time_unix_nano,
                    "time_unix_nano": spoint.time_unix_nano,
                }
            )
    return records


def _log_record(
    log: logs_pb2.LogRecord,
    resource: dict[str, Any],
    scope: common_pb2.InstrumentationScope,
    protocol: Protocol,
) -> Record:
    return {
        "body": any_value(log.body) if log.HasField("body") else None,
        "severity_number": int(log.severity_number),
        "severity_text": log.severity_text,
        "event_name": log.event_name,
        "attributes": attributes_dict(log.attributes),
        "trace_id": _hex(log.trace_id),
        "span_id": _hex(log.span_id),
        "flags": log.flags,
        "time_unix_nano": log.time_unix_nano,
        "observed_time_unix_nano": log.observed_time_unix_nano,
        "resource": resource,
        "scope": scope.name,
        "scope_version": scope.version,
        "protocol": protocol,
    }


def _hex_ids_to_base64(node: Any) -> Any:
    """Rewrite OTLP/JSON hex trace/span ids into the base64 that ``json_format`` expects."""
    if isinstance(node, dict):
        fixed: dict[str, Any] = {}
        for key, value in node.items():
            if key in _HEX_ID_KEYS and isinstance(value, str):
                # A non-hex value is left for json_format to judge.
                with contextlib.suppress(ValueError):
                    value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                fixed[key] = value
            else:
                fixed[key] = _hex_ids_to_base64(value)
        return fixed
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "none"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            # Some clients send raw deflate without the zlib wrapper.
            return zlib.decompress(body, -zlib.MAX_WBITS)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _summarise_names(names: Sequence[str], limit: int = 40) -> str:
    counts = Counter(names)
    shown = ", ".join(f"{name!r}x{n}" if n > 1 else repr(name) for name, n in list(counts.items())[:limit])
    more = f", ... {len(counts) - limit} more" if len(counts) > limit else ""
    return f"[{shown}{more}]"


# --------------------------------------------------------------------------- HTTP side


class _HTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that can cut its keep-alive connections on shutdown."""

    daemon_threads = True
    # Exporters keep pooled connections open; joining their handler threads on close would hang.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, receiver: OTLPReceiver) -> None:
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _HTTPHandler)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
            self.connections.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _HTTPHandler(BaseHTTPRequestHandler):
    """OTLP/HTTP endpoint: POST /v1/{traces,metrics,logs}."""

    protocol_version = "HTTP/1.1"  # keep-alive, like a real collector
    server_version = "b2b-otel-test-receiver"
    timeout = 30  # idle keep-alive connections are dropped eventually
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        # Silence per-request access logs; they only clutter test output.
        return

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Skip optional trailers up to the terminating blank line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        retry_after = self.server.receiver.retry_after_s
        if status >= 400 and retry_after is not None:
            # Exporters honour Retry-After (seconds) instead of their exponential backoff.
            self.send_header("Retry-After", f"{retry_after:g}")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reply_status(self, status: int, message: str, json_reply: bool) -> None:
        # Error bodies are a google.rpc.Status, as the OTLP/HTTP spec asks.
        rpc_status = status_pb2.Status(code=_http_to_grpc_code(status).value[0], message=message)
        if json_reply:
            self._reply(status, json_format.MessageToJson(rpc_status).encode(), "application/json")
        else:
            self._reply(status, rpc_status.SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        self._reply(405, b"", "text/plain")

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self._read_body()
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        is_json = content_type == "application/json"
        signal = _PATHS.get(self.path.split("?", 1)[0])
        if signal is None:
            receiver._count_bad()
            self._reply_status(404, f"unknown path {self.path}", is_json)
            return
        if content_type not in ("application/x-protobuf", "application/json"):
            receiver._count_bad()
            self._reply_status(415, f"unsupported Content-Type {content_type!r}", is_json)
            return
        try:
            raw = _decompress(body, self.headers.get("Content-Encoding", ""))
            request = _REQUEST_TYPES[signal]()
            if is_json:
                json_format.ParseDict(_hex_ids_to_base64(json.loads(raw)), request)
            else:
                request.ParseFromString(raw)
        except (DecodeError, ValueError, OSError, EOFError, json_format.ParseError, zlib.error) as exc:
            receiver._count_bad()
            self._reply_status(400, f"cannot decode {signal} request: {exc}", is_json)
            return

        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        fail_with = receiver._take_failure()
        receiver._record(
            "http", signal, headers, cast(ExportRequest, request), content_type, fail_with is not None
        )
        if fail_with is not None:
            self._reply_status(fail_with, f"simulated failure {fail_with}", is_json)
            return
        response = _RESPONSE_TYPES[signal]()
        if is_json:
            self._reply(200, json_format.MessageToJson(response).encode(), "application/json")
        else:
            self._reply(200, response.SerializeToString(), "application/x-protobuf")


def _http_to_grpc_code(status: int) -> grpc.StatusCode:
    """Map an HTTP status onto the gRPC code that carries the same meaning."""
    mapping = {
        400: grpc.StatusCode.INVALID_ARGUMENT,
        401: grpc.StatusCode.UNAUTHENTICATED,
        403: grpc.StatusCode.PERMISSION_DENIED,
        404: grpc.StatusCode.NOT_FOUND,
        413: grpc.StatusCode.RESOURCE_EXHAUSTED,
        415: grpc.StatusCode.INVALID_ARGUMENT,
        429: grpc.StatusCode.UNAVAILABLE,
        501: grpc.StatusCode.UNIMPLEMENTED,
    }
    if status in mapping:
        return mapping[status]
    return grpc.StatusCode.UNAVAILABLE if status >= 500 else grpc.StatusCode.UNKNOWN


# --------------------------------------------------------------------------- gRPC side


def _metadata_dict(context: grpc.ServicerContext) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        key = key.lower()
        # Binary ("-bin") metadata arrives as bytes; base64 keeps the dict uniformly str.
        text = base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else str(value)
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver._handle_grpc("traces", request, context)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._receiver._handle_grpc("metrics", request, context)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self._receiver._handle_grpc("logs", request, context)
        return logs_service_pb2.ExportLogsServiceResponse()


# --------------------------------------------------------------------------- the receiver


class OTLPReceiver:
    """In-process OTLP/HTTP + OTLP/gRPC receiver on 127.0.0.1 with ephemeral ports.

    Failure simulation: set ``fail_with`` to an HTTP status (e.g. 503) to make every export fail, or
    call ``fail_next(n)`` to fail only the next ``n`` requests. HTTP answers that status, gRPC aborts
    with ``grpc_fail_code`` (UNAVAILABLE unless changed). ``retry_after_s`` adds ``Retry-After`` (HTTP)
    / ``RetryInfo`` (gRPC) so exporter retries happen fast. Rejected requests are still decoded and
    kept apart (``rejected_requests()``/``rejected_count``), never in the flattened views.
    """

    def __init__(
        self,
        fail_with: int | None = None,
        grpc_fail_code: grpc.StatusCode | None = None,
        retry_after_s: float | None = None,
        tls: ServerTLS | None = None,
    ) -> None:
        self.tls = tls
        self.fail_with: int | None = fail_with
        self.grpc_fail_code: grpc.StatusCode = grpc_fail_code or grpc.StatusCode.UNAVAILABLE
        self.retry_after_s: float | None = retry_after_s
        self._fail_next = 0
        self._fail_next_status = 503
        self._cond = threading.Condition()
        self._generation = 0  # bumped on every request so waiters notice changes
        self._accepted: list[ReceivedRequest] = []
        self._rejected: list[ReceivedRequest] = []
        self._bad_requests = 0
        self._http: _HTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: grpc.Server | None = None
        self._grpc_port: int | None = None

    # ---- lifecycle

    def start(self) -> OTLPReceiver:
        """Bind both servers and start serving; idempotent."""
        if self._http is not None:
            return self
        http_server = _HTTPServer(self)
        grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-receiver-grpc"),
            options=[
                # Never share an ephemeral port with another process's server.
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceServicer(self), grpc_server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsServicer(self), grpc_server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsServicer(self), grpc_server)
        if self.tls is None:
            port = grpc_server.add_insecure_port("127.0.0.1:0")
        else:
            http_server.socket = self._tls_context().wrap_socket(http_server.socket, server_side=True)
            port = grpc_server.add_secure_port("127.0.0.1:0", self._grpc_credentials())
        if port == 0:
            http_server.server_close()
            raise RuntimeError("OTLPReceiver: could not bind a gRPC port on 127.0.0.1")
        grpc_server.start()
        thread = threading.Thread(
            target=http_server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="otlp-receiver-http",
            daemon=True,
        )
        thread.start()
        self._http, self._http_thread, self._grpc, self._grpc_port = http_server, thread, grpc_server, port
        return self

    def stop(self, grace_s: float = 1.0) -> None:
        """Stop both servers and drop open connections; idempotent."""
        http_server, thread, grpc_server = self._http, self._http_thread, self._grpc
        self._http = self._http_thread = self._grpc = None
        self._grpc_port = None
        if http_server is not None:
            http_server.shutdown()
            http_server.close_connections()
            http_server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if grpc_server is not None:
            grpc_server.stop(grace=grace_s).wait(timeout=grace_s + 5)

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _tls_context(self) -> ssl.SSLContext:
        assert self.tls is not None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        if self.tls.client_ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.tls.client_ca_file)
        return context

    def _grpc_credentials(self) -> grpc.ServerCredentials:
        assert self.tls is not None

        def read(path: str) -> bytes:
            with open(path, "rb") as handle:
                return handle.read()

        client_ca = self.tls.client_ca_file
        return grpc.ssl_server_credentials(
            [(read(self.tls.key_file), read(self.tls.cert_file))],
            root_certificates=read(client_ca) if client_ca else None,
            require_client_auth=client_ca is not None,
        )

    # ---- addresses

    @property
    def http_port(self) -> int:
        if self._http is None:
            raise RuntimeError("OTLPReceiver is not started")
        return int(self._http.server_address[1])

    @property
    def grpc_port(self) -> int:
        if self._grpc_port is None:
            raise RuntimeError("OTLPReceiver is not started")
        return self._grpc_port

    @property
    def http_endpoint(self) -> str:
        """Base URL for OTLP/HTTP, e.g. for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        """Endpoint for OTLP/gRPC (TLS with ``tls``): ``OTLPSpanExporter(endpoint=..., insecure=True)``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.grpc_port}"

    def http_url(self, signal: Signal) -> str:
        """Full per-signal URL, as OTLP/HTTP exporters want for their ``endpoint`` argument."""
        return f"{self.http_endpoint}/v1/{signal}"

    def otel_env(
        self, protocol: Literal["http/protobuf", "http/json", "grpc"] = "http/protobuf"
    ) -> dict[str, str]:
        """Standard OTEL_* variables that point every signal's exporter at this receiver."""
        if protocol == "grpc":
            return {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.grpc_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            }
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.http_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}

    # ---- recording (called from server threads)

    def _record(
        self,
        protocol: Protocol,
        signal: Signal,
        headers: dict[str, str],
        request: ExportRequest,
        content_type: str,
        rejected: bool,
    ) -> None:
        entry = ReceivedRequest(protocol, signal, headers, request, content_type, rejected, time.time())
        with self._cond:
            (self._rejected if rejected else self._accepted).append(entry)
            self._generation += 1
            self._cond.notify_all()

    def _count_bad(self) -> None:
        with self._cond:
            self._bad_requests += 1
            self._generation += 1
            self._cond.notify_all()

    def _handle_grpc(self, signal: Signal, request: ExportRequest, context: grpc.ServicerContext) -> None:
        fail_with = self._take_failure()
        self._record(
            "grpc", signal, _metadata_dict(context), request, "application/grpc", fail_with is not None
        )
        if fail_with is not None:
            if self.retry_after_s is not None:
                delay = max(self.retry_after_s, 0.0)
                info = error_details_pb2.RetryInfo()
                info.retry_delay.seconds = int(delay)
                info.retry_delay.nanos = int((delay - int(delay)) * 1e9)
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            context.abort(self.grpc_fail_code, f"simulated failure {fail_with}")

    def _take_failure(self) -> int | None:
        """The status to fail the current request with, or None to accept it."""
        with self._cond:
            if self.fail_with is not None:
                return self.fail_with
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail_next_status
            return None

    def fail_next(self, count: int, status: int = 503) -> None:
        """Reject only the next ``count`` requests (any signal/protocol) with ``status``."""
        with self._cond:
            self._fail_next = count
            self._fail_next_status = status

    # ---- raw access

    def requests(
        self, signal: Signal | None = None, protocol: Protocol | None = None
    ) -> list[ReceivedRequest]:
        """Accepted requests in arrival order, optionally filtered."""
        with self._cond:
            entries = list(self._accepted)
        return [
            e
            for e in entries
            if (signal is None or e.signal == signal) and (protocol is None or e.protocol == protocol)
        ]

    def rejected_requests(self, signal: Signal | None = None) -> list[ReceivedRequest]:
        """Requests answered with the simulated failure (``fail_with``)."""
        with self._cond:
            entries = list(self._rejected)
        return [e for e in entries if signal is None or e.signal == signal]

    @property
    def rejected_count(self) -> int:
        with self._cond:
            return len(self._rejected)

    @property
    def bad_request_count(self) -> int:
        """Requests that could not be decoded or went to an unknown path."""
        with self._cond:
            return self._bad_requests

    def headers(self, signal: Signal | None = None) -> list[dict[str, str]]:
        """Headers (HTTP) / metadata (gRPC) of accepted requests, keys lower-cased."""
        return [dict(e.headers) for e in self.requests(signal)]

    def clear(self) -> None:
        """Forget everything received so far (the servers keep running)."""
        with self._cond:
            self._accepted.clear()
            self._rejected.clear()
            self._bad_requests = 0
            self._generation += 1
            self._cond.notify_all()

    # ---- flattened views

    def spans(self, name: str | None = None) -> list[Record]:
        """All received spans as plain dicts (hex ids, enum names, decoded attributes), optionally by name."""
        out: list[Record] = []
        for entry in self.requests("traces"):
            request = cast(trace_service_pb2.ExportTraceServiceRequest, entry.request)
            for rs in request.resource_spans:
                resource = _resource(rs.resource)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        if name is None or span.name == name:
                            out.append(_span_record(span, resource, ss.scope, entry.protocol))
        return out

    def metrics(self, name: str | None = None) -> list[Record]:
        """One dict per received metric data point, optionally for one metric name."""
        out: list[Record] = []
        for entry in self.requests("metrics"):
            request = cast(metrics_service_pb2.ExportMetricsServiceRequest, entry.request)
            for rm in request.resource_metrics:
                resource = _resource(rm.resource)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if name is None or metric.name == name:
                            out.extend(_metric_records(metric, resource, sm.scope, entry.protocol))
        return out

    def logs(self, event_name: str | None = None) -> list[Record]:
        """All received log records as plain dicts, optionally by ``event_name``."""
        out: list[Record] = []
        for entry in self.requests("logs"):
            request = cast(logs_service_pb2.ExportLogsServiceRequest, entry.request)
            for rl in request.resource_logs:
                resource = _resource(rl.resource)
                for sl in rl.scope_logs:
                    for log in sl.log_records:
                        if event_name is None or log.event_name == event_name:
                            out.append(_log_record(log, resource, sl.scope, entry.protocol))
        return out

    # ---- waiting

    def summary(self) -> str:
        """Human-readable account of what arrived, for assertion messages."""
        with self._cond:
            accepted, rejected, bad = list(self._accepted), len(self._rejected), self._bad_requests
        per = Counter(f"{e.protocol}/{e.signal}" for e in accepted)
        spans = [s["name"] for s in self.spans()]
        metrics = sorted({m["name"] for m in self.metrics()})
        logs = [
            lg["event_name"] or (str(lg["body"])[:60] if lg["body"] is not None else "<no body>")
            for lg in self.logs()
        ]
        return (
            f"requests {dict(per) or '{}'}, rejected={rejected}, undecodable={bad}; "
            f"{len(spans)} span(s) {_summarise_names(spans)}; "
            f"metrics {metrics}; "
            f"{len(logs)} log(s) {_summarise_names(logs)}"
        )

    def wait_until(
        self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        """Block until ``condition()`` is true, re-checking whenever a request arrives.

        Raises AssertionError with a summary of everything received on timeout. An exception
        raised by the condition counts as "not yet" (e.g. indexing an empty list) and is reported.
        """
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while True:
            with self._cond:
                generation = self._generation
            try:
                if condition():
                    return
                last_error = None
            except Exception as exc:
                last_error = exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                hint = f"; last check raised {last_error!r}" if last_error is not None else ""
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what}{hint}. Received: {self.summary()}"
                )
            with self._cond:
                # Wake on the next request; the short cap also covers time-based conditions.
                if self._generation == generation:
                    self._cond.wait(timeout=min(remaining, 0.25))

    def wait_for(
        self,
        kind: Literal["spans", "metrics", "logs"],
        predicate: Callable[[list[Record]], bool] | None = None,
        timeout: float = 10.0,
    ) -> list[Record]:
        """Wait until ``predicate(view)`` holds (default: any item) and return that view."""
        views: dict[str, Callable[[], list[Record]]] = {
            "spans": self.spans,
            "metrics": self.metrics,
            "logs": self.logs,
        }
        view = views[kind]
        check = predicate or bool
        result: list[list[Record]] = []

        def condition() -> bool:
            items = view()
            if check(items):
                result.append(items)
                return True
            return False

        self.wait_until(
            condition, timeout, what=f"{kind} matching the predicate" if predicate else f"any {kind}"
        )
        return result[-1]

    def wait_for_spans(
        self, predicate: Callable[[list[Record]], bool] | None = None, timeout: float = 10.0
    ) -> list[Record]:
        """``wait_for("spans", ...)``."""
        return self.wait_for("spans", predicate, timeout)

    def wait_for_metrics(
        self, predicate: Callable[[list[Record]], bool] | None = None, timeout: float = 10.0
    ) -> list[Record]:
        """``wait_for("metrics", ...)``."""
        return self.wait_for("metrics", predicate, timeout)

    def wait_for_logs(
        self, predicate: Callable[[list[Record]], bool] | None = None, timeout: float = 10.0
    ) -> list[Record]:
        """``wait_for("logs", ...)``."""
        return self.wait_for("logs", predicate, timeout)

    def wait_for_span(self, name: str, timeout: float = 10.0) -> Record:
        """Wait for a span called ``name`` and return the first one."""
        spans = self.wait_for("spans", lambda items: any(s["name"] == name for s in items), timeout)
        return next(s for s in spans if s["name"] == name)

    def wait_for_requests(
        self, count: int = 1, signal: Signal | None = None, *, rejected: bool = False, timeout: float = 10.0
    ) -> list[ReceivedRequest]:
        """Wait until at least ``count`` accepted (or rejected) requests arrived; return them."""

        def fetch() -> list[ReceivedRequest]:
            return self.rejected_requests(signal) if rejected else self.requests(signal)

        label = "rejected" if rejected else "accepted"
        self.wait_until(
            lambda: len(fetch()) >= count, timeout, what=f">= {count} {label} {signal or 'any'} request(s)"
        )
        return fetch()

"""A loopback OTLP/HTTP receiver for the benchmarks, run in its own process.

It answers every ``POST /v1/{traces,metrics,logs}`` with an empty success response and counts
requests, bytes and (for traces) spans, so a benchmark can check that every span arrived without
the receiver's work landing in the measured process. ``GET /stats`` returns the counts as JSON.

    python -m benchmarks.receiver        # prints "port <n>" once listening on 127.0.0.1
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

_RESPONSES = {
    "/v1/traces": trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
    "/v1/metrics": metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString(),
    "/v1/logs": logs_service_pb2.ExportLogsServiceResponse().SerializeToString(),
}


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {path: 0 for path in _RESPONSES}
        self.bytes = 0
        self.spans = 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": dict(self.requests), "bytes": self.bytes, "spans": self.spans}


COUNTS = _Counts()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the OTLP exporters' sessions expect

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/stats":
            self._reply(200, json.dumps(COUNTS.snapshot()).encode(), "application/json")
        else:
            self._reply(404, b"", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        response = _RESPONSES.get(self.path)
        if response is None:
            self._reply(404, b"", "text/plain")
            return
        spans = 0
        if self.path == "/v1/traces":
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with COUNTS.lock:
            COUNTS.requests[self.path] += 1
            COUNTS.bytes += len(body)
            COUNTS.spans += spans
        self._reply(200, response, "application/x-protobuf")


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()

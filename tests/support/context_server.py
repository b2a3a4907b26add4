"""A real second service for the cross-service context tests: wsgiref + the OpenTelemetry WSGI middleware.

Run as ``python -m tests.support.context_server`` with the OTEL_* variables pointing at a receiver. It
instruments itself with ``b2b_otel.instrument()``, serves on an ephemeral loopback port (printed as
``PORT <n>`` on stdout) and answers every request with JSON: the ``baggage`` header it received and
the tenant, user and session its handler saw. A request with ``X-Authenticated-Tenant`` stands for a
service that authenticated its caller: the handler then runs inside ``b2b_otel.context(tenant_id=...)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

import b2b_otel
from b2b_otel.api.context import current


def handle(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    authenticated = environ.get("HTTP_X_AUTHENTICATED_TENANT")
    with b2b_otel.context(tenant_id=authenticated), b2b_otel.tool("lookup_account"):
        seen = current()
    body = json.dumps({"baggage": environ.get("HTTP_BAGGAGE"), "seen": seen}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    b2b_otel.instrument(service_name="context-server", instrumentations="none", log_dir="none")
    server = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(handle), handler_class=QuietHandler)
    print(f"PORT {server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        b2b_otel.shutdown()


if __name__ == "__main__":
    sys.exit(main())

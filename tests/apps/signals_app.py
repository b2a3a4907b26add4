"""A small application used by the end-to-end tests of the SDK core.

Run as a script. With ``SAMPLE_MODE=instrument`` it calls ``b2b_otel.instrument()`` itself; under
``opentelemetry-instrument`` it does not import b2b_otel at all. It makes real httpx calls to a
local HTTP server, real psycopg queries when ``SAMPLE_PG_URL`` is set, a manual span, a log
record and a counter, then exits and relies on the flush at exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if os.environ.get("SAMPLE_MODE") == "instrument":
    import b2b_otel

    b2b_otel.instrument()

import httpx
from opentelemetry import metrics, trace


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        body = b'{"account": "acme", "arr": 120000}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def _async_calls(base: str, pg_url: str | None) -> None:
    async with httpx.AsyncClient() as client:
        await client.get(f"{base}/accounts/async")
    if pg_url:
        import psycopg

        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            await conn.execute("SELECT 2")


def main() -> None:
    server = _serve()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pg_url = os.environ.get("SAMPLE_PG_URL")
    tracer = trace.get_tracer("sample.app")
    counter = metrics.get_meter("sample.app").create_counter("sample.requests", unit="{request}")
    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("sample.app")

    with tracer.start_as_current_span("sample-work") as span:
        span.set_attribute("sample.kind", "e2e")
        with httpx.Client() as client:
            client.get(f"{base}/accounts/sync")
            client.get(f"{base}/missing")
        asyncio.run(_async_calls(base, pg_url))
        if pg_url:
            import psycopg
            from psycopg_pool import ConnectionPool

            with psycopg.connect(pg_url) as conn:
                conn.execute("SELECT 1")
            with ConnectionPool(pg_url, min_size=1, max_size=2, open=True) as pool, pool.connection() as conn:
                conn.execute("SELECT 3")
        counter.add(3, {"route": "/accounts"})
        log.warning("sample work done for %s", "acme")
    server.shutdown()


if __name__ == "__main__":
    main()

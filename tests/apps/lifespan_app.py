"""An ASGI application whose lifespan shutdown makes telemetry, for the SIGTERM tests.

Configured by the environment only. ``instrument()`` runs when the module is imported (as an
application does at module level); the application never calls ``b2b_otel.shutdown()``.

- ``/work?n=N`` makes N spans and N log records while serving.
- The lifespan's shutdown half takes ``LIFESPAN_SHUTDOWN_S`` seconds (default 0.5), then makes one
  span ``lifespan shutdown`` and one log record ``lifespan shutdown done``, then prints
  ``lifespan shutdown finished`` on stdout: telemetry made after the signal, during the framework's
  graceful shutdown.
- With ``APP_OWN_HANDLER=1`` the application installs its own SIGTERM handler at import, before
  ``instrument()``; it prints ``app handler ran`` and chains to the handler it replaced (the server's),
  as a well-behaved handler does.

Served by ``uvicorn tests.apps.lifespan_app:app`` or
``gunicorn -k uvicorn.workers.UvicornWorker tests.apps.lifespan_app:app``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

from opentelemetry import trace

if os.environ.get("APP_OWN_HANDLER") == "1":
    _replaced: Any = signal.getsignal(signal.SIGTERM)

    def _own(signum: int, frame: FrameType | None) -> None:
        print("app handler ran", flush=True)
        if callable(_replaced):
            _replaced(signum, frame)

    signal.signal(signal.SIGTERM, _own)

import b2b_otel  # after the application's own handler, on purpose

telemetry = b2b_otel.instrument(service_name="lifespan-app")
log = logging.getLogger("lifespan.app")
tracer = trace.get_tracer("lifespan.app")


def work(n: int) -> None:
    for index in range(n):
        with tracer.start_as_current_span(f"work {index}") as span:
            span.set_attribute(f"app.note_{index}", f"password=hunter2-Pa55word-{index}")
            log.warning("work %d done", index)


async def _lifespan(
    receive: Callable[[], Awaitable[dict[str, Any]]], send: Callable[[dict[str, Any]], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await asyncio.sleep(float(os.environ.get("LIFESPAN_SHUTDOWN_S", "0.5")))
            with tracer.start_as_current_span("lifespan shutdown") as span:
                span.set_attribute("app.shutdown.token", "Zr8kQw2mXv9p")
                log.warning("lifespan shutdown done")
            print("lifespan shutdown finished", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """A bare ASGI application with a lifespan: ``/work?n=N``."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    work(int(parse_qs(scope.get("query_string", b"").decode()).get("n", ["1"])[0]))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"done"})

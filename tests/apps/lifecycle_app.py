"""An application that instruments, does some work and is then stopped by a signal.

Configured only by the environment (the test points OTLP at its receiver and sets the batch delays
to an hour, so everything stays buffered until a flush). ``/work?n=N`` makes N spans, each with a
secret in an attribute (one scrubber finding each) and one log record.

- ``python -m tests.apps.lifecycle_app plain N``: the work, then ``ready`` on stdout, then it waits
  for a signal with the default handlers.
- ``... own-handler N``: the same, with the application's own SIGTERM handler installed *before*
  ``instrument()`` (it prints ``app handler ran`` and exits 3).
- ``uvicorn tests.apps.lifecycle_app:asgi_app`` / ``gunicorn tests.apps.lifecycle_app:wsgi_app``:
  served; a GET of ``/work?n=N`` does the work before it answers.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

from opentelemetry import trace

import b2b_otel

if __name__ == "__main__" and sys.argv[1:2] == ["own-handler"]:

    def _own(signum: int, frame: FrameType | None) -> None:
        print("app handler ran", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGTERM, _own)

telemetry = b2b_otel.instrument(service_name="lifecycle-app")
log = logging.getLogger("lifecycle.app")


def work(n: int) -> None:
    """N spans, N findings (a password in an attribute of each), N log records."""
    tracer = trace.get_tracer("lifecycle.app")
    for index in range(n):
        with tracer.start_as_current_span(f"work {index}") as span:
            span.set_attribute(f"app.note_{index}", f"password=hunter2-Pa55word-{index}")
            log.warning("work %d done", index)


def _n(query: str) -> int:
    return int(parse_qs(query).get("n", ["1"])[0])


async def asgi_app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """A bare ASGI application (no framework): ``/work?n=N``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    work(_n(scope.get("query_string", b"").decode()))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"done"})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A bare WSGI application: ``/work?n=N``."""
    work(_n(environ.get("QUERY_STRING", "")))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]


def main() -> None:
    work(int(sys.argv[2]))
    print("ready", flush=True)
    deadline = time.monotonic() + 120  # a test that never signals must not leave this behind
    while time.monotonic() < deadline:
        time.sleep(0.1)


if __name__ == "__main__":
    main()

"""b2b-otel's own long-lived threads start outside the OpenTelemetry context of whoever started them.

With the context carried into threads (``setup/threads.py``, turned on by ``instrument()``),
a thread started inside ``b2b_otel.context(tenant_id=...)`` or a span would run its whole life in that
context: the rules worker's own log lines and metric exemplars would name the tenant and span of
whichever request happened to start it.
"""

from __future__ import annotations

import threading

from opentelemetry import context as otel_context
from opentelemetry.context import Context


def start_detached(thread: threading.Thread) -> None:
    """Start ``thread`` from an empty OTel context, whatever context is current here."""
    token = otel_context.attach(Context())
    try:
        thread.start()
    finally:
        otel_context.detach(token)

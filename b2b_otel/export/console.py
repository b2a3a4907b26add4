"""Console exporters that print every batch: bytes values are printed as base64 text.

The SDK's console span and metric exporters serialize with ``json.dumps``, which cannot write
``bytes``: one bytes attribute anywhere in a batch (a span's, an event's, a link's, the resource's,
a data point's) failed the whole batch, and nothing of it was printed. Its console log exporter
already writes bytes as base64; spans and metrics here do the same, as OTLP/JSON does. The values
were scrubbed before (the scrubbing exporter runs in front of the fan-out), so this only changes
how they are written.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import IO, Any

from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from ..scrub import Report, Scrubber
from .scrubbing import ScrubbingMetricExporter, ScrubbingSpanExporter


def _printable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (list, tuple)):
        items = tuple(_printable(item) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, Mapping):
        printable = {k: _printable(v) for k, v in value.items()}
        return value if all(printable[k] is v for k, v in value.items()) else printable
    return value


class _BytesAsBase64(Scrubber):
    """Not a scrubber: walks the same fields, and only writes bytes values as base64 text."""

    def __init__(self) -> None:
        super().__init__(enabled=True)

    def text(self, value: str, field: str = "", report: Report | None = None) -> str:
        return value

    def attributes(
        self, attributes: Mapping[str, Any] | None, report: Report | None = None
    ) -> dict[str, Any] | None:
        if not attributes:
            return None
        changed: dict[str, Any] | None = None
        for key, value in attributes.items():
            printable = _printable(value)
            if printable is not value:
                if changed is None:
                    changed = dict(attributes)
                changed[key] = printable
        return changed


def span_exporter(out: IO[str] | None = None) -> SpanExporter:
    """The console span exporter (to ``out``, default stdout), printing every batch (bytes as base64)."""
    inner = ConsoleSpanExporter() if out is None else ConsoleSpanExporter(out=out)
    return ScrubbingSpanExporter(inner, _BytesAsBase64())


def metric_exporter(out: IO[str] | None = None) -> MetricExporter:
    """The console metric exporter (to ``out``, default stdout), printing every batch (bytes as base64)."""
    inner = ConsoleMetricExporter() if out is None else ConsoleMetricExporter(out=out)
    return ScrubbingMetricExporter(inner, _BytesAsBase64())

"""In-memory SDK providers with deterministic ids, installed as the globals, for unit tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.deterministic import SequentialIdGenerator
from tests.support.otel_globals import reset_otel_globals


@dataclass
class Capture:
    """What the code under test produced."""

    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matches = [s for s in self.spans() if s.name == name]
        assert len(matches) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return matches[0]

    def tree(self) -> list[str]:
        """The finished spans as an indented outline, children in start order: a stable snapshot."""
        spans = sorted(self.spans(), key=lambda s: (s.start_time or 0, s.context.span_id))
        children: dict[int | None, list[ReadableSpan]] = {}
        for span in spans:
            parent = span.parent.span_id if span.parent else None
            children.setdefault(parent, []).append(span)
        ids = {s.context.span_id for s in spans}
        lines: list[str] = []

        def walk(parent: int | None, depth: int) -> None:
            for span in children.get(parent, []):
                lines.append("  " * depth + span.name)
                walk(span.context.span_id, depth + 1)

        for span in spans:
            if span.parent is None or span.parent.span_id not in ids:
                lines.append(span.name)
                walk(span.context.span_id, 1)
        return lines

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


def install_capture() -> Capture:
    """Fresh global tracer and meter providers backed by in-memory exporters."""
    reset_otel_globals()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SequentialIdGenerator(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], shutdown_on_exit=False))
    return Capture(exporter, reader, provider)

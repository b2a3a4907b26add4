"""The exemplars of b2b_otel's own instruments: cheap to offer, read once per export.

Exemplars link a point of ``gen_ai.invoke_agent.duration`` or ``b2b.agent.executions`` to the trace
it was recorded in. b2b_otel records its metrics while the operation's span is current, so with the
SDK's default filter (``OTEL_METRICS_EXEMPLAR_FILTER=trace_based``; ``always_off`` turns them off)
every measurement is offered to a reservoir on the application thread. The SDK's reservoirs take a
lock, look for the bucket value by value and read the span's ids on every offer; this one stores
one tuple. Imported when b2b_otel builds its MeterProvider (``histogram_views``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics import Exemplar, ExemplarReservoir, SimpleFixedSizeExemplarReservoir
from opentelemetry.trace import INVALID_SPAN, get_current_span


def exemplars(aggregation_type: type) -> Callable[..., ExemplarReservoir]:
    """The ``exemplar_reservoir_factory`` of a View: a reservoir builder for any aggregation."""

    def build(**kwargs: Any) -> ExemplarReservoir:
        # An exponential histogram asks for ``size`` exemplars: the SDK's reservoir samples them.
        if "size" in kwargs:
            return SimpleFixedSizeExemplarReservoir(**kwargs)
        return LatestExemplars(kwargs.get("boundaries"))

    return build


class LatestExemplars(ExemplarReservoir):
    """The latest measurement offered, per bucket of an explicit-bucket histogram, else one.

    A histogram keeps the latest measurement of each bucket, as the SDK's aligned-bucket reservoir
    does; a counter or gauge keeps the latest one (what Prometheus clients keep), where the SDK's
    keeps a uniformly sampled one. An offer stores a tuple (no lock, no span lookup); the span and
    trace ids are read when the reader collects, once per exemplar. A measurement offered while the
    reader swaps the slots may be lost as an exemplar (never as a measurement).
    """

    def __init__(self, boundaries: Sequence[float] | None = None) -> None:
        self._boundaries = tuple(boundaries) if boundaries is not None else None
        self._size = len(self._boundaries) + 1 if self._boundaries is not None else 1
        self._latest: list[tuple[float, int, Any, Any] | None] = [None] * self._size

    def offer(self, value: float, time_unix_nano: int, attributes: Any, context: Any) -> None:
        boundaries = self._boundaries
        # The first bucket whose upper bound is >= value: the bucket the histogram counts it in.
        index = 0 if boundaries is None else bisect_left(boundaries, value)
        self._latest[index] = (value, time_unix_nano, attributes, context)

    def collect(self, point_attributes: Any) -> list[Exemplar]:
        latest, self._latest = self._latest, [None] * self._size
        point = point_attributes or {}
        collected = []
        for item in latest:
            if item is None:
                continue
            value, time_unix_nano, attributes, context = item
            span = get_current_span(context)
            span_id = trace_id = None
            if span != INVALID_SPAN:
                span_context = span.get_span_context()
                span_id, trace_id = span_context.span_id, span_context.trace_id
            # The measurement's attributes that its point does not carry.
            filtered = {k: v for k, v in attributes.items() if k not in point} if attributes else None
            collected.append(Exemplar(filtered, value, time_unix_nano, span_id, trace_id))
        return collected

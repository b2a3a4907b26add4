"""The SDK's batch processors, watched: what they drop because their bounded queue is full is counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from .. import semconv as sc
from .._internal.sdk_private import batch_queue
from ..export.health import DropCounter, SignalHealth


class QueueWatch:
    """Counts what a batch processor drops because its bounded queue is full."""

    def __init__(self, processor: Any, health: SignalHealth, on_drop: DropCounter) -> None:
        self._queue, self._capacity = batch_queue(processor)
        self._health = health
        self._on_drop = on_drop
        if self._queue is not None:
            queue = self._queue
            health.queue_size = lambda: len(queue)
            health.queue_capacity = self._capacity

    def before_enqueue(self) -> None:
        queue = self._queue
        if queue is not None and len(queue) == self._capacity:
            self._health.drop(sc.ReasonValues.QUEUE_FULL, 1, self._on_drop)


WatchFactory = Callable[[Any], QueueWatch]


class WatchedBatchSpanProcessor(BatchSpanProcessor):
    """A BatchSpanProcessor that counts queue-full drops of sampled spans."""

    def __init__(self, exporter: Any, watch_factory: WatchFactory, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._watch = watch_factory(self)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            # Unsampled (record-only) spans are never queued, so they cannot be dropped either.
            if span.context is not None and span.context.trace_flags.sampled:
                self._watch.before_enqueue()
            super().on_end(span)
        except Exception:
            pass


class WatchedBatchLogRecordProcessor(BatchLogRecordProcessor):
    """A BatchLogRecordProcessor that counts queue-full drops."""

    def __init__(self, exporter: Any, watch_factory: WatchFactory, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._watch = watch_factory(self)

    def on_emit(self, log_record: Any) -> None:
        try:
            self._watch.before_enqueue()
            super().on_emit(log_record)
        except Exception:
            pass

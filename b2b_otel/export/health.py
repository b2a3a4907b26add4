"""Export health: per signal the last success and failure, counts and drops, recorded by thin wrappers.

The wrappers never raise: a failing exporter is logged (rate-limited), counted, and the batch is
dropped, so the application never sees it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import semconv as sc
from .._internal import selflog
from .._internal.formats import iso
from .._internal.sdk_private import export_error_observer, exporter_preferences


@dataclass
class SignalHealth:
    """Export health of one signal; updated by the export threads, read by ``Telemetry.health()``."""

    signal: str
    exporters: tuple[str, ...] = ()
    last_success_time: float | None = None
    last_failure_time: float | None = None
    last_failure_error: str | None = None
    exported: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    queue_size: Callable[[], int] | None = None
    queue_capacity: int | None = None
    # The disk buffer's own figures (export/disk_buffer.py), when B2B_OTEL_EXPORT_BUFFER_DIR is set.
    buffer: Callable[[], dict[str, Any]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def success(self, count: int) -> None:
        with self._lock:
            self.last_success_time = time.time()
            self.exported += count

    def failure(self, error: str, count: int, on_drop: Callable[[str, str, int], None] | None) -> None:
        self.failed_attempt(error)
        self.drop(sc.ReasonValues.EXPORT_FAILED, count, on_drop)

    def failed_attempt(self, error: str) -> None:
        """An export failed but its batch was kept (on disk, to be replayed): nothing is dropped."""
        with self._lock:
            self.last_failure_time = time.time()
            self.last_failure_error = error

    def drop(self, reason: str, count: int, on_drop: Callable[[str, str, int], None] | None) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        if on_drop is not None:
            try:
                on_drop(self.signal, reason, count)
            except Exception:
                pass

    def queued(self) -> int:
        """What the signal's batch queue holds now (0 when unknown)."""
        try:
            return int(self.queue_size()) if self.queue_size is not None else 0
        except Exception:
            return 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            size: int | None = None
            if self.queue_size is not None:
                try:
                    size = self.queue_size()
                except Exception:
                    size = None
            return {
                "exporters": list(self.exporters),
                "last_success": _stamp(self.last_success_time),
                "last_failure": (
                    None
                    if self.last_failure_time is None
                    else {"time": _stamp(self.last_failure_time), "error": self.last_failure_error}
                ),
                "exported": self.exported,
                "queue": {"size": size, "capacity": self.queue_capacity},
                "dropped": dict(self.dropped),
                **({} if self.buffer is None else {"buffer": self.buffer()}),
            }


def _stamp(value: float | None) -> str | None:
    return None if value is None else iso(value)


DropCounter = Callable[[str, str, int], None]


def record_loss(
    health: SignalHealth, exporter: str, error: str, count: int, on_drop: DropCounter | None
) -> None:
    """``count`` items ``exporter`` could not deliver: health, the drop counter, a self-log line a minute."""
    health.failure(error, count, on_drop)
    selflog.warn_once_a_minute(
        f"export-{health.signal}-{exporter}",
        "b2b_otel: %s export of %d %s failed (%s); dropped, the application goes on",
        exporter,
        count,
        health.signal,
        error,
    )


class _Observed:
    """Shared bookkeeping of the three exporter wrappers."""

    def __init__(
        self, name: str, health: SignalHealth, on_drop: DropCounter | None, inner: Any = None
    ) -> None:
        self._name = name
        self._health = health
        self._on_drop = on_drop
        # The OTLP exporters return FAILURE without raising; what failed is read from them (see
        # sdk_private.export_error_observer), else the failure is named by the exporter's class.
        self._last_error = export_error_observer(inner) if inner is not None else None
        self._inner_class = type(inner).__name__ if inner is not None else "exporter"

    def _record(self, ok: bool, count: int, error: str | None = None) -> None:
        if ok:
            self._health.success(count)
            return
        record_loss(self._health, self._name, error or self._failure_reason(), count, self._on_drop)

    def _failure_reason(self) -> str:
        """The error class of the failed export: ``ConnectionError``, ``HTTP 503``, ``gRPC UNAVAILABLE``..."""
        if self._last_error is not None:
            try:
                described = self._last_error()
            except Exception:
                described = None
            if described:
                return described
        return f"{self._inner_class} returned FAILURE"


class ObservedSpanExporter(SpanExporter, _Observed):
    """Wraps a span exporter: records health, never raises."""

    def __init__(
        self, inner: SpanExporter, name: str, health: SignalHealth, on_drop: DropCounter | None
    ) -> None:
        _Observed.__init__(self, name, health, on_drop, inner)
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            self._record(False, len(spans), type(exc).__name__)
            return SpanExportResult.FAILURE
        self._record(result == SpanExportResult.SUCCESS, len(spans))
        return result

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        except Exception:
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self.inner.force_flush(timeout_millis))
        except Exception:
            return False


class ObservedLogExporter(LogRecordExporter, _Observed):
    """Wraps a log record exporter: records health, never raises."""

    def __init__(
        self, inner: LogRecordExporter, name: str, health: SignalHealth, on_drop: DropCounter | None
    ) -> None:
        _Observed.__init__(self, name, health, on_drop, inner)
        self.inner = inner

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            result = self.inner.export(batch)
        except Exception as exc:
            self._record(False, len(batch), type(exc).__name__)
            return LogRecordExportResult.FAILURE
        self._record(result == LogRecordExportResult.SUCCESS, len(batch))
        return result

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()  # type: ignore[no-untyped-call]
        except Exception:
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            flush = getattr(self.inner, "force_flush", None)
            return bool(flush(timeout_millis)) if flush else True
        except Exception:
            return False


class ObservedMetricExporter(MetricExporter, _Observed):
    """Wraps a metric exporter: keeps its temporality and aggregation, records health, never raises."""

    def __init__(
        self, inner: MetricExporter, name: str, health: SignalHealth, on_drop: DropCounter | None
    ) -> None:
        _Observed.__init__(self, name, health, on_drop, inner)
        temporality, aggregation = exporter_preferences(inner)
        MetricExporter.__init__(self, preferred_temporality=temporality, preferred_aggregation=aggregation)
        self.inner = inner

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        points = _count_points(metrics_data)
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._record(False, points, type(exc).__name__)
            return MetricExportResult.FAILURE
        self._record(result == MetricExportResult.SUCCESS, points)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        try:
            return bool(self.inner.force_flush(timeout_millis=timeout_millis))
        except Exception:
            return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)
        except Exception:
            pass


def _count_points(data: MetricsData) -> int:
    try:
        return sum(
            len(metric.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        )
    except Exception:
        return 0

"""One batch processor, several exporters: export each batch to all of them."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class FanOutSpanExporter(SpanExporter):
    """Exports to every exporter; succeeds only when all do."""

    def __init__(self, exporters: Sequence[SpanExporter]) -> None:
        self.exporters = list(exporters)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = True
        for exporter in self.exporters:
            ok = exporter.export(spans) == SpanExportResult.SUCCESS and ok
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        for exporter in self.exporters:
            exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([exporter.force_flush(timeout_millis) for exporter in self.exporters])


class FanOutLogExporter(LogRecordExporter):
    """Exports log records to every exporter; succeeds only when all do."""

    def __init__(self, exporters: Sequence[LogRecordExporter]) -> None:
        self.exporters = list(exporters)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = True
        for exporter in self.exporters:
            ok = exporter.export(batch) == LogRecordExportResult.SUCCESS and ok
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        for exporter in self.exporters:
            exporter.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(
            [getattr(exporter, "force_flush", lambda _t: True)(timeout_millis) for exporter in self.exporters]
        )

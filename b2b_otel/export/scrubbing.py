"""Scrubbing on the export path: one pass per batch in the export thread, before the fan-out."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from .. import semconv as sc
from ..scrub import Finding, Scrubber

# (finding, trace id, span id): called for each distinct finding in one span or log record.
FindingSink = Callable[[Finding, int, int], None]


class _Collector:
    """Collects the distinct findings of one item."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], Finding] = {}

    def __call__(self, finding: Finding) -> None:
        self.found.setdefault((finding.field, finding.pattern), finding)


class ScrubbingSpanExporter(SpanExporter):
    """Replaces secrets in span names, attributes, events, status and links before export."""

    def __init__(
        self, inner: SpanExporter, scrubber: Scrubber, on_finding: FindingSink | None = None
    ) -> None:
        self.inner = inner
        self.scrubber = scrubber
        self.on_finding = on_finding

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._scrub(span) for span in spans])

    def _scrub(self, span: ReadableSpan) -> ReadableSpan:
        try:
            return self._scrub_span(span)
        except Exception:
            # Never export what could not be checked: keep the span's shape, drop its data.
            return ReadableSpan(
                name="[REDACTED:scrub_failed]",
                context=span.context,
                parent=span.parent,
                resource=span.resource,
                kind=span.kind,
                start_time=span.start_time,
                end_time=span.end_time,
                instrumentation_scope=span.instrumentation_scope,
            )

    def _scrub_span(self, span: ReadableSpan) -> ReadableSpan:
        s = self.scrubber
        found = _Collector()
        name = s.text(span.name, sc.SCRUB_FIELD_SPAN_NAME, found)
        attributes = s.attributes(span.attributes, found)
        events: list[Event] | None = None
        for index, event in enumerate(span.events):
            clean = s.attributes(event.attributes, found)
            event_name = s.text(event.name, sc.SCRUB_FIELD_EVENT_NAME, found)
            if clean is not None or event_name != event.name:
                if events is None:
                    events = list(span.events)
                events[index] = Event(
                    event_name, clean if clean is not None else event.attributes, event.timestamp
                )
        links: list[Link] | None = None
        for index, link in enumerate(span.links):
            clean = s.attributes(link.attributes, found)
            if clean is not None:
                if links is None:
                    links = list(span.links)
                links[index] = Link(link.context, clean)
        status = span.status
        if status.description:
            description = s.text(status.description, sc.SCRUB_FIELD_STATUS_DESCRIPTION, found)
            if description != status.description:
                status = Status(status.status_code, description)
        if self.on_finding is not None and span.context is not None:
            for finding in found.found.values():
                self.on_finding(finding, span.context.trace_id, span.context.span_id)
        if (
            name == span.name
            and attributes is None
            and events is None
            and links is None
            and status is span.status
        ):
            return span
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes if attributes is not None else span.attributes,
            events=events if events is not None else span.events,
            links=links if links is not None else span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class ScrubbingLogExporter(LogRecordExporter):
    """Replaces secrets in log bodies and attributes before export."""

    def __init__(
        self, inner: LogRecordExporter, scrubber: Scrubber, on_finding: FindingSink | None = None
    ) -> None:
        self.inner = inner
        self.scrubber = scrubber
        self.on_finding = on_finding

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return self.inner.export([self._scrub(record) for record in batch])

    def _scrub(self, record: ReadableLogRecord) -> ReadableLogRecord:
        found = _Collector()
        log = record.log_record
        try:
            body = self.scrubber.body(log.body, found)
            attributes = self.scrubber.attributes(log.attributes, found)
        except Exception:
            body, attributes = "[REDACTED:scrub_failed]", {}
        if self.on_finding is not None:
            for finding in found.found.values():
                self.on_finding(finding, log.trace_id or 0, log.span_id or 0)
        if body == log.body and attributes is None:
            return record
        clean = copy.copy(log)
        clean.body = body
        if attributes is not None:
            clean.attributes = attributes
        return ReadableLogRecord(clean, record.resource, record.instrumentation_scope, record.limits)

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self.inner, "force_flush", None)
        return bool(flush(timeout_millis)) if flush else True

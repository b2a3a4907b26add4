"""Scrubbing on the export path: one pass per batch in the export thread, before the fan-out.

Spans, log records and metric data points are scrubbed, and so is the resource they carry (once
per resource object: it is the same object in every batch).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, Status

from .. import semconv as sc
from .._internal.sdk_private import exporter_preferences, span_attributes
from ..scrub import Finding, Scrubber

# (finding, trace id, span id): called for each distinct finding in one span or log record.
FindingSink = Callable[[Finding, int, int], None]


class _Collector:
    """Collects the distinct findings of one item."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], Finding] = {}

    def __call__(self, finding: Finding) -> None:
        self.found.setdefault((finding.field, finding.pattern), finding)


_SCALARS = (str, int, float, bool)
_SCALAR_TYPES = frozenset(_SCALARS)


class _Memo:
    """The scrubbed form and findings of recently seen attribute values and names, so that what
    repeats is scrubbed once: telemetry repeats itself (the same span names, agent and tool names,
    models, hosts, statements and status codes in every batch).

    The scrubber judges each attribute on its own (its key and its value; its settings are fixed), so
    the verdict on one ``key: value`` entry — ``Scrubber.attributes({key: value})``: nothing to change,
    or the entry as scrubbed, key included — holds wherever that entry comes again, and a hit reports
    the same findings. Scalar values only (text up to ``MAX_TEXT``), keyed with their type (``1``,
    ``1.0`` and ``True`` are equal but not the same value); bounded, cleared when full. Several
    threads may share it (each dict operation is atomic; an entry lost to a concurrent clear is only a
    miss).
    """

    ENTRIES = 4096
    MAX_TEXT = 512

    def __init__(self, scrubber: Scrubber) -> None:
        self.scrubber = scrubber
        self._entries: dict[tuple[str, type, Any], tuple[dict[str, Any] | None, tuple[Finding, ...]]] = {}
        self._texts: dict[tuple[str, str], tuple[str, tuple[Finding, ...]]] = {}

    def _entry(self, key: str, value: Any, report: _Collector) -> dict[str, Any] | None:
        kind = type(value)
        if kind not in _SCALARS or (kind is str and len(value) > self.MAX_TEXT):
            return self.scrubber.attributes({key: value}, report)
        memo_key = (key, kind, value)
        hit = self._entries.get(memo_key)
        if hit is None:
            found: list[Finding] = []
            hit = (self.scrubber.attributes({key: value}, found.append), tuple(found))
            if len(self._entries) >= self.ENTRIES:
                self._entries.clear()
            self._entries[memo_key] = hit
        for finding in hit[1]:
            report(finding)
        return hit[0]

    def attributes(self, attributes: Mapping[str, Any] | None, report: _Collector) -> dict[str, Any] | None:
        """``Scrubber.attributes``, entry by entry, remembered: a scrubbed copy, or None when clean."""
        if not attributes or not self.scrubber.enabled:
            return self.scrubber.attributes(attributes, report)
        changed: dict[str, Any] | None = None
        entries = self._entries
        for key, value in attributes.items():
            # The hit path inline (it is taken for nearly every entry); a miss or a value that is not
            # remembered goes through _entry.
            kind = type(value)
            hit = entries.get((key, kind, value)) if kind in _SCALAR_TYPES else None
            if hit is None:
                verdict = self._entry(key, value, report)
            else:
                for finding in hit[1]:
                    report(finding)
                verdict = hit[0]
            if verdict is None:
                continue
            if changed is None:
                changed = dict(attributes)
            if len(verdict) == 1 and key in verdict:
                changed[key] = verdict[key]  # the value scrubbed, in its place
            else:
                del changed[key]  # the key itself held a secret
                changed.update(verdict)
        return changed

    def text(self, value: str, field: str, report: _Collector) -> str:
        """``Scrubber.text``, remembered."""
        if len(value) > self.MAX_TEXT:
            return self.scrubber.text(value, field, report)
        hit = self._texts.get((field, value))
        if hit is None:
            found: list[Finding] = []
            hit = (self.scrubber.text(value, field, found.append), tuple(found))
            if len(self._texts) >= self.ENTRIES:
                self._texts.clear()
            self._texts[(field, value)] = hit
        for finding in hit[1]:
            report(finding)
        return value if hit[0] == value else hit[0]


class _Resources:
    """Scrubbed copies of resources, one per resource object; findings reported on the first pass."""

    LIMIT = 64  # an application has one or a few resources; a bound keeps a misuse from growing

    def __init__(self, scrubber: Scrubber, on_finding: FindingSink | None) -> None:
        self.scrubber = scrubber
        self.on_finding = on_finding
        # id -> (the resource, kept alive so that its id is not reused; its scrubbed form)
        self._cache: dict[int, tuple[Resource, Resource]] = {}

    def clean(self, resource: Resource) -> Resource:
        cached = self._cache.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        found = _Collector()
        attributes = self.scrubber.attributes(resource.attributes, found)
        clean = resource if attributes is None else Resource(attributes, resource.schema_url)
        if self.on_finding is not None:
            for finding in found.found.values():
                self.on_finding(finding, 0, 0)
        if len(self._cache) >= self.LIMIT:
            self._cache.clear()
        self._cache[id(resource)] = (resource, clean)
        return clean


class _Scopes:
    """Scrubbed copies of instrumentation scopes, one per scope object, as :class:`_Resources` does.

    A scope's attributes (``get_tracer(..., attributes=...)``) are exported beside every span, record
    and metric of that scope; its name and version come from code and are left as they are.
    """

    LIMIT = 256  # one per instrumented library and tracer name; a bound keeps a misuse from growing

    def __init__(self, scrubber: Scrubber, on_finding: FindingSink | None) -> None:
        self.scrubber = scrubber
        self.on_finding = on_finding
        self._cache: dict[int, tuple[InstrumentationScope, InstrumentationScope]] = {}

    def clean(self, scope: InstrumentationScope | None) -> InstrumentationScope | None:
        if scope is None or not scope.attributes:
            return scope
        cached = self._cache.get(id(scope))
        if cached is not None and cached[0] is scope:
            return cached[1]
        found = _Collector()
        attributes = self.scrubber.attributes(scope.attributes, found)
        clean = (
            scope
            if attributes is None
            else InstrumentationScope(scope.name, scope.version, scope.schema_url, attributes)
        )
        if self.on_finding is not None:
            for finding in found.found.values():
                self.on_finding(finding, 0, 0)
        if len(self._cache) >= self.LIMIT:
            self._cache.clear()
        self._cache[id(scope)] = (scope, clean)
        return clean


class ScrubbingSpanExporter(SpanExporter):
    """Replaces secrets in span names, attributes, events, status and links before export."""

    # When set, every span is exported with this resource instead of its own (one resource per process).
    resource: Resource | None = None

    def __init__(
        self, inner: SpanExporter, scrubber: Scrubber, on_finding: FindingSink | None = None
    ) -> None:
        self.inner = inner
        self.scrubber = scrubber
        self.on_finding = on_finding
        self._resources = _Resources(scrubber, on_finding)
        self._scopes = _Scopes(scrubber, on_finding)
        self._memo = _Memo(scrubber)

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
                resource=Resource.get_empty(),
                kind=span.kind,
                start_time=span.start_time,
                end_time=span.end_time,
                instrumentation_scope=span.instrumentation_scope,
            )

    def _scrub_span(self, span: ReadableSpan) -> ReadableSpan:
        s = self.scrubber
        memo = self._memo
        found = _Collector()
        resource = self._resources.clean(span.resource if self.resource is None else self.resource)
        scope = self._scopes.clean(span.instrumentation_scope)
        name = memo.text(span.name, sc.SCRUB_FIELD_SPAN_NAME, found)
        attributes = memo.attributes(span_attributes(span), found)
        events: list[Event] | None = None
        span_events = span.events  # each read of the property copies the SDK's list
        for index, event in enumerate(span_events):
            clean = memo.attributes(event.attributes, found)
            event_name = memo.text(event.name, sc.SCRUB_FIELD_EVENT_NAME, found)
            if clean is not None or event_name != event.name:
                if events is None:
                    events = list(span_events)
                events[index] = Event(
                    event_name, clean if clean is not None else event.attributes, event.timestamp
                )
        links: list[Link] | None = None
        span_links = span.links
        for index, link in enumerate(span_links):
            clean = memo.attributes(link.attributes, found)
            if clean is not None:
                if links is None:
                    links = list(span_links)
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
            and resource is span.resource
            and scope is span.instrumentation_scope
        ):
            return span
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=resource,
            attributes=attributes if attributes is not None else span.attributes,
            events=events if events is not None else span.events,
            links=links if links is not None else span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=scope,
        )

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class ScrubbingLogExporter(LogRecordExporter):
    """Replaces secrets in log bodies and attributes before export."""

    # When set, every record is exported with this resource instead of its own.
    resource: Resource | None = None

    def __init__(
        self, inner: LogRecordExporter, scrubber: Scrubber, on_finding: FindingSink | None = None
    ) -> None:
        self.inner = inner
        self.scrubber = scrubber
        self.on_finding = on_finding
        self._resources = _Resources(scrubber, on_finding)
        self._scopes = _Scopes(scrubber, on_finding)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return self.inner.export([self._scrub(record) for record in batch])

    def _scrub(self, record: ReadableLogRecord) -> ReadableLogRecord:
        found = _Collector()
        log = record.log_record
        event_name = log.event_name
        scope = record.instrumentation_scope
        try:
            resource = self._resources.clean(record.resource if self.resource is None else self.resource)
            scope = self._scopes.clean(scope)
            body = self.scrubber.body(log.body, found)
            attributes = self.scrubber.attributes(log.attributes, found)
            if event_name:
                event_name = self.scrubber.text(event_name, sc.SCRUB_FIELD_EVENT_NAME, found)
        except Exception:
            resource, body, attributes = Resource.get_empty(), "[REDACTED:scrub_failed]", {}
        if self.on_finding is not None:
            for finding in found.found.values():
                self.on_finding(finding, log.trace_id or 0, log.span_id or 0)
        if (
            body is log.body
            and attributes is None
            and resource is record.resource
            and scope is record.instrumentation_scope
            and event_name == log.event_name
        ):
            return record
        clean = copy.copy(log)
        clean.body = body
        clean.event_name = event_name
        if attributes is not None:
            clean.attributes = attributes
        return ReadableLogRecord(clean, resource, scope, record.limits)

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self.inner, "force_flush", None)
        return bool(flush(timeout_millis)) if flush else True


class ScrubbingMetricExporter(MetricExporter):
    """Replaces secrets in data point and exemplar attributes and in the resource before export.

    Metric attributes are meant to be low-cardinality labels, but an agent name or a case id that
    carries a secret would otherwise reach every metric backend. Findings go to the same callback
    as those of spans and logs, once per distinct (field, pattern) in one export, without a trace.
    """

    # When set, every batch is exported with this resource instead of its own.
    resource: Resource | None = None

    def __init__(
        self, inner: MetricExporter, scrubber: Scrubber, on_finding: FindingSink | None = None
    ) -> None:
        temporality, aggregation = exporter_preferences(inner)
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self.inner = inner
        self.scrubber = scrubber
        self.on_finding = on_finding
        self._resources = _Resources(scrubber, on_finding)
        self._scopes = _Scopes(scrubber, on_finding)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        found = _Collector()
        try:
            clean = self._scrub(metrics_data, found)
        except Exception:
            return MetricExportResult.FAILURE  # never export what could not be checked
        if self.on_finding is not None:
            for finding in found.found.values():
                self.on_finding(finding, 0, 0)
        return self.inner.export(clean, timeout_millis=timeout_millis, **kwargs)

    def _scrub(self, data: MetricsData, found: _Collector) -> MetricsData:
        resource_metrics = []
        changed = False
        for rm in data.resource_metrics:
            resource = self._resources.clean(rm.resource if self.resource is None else self.resource)
            scope_metrics = []
            for sm in rm.scope_metrics:
                metrics = [self._metric(metric, found) for metric in sm.metrics]
                scope = self._scopes.clean(sm.scope) or sm.scope
                if scope is not sm.scope or any(a is not b for a, b in zip(metrics, sm.metrics, strict=True)):
                    sm = dataclasses.replace(sm, scope=scope, metrics=metrics)
                scope_metrics.append(sm)
            if resource is not rm.resource or any(
                a is not b for a, b in zip(scope_metrics, rm.scope_metrics, strict=True)
            ):
                rm = dataclasses.replace(rm, resource=resource, scope_metrics=scope_metrics)
                changed = True
            resource_metrics.append(rm)
        return dataclasses.replace(data, resource_metrics=resource_metrics) if changed else data

    def _metric(self, metric: Any, found: _Collector) -> Any:
        points = getattr(metric.data, "data_points", None)
        if not points:
            return metric
        clean = [self._point(point, found) for point in points]
        if all(a is b for a, b in zip(clean, points, strict=True)):
            return metric
        return dataclasses.replace(metric, data=dataclasses.replace(metric.data, data_points=clean))

    def _point(self, point: Any, found: _Collector) -> Any:
        attributes = self.scrubber.attributes(point.attributes, found)
        exemplars = list(getattr(point, "exemplars", None) or ())
        clean_exemplars = []
        for exemplar in exemplars:
            filtered = self.scrubber.attributes(exemplar.filtered_attributes, found)
            clean_exemplars.append(
                exemplar if filtered is None else dataclasses.replace(exemplar, filtered_attributes=filtered)
            )
        exemplars_changed = any(a is not b for a, b in zip(clean_exemplars, exemplars, strict=True))
        if attributes is None and not exemplars_changed:
            return point
        changes: dict[str, Any] = {}
        if attributes is not None:
            changes["attributes"] = attributes
        if exemplars_changed:
            changes["exemplars"] = clean_exemplars
        return dataclasses.replace(point, **changes)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def scrubbed_metrics(
    exporter: MetricExporter, scrubber: Scrubber | None, on_finding: FindingSink | None
) -> MetricExporter:
    """``exporter`` behind a :class:`ScrubbingMetricExporter`, or itself when scrubbing is off."""
    if scrubber is None or not scrubber.enabled:
        return exporter
    return ScrubbingMetricExporter(exporter, scrubber, on_finding)

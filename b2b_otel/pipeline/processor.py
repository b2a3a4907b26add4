"""The derivation pipeline: finished spans in, SLA breaches, security events and audit records out.

The application thread only appends the finished span to a bounded queue (``on_end``); a worker
thread extracts the facts, runs the rules engine, builds the derived records (scrubbed) and hands
them to the sinks: an OTel log record, a marker span in the same trace, the ``b2b.alerts`` counter,
the local files, Alertmanager, and the audit trail for privilege changes and finished workflows.
Nothing here raises into the application; a failing sink is logged once a minute and counted.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from .. import semconv as sc
from .._internal import selflog
from .._internal.formats import hex_ids
from .._internal.instruments import instruments, pool_stats
from ..rules.engine import Engine, Firing, SpanFacts
from ..rules.schema import RuleSet
from . import records
from .sampling import ALERT_PREFIX
from .scrub import Finding, Scrubber

MAX_QUEUE = 16_384
WAKE_AT = 512  # queued items that wake the worker early
JUDGE_INTERVAL_S = 0.1  # otherwise the worker drains this often
DERIVED_SCOPE = "b2b_otel.derived"
_STATUS = {StatusCode.ERROR: "error", StatusCode.OK: "ok", StatusCode.UNSET: "unset"}
_KIND = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}

_live: weakref.WeakSet[DerivationProcessor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for processor in list(_live):
        processor._reinit_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _plain(attributes: Any) -> Mapping[str, Any]:
    """A finished span's attributes as a plain dict: many lookups follow, and the SDK's mapping is slow.

    A finished span's BoundedAttributes no longer change, so its inner dict is read without a copy.
    """
    if not attributes:
        return {}
    inner = getattr(attributes, "_dict", None)
    return inner if isinstance(inner, dict) else dict(attributes)


def facts_of(span: ReadableSpan) -> SpanFacts:
    """The engine's view of a finished span."""
    start = span.start_time or 0
    end = span.end_time or start
    context = span.context
    return SpanFacts(
        name=span.name,
        kind=_KIND.get(span.kind, "internal"),
        status=_STATUS.get(span.status.status_code, "unset"),
        duration_s=(end - start) / 1e9,
        attributes=_plain(span.attributes),
        trace_id=context.trace_id if context else 0,
        span_id=context.span_id if context else 0,
    )


class DerivationProcessor(SpanProcessor):
    """Judges every finished span in a worker thread; see the module documentation.

    ``sinks`` is an object with optional ``files`` (LocalFiles), ``alertmanager`` (AlertmanagerSink)
    and ``audit`` (AuditLog) attributes; ``logger_provider`` emits the derived OTel log records.
    """

    def __init__(
        self,
        rules: RuleSet,
        scrubber: Scrubber,
        sinks: Any,
        logger_provider: Any = None,
        tracer_provider: Any = None,
        clock: Callable[[], float] = time.time,
        max_groups: int = 10_000,
        gauge_interval_s: float = 60.0,
        on_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        self.rules = rules
        self.scrubber = scrubber
        self.sinks = sinks
        self.logger_provider = logger_provider
        self.tracer_provider = tracer_provider
        self.clock = clock
        self.gauge_interval_s = gauge_interval_s
        self.on_drop = on_drop
        self.engine = Engine(rules, clock, max_groups=max_groups, on_evict=self._evicted)
        self.firings = 0
        self.processed = 0
        self._queue: deque[tuple[str, Any]] = deque()
        self._wake = threading.Event()
        self._busy = False
        self._stopped = False
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._next_gauge = 0.0
        self._start_lock = threading.Lock()
        _live.add(self)

    # --- the application thread's side: enqueue only -------------------------------------------------

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            scope = span.instrumentation_scope
            if scope is not None and scope.name == DERIVED_SCOPE and span.name.startswith(ALERT_PREFIX):
                return  # our own marker spans are not judged again
            self._put(("span", span))
        except Exception:  # a processor error would break the caller's span.end()
            pass

    def finding(self, finding: Finding, trace_id: int, span_id: int) -> None:
        """Sensitive data was scrubbed (called from the export thread)."""
        self._put(("finding", (finding, trace_id, span_id)))

    def gauge(self, source: str, value: float, attributes: dict[str, Any]) -> None:
        """A sampled gauge value, e.g. ``b2b.agent.queue.depth`` reported by the application."""
        self._put(("gauge", (source, float(value), attributes)))

    def _put(self, item: tuple[str, Any]) -> None:
        if self._stopped:
            return
        if os.getpid() != self._pid:
            self._reinit_after_fork()
        if len(self._queue) >= MAX_QUEUE:
            if self.on_drop is not None:
                self.on_drop("queue_full", 1)
            return
        self._queue.append(item)
        if self._thread is None:
            self._start()
        # Wake the worker only for a full batch: waking it per span would cost the application a
        # thread switch per span. Otherwise it drains on its own tick (JUDGE_INTERVAL_S).
        if len(self._queue) == WAKE_AT:
            self._wake.set()

    def start(self) -> None:
        """Start the worker now (it also samples gauges on its schedule, with no spans arriving)."""
        self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="b2b-otel-derive", daemon=True)
                self._thread.start()

    def _reinit_after_fork(self) -> None:
        # The worker thread does not exist in a forked child: start afresh, keep the rules.
        self._pid = os.getpid()
        self._queue = deque()
        self._wake = threading.Event()
        self._busy = False
        self._thread = None
        self._start_lock = threading.Lock()
        self.engine = Engine(
            self.rules, self.clock, max_groups=self.engine.max_groups, on_evict=self._evicted
        )

    # --- the worker --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(JUDGE_INTERVAL_S)
            self._wake.clear()
            self._drain()
            self._sample_gauges()

    def _drain(self) -> None:
        self._busy = True
        while True:
            try:
                kind, payload = self._queue.popleft()
            except IndexError:
                self._busy = False
                return
            try:
                self._handle(kind, payload)
            except Exception as exc:
                selflog.warn_once_a_minute("derive", "b2b_otel: rule evaluation failed: %r", exc)
            self.processed += 1

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "span":
            span: ReadableSpan = payload
            facts = facts_of(span)
            for firing in self.engine.judge_span(facts):
                self._fire(firing)
            self._span_side_effects(span, facts)
        elif kind == "finding":
            finding, trace_id, span_id = payload
            facts = SpanFacts(
                name="sensitive_data",
                kind="internal",
                status="unset",
                duration_s=0.0,
                attributes={
                    sc.B2B_SECURITY_ACTION: sc.B2bSecurityActionValues.SENSITIVE_DATA,
                    sc.B2B_SCRUB_FIELD: finding.field,
                    sc.B2B_SCRUB_PATTERN: finding.pattern,
                },
                trace_id=trace_id,
                span_id=span_id,
            )
            instruments().security_events.add(
                1, {sc.B2B_SECURITY_ACTION: sc.B2bSecurityActionValues.SENSITIVE_DATA}
            )
            for firing in self.engine.judge_span(facts):
                self._fire(firing)
        elif kind == "gauge":
            source, value, attributes = payload
            for firing in self.engine.judge_gauge(source, value, attributes):
                self._fire(firing)

    def _sample_gauges(self) -> None:
        now = time.monotonic()
        if now < self._next_gauge:
            return
        self._next_gauge = now + self.gauge_interval_s
        for name, stats in pool_stats().items():
            if stats["max"] > 0:
                utilisation = stats["used"] / stats["max"]
                for firing in self.engine.judge_gauge(
                    "pool_utilisation", utilisation, {sc.DB_CLIENT_CONNECTION_POOL_NAME: name}
                ):
                    self._fire(firing)

    def _span_side_effects(self, span: ReadableSpan, facts: SpanFacts) -> None:
        attributes = facts.attributes
        operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
        files = getattr(self.sinks, "files", None)
        if operation == sc.GenAiOperationNameValues.INVOKE_AGENT and files is not None:
            self._guard(
                "files",
                files.agent_execution,
                self.scrubber.value(
                    sc.GEN_AI_AGENT_NAME, str(attributes.get(sc.GEN_AI_AGENT_NAME, span.name))
                ),
                facts.duration_s,
                attributes.get(sc.ERROR_TYPE) if facts.status == "error" else None,
                (span.end_time or 0) / 1e9 or self.clock(),
                facts.trace_id,
                facts.span_id,
            )
        audit = getattr(self.sinks, "audit", None)
        if audit is None:
            return
        action = attributes.get(sc.B2B_SECURITY_ACTION)
        if action == sc.B2bSecurityActionValues.PRIVILEGE_CHANGE:
            self._audit(
                "privilege_change",
                str(attributes.get(sc.B2B_ACTOR_ID, "")),
                str(attributes.get(sc.USER_ID, "")),
                "success",
                facts,
                {
                    "granted": list(attributes.get(sc.B2B_ROLES_GRANTED, ())),
                    "revoked": list(attributes.get(sc.B2B_ROLES_REVOKED, ())),
                    "roles": list(attributes.get(sc.USER_ROLES, ())),
                },
            )
        elif operation == sc.GenAiOperationNameValues.INVOKE_WORKFLOW:
            failed = facts.status == "error"
            self._audit(
                "workflow.failed" if failed else "workflow.completed",
                "system",
                str(attributes.get(sc.B2B_BUSINESS_CASE_ID) or attributes.get(sc.GEN_AI_WORKFLOW_NAME, "")),
                "failure" if failed else "success",
                facts,
                {
                    "workflow": attributes.get(sc.GEN_AI_WORKFLOW_NAME),
                    "duration_s": round(facts.duration_s, 3),
                    **({"error_type": attributes.get(sc.ERROR_TYPE)} if failed else {}),
                },
            )

    def _audit(
        self, action: str, actor: str, target: str, outcome: str, facts: SpanFacts, details: dict[str, Any]
    ) -> None:
        try:
            record_audit(
                self.sinks.audit,
                self.logger_provider,
                self.scrubber,
                action,
                actor,
                target,
                outcome,
                facts.trace_id,
                facts.span_id,
                details,
            )
        except Exception as exc:
            self._sink_failed("audit", exc)

    # --- outputs of a firing -------------------------------------------------------------------------

    def _fire(self, firing: Firing) -> None:
        self.firings += 1
        record = records.build(firing, self.scrubber)
        self._guard("log_record", self._emit_log_record, record)
        self._guard("marker_span", self._marker_span, record)
        self._guard(
            "counter",
            lambda: instruments().alerts.add(
                1, {sc.B2B_RULE_ID: record.rule_id, sc.B2B_ALERT_SEVERITY: record.severity}
            ),
        )
        files = getattr(self.sinks, "files", None)
        if files is not None:
            self._guard("files", files.record, record)
        alertmanager = getattr(self.sinks, "alertmanager", None)
        if alertmanager is not None:
            self._guard("alertmanager", alertmanager.push, record)

    def _emit_log_record(self, record: records.DerivedRecord) -> None:
        if self.logger_provider is None:
            return
        logger = self.logger_provider.get_logger(DERIVED_SCOPE)
        logger.emit(
            timestamp=int(record.time_s * 1e9),
            context=_context_of(record.trace_id, record.span_id),
            severity_number=SeverityNumber(record.severity_number),
            severity_text=records.LEVEL_BY_SEVERITY[record.severity],
            body=record.message,
            attributes=record.attributes,
            event_name=record.event_name,
        )

    def _marker_span(self, record: records.DerivedRecord) -> None:
        provider = self.tracer_provider or trace.get_tracer_provider()
        tracer = provider.get_tracer(DERIVED_SCOPE)
        parent = _context_of(record.trace_id, record.span_id) if record.trace_id else Context()
        span = tracer.start_span(
            sc.alert_span_name(record.rule_id),
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=record.attributes,
        )
        span.end()

    def _guard(self, sink: str, func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception as exc:
            self._sink_failed(sink, exc)

    def _sink_failed(self, sink: str, exc: BaseException) -> None:
        if self.on_drop is not None:
            self.on_drop("write_failed", 1)
        selflog.warn_once_a_minute(f"sink-{sink}", "b2b_otel: the %s sink failed: %r", sink, exc)

    def _evicted(self, rule_id: str, count: int) -> None:
        if self.on_drop is not None:
            self.on_drop("window_evicted", count)

    # --- lifecycle ---------------------------------------------------------------------------------------

    def _wait_idle(self, timeout_s: float) -> bool:
        if self._thread is None:
            return True
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._queue and not self._busy:
                return True
            time.sleep(0.005)
        return False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every queued span is judged and its records handed to the sinks."""
        started = time.monotonic()
        if not self._wait_idle(timeout_millis / 1000):
            return False
        alertmanager = getattr(self.sinks, "alertmanager", None)
        if alertmanager is not None:
            remaining = timeout_millis / 1000 - (time.monotonic() - started)
            return bool(alertmanager.flush(max(0.0, remaining)))
        return True

    def shutdown(self) -> None:
        # Judge what is queued, give Alertmanager a short last chance, then stop: a dead
        # Alertmanager must not stretch the application's shutdown.
        self._wait_idle(3.0)
        self._stopped = True
        self._wake.set()
        alertmanager = getattr(self.sinks, "alertmanager", None)
        if alertmanager is not None:
            alertmanager.shutdown(1.0)
        files = getattr(self.sinks, "files", None)
        if files is not None:
            files.close()


def _context_of(trace_id: int, span_id: int) -> Context:
    if not trace_id:
        return Context()
    parent = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent), Context())


def record_audit(
    audit: Any,
    logger_provider: Any,
    scrubber: Scrubber,
    action: str,
    actor_id: str,
    target: str,
    outcome: str,
    trace_id: int,
    span_id: int,
    details: dict[str, Any],
) -> dict[str, Any]:
    """Append one audit record (durable before returning) and emit its ``b2b.audit.record`` log record."""
    # Scrubbed before hashing: the chain covers what is on disk, and no secret is ever on disk.
    clean = {k: scrubber.value(k, v) for k, v in details.items()}
    action = scrubber.text(action, "audit.action")
    actor_id = scrubber.value(sc.B2B_ACTOR_ID, actor_id)
    target = scrubber.value(sc.B2B_AUDIT_TARGET, target)
    trace_hex, span_hex = hex_ids(trace_id, span_id)
    written: dict[str, Any] = audit.append(
        action=action,
        actor_id=actor_id,
        target=target,
        outcome=outcome,
        trace_id=trace_hex,
        span_id=span_hex,
        details=clean,
    )
    if logger_provider is not None:
        try:
            attributes: dict[str, Any] = {
                sc.B2B_AUDIT_ACTION: action,
                sc.B2B_ACTOR_ID: actor_id,
                sc.B2B_AUDIT_TARGET: target,
                sc.EVENT_OUTCOME: outcome,
                sc.B2B_AUDIT_SEQ: int(written.get("seq", 0)),
                sc.B2B_AUDIT_HASH: str(written.get("hash", "")),
                sc.B2B_AUDIT_PREV_HASH: str(written.get("prev_hash", "")),
            }
            logger_provider.get_logger(DERIVED_SCOPE).emit(
                context=_context_of(trace_id, span_id),
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                body=f"audit {action} by {actor_id} on {target}: {outcome}",
                attributes=attributes,
                event_name=sc.EVENT_B2B_AUDIT_RECORD,
            )
        except Exception as exc:
            selflog.warn_once_a_minute("audit-log-record", "b2b_otel: audit log record failed: %r", exc)
    return written

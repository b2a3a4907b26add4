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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from opentelemetry import trace
from opentelemetry._logs import LoggerProvider, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode, TracerProvider

from .. import semconv as sc
from .._internal import selflog
from .._internal.sdk_private import always_sampled_tracer, span_attributes
from .._internal.spancontext import context_of
from .._internal.threads import start_detached
from .._version import __version__
from ..api.metrics import instruments, pool_stats
from ..audit_trail.record import AuditRecorder, entry_of_span
from ..rules.engine import Engine, Firing, SpanFacts
from ..rules.schema import RuleSet
from ..scrub import Finding, Scrubber
from . import records
from .sink import AgentExecution, LinesNotWritten, Sink

MAX_QUEUE = 16_384  # the smallest queue; the composition root sizes it from OTEL_BSP_MAX_QUEUE_SIZE
QUEUE_PER_EXPORT_QUEUE = 8  # the rules queue holds this many span export queues' worth
WAKE_AT = 512  # queued items that wake the worker early
JUDGE_INTERVAL_S = 0.1  # otherwise the worker drains this often
# Back-pressure: from HIGH_WATER of the queue on, a thread queueing an item waits for the worker to
# bring it down to LOW_WATER, at most BACKPRESSURE_MAX_S, and not at all once the worker made no
# progress for STALL_S (a stuck sink must not make every span.end() wait).
HIGH_WATER = 0.75
LOW_WATER = 0.5
BACKPRESSURE_MAX_S = 2.0
STALL_S = 1.0


def queue_capacity(span_export_queue: int) -> int:
    """The rules queue for a span export queue of ``span_export_queue`` (``OTEL_BSP_MAX_QUEUE_SIZE``).

    Bigger than what the exporters buffer, so that a burst they carry is judged without making the
    application wait; bounded, because each queued span is held until judged.
    """
    return max(MAX_QUEUE, QUEUE_PER_EXPORT_QUEUE * span_export_queue)


_STATUS = {StatusCode.ERROR: "error", StatusCode.OK: "ok", StatusCode.UNSET: "unset"}
_KIND = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
DropCounter = Callable[[str, int], None]
"""Told ``(reason, count)`` for everything the pipeline could not judge or write."""


class _Found(NamedTuple):
    """A scrubber finding from the export thread, queued for the rules."""

    finding: Finding
    trace_id: int
    span_id: int


class _Sampled(NamedTuple):
    """A sampled gauge value reported by the application, queued for the rules."""

    source: str
    value: float
    attributes: dict[str, Any]


_live: weakref.WeakSet[DerivationProcessor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for processor in list(_live):
        processor._reinit_after_fork()


_NO_FORK_HOOK = not hasattr(os, "register_at_fork")
if not _NO_FORK_HOOK:
    os.register_at_fork(after_in_child=_after_fork_in_child)


def facts_of(span: ReadableSpan) -> SpanFacts:
    """The engine's view of a finished span."""
    start = span.start_time or 0
    end = span.end_time or start
    context = span.context
    # Positional: one is made for every judged span.
    return SpanFacts(
        span.name,
        _KIND.get(span.kind, "internal"),
        _STATUS.get(span.status.status_code, "unset"),
        (end - start) / 1e9,
        span_attributes(span),
        context.trace_id if context else 0,
        context.span_id if context else 0,
    )


class DerivationProcessor(SpanProcessor):
    """Judges every finished span in a worker thread; see the module documentation.

    ``sinks`` receive every firing's record (and agent executions); ``audit`` records privilege
    changes and finished workflows; ``logger_provider`` emits the derived OTel log records and
    ``tracer_provider`` the alert marker spans (both set by the composition root once installed).
    """

    def __init__(
        self,
        rules: RuleSet,
        scrubber: Scrubber,
        sinks: Sequence[Sink] = (),
        audit: AuditRecorder | None = None,
        max_groups: int = 10_000,
        gauge_interval_s: float = 60.0,
        on_drop: DropCounter | None = None,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self.rules = rules
        self.scrubber = scrubber
        self.sinks: tuple[Sink, ...] = tuple(sinks)
        self.audit = audit
        self.logger_provider: LoggerProvider | None = None
        self.tracer_provider: TracerProvider | None = None
        self.clock: Callable[[], float] = time.time
        self.gauge_interval_s = gauge_interval_s
        self.on_drop = on_drop
        self.engine = Engine(rules, self.clock, max_groups=max_groups, on_evict=self._evicted)
        self.firings = 0
        self.processed = 0
        # Spans are queued as they are (the hot path allocates nothing more); other items by type.
        self._judges: dict[type, Callable[[Any], None]] = {
            _Found: self._judge_finding,
            _Sampled: self._judge_gauge,
        }
        self.capacity = max(1, int(max_queue))
        self._high = max(1, int(self.capacity * HIGH_WATER))
        self._low = int(self.capacity * LOW_WATER)
        # What could not be judged, by reason (health); what back-pressure cost the application.
        self.unjudged: dict[str, int] = {}
        self.backpressure_waits = 0
        self.backpressure_s = 0.0
        self._queue: deque[ReadableSpan | _Found | _Sampled] = deque()
        self._wake = threading.Event()
        self._room = threading.Condition(threading.Lock())
        self._pressure = False  # a thread waits for room; the worker says when there is
        self._stalled = False  # the worker made no progress while a thread waited
        self._busy = False
        self._stopped = False
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._next_gauge = 0.0
        self._start_lock = threading.Lock()
        self._marker_tracers: dict[int, Any] = {}
        # (key, name) -> the name scrubbed: agent names and tenants repeat on every span (worker only).
        self._names: dict[tuple[str, str], str] = {}
        _live.add(self)

    # --- the application thread's side: enqueue only -------------------------------------------------

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            scope = span.instrumentation_scope
            if scope is not None and scope.name == sc.DERIVED_SCOPE:
                return  # our own marker spans are not judged again
            self._put(span)
        except Exception:  # a processor error would break the caller's span.end()
            pass

    def finding(self, finding: Finding, trace_id: int, span_id: int) -> None:
        """Sensitive data was scrubbed (called from the export threads of every signal)."""
        if self._stopped:
            # Found by an export after the rules stopped (the last metric export runs after them):
            # counted, never silent.
            if self.on_drop is not None:
                self.on_drop(sc.ReasonValues.SHUTDOWN, 1)
            return
        self._put(_Found(finding, trace_id, span_id))

    def gauge(self, source: str, value: float, attributes: dict[str, Any]) -> None:
        """A sampled gauge value, e.g. ``b2b.agent.queue.depth`` reported by the application."""
        self._put(_Sampled(source, float(value), attributes))

    def _put(self, item: ReadableSpan | _Found | _Sampled) -> None:
        if self._stopped:
            return
        # No getpid() per item: a forked child starts afresh through os.register_at_fork (above).
        if _NO_FORK_HOOK and os.getpid() != self._pid:
            self._reinit_after_fork()
        queue = self._queue
        if len(queue) >= self._high:
            self._wait_for_room()
            if len(queue) >= self.capacity:
                self._unjudged(sc.ReasonValues.QUEUE_FULL)
                return
        queue.append(item)
        if self._thread is None:
            self._start()
        # Wake the worker only for a full batch: waking it per span would cost the application a
        # thread switch per span. Otherwise it drains on its own tick (JUDGE_INTERVAL_S).
        if len(queue) >= WAKE_AT and not self._busy and not self._wake.is_set():
            self._wake.set()

    def _wait_for_room(self) -> None:
        """Back-pressure: the queue is nearly full, so the calling thread waits for the worker.

        Waiting gives the worker the CPU (and the GIL) that the queueing threads were using; it is
        bounded (BACKPRESSURE_MAX_S), and skipped while the worker is stalled (no progress in
        STALL_S) or when the caller is the worker itself.
        """
        if self._stalled or self._thread is None or threading.current_thread() is self._thread:
            return
        started = time.monotonic()
        deadline = started + BACKPRESSURE_MAX_S
        with self._room:
            while len(self._queue) >= self._high and not self._stopped and not self._stalled:
                now = time.monotonic()
                if now >= deadline:
                    break
                seen = self.processed
                self._pressure = True
                self._wake.set()
                self._room.wait(min(STALL_S, deadline - now))
                if self.processed == seen and len(self._queue) >= self._high:
                    self._stalled = True
                    selflog.warn_once_a_minute(
                        "derive-stalled",
                        "b2b_otel: the rules worker made no progress for %.1fs; spans over the"
                        " queue's capacity are dropped and counted until it does",
                        STALL_S,
                    )
            self.backpressure_waits += 1
            self.backpressure_s += time.monotonic() - started

    def _relieve(self) -> None:
        """The worker brought the queue down to LOW_WATER: let the waiting threads go on."""
        with self._room:
            self._pressure = False
            self._stalled = False
            self._room.notify_all()

    def _unjudged(self, reason: str, count: int = 1) -> None:
        self.unjudged[reason] = self.unjudged.get(reason, 0) + count
        if self.on_drop is not None:
            self.on_drop(reason, count)

    def health(self) -> dict[str, Any]:
        """The rules' part of ``Telemetry.health()``: how full the queue is, what went unjudged and why.

        ``unjudged`` counts items by reason (``queue_full``: over the queue's capacity;
        ``rule_failed``: a rule or output raised); ``backpressure`` says how often and how long
        application threads waited for the worker; ``evicted_groups`` counts window groups dropped
        to stay within ``B2B_OTEL_RULES_MAX_GROUPS``.
        """
        return {
            "processed": self.processed,
            "queue": {"size": len(self._queue), "capacity": self.capacity},
            "unjudged": dict(self.unjudged),
            "backpressure": {
                "waits": self.backpressure_waits,
                "waited_s": round(self.backpressure_s, 3),
                "stalled": self._stalled,
            },
            "evicted_groups": self.engine.evicted,
        }

    def start(self) -> None:
        """Start the worker now (it also samples gauges on its schedule, with no spans arriving)."""
        self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="b2b-otel-derive", daemon=True)
                start_detached(self._thread)  # not in the context of the span whose end started it

    def _reinit_after_fork(self) -> None:
        # The worker thread does not exist in a forked child: start afresh, keep the rules.
        self._pid = os.getpid()
        self._queue = deque()
        self._wake = threading.Event()
        self._room = threading.Condition(threading.Lock())
        self._pressure = False
        self._stalled = False
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
        judges = self._judges
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                self._end_of_drain()
                self._busy = False
                return
            try:
                judges.get(type(item), self._judge_span)(item)
            except Exception as exc:
                self._unjudged(sc.ReasonValues.RULE_FAILED)
                selflog.warn_once_a_minute("derive", "b2b_otel: rule evaluation failed: %r", exc)
            self.processed += 1
            if self._pressure and len(self._queue) <= self._low:
                self._relieve()

    def _end_of_drain(self) -> None:
        # Sinks that collect lines over a drain (the local files' agent execution lines) write them
        # now, before the worker reports itself idle: force_flush and judge_queued find them written.
        for sink in self.sinks:
            write_pending = getattr(sink, "write_pending", None)
            if write_pending is not None:
                self._guard(sink.name, write_pending)

    def _judge_span(self, span: ReadableSpan) -> None:
        facts = facts_of(span)
        for firing in self.engine.judge_span(facts):
            self._fire(firing)
        self._span_side_effects(span, facts)

    def _judge_finding(self, found: _Found) -> None:
        sensitive = sc.B2bSecurityActionValues.SENSITIVE_DATA
        facts = SpanFacts(
            name=sensitive,
            kind="internal",
            status="unset",
            duration_s=0.0,
            attributes={
                sc.B2B_SECURITY_ACTION: sensitive,
                sc.B2B_SCRUB_FIELD: found.finding.field,
                sc.B2B_SCRUB_PATTERN: found.finding.pattern,
            },
            trace_id=found.trace_id,
            span_id=found.span_id,
        )
        instruments().security_events.add(1, {sc.B2B_SECURITY_ACTION: sensitive})
        for firing in self.engine.judge_span(facts):
            self._fire(firing)

    def _judge_gauge(self, sampled: _Sampled) -> None:
        for firing in self.engine.judge_gauge(sampled.source, sampled.value, sampled.attributes):
            self._fire(firing)

    def _sample_gauges(self) -> None:
        now = time.monotonic()
        if now < self._next_gauge:
            return
        self._next_gauge = now + self.gauge_interval_s
        for name, stats in pool_stats().items():
            if stats["max"] > 0:
                utilisation = stats[sc.StateValues.USED] / stats["max"]
                for firing in self.engine.judge_gauge(
                    "pool_utilisation", utilisation, {sc.DB_CLIENT_CONNECTION_POOL_NAME: name}
                ):
                    self._fire(firing)

    def _span_side_effects(self, span: ReadableSpan, facts: SpanFacts) -> None:
        attributes = facts.attributes
        failed = facts.status == "error"
        operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
        if self.sinks and operation == sc.GenAiOperationNameValues.INVOKE_AGENT:
            tenant = attributes.get(sc.B2B_TENANT_ID)
            # Positional, as AgentExecution's fields are ordered: one is made for every agent run.
            execution = AgentExecution(
                self._scrubbed(sc.GEN_AI_AGENT_NAME, str(attributes.get(sc.GEN_AI_AGENT_NAME, span.name))),
                facts.duration_s,
                attributes.get(sc.ERROR_TYPE) if failed else None,
                (span.end_time or 0) / 1e9 or self.clock(),
                facts.trace_id,
                facts.span_id,
                None if tenant is None else self._scrubbed(sc.B2B_TENANT_ID, str(tenant)),
            )
            for sink in self.sinks:
                try:
                    sink.agent_execution(execution)
                except Exception as exc:
                    self._sink_failed(sink.name, exc)
        if self.audit is None:
            return
        entry = entry_of_span(attributes, failed, facts.duration_s, facts.trace_id, facts.span_id)
        if entry is not None:
            self._guard("audit", self.audit.record, entry)

    def _scrubbed(self, key: str, name: str) -> str:
        """``name`` scrubbed as the value of ``key``, remembered (bounded): one scrub per distinct name."""
        clean = self._names.get((key, name))
        if clean is None:
            clean = str(self.scrubber.value(key, name))
            if len(self._names) >= 1024:
                self._names.clear()
            self._names[(key, name)] = clean
        return clean

    # --- outputs of a firing -------------------------------------------------------------------------

    def _fire(self, firing: Firing) -> None:
        self.firings += 1
        record = records.build(firing, self.scrubber)
        self._guard("log_record", self._emit_log_record, record)
        self._guard("marker_span", self._marker_span, record)
        self._guard("counter", self._count, record)
        for sink in self.sinks:
            self._guard(sink.name, sink.write, record)

    def _count(self, record: records.DerivedRecord) -> None:
        instruments().alerts.add(1, {sc.B2B_RULE_ID: record.rule_id, sc.B2B_ALERT_SEVERITY: record.severity})

    def _emit_log_record(self, record: records.DerivedRecord) -> None:
        if self.logger_provider is None:
            return
        logger = self.logger_provider.get_logger(sc.DERIVED_SCOPE)
        logger.emit(
            timestamp=int(record.time_s * 1e9),
            context=context_of(record.trace_id, record.span_id),
            severity_number=SeverityNumber(record.severity_number),
            severity_text=records.LEVEL_BY_SEVERITY[record.severity],
            body=record.message,
            attributes=record.attributes,
            event_name=record.event_name,
        )

    def _marker_span(self, record: records.DerivedRecord) -> None:
        provider = self.tracer_provider or trace.get_tracer_provider()
        tracer = self._marker_tracers.get(id(provider))
        if tracer is None:
            tracer = always_sampled_tracer(provider, sc.DERIVED_SCOPE, __version__)
            self._marker_tracers = {id(provider): tracer}
        parent = context_of(record.trace_id, record.span_id) if record.trace_id else Context()
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
            # A batch of collected lines that failed counts every line in it.
            lost = exc.count if isinstance(exc, LinesNotWritten) else 1
            self.on_drop(sc.ReasonValues.WRITE_FAILED, lost)
        selflog.warn_once_a_minute(f"sink-{sink}", "b2b_otel: the %s sink failed: %r", sink, exc)

    def _evicted(self, rule_id: str, count: int) -> None:
        if self.on_drop is not None:
            self.on_drop(sc.ReasonValues.WINDOW_EVICTED, count)

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
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._wait_idle(timeout_millis / 1000):
            return False
        flushed = True
        for sink in self.sinks:
            try:
                flushed = bool(sink.flush(max(0.0, deadline - time.monotonic()))) and flushed
            except Exception as exc:
                self._sink_failed(sink.name, exc)
                flushed = False
        return flushed

    def judge_queued(self, timeout_s: float) -> bool:
        """Wait until everything queued is judged (its records handed to the sinks, not their flush)."""
        return self._wait_idle(timeout_s)

    @property
    def stopped(self) -> bool:
        """True once :meth:`shutdown` ran: nothing more is judged."""
        return self._stopped

    def pending(self) -> int:
        """Items queued and not yet judged (what a shutdown cut short counts as dropped)."""
        return len(self._queue)

    def shutdown(self) -> None:
        # Judge what is queued, give the sinks a short last chance, then stop: a dead
        # Alertmanager must not stretch the application's shutdown. The composition root has
        # already judged and exported in order (Telemetry._shutdown_all); this is the last step.
        # A second call (the provider's own shutdown after ours) does nothing.
        if self._stopped:
            return
        self._wait_idle(3.0)
        self._stopped = True
        self._wake.set()
        for sink in self.sinks:
            self._guard(sink.name, sink.close, 1.0)

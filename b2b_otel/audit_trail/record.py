"""The one path into the audit trail: ``b2b_otel.audit(...)`` and the spans that become audit records.

Both end in :meth:`AuditRecorder.record`: scrub, append to ``audit.log`` (durable before it returns),
then emit the ``b2b.audit.record`` OTel log record. Which finished spans become records (privilege
changes, finished workflows) is decided here too, by :func:`entry_of_span`, with the actions the
semantic-convention registry names.

The composition root binds the installed recorder (:func:`bind`); this package never reaches up for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry._logs import LoggerProvider, SeverityNumber

from .. import semconv as sc
from .._internal import selflog
from .._internal.errors import AuditError
from .._internal.formats import hex_ids
from .._internal.spancontext import context_of
from ..api import arguments
from ..api.spans import instant_span

if TYPE_CHECKING:  # imported by b2b_otel at start-up: the writer and scrubber load when installed
    from ..scrub import Scrubber
    from .writer import AuditLog


@dataclass(frozen=True)
class AuditEntry:
    """What one audit record says, before it is scrubbed and chained."""

    action: str
    actor_id: str
    target: str
    outcome: str
    trace_id: int = 0
    span_id: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class AuditRecorder:
    """Scrubs an entry, appends it durably to the audit log and emits its OTel log record."""

    def __init__(self, log: AuditLog, scrubber: Scrubber) -> None:
        self.log = log
        self.scrubber = scrubber
        # Emits the b2b.audit.record log records; set by the composition root once installed.
        self.logger_provider: LoggerProvider | None = None
        self.last_error: str | None = None  # of the last append; None when it reached the disk
        # Each signed checkpoint this process writes is also a b2b.audit.checkpoint log record: the
        # collector keeps those in its witness file (docs/audit.md).
        log.on_checkpoint = self._emit_checkpoint

    def record(self, entry: AuditEntry) -> dict[str, Any]:
        """Append ``entry`` (on disk before this returns) and emit its ``b2b.audit.record`` log record.

        Raises:
            AuditError: the record could not be made durable.
        """
        scrub = self.scrubber
        # Scrubbed before hashing: the chain covers what is on disk, and no secret is ever on disk.
        # Nested details are walked: a secret-named key or a secret in any value, at any depth.
        details = scrub.mapping(entry.details)
        action = scrub.text(entry.action, sc.B2B_AUDIT_ACTION)
        actor_id = scrub.value(sc.B2B_ACTOR_ID, entry.actor_id)
        target = scrub.value(sc.B2B_AUDIT_TARGET, entry.target)
        outcome = scrub.value(sc.EVENT_OUTCOME, entry.outcome)
        trace_hex, span_hex = hex_ids(entry.trace_id, entry.span_id)
        written = self._append(
            action=action,
            actor_id=actor_id,
            target=target,
            outcome=outcome,
            trace_id=trace_hex,
            span_id=span_hex,
            details=details,
        )
        self._emit(written, entry)
        return written

    def _append(self, **fields: Any) -> dict[str, Any]:
        """``AuditLog.append``, remembering whether the last write reached the disk (``health()``)."""
        try:
            written = self.log.append(**fields)
        except BaseException as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            raise
        self.last_error = None
        return written

    def status(self) -> dict[str, Any]:
        """The audit file as ``health()`` reports it: its path and whether the last write failed."""
        error = self.last_error
        state = "last_write_failed" if error else "writable"
        return {
            "path": str(self.log.path),
            "state": state,
            "error": error,
            "mode": self.log.mode,
            "checkpoints": self.log.checkpoint_status(),
        }

    def close(self) -> None:
        """Write the last checkpoint (signed logs) and emit it while the log records still export."""
        self.log.close()

    def _emit_checkpoint(self, checkpoint: Mapping[str, Any]) -> None:
        if self.logger_provider is None:
            return
        try:
            from .witness import attributes_of

            self.logger_provider.get_logger(sc.DERIVED_SCOPE).emit(
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                body=(
                    f"audit checkpoint {checkpoint['checkpoint']}: {checkpoint['tree_size']} records, "
                    f"root {checkpoint['root_hash']}"
                ),
                attributes=attributes_of(checkpoint),
                event_name=sc.EVENT_B2B_AUDIT_CHECKPOINT,
            )
        except Exception as exc:
            selflog.warn_once_a_minute(
                "audit-checkpoint-record", "b2b_otel: audit checkpoint record failed: %r", exc
            )

    def _emit(self, written: Mapping[str, Any], entry: AuditEntry) -> None:
        if self.logger_provider is None:
            return
        try:
            action, actor_id, target = written["action"], written["actor_id"], written["target"]
            attributes: dict[str, Any] = {
                sc.B2B_AUDIT_ACTION: action,
                sc.B2B_ACTOR_ID: actor_id,
                sc.B2B_AUDIT_TARGET: target,
                sc.EVENT_OUTCOME: entry.outcome,
                sc.B2B_AUDIT_SEQ: int(written.get("seq", 0)),
                sc.B2B_AUDIT_HASH: str(written.get("hash", "")),
                sc.B2B_AUDIT_PREV_HASH: str(written.get("prev_hash", "")),
            }
            self.logger_provider.get_logger(sc.DERIVED_SCOPE).emit(
                context=context_of(entry.trace_id, entry.span_id),
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                body=f"audit {action} by {actor_id} on {target}: {entry.outcome}",
                attributes=attributes,
                event_name=sc.EVENT_B2B_AUDIT_RECORD,
            )
        except Exception as exc:
            selflog.warn_once_a_minute("audit-log-record", "b2b_otel: audit log record failed: %r", exc)


def entry_of_span(
    attributes: Mapping[str, Any], failed: bool, duration_s: float, trace_id: int, span_id: int
) -> AuditEntry | None:
    """The audit entry a finished span stands for, or None: privilege changes and finished workflows."""
    if attributes.get(sc.B2B_SECURITY_ACTION) == sc.B2bSecurityActionValues.PRIVILEGE_CHANGE:
        return AuditEntry(
            action=sc.B2bAuditActionValues.PRIVILEGE_CHANGE,
            actor_id=str(attributes.get(sc.B2B_ACTOR_ID, "")),
            target=str(attributes.get(sc.USER_ID, "")),
            outcome=sc.EventOutcomeValues.SUCCESS,
            trace_id=trace_id,
            span_id=span_id,
            details={
                "granted": list(attributes.get(sc.B2B_ROLES_GRANTED, ())),
                "revoked": list(attributes.get(sc.B2B_ROLES_REVOKED, ())),
                "roles": list(attributes.get(sc.USER_ROLES, ())),
            },
        )
    if attributes.get(sc.GEN_AI_OPERATION_NAME) == sc.GenAiOperationNameValues.INVOKE_WORKFLOW:
        workflow = attributes.get(sc.GEN_AI_WORKFLOW_NAME)
        details: dict[str, Any] = {"workflow": workflow, "duration_s": round(duration_s, 3)}
        if failed:
            details["error_type"] = attributes.get(sc.ERROR_TYPE)
        return AuditEntry(
            action=(
                sc.B2bAuditActionValues.WORKFLOW_FAILED
                if failed
                else sc.B2bAuditActionValues.WORKFLOW_COMPLETED
            ),
            actor_id=sc.AUDIT_SYSTEM_ACTOR,
            target=str(attributes.get(sc.B2B_BUSINESS_CASE_ID) or workflow or ""),
            outcome=sc.EventOutcomeValues.FAILURE if failed else sc.EventOutcomeValues.SUCCESS,
            trace_id=trace_id,
            span_id=span_id,
            details=details,
        )
    return None


# --- b2b_otel.audit() --------------------------------------------------------------------------------

NOT_INSTRUMENTED = "b2b_otel.instrument() was not called yet"
NOT_CONFIGURED = "no audit file is configured (B2B_OTEL_LOG_DIR=none)"
SHUT_DOWN = "b2b_otel.shutdown() was called"

_bound: AuditRecorder | None = None
_why_unbound = NOT_INSTRUMENTED


def bind(recorder: AuditRecorder | None, why_not: str = NOT_CONFIGURED) -> None:
    """Make ``recorder`` the one ``b2b_otel.audit()`` writes to; None with the reason there is none.

    With no recorder bound, ``audit()`` raises ``AuditError`` saying ``why_not``.
    """
    global _bound, _why_unbound
    _bound = recorder
    _why_unbound = why_not


def bound() -> AuditRecorder | None:
    """The recorder ``b2b_otel.audit()`` writes to, if any."""
    return _bound


def audit(
    action: str, actor_id: str, target: str, outcome: str = sc.EventOutcomeValues.SUCCESS, **details: Any
) -> None:
    """Record that ``actor_id`` did ``action`` on ``target``.

    Makes the span ``audit {action}`` and, when b2b_otel is installed with a log directory, appends
    a hash-chained line to ``audit.log`` that is on disk (fsync) before this returns, plus a
    ``b2b.audit.record`` log record. Raises :class:`b2b_otel.AuditError` when the record could not
    be made durable: a compliance record must not vanish silently.

    Example::

        b2b_otel.audit("business_case.approved", actor_id="u-7", target="case-42", amount=120000)
    """
    # A wrong type is the application's bug: recorded as its str() (and reported), never a crash here.
    traces = sc.SignalValues.TRACES
    action = arguments.text(action, traces, "audit action")
    actor_id = arguments.text(actor_id, traces, "audit actor_id")
    target = arguments.text(target, traces, "audit target")
    outcome = arguments.text(outcome, traces, "audit outcome")
    span = None
    try:
        span = instant_span(
            sc.audit_span_name(action),
            {
                sc.B2B_AUDIT_ACTION: action,
                sc.B2B_ACTOR_ID: actor_id,
                sc.B2B_AUDIT_TARGET: target,
                sc.EVENT_OUTCOME: outcome,
            },
        )
    except Exception as exc:
        selflog.warn_once_a_minute("audit-span", "b2b_otel: audit span failed: %r", exc)
    recorder = _bound
    if recorder is None:
        # A compliance record that silently vanishes is worse than an error (SPEC section 1).
        raise AuditError(f"audit record {action!r} not written: {_why_unbound}")
    context = span.get_span_context() if span is not None else None
    entry = AuditEntry(
        action,
        actor_id,
        target,
        outcome,
        context.trace_id if context is not None else 0,
        context.span_id if context is not None else 0,
        dict(details),
    )
    try:
        recorder.record(entry)
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(f"audit record {action!r} could not be written: {exc!r}") from exc

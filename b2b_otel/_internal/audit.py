"""``b2b_otel.audit(...)``: a business-critical action, as a span and a durable hash-chained record."""

from __future__ import annotations

from typing import Any

from .. import semconv as sc
from . import selflog
from .api import instant_span
from .errors import AuditError


def audit(action: str, actor_id: str, target: str, outcome: str = "success", **details: Any) -> None:
    """Record that ``actor_id`` did ``action`` on ``target``.

    Makes the span ``audit {action}`` and, when b2b_otel is installed with a log directory, appends
    a hash-chained line to ``audit.log`` that is on disk (fsync) before this returns, plus a
    ``b2b.audit.record`` log record. Raises :class:`b2b_otel.AuditError` when the record could not
    be made durable: a compliance record must not vanish silently.

    Example::

        b2b_otel.audit("business_case.approved", actor_id="u-7", target="case-42", amount=120000)
    """
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
    from ..pipeline.processor import record_audit
    from .telemetry import current

    telemetry = current()
    sinks = getattr(telemetry, "sinks", None)
    trail = getattr(sinks, "audit", None)
    if telemetry is None or trail is None:
        return
    context = span.get_span_context() if span is not None else None
    try:
        record_audit(
            trail,
            telemetry.logger_provider,
            telemetry.scrubber,
            action,
            actor_id,
            target,
            outcome,
            context.trace_id if context is not None else 0,
            context.span_id if context is not None else 0,
            dict(details),
        )
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(f"audit record {action!r} could not be written: {exc!r}") from exc

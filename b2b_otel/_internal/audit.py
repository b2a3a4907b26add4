"""``b2b_otel.audit(...)``: a business-critical action recorded as a span."""

from __future__ import annotations

from typing import Any

from .. import semconv as sc
from . import selflog
from .api import instant_span


def audit(action: str, actor_id: str, target: str, outcome: str = "success", **details: Any) -> None:
    """Record that ``actor_id`` did ``action`` on ``target``: span ``audit {action}``.

    Example::

        b2b_otel.audit("business_case.approved", actor_id="u-7", target="case-42", amount=120000)
    """
    try:
        instant_span(
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

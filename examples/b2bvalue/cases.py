"""The ``business_cases`` table: a case's life from draft to published.

Approval and publication are business-critical, so each writes its ``b2b_otel.audit`` record inside
the database transaction: if the audit record cannot be made durable (``b2b_otel.AuditError``), the
transaction rolls back and the case keeps its previous status.
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

import b2b_otel

from .finance import RoiResult


class InvalidTransition(RuntimeError):
    """The case is not in the status the requested change starts from."""


def case_target(case_id: str) -> str:
    """The resource name of a case in authorisation decisions and audit records."""
    return f"business_case/{case_id}"


class BusinessCases:
    """Reads and writes ``business_cases`` through the shared pool."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def create(self, case_id: str, account_id: str, requested_by: str) -> None:
        """Open a draft case."""
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO business_cases (id, account_id, requested_by) VALUES (%s, %s, %s)",
                (case_id, account_id, requested_by),
            )

    def record_roi(self, case_id: str, account_name: str, roi: RoiResult, data_quality: float) -> None:
        """Store the figures and mark the case built."""
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE business_cases SET status = 'built', account_name = %s, annual_benefit = %s,"
                " npv = %s, payback_months = %s, roi_pct = %s, data_quality = %s, updated_at = now()"
                " WHERE id = %s",
                (
                    account_name,
                    round(roi.annual_benefit, 2),
                    round(roi.npv, 2),
                    roi.payback_months,
                    round(roi.roi_pct, 2),
                    round(data_quality, 3),
                    case_id,
                ),
            )

    def record_narrative(self, case_id: str, narrative: str) -> None:
        """Attach the generated narrative."""
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE business_cases SET narrative = %s, updated_at = now() WHERE id = %s",
                (narrative, case_id),
            )

    def _transition(self, case_id: str, actor_id: str, source: str, target: str, audit_action: str) -> None:
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "UPDATE business_cases SET status = %s, updated_at = now(),"
                " decided_by = COALESCE(%s, decided_by)"
                " WHERE id = %s AND status = %s RETURNING npv, roi_pct, payback_months",
                (target, actor_id if target in ("approved", "rejected") else None, case_id, source),
            ).fetchone()
            if row is None:
                raise InvalidTransition(f"{case_target(case_id)} is not {source}; cannot make it {target}")
            npv, roi_pct, payback = row
            # Inside the transaction on purpose: an AuditError rolls the status change back.
            b2b_otel.audit(
                audit_action,
                actor_id=actor_id,
                target=case_target(case_id),
                npv=float(npv),
                roi_pct=float(roi_pct),
                payback_months=None if payback is None else float(payback),
            )

    def approve(self, case_id: str, approver_id: str) -> None:
        """built -> approved, with the audit record ``business_case.approved``."""
        self._transition(case_id, approver_id, "built", "approved", "business_case.approved")

    def publish(self, case_id: str, publisher_id: str) -> None:
        """approved -> published, with the audit record ``roi.published``."""
        self._transition(case_id, publisher_id, "approved", "published", "roi.published")

    def reject(self, case_id: str, approver_id: str) -> None:
        """built -> rejected, with the audit record ``business_case.rejected``."""
        self._transition(case_id, approver_id, "built", "rejected", "business_case.rejected")

    def mark_failed(self, case_id: str) -> None:
        """A workflow that could not finish leaves its case marked failed (if it got as far as a row)."""
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE business_cases SET status = 'failed', updated_at = now() WHERE id = %s", (case_id,)
            )

"""The coordinator: one run of b2bvalue, from sign-in to published business cases.

A run creates its own database schema, starts the CRM/ERP API and the LLM provider's API on loopback,
signs the users of two tenants in, builds ``cases`` business cases with the workflow
``build_business_case`` (four steps, one agent each), has them approved and published, reviews
access rights, and tears everything down again. Each case runs inside
``b2b_otel.context(tenant_id=..., user_id=..., session_id=...)`` of its tenant's analyst, its
approval inside the approver's. The faults of :mod:`.faults` are injected along the way.

Call :func:`run` in-process (no telemetry set-up of its own) or ``python -m examples.b2bvalue``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from opentelemetry import trace

import b2b_otel
from b2b_otel import semconv as sc

from . import faults as fault_names
from .agents import (
    CaseContext,
    DataIntegrationAgent,
    NarrativeGeneratorAgent,
    RoiCalculatorAgent,
    ValueDriverAgent,
)
from .assistant import Assistant
from .auth import DEMO_USERS, FABRIKAM, NORTHWIND, AccessDenied, DemoUser, Directory, Session, Tenant
from .cases import BusinessCases, case_target
from .crm_server import ACCOUNTS, CrmServer
from .faults import LLM_ERROR_STATUSES, Faults
from .llm_server import LlmServer
from .memory import BenchmarkLibrary, EpisodicMemory, KnowledgeGraph, SemanticMemory, WorkingMemory
from .store import Database
from .tools import CrmConnection

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

WORKFLOW = "build_business_case"
# (step name, index): the order a business case is built in.
STEPS: tuple[tuple[str, int], ...] = (
    ("data_integration", 1),
    ("value_driver_analysis", 2),
    ("roi_calculation", 3),
    ("narrative_generation", 4),
)
# Cases cycle through the CRM's accounts in this order.
ACCOUNT_ROTATION: tuple[str, ...] = tuple(ACCOUNTS)
# Whose prospect each account is: the tenants take turns, so any two consecutive cases serve both.
TENANT_OF_ACCOUNT: dict[str, Tenant] = {
    account: (NORTHWIND, FABRIKAM)[index % 2] for index, account in enumerate(ACCOUNT_ROTATION)
}
# The address the bruteforce fault attacks from (RFC 5737 documentation range) and how often.
ATTACKER_ADDRESS = "203.0.113.66"
BRUTEFORCE_ATTEMPTS = 6
# The fake secrets the secret_in_payload fault plants in a CRM note: a Luhn-valid test card
# number, a password and a bearer token. None of them opens anything.
PLANTED_NOTE = (
    "Customer pays by card 4111111111111111 exp 12/29; finance portal password=Acme-Billing-2024; "
    "their AP system calls us with "
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJl"
)


@dataclass(frozen=True)
class CaseResult:
    """How one business case ended."""

    case_id: str
    account_id: str
    account_name: str
    status: str  # published, approved, rejected, built or failed
    npv: float | None = None
    payback_months: float | None = None
    roi_pct: float | None = None
    data_quality: float | None = None
    error: str | None = None
    tenant_id: str = ""
    # The case's LLM calls as the provider's responses reported them (the app's own count).
    input_tokens: int = 0
    output_tokens: int = 0
    llm_calls: int = 0
    llm_failures: int = 0


@dataclass(frozen=True)
class Summary:
    """What a run did, for the CLI's report and for tests."""

    run_id: str
    schema: str
    cases: tuple[CaseResult, ...]
    faults_requested: frozenset[str]
    faults_injected: dict[str, int]
    logins_ok: int
    logins_failed: int
    access_denied: int
    role_changes: int
    cache_hits: int
    cache_misses: int
    duration_s: float
    kept_data: bool = False
    llm_requests: int = 0
    llm_quota_remaining: str = ""  # the provider's last x-ratelimit-remaining-tokens / limit

    @property
    def built(self) -> int:
        """Cases that got their figures (whatever happened at approval)."""
        return sum(case.status != "failed" for case in self.cases)

    def render(self) -> str:
        """A short human-readable report."""
        lines = [
            f"b2bvalue run {self.run_id}: {self.built}/{len(self.cases)} business cases built "
            f"in {self.duration_s:.1f}s",
            f"  {'case':<18} {'tenant':<10} {'account':<20} {'status':<10} {'NPV':>14} {'payback':>9} "
            f"{'ROI':>7} {'quality':>7} {'tokens in/out':>14}",
        ]
        for case in self.cases:
            tokens = f"{case.input_tokens}/{case.output_tokens}"
            if case.npv is None:
                lines.append(
                    f"  {case.case_id:<18} {case.tenant_id:<10} {case.account_name:<20} {case.status:<10} "
                    f"{case.error or ''}"
                )
                continue
            payback = f"{case.payback_months:.1f} mo" if case.payback_months is not None else "never"
            lines.append(
                f"  {case.case_id:<18} {case.tenant_id:<10} {case.account_name:<20} {case.status:<10} "
                f"{case.npv:>14,.0f} {payback:>9} {case.roi_pct:>6.0f}% {case.data_quality:>7.2f} "
                f"{tokens:>14}"
            )
        per_tenant: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for case in self.cases:
            totals = per_tenant[case.tenant_id]
            totals[0] += 1
            totals[1] += case.input_tokens
            totals[2] += case.output_tokens
        lines.append(
            "  LLM tokens by tenant (as the provider reported them): "
            + "; ".join(
                f"{tenant} {count} case(s) {tokens_in} in / {tokens_out} out"
                for tenant, (count, tokens_in, tokens_out) in sorted(per_tenant.items())
            )
        )
        failures = sum(case.llm_failures for case in self.cases)
        lines.append(
            f"  LLM: {self.llm_requests} request(s), {failures} failed call(s); "
            f"token quota remaining {self.llm_quota_remaining or 'n/a'}"
        )
        injected = ", ".join(f"{name} x{count}" for name, count in sorted(self.faults_injected.items()))
        lines.append(f"  faults injected: {injected or 'none'}")
        total = self.cache_hits + self.cache_misses
        hit_rate = f"{self.cache_hits / total:.0%}" if total else "n/a"
        lines.append(
            f"  security: {self.logins_ok} logins ok, {self.logins_failed} failed; "
            f"{self.access_denied} access denied; {self.role_changes} role change(s)"
        )
        lines.append(
            f"  working memory: hits: {self.cache_hits}, misses: {self.cache_misses} ({hit_rate} hits)"
        )
        where = f"kept in schema {self.schema}" if self.kept_data else f"schema {self.schema} dropped"
        lines.append(f"  data: {where}")
        return "\n".join(lines)


@dataclass
class _Tally:
    logins_ok: int = 0
    logins_failed: int = 0
    access_denied: int = 0
    role_changes: int = 0
    sessions: dict[str, Session] = field(default_factory=dict)


def _user(user_id: str) -> DemoUser:
    return next(user for user in DEMO_USERS if user.id == user_id)


class Coordinator:
    """Builds, approves and publishes business cases; owns the agents and the run's tallies."""

    def __init__(
        self,
        db: Database,
        crm: CrmServer,
        crm_connection: CrmConnection,
        faults: Faults,
        llm: LlmServer,
        assistant: Assistant,
    ) -> None:
        pool = db.pool
        self.faults = faults
        self.crm = crm
        self.llm = llm
        self.assistant = assistant
        self.directory = Directory(pool)
        self.cases = BusinessCases(pool)
        self.working = WorkingMemory()
        episodic = EpisodicMemory(pool)
        self.benchmarks = BenchmarkLibrary(self.working, SemanticMemory(pool), KnowledgeGraph(pool))
        self.integration = DataIntegrationAgent(crm_connection, episodic, self.working, faults)
        self.value_drivers = ValueDriverAgent(episodic, self.working, self.benchmarks, faults)
        self.roi = RoiCalculatorAgent(episodic, self.working, assistant)
        self.narrative = NarrativeGeneratorAgent(episodic, self.working, assistant)
        self.tally = _Tally()

    # --- people

    def sign_in(
        self, user: DemoUser, password: str | None = None, address: str | None = None
    ) -> Session | None:
        """One login attempt (the user's own password unless another is given), in the user's tenant."""
        with b2b_otel.context(tenant_id=user.tenant):
            session = self.directory.login(
                user.id,
                user.password if password is None else password,
                address or user.client_address,
                user.auth_method,
            )
        if session is None:
            self.tally.logins_failed += 1
        else:
            self.tally.logins_ok += 1
            self.tally.sessions[user.id] = session
        return session

    def morning_sign_in(self) -> None:
        """Both tenants' teams start work; carol mistypes her password once."""
        users = {user.id: user for user in DEMO_USERS}
        self.sign_in(users["alice"])
        self.sign_in(users["bob"])
        self.sign_in(users["carol"], password="carol-purple-monkey-43")
        self.sign_in(users["carol"])
        self.sign_in(users["admin"])
        self.sign_in(users["dave"])
        self.sign_in(users["erin"])

    def as_user(self, user_id: str) -> AbstractContextManager[object]:
        """The signed-in user's tenant, id and session around what they do (``b2b_otel.context``)."""
        session = self.tally.sessions[user_id]
        return b2b_otel.context(tenant_id=_user(user_id).tenant, user_id=user_id, session_id=session.id)

    def bruteforce(self) -> None:
        """The bruteforce fault: a burst of wrong passwords for ``admin`` from one address."""
        with self.faults.injecting(fault_names.BRUTEFORCE, client_address=ATTACKER_ADDRESS):
            admin = next(user for user in DEMO_USERS if user.id == "admin")
            for attempt in range(BRUTEFORCE_ATTEMPTS):
                self.sign_in(admin, password=f"admin{attempt}!", address=ATTACKER_ADDRESS)

    def access_review(self) -> None:
        """The admin's periodic review: carol no longer needs ``editor``."""
        with self.as_user("admin"):
            self.directory.change_roles(self.tally.sessions["admin"], "carol", revoke=("editor",))
        self.tally.role_changes += 1

    def escalate(self) -> None:
        """The privilege_escalation fault: an over-privileged service account makes a viewer admin."""
        service = next(user for user in DEMO_USERS if user.id == "svc-integration")
        with self.faults.injecting(fault_names.PRIVILEGE_ESCALATION):
            session = self.sign_in(service)
            if session is not None:
                with self.as_user(service.id):
                    self.directory.change_roles(session, "carol", grant=("admin",))
                self.tally.role_changes += 1

    # --- business cases

    def build(self, case_id: str, account_id: str, index: int, pending: int) -> CaseResult:
        """Run the workflow for one case, as the tenant's analyst; a failure is reported in the
        result, not raised."""
        tenant = TENANT_OF_ACCOUNT[account_id]
        ctx = CaseContext(case_id, account_id, index, self.tally.sessions[tenant.analyst])
        account_name = str(ACCOUNTS.get(account_id, {}).get("name", account_id))
        b2b_otel.set_queue_depth(DataIntegrationAgent.name, pending)
        with self.as_user(tenant.analyst):
            result = self._run_workflow(ctx, tenant, account_name, pending)
        usage = self.assistant.usage(case_id)
        return dataclasses.replace(
            result,
            tenant_id=tenant.id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            llm_calls=usage.calls,
            llm_failures=usage.failed_calls,
        )

    def _run_workflow(self, ctx: CaseContext, tenant: Tenant, account_name: str, pending: int) -> CaseResult:
        case_id, account_id = ctx.case_id, ctx.account_id
        try:
            with b2b_otel.workflow_span(WORKFLOW, business_case_id=case_id):
                try:
                    return self._build(ctx, tenant, account_name, pending)
                finally:
                    # The scratchpad of a finished case is of no use to anyone; keep memory bounded.
                    self.working.forget(f"case/{case_id}/")
        except Exception as exc:
            log.error("business case %s failed: %s: %s", case_id, type(exc).__name__, exc)
            try:
                self.cases.mark_failed(case_id)
            except Exception as mark_exc:  # e.g. the database itself is what failed
                log.error("could not mark business case %s failed: %r", case_id, mark_exc)
            return CaseResult(case_id, account_id, account_name, "failed", error=type(exc).__name__)

    def _build(self, ctx: CaseContext, tenant: Tenant, account_name: str, pending: int) -> CaseResult:
        self.directory.authorize(ctx.session, "business_case.build", case_target(ctx.case_id))
        self.cases.create(ctx.case_id, ctx.account_id, ctx.session.user_id)
        integration_step, value_step, roi_step, narrative_step = STEPS

        with b2b_otel.workflow_step(*integration_step) as step:
            self._inject_into_integration(ctx)
            integration = asyncio.run(self.integration.run(ctx, queue_depth=pending))
            step.set_attribute(sc.B2B_DATA_QUALITY_SCORE, round(integration.data_quality, 3))
        with b2b_otel.workflow_step(*value_step):
            self.value_drivers.run(ctx)
        with b2b_otel.workflow_step(*roi_step):
            self._inject_into_roi(ctx)
            roi = self.roi.run(ctx)
            self.cases.record_roi(ctx.case_id, account_name, roi, integration.data_quality)
        with b2b_otel.workflow_step(*narrative_step):
            narrative = asyncio.run(_collect(self.narrative.stream(ctx)))
            self.cases.record_narrative(ctx.case_id, narrative)

        status = self._approve_and_publish(ctx, tenant, roi.npv)
        return CaseResult(
            ctx.case_id,
            ctx.account_id,
            account_name,
            status,
            npv=roi.npv,
            payback_months=roi.payback_months,
            roi_pct=roi.roi_pct,
            data_quality=integration.data_quality,
        )

    def _inject_into_integration(self, ctx: CaseContext) -> None:
        """Faults aimed at the first case's data integration (marked on the step span)."""
        if ctx.index != 0:
            return
        if fault_names.SLOW_CRM in self.faults:
            with self.faults.injecting(fault_names.SLOW_CRM, delay_s=self.faults.slow_crm_s):
                self.crm.slow_down("/erp/", self.faults.slow_crm_s)
        if fault_names.SECRET_IN_PAYLOAD in self.faults:
            # The note was planted in the CRM when the run started; this case's integration reads it.
            with self.faults.injecting(fault_names.SECRET_IN_PAYLOAD, account=ctx.account_id):
                pass

    def _inject_into_roi(self, ctx: CaseContext) -> None:
        """LLM faults aimed at the first case, before its first LLM call (marked on the step span)."""
        if ctx.index != 0:
            return
        if fault_names.LLM_QUOTA in self.faults:
            share = self.faults.llm_quota_share
            with self.faults.injecting(fault_names.LLM_QUOTA, share=share):
                self.llm.consume_share(share)
        if fault_names.LLM_ERROR in self.faults:
            statuses = ",".join(map(str, LLM_ERROR_STATUSES))
            with self.faults.injecting(fault_names.LLM_ERROR, statuses=statuses):
                self.llm.fail_next(*LLM_ERROR_STATUSES)

    def _approve_and_publish(self, ctx: CaseContext, tenant: Tenant, npv: float) -> str:
        target = case_target(ctx.case_id)
        if ctx.index == 0 and "carol" in self.tally.sessions and _user("carol").tenant == tenant.id:
            # A viewer tries to approve the first case before the deal desk does.
            try:
                with self.as_user("carol"):
                    self.directory.authorize(self.tally.sessions["carol"], "business_case.approve", target)
                    self.cases.approve(ctx.case_id, "carol")
                return "approved"
            except AccessDenied:
                self.tally.access_denied += 1
        with self.as_user(tenant.approver):
            return self._decide(ctx, self.tally.sessions[tenant.approver], npv)

    def _decide(self, ctx: CaseContext, approver: Session, npv: float) -> str:
        """The deal desk's decision: reject a value-destroying case, else approve and publish."""
        target = case_target(ctx.case_id)
        self.directory.authorize(approver, "business_case.approve", target)
        status = "built"
        try:
            if npv <= 0:
                # The deal desk does not sign off a case that destroys value for the customer.
                self.cases.reject(ctx.case_id, approver.user_id)
                return "rejected"
            self.cases.approve(ctx.case_id, approver.user_id)
            status = "approved"
            self.directory.authorize(approver, "roi.publish", target)
            self.cases.publish(ctx.case_id, approver.user_id)
            return "published"
        except b2b_otel.AuditError as exc:
            # The status change was rolled back with its audit record; the case itself stands.
            log.error("business case %s stays %s: its audit record failed: %s", ctx.case_id, status, exc)
            return status


async def _collect(stream: AsyncIterator[str]) -> str:
    """Consume a streamed narrative, as a UI would render it chunk by chunk."""
    return "".join([chunk async for chunk in stream])


def run(
    cases: int,
    faults: Iterable[str] | str | Faults,
    pg_url: str,
    *,
    keep_data: bool = False,
) -> Summary:
    """Build ``cases`` business cases against PostgreSQL at ``pg_url``, injecting ``faults``.

    Uses whatever telemetry the process has set up (call ``b2b_otel.instrument()`` first to export it).
    Fault durations come from ``B2BVALUE_SLOW_AGENT_S`` / ``B2BVALUE_SLOW_CRM_S``.

    Example::

        summary = run(3, {"slow_agent"}, "postgresql://postgres@127.0.0.1:55432/b2b_otel_test")
        print(summary.render())
    """
    if cases < 1:
        raise ValueError(f"cases must be at least 1, got {cases}")
    if not pg_url:
        raise ValueError("pg_url is required (a libpq URL of a PostgreSQL database)")
    active = faults if isinstance(faults, Faults) else Faults.from_env(faults)
    run_id = secrets.token_hex(4)
    started = time.monotonic()
    token = secrets.token_urlsafe(24)
    planted = {ACCOUNT_ROTATION[0]: PLANTED_NOTE} if fault_names.SECRET_IN_PAYLOAD in active else {}
    # The client must wait out a slowed CRM: the slowness is the fault, a timeout would be another one.
    timeout_s = max(10.0, active.slow_crm_s + 5.0)

    db = Database(pg_url, run_id, keep=keep_data)
    with _tracer.start_as_current_span("b2bvalue setup"):
        db.open()
    try:
        with CrmServer(token, billing_notes=planted) as crm, LlmServer() as llm:
            connection = CrmConnection(
                crm.base_url,
                token,
                token_in_query=fault_names.SECRET_IN_PAYLOAD in active,
                timeout_s=timeout_s,
            )
            assistant = Assistant(llm.base_url, llm.api_key)
            coordinator = Coordinator(db, crm, connection, active, llm, assistant)
            with _tracer.start_as_current_span("b2bvalue seed"):
                coordinator.directory.seed()
                coordinator.benchmarks.warm()
            coordinator.morning_sign_in()
            if fault_names.BRUTEFORCE in active:
                coordinator.bruteforce()
            results = [
                coordinator.build(
                    f"bc-{run_id}-{index + 1:03d}",
                    ACCOUNT_ROTATION[index % len(ACCOUNT_ROTATION)],
                    index,
                    pending=cases - index - 1,
                )
                for index in range(cases)
            ]
            b2b_otel.set_queue_depth(DataIntegrationAgent.name, 0)
            coordinator.access_review()
            if fault_names.PRIVILEGE_ESCALATION in active:
                coordinator.escalate()
            assistant.close()
            served = llm.served()
            quota = llm.limits.headers()
    finally:
        with _tracer.start_as_current_span("b2bvalue teardown"):
            db.close()
    tally = coordinator.tally
    return Summary(
        run_id=run_id,
        schema=db.schema,
        cases=tuple(results),
        faults_requested=active.enabled,
        faults_injected=dict(active.injected),
        logins_ok=tally.logins_ok,
        logins_failed=tally.logins_failed,
        access_denied=tally.access_denied,
        role_changes=tally.role_changes,
        cache_hits=coordinator.working.hits,
        cache_misses=coordinator.working.misses,
        duration_s=time.monotonic() - started,
        kept_data=keep_data,
        llm_requests=served.requests,
        llm_quota_remaining=(
            f"{quota['x-ratelimit-remaining-tokens']}/{quota['x-ratelimit-limit-tokens']}"
        ),
    )

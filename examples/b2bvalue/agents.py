"""The four agents that build a business case, each traced as ``invoke_agent {name}``.

They show each spelling of the API: ``async with b2b_otel.agent_span(...)`` (data integration,
which also reports its queue depth), ``with b2b_otel.agent_span(...)`` (value drivers), the
``@b2b_otel.agent`` decorator on a method (ROI) and on an async generator (narrative streaming).
Agents hand results to each other through working memory and leave a trail in episodic memory.
The ROI and narrative agents also ask a language model (see :mod:`.assistant`) for a headline and
an executive summary: their ``chat`` spans nest under the agent spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

import b2b_otel

from . import tools
from .assistant import PROVIDER, Assistant
from .auth import Session
from .faults import FAILING_MEMORY, SLOW_AGENT, Faults
from .finance import RoiResult
from .memory import BenchmarkLibrary, EpisodicMemory, WorkingMemory

log = logging.getLogger(__name__)

# Deals priced for the customer (proposal or later) are the subscription the case must justify.
PRICED_STAGES = frozenset({"proposal", "negotiation"})
# Used when the ERP has no cost of capital for the prospect: a conservative corporate rate.
DEFAULT_DISCOUNT_RATE = 0.10
# Fully loaded cost of an employee hour, for the productivity driver (USD).
LOADED_HOURLY_COST = 62.0
# Pause between streamed narrative chunks: stands in for a language model's token latency.
STREAM_CHUNK_PAUSE_S = 0.005

# The facts a complete integration has; the data quality score is the share present.
REQUIRED_FIELDS: tuple[tuple[str, str], ...] = (
    ("account", "name"),
    ("account", "industry"),
    ("account", "employees"),
    ("financials", "revenue"),
    ("financials", "opex"),
    ("financials", "dso_days"),
    ("financials", "wacc"),
)


@dataclass(frozen=True)
class CaseContext:
    """What every agent knows about the case it works on."""

    case_id: str
    account_id: str
    index: int  # position in this run; faults aimed at "the first case" look at it
    session: Session  # the analyst who asked; its id is the agents' conversation id


def scratch_key(case_id: str, what: str) -> str:
    """Working-memory key of one intermediate result of a case."""
    return f"case/{case_id}/{what}"


@dataclass(frozen=True)
class Integration:
    """The CRM and ERP facts about the prospect, with their completeness."""

    account: dict[str, Any]
    opportunities: list[dict[str, Any]]
    financials: dict[str, Any]
    data_quality: float
    missing: tuple[str, ...]

    @property
    def name(self) -> str:
        return str(self.account.get("name") or self.account.get("id"))

    @property
    def industry(self) -> str:
        return str(self.account["industry"])

    @property
    def subscription(self) -> float:
        """Yearly subscription proposed to the prospect: the sum of its priced, open deals."""
        return sum(float(opp["amount"]) for opp in self.opportunities if opp["stage"] in PRICED_STAGES)

    @property
    def discount_rate(self) -> float:
        wacc = self.financials.get("wacc")
        return float(wacc) if wacc is not None else DEFAULT_DISCOUNT_RATE


def assess(
    account: dict[str, Any], opportunities: list[dict[str, Any]], financials: dict[str, Any]
) -> Integration:
    """Combine the three sources and score completeness: required facts present, plus a priced deal."""
    sources = {"account": account, "financials": financials}
    missing = [f"{source}.{key}" for source, key in REQUIRED_FIELDS if sources[source].get(key) is None]
    if not any(opp["stage"] in PRICED_STAGES for opp in opportunities):
        missing.append("opportunities.priced")
    checks = len(REQUIRED_FIELDS) + 1
    return Integration(account, opportunities, financials, (checks - len(missing)) / checks, tuple(missing))


@dataclass(frozen=True)
class ValueDrivers:
    """Annual value of each driver (USD) and the benchmarks behind them."""

    revenue_uplift: float
    opex_reduction: float
    working_capital: float
    productivity: float
    benchmarks: Mapping[str, float]
    excluded: tuple[str, ...] = field(default=())  # drivers left out for missing data

    @property
    def total(self) -> float:
        return self.revenue_uplift + self.opex_reduction + self.working_capital + self.productivity

    def ranked(self) -> list[tuple[str, float]]:
        """Drivers by value, largest first."""
        values = {
            "revenue uplift": self.revenue_uplift,
            "operating cost reduction": self.opex_reduction,
            "working capital release": self.working_capital,
            "productivity": self.productivity,
        }
        return sorted(values.items(), key=lambda item: item[1], reverse=True)


def value_drivers(integration: Integration, benchmarks: Mapping[str, float]) -> ValueDrivers:
    """The yearly value of each driver once fully adopted; a driver with missing inputs counts 0."""
    fin = integration.financials
    revenue, opex = float(fin["revenue"]), float(fin["opex"])
    excluded: list[str] = []
    dso_days = fin.get("dso_days")
    if dso_days is None:
        working_capital = 0.0
        excluded.append("working capital release")
    else:
        # Cash freed by collecting sooner, valued at the prospect's cost of capital per year.
        working_capital = revenue / 365.0 * benchmarks["dso_reduction_days"] * integration.discount_rate
    employees = integration.account.get("employees")
    if employees is None:
        productivity = 0.0
        excluded.append("productivity")
    else:
        productivity = float(employees) * benchmarks["hours_saved_per_employee"] * LOADED_HOURLY_COST
    return ValueDrivers(
        revenue_uplift=revenue * benchmarks["revenue_uplift_pct"] / 100.0,
        opex_reduction=opex * benchmarks["opex_reduction_pct"] / 100.0,
        working_capital=working_capital,
        productivity=productivity,
        benchmarks=dict(benchmarks),
        excluded=tuple(excluded),
    )


def _from_working(working: WorkingMemory, case_id: str, what: str) -> Any:
    value = working.get(scratch_key(case_id, what))
    if value is None:
        raise LookupError(f"working memory has no {what} for case {case_id}")
    return value


class DataIntegrationAgent:
    """Fetches the account, its deals and its financials concurrently, and scores their completeness."""

    name = "data_integration_agent"

    def __init__(
        self, crm: tools.CrmConnection, episodic: EpisodicMemory, working: WorkingMemory, faults: Faults
    ) -> None:
        self._crm = crm
        self._episodic = episodic
        self._working = working
        self._faults = faults

    async def run(self, ctx: CaseContext, queue_depth: int) -> Integration:
        """Integrate one account; ``queue_depth`` is how many cases wait behind this one."""
        async with b2b_otel.agent_span(self.name, conversation_id=ctx.session.id, queue_depth=queue_depth):
            if SLOW_AGENT in self._faults and ctx.index == 0:
                with self._faults.injecting(SLOW_AGENT, delay_s=self._faults.slow_agent_s):
                    await asyncio.sleep(self._faults.slow_agent_s)
            async with self._crm.client() as client:
                account, opportunities, financials = await asyncio.gather(
                    tools.crm_get_account(client, ctx.account_id),
                    tools.crm_list_opportunities(client, ctx.account_id),
                    tools.erp_get_financials(client, ctx.account_id),
                )
            if account.get("billing_note"):
                # Support wants to see unusual notes; logging them verbatim is the leak the
                # secret_in_payload fault demonstrates.
                log.warning("account %s has a billing note: %s", ctx.account_id, account["billing_note"])
            integration = assess(account, opportunities, financials)
            # The pool is synchronous: write from a worker thread instead of blocking the event loop.
            await asyncio.to_thread(
                self._episodic.remember,
                ctx.case_id,
                ctx.account_id,
                self.name,
                "integration",
                asdict(integration),
            )
            self._working.put(scratch_key(ctx.case_id, "integration"), integration)
            return integration


class ValueDriverAgent:
    """Turns the prospect's financials and industry benchmarks into yearly value per driver."""

    name = "value_driver_agent"
    memory_kind = "value_drivers"
    # What a newer build of this agent writes; the database's CHECK constraint does not know it yet.
    unmigrated_memory_kind = "value_drivers_v2"

    def __init__(
        self, episodic: EpisodicMemory, working: WorkingMemory, benchmarks: BenchmarkLibrary, faults: Faults
    ) -> None:
        self._episodic = episodic
        self._working = working
        self._benchmarks = benchmarks
        self._faults = faults

    def run(self, ctx: CaseContext) -> ValueDrivers:
        """Value the drivers of one case."""
        with b2b_otel.agent_span(self.name, conversation_id=ctx.session.id):
            integration: Integration = _from_working(self._working, ctx.case_id, "integration")
            drivers = value_drivers(integration, self._benchmarks.for_industry(integration.industry))
            self._remember(ctx, drivers)
            self._working.put(scratch_key(ctx.case_id, "value_drivers"), drivers)
            return drivers

    def _remember(self, ctx: CaseContext, drivers: ValueDrivers) -> None:
        failing = FAILING_MEMORY in self._faults
        kind = self.unmigrated_memory_kind if failing else self.memory_kind
        content = {**asdict(drivers), "total": drivers.total}
        injecting = self._faults.injecting(FAILING_MEMORY) if failing else contextlib.nullcontext()
        try:
            with injecting:
                self._episodic.remember(ctx.case_id, ctx.account_id, self.name, kind, content)
        except psycopg.errors.IntegrityError as exc:
            # The record of how the agent reasoned is lost, the result is not: it travels on in
            # working memory. An outage (OperationalError) is not caught and fails the step.
            log.warning(
                "%s: episodic memory rejected a %r record for %s (%s); continuing from working memory",
                self.name,
                kind,
                ctx.case_id,
                type(exc).__name__,
            )


def _payback_text(roi: RoiResult) -> str:
    return f"{roi.payback_months:.1f} months" if roi.payback_months is not None else "not within three years"


class RoiCalculatorAgent:
    """Runs the financial model on the value drivers and the proposed subscription, and has the
    model write a one-sentence headline of the result."""

    name = "roi_calculator_agent"

    def __init__(self, episodic: EpisodicMemory, working: WorkingMemory, assistant: Assistant) -> None:
        self._episodic = episodic
        self._working = working
        self._assistant = assistant

    @b2b_otel.agent("roi_calculator_agent", provider=PROVIDER)
    def run(self, ctx: CaseContext) -> RoiResult:
        """NPV, payback and ROI of one case."""
        integration: Integration = _from_working(self._working, ctx.case_id, "integration")
        drivers: ValueDrivers = _from_working(self._working, ctx.case_id, "value_drivers")
        roi = tools.financial_model(drivers.total, integration.subscription, integration.discount_rate)
        headline = self._assistant.headline(
            ctx.case_id,
            {
                "Account": integration.name,
                "NPV": _usd(roi.npv),
                "Payback": _payback_text(roi),
                "ROI": f"{roi.roi_pct:.0f} %",
                "Discount rate": f"{roi.discount_rate:.1%}",
            },
        )
        self._episodic.remember(
            ctx.case_id, ctx.account_id, self.name, "roi", {**asdict(roi), "headline": headline}
        )
        self._working.put(scratch_key(ctx.case_id, "roi"), roi)
        # Empty when the model was unavailable: the narrative then goes on without a headline.
        self._working.put(scratch_key(ctx.case_id, "roi_headline"), headline or "")
        return roi


class NarrativeGeneratorAgent:
    """Writes the business case's story, streamed paragraph by paragraph, and ends it with an
    executive summary streamed from the model."""

    name = "narrative_generator_agent"

    def __init__(self, episodic: EpisodicMemory, working: WorkingMemory, assistant: Assistant) -> None:
        self._episodic = episodic
        self._working = working
        self._assistant = assistant

    @b2b_otel.agent("narrative_generator_agent", provider=PROVIDER)
    async def stream(self, ctx: CaseContext) -> AsyncIterator[str]:
        """Yield the narrative in chunks; the whole text is remembered once the stream is done."""
        integration: Integration = _from_working(self._working, ctx.case_id, "integration")
        drivers: ValueDrivers = _from_working(self._working, ctx.case_id, "value_drivers")
        roi: RoiResult = _from_working(self._working, ctx.case_id, "roi")
        headline = str(self._working.get(scratch_key(ctx.case_id, "roi_headline")) or "")
        history = await asyncio.to_thread(self._episodic.recall_account, ctx.account_id, ("roi",))
        earlier = [episode for episode in history if episode.business_case_id != ctx.case_id]
        chunks: list[str] = []
        lead = [f"{headline}\n"] if headline else []
        for chunk in [*lead, *compose(integration, drivers, roi, [e.content for e in earlier])]:
            await asyncio.sleep(STREAM_CHUNK_PAUSE_S)
            chunks.append(chunk)
            yield chunk
        ranked = drivers.ranked()
        facts = {
            "Account": f"{integration.name} ({integration.industry})",
            "Annual value": _usd(drivers.total),
            "Largest driver": f"{ranked[0][0]} ({_usd(ranked[0][1])})",
            "NPV": _usd(roi.npv),
            "Payback": _payback_text(roi),
            "Data completeness": f"{integration.data_quality:.0%}",
        }
        summary: list[str] = []
        async for piece in self._assistant.stream_summary(ctx.case_id, facts):
            piece = piece if summary else f"Executive summary: {piece}"
            summary.append(piece)
            chunks.append(piece)
            yield piece
        if summary:
            chunks.append("\n")
            yield "\n"
        text = "".join(chunks)
        await asyncio.to_thread(
            self._episodic.remember, ctx.case_id, ctx.account_id, self.name, "narrative", {"text": text}
        )


def _usd(value: float) -> str:
    return f"${value:,.0f}"


def compose(
    integration: Integration, drivers: ValueDrivers, roi: RoiResult, earlier: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The narrative's paragraphs, from the figures alone (deterministic, so tests can read it)."""
    ranked = drivers.ranked()
    payback = (
        f"pays back after {roi.payback_months:.1f} months"
        if roi.payback_months is not None
        else "does not pay back within three years"
    )
    parts = [
        f"{integration.name} ({integration.industry}) can expect {_usd(drivers.total)} of value a year "
        "once the platform is fully adopted.\n",
        f"The largest driver is {ranked[0][0]} ({_usd(ranked[0][1])}), followed by {ranked[1][0]} "
        f"({_usd(ranked[1][1])}).\n",
        f"Against a subscription of {_usd(roi.subscription)} a year and {_usd(roi.implementation)} of "
        f"implementation, the three-year NPV at {roi.discount_rate:.1%} is {_usd(roi.npv)}; the investment "
        f"{payback} and returns {roi.roi_pct:.0f} %.\n",
    ]
    if integration.missing:
        parts.append(
            f"Data completeness is {integration.data_quality:.0%} (missing: {', '.join(integration.missing)})"
            + (f"; {' and '.join(drivers.excluded)} left out." if drivers.excluded else ".")
            + "\n"
        )
    if earlier:
        parts.append(
            f"This is business case {len(earlier) + 1} for the account; the previous one projected "
            f"an NPV of {_usd(float(earlier[0]['npv']))}.\n"
        )
    return parts

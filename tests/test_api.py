"""The instrumentation API: one behaviour a test, asserted as whole snapshots where possible."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import b2b_otel
from b2b_otel import semconv as sc
from tests.support.capture import Capture, install_capture
from tests.support.otel_globals import reset_otel_globals


@pytest.fixture
def capture() -> Iterator[Capture]:
    yield install_capture()
    reset_otel_globals()


class QuoteError(Exception):
    pass


# --- agents --------------------------------------------------------------------------------------


def test_agent_decorator_makes_an_internal_invoke_agent_span(capture: Capture) -> None:
    @b2b_otel.agent("roi_calculator_agent", agent_id="a-1")
    def run(x: int) -> int:
        return x * 2

    assert run(21) == 42
    span = capture.span("invoke_agent roi_calculator_agent")
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "roi_calculator_agent",
        "gen_ai.agent.id": "a-1",
    }
    assert span.status.status_code is StatusCode.UNSET


def test_bare_agent_decorator_takes_the_function_name(capture: Capture) -> None:
    @b2b_otel.agent
    def narrative_generator_agent() -> str:
        return "ok"

    narrative_generator_agent()
    assert capture.tree() == ["invoke_agent narrative_generator_agent"]


def test_agent_records_duration_and_execution_count(capture: Capture) -> None:
    @b2b_otel.agent("a")
    def run() -> None:
        pass

    run()
    run()
    (duration,) = capture.points("gen_ai.invoke_agent.duration")
    assert duration.count == 2
    assert dict(duration.attributes) == {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"}
    assert tuple(duration.explicit_bounds) == sc.METRIC_GEN_AI_INVOKE_AGENT_DURATION_BUCKETS
    (executions,) = capture.points("b2b.agent.executions")
    assert (executions.value, dict(executions.attributes)) == (
        2,
        {"gen_ai.agent.name": "a", "outcome": "success"},
    )


def test_exception_sets_error_status_and_type_and_is_reraised_unchanged(capture: Capture) -> None:
    error = QuoteError("no quote")

    @b2b_otel.agent("pricing_agent")
    def run() -> None:
        raise error

    with pytest.raises(QuoteError) as caught:
        run()
    assert caught.value is error
    span = capture.span("invoke_agent pricing_agent")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "tests.test_api.QuoteError"  # type: ignore[index]
    assert [e.name for e in span.events] == ["exception"]
    (executions,) = capture.points("b2b.agent.executions")
    assert dict(executions.attributes)["outcome"] == "failure"
    (duration,) = capture.points("gen_ai.invoke_agent.duration")
    assert dict(duration.attributes)["error.type"] == "tests.test_api.QuoteError"


def test_builtin_exception_type_has_no_module_prefix(capture: Capture) -> None:
    with pytest.raises(ValueError), b2b_otel.agent_span("x"):
        raise ValueError("bad")
    assert capture.span("invoke_agent x").attributes["error.type"] == "ValueError"  # type: ignore[index]


async def test_async_agent_decorator(capture: Capture) -> None:
    @b2b_otel.agent("async_agent")
    async def run() -> str:
        await asyncio.sleep(0)
        return trace.get_current_span().name  # type: ignore[attr-defined,no-any-return]

    assert await run() == "invoke_agent async_agent"
    assert capture.tree() == ["invoke_agent async_agent"]


def test_methods_are_decorated_like_functions(capture: Capture) -> None:
    class Coordinator:
        factor = 3

        @b2b_otel.agent("coordinator")
        def scale(self, value: int) -> int:
            return value * self.factor

    assert Coordinator().scale(2) == 6
    assert capture.tree() == ["invoke_agent coordinator"]


def test_agent_queue_depth_sets_attribute_and_gauge(capture: Capture) -> None:
    with b2b_otel.agent_span("queue_agent", queue_depth=12):
        pass
    assert capture.span("invoke_agent queue_agent").attributes["b2b.agent.queue.depth"] == 12  # type: ignore[index]
    b2b_otel.set_queue_depth("other_agent", 4)
    values = {
        dict(p.attributes)["gen_ai.agent.name"]: p.value for p in capture.points("b2b.agent.queue.depth")
    }
    assert values == {"queue_agent": 12, "other_agent": 4}


# --- generators ----------------------------------------------------------------------------------


def test_generator_span_is_current_only_while_the_generator_runs(capture: Capture) -> None:
    seen_inside: list[str] = []

    @b2b_otel.agent("streamer")
    def stream() -> Iterator[int]:
        for i in range(3):
            seen_inside.append(trace.get_current_span().name)  # type: ignore[attr-defined]
            yield i

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("consumer"):
        seen_outside = []
        for _ in stream():
            seen_outside.append(trace.get_current_span().name)  # type: ignore[attr-defined]
    assert seen_inside == ["invoke_agent streamer"] * 3
    assert seen_outside == ["consumer"] * 3
    assert capture.tree() == ["consumer", "  invoke_agent streamer"]


def test_abandoned_generator_ends_its_span_and_leaves_no_context(capture: Capture) -> None:
    closed = []

    @b2b_otel.agent("abandoned")
    def stream() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(trace.get_current_span().name)  # type: ignore[attr-defined]

    gen = stream()
    assert next(gen) == 1
    del gen
    gc.collect()
    assert closed == ["invoke_agent abandoned"]  # cleanup ran inside its own span
    span = capture.span("invoke_agent abandoned")
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.UNSET
    assert not trace.get_current_span().get_span_context().is_valid


def test_exception_thrown_into_a_generator_reaches_it_and_fails_the_span(capture: Capture) -> None:
    @b2b_otel.tool("pager")
    def pages() -> Iterator[int]:
        yield 1
        yield 2

    gen = pages()
    next(gen)
    with pytest.raises(QuoteError):
        gen.throw(QuoteError("stop"))
    assert capture.span("execute_tool pager").status.status_code is StatusCode.ERROR


def test_generator_return_value_is_kept(capture: Capture) -> None:
    @b2b_otel.tool("counter")
    def count() -> Iterator[int]:
        yield 1
        return 7

    def outer() -> Iterator[int]:
        result = yield from count()
        yield result

    assert list(outer()) == [1, 7]


async def test_async_generator_span_and_context(capture: Capture) -> None:
    @b2b_otel.agent("narrator")
    async def chunks() -> AsyncIterator[str]:
        for word in ("value", "case"):
            yield f"{word}:{trace.get_current_span().name}"  # type: ignore[attr-defined]

    received = [chunk async for chunk in chunks()]
    assert received == ["value:invoke_agent narrator", "case:invoke_agent narrator"]
    assert not trace.get_current_span().get_span_context().is_valid


async def test_abandoned_async_generator_is_closed_inside_its_span(capture: Capture) -> None:
    closed = []

    @b2b_otel.agent("async_abandoned")
    async def chunks() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(trace.get_current_span().name)  # type: ignore[attr-defined]

    gen = chunks()
    assert await gen.__anext__() == 1
    await gen.aclose()  # type: ignore[attr-defined]
    assert closed == ["invoke_agent async_abandoned"]
    assert capture.span("invoke_agent async_abandoned").end_time is not None


# --- workflows, steps, tools, memory -------------------------------------------------------------------


def test_workflow_name_and_business_case_reach_steps_agents_and_memory(capture: Capture) -> None:
    @b2b_otel.tool("crm_lookup")
    def lookup() -> None:
        pass

    @b2b_otel.agent("data_integration_agent")
    def integrate() -> None:
        lookup()
        with b2b_otel.memory("episodic", "create_memory", store_id="pg", record_count=1):
            pass

    with b2b_otel.workflow_span("build_business_case", business_case_id="case-7"):
        with b2b_otel.workflow_step("data_integration", 1):
            integrate()
        with b2b_otel.workflow_step("roi_calculation", 2):
            pass

    assert capture.tree() == [
        "invoke_workflow build_business_case",
        "  execute_step data_integration",
        "    invoke_agent data_integration_agent",
        "      execute_tool crm_lookup",
        "      create_memory episodic",
        "  execute_step roi_calculation",
    ]
    inherited = {"gen_ai.workflow.name": "build_business_case", "b2b.business_case.id": "case-7"}
    for name in (
        "execute_step data_integration",
        "invoke_agent data_integration_agent",
        "create_memory episodic",
    ):
        attributes = dict(capture.span(name).attributes or {})
        assert {k: attributes.get(k) for k in inherited} == inherited, name
    step = dict(capture.span("execute_step roi_calculation").attributes or {})
    assert step == {
        "gen_ai.operation.name": "execute_step",
        "b2b.workflow.step.name": "roi_calculation",
        "b2b.workflow.step.index": 2,
        **inherited,
    }
    memory = dict(capture.span("create_memory episodic").attributes or {})
    assert memory == {
        "gen_ai.operation.name": "create_memory",
        "b2b.memory.tier": "episodic",
        "gen_ai.memory.store.id": "pg",
        "gen_ai.memory.record.count": 1,
        **inherited,
    }
    workflow = dict(capture.span("invoke_workflow build_business_case").attributes or {})
    assert workflow == {"gen_ai.operation.name": "invoke_workflow", **inherited}
    assert capture.span("execute_tool crm_lookup").attributes["gen_ai.tool.name"] == "crm_lookup"  # type: ignore[index]


def test_workflow_and_step_metrics(capture: Capture) -> None:
    @b2b_otel.workflow("build_business_case")
    def build() -> None:
        with b2b_otel.workflow_step("ok", 1):
            pass
        with pytest.raises(QuoteError), b2b_otel.workflow_step("broken", 2):
            raise QuoteError

    build()
    (duration,) = capture.points("gen_ai.invoke_workflow.duration")
    assert dict(duration.attributes)["gen_ai.workflow.name"] == "build_business_case"
    assert tuple(duration.explicit_bounds) == sc.METRIC_GEN_AI_INVOKE_WORKFLOW_DURATION_BUCKETS
    steps = {dict(p.attributes)["outcome"]: p.value for p in capture.points("b2b.workflow.steps")}
    assert steps == {"success": 1, "failure": 1}


def test_memory_cache_hits_and_misses_are_counted(capture: Capture) -> None:
    with b2b_otel.memory("working", "search_memory") as span:
        span.set_attribute("b2b.memory.cache.hit", True)
    with b2b_otel.memory("working", "search_memory", cache_hit=False):
        pass
    with b2b_otel.memory("working", "search_memory", cache_hit=True):
        pass
    hits = {dict(p.attributes)["hit"]: p.value for p in capture.points("b2b.memory.cache.requests")}
    assert hits == {"true": 2, "false": 1}
    (duration,) = capture.points("b2b.memory.operation.duration")
    assert dict(duration.attributes) == {
        "b2b.memory.tier": "working",
        "gen_ai.operation.name": "search_memory",
    }
    assert duration.count == 3


def test_failed_memory_write_is_an_error_span_with_error_type(capture: Capture) -> None:
    with pytest.raises(QuoteError), b2b_otel.memory("episodic", "create_memory"):
        raise QuoteError("constraint")
    span = capture.span("create_memory episodic")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "tests.test_api.QuoteError"  # type: ignore[index]


def test_unknown_memory_tier_and_operation_are_recorded_as_other(capture: Capture) -> None:
    with b2b_otel.memory("vector", "search_memory"):
        pass
    with b2b_otel.memory("episodic", "forget_memory"):
        pass
    tier = capture.span("search_memory _OTHER")
    assert tier.attributes["b2b.memory.tier"] == "_OTHER"  # type: ignore[index]
    assert tier.kind is SpanKind.INTERNAL  # an unknown tier claims no remote peer
    operation = capture.span("_OTHER episodic")
    assert operation.attributes["gen_ai.operation.name"] == "_OTHER"  # type: ignore[index]
    assert operation.kind is SpanKind.CLIENT
    series = {tuple(sorted(p.attributes.items())) for p in capture.points("b2b.memory.operation.duration")}
    assert series == {
        (("b2b.memory.tier", "_OTHER"), ("gen_ai.operation.name", "search_memory")),
        (("b2b.memory.tier", "episodic"), ("gen_ai.operation.name", "_OTHER")),
    }
    (dropped,) = capture.points("b2b.telemetry.dropped")
    assert dict(dropped.attributes) == {"signal": "traces", "reason": "invalid_argument"}
    assert dropped.value == 2


@pytest.mark.parametrize(
    ("tier", "kind"),
    [
        ("episodic", SpanKind.CLIENT),
        ("semantic", SpanKind.CLIENT),
        ("knowledge_graph", SpanKind.CLIENT),
        ("working", SpanKind.INTERNAL),
    ],
)
def test_memory_span_kind_is_client_out_of_process_and_internal_for_working(
    capture: Capture, tier: str, kind: SpanKind
) -> None:
    with b2b_otel.memory(tier, "search_memory"):
        pass

    @b2b_otel.memory(tier, "create_memory")
    def write() -> None:
        pass

    write()
    assert [s.kind for s in capture.spans()] == [kind, kind]


# --- security and audit -------------------------------------------------------------------------------


def test_security_facts_are_spans_with_their_attributes(capture: Capture) -> None:
    b2b_otel.security.login("u-1", "203.0.113.9", success=False)
    b2b_otel.security.login("u-1", "203.0.113.9", success=True, method="sso")
    b2b_otel.security.privilege_change("admin-1", "u-1", granted=["admin"], roles=["analyst", "admin"])
    b2b_otel.security.access_denied("u-2", "business_case/7", "delete", client_address="198.51.100.4")
    spans = capture.spans()
    assert [dict(s.attributes or {}) for s in spans] == [
        {
            "b2b.security.action": "login",
            "user.id": "u-1",
            "client.address": "203.0.113.9",
            "event.outcome": "failure",
            "b2b.auth.method": "password",
        },
        {
            "b2b.security.action": "login",
            "user.id": "u-1",
            "client.address": "203.0.113.9",
            "event.outcome": "success",
            "b2b.auth.method": "sso",
        },
        {
            "b2b.security.action": "privilege_change",
            "b2b.actor.id": "admin-1",
            "user.id": "u-1",
            "user.roles": ("admin", "analyst"),
            "b2b.roles.granted": ("admin",),
            "b2b.roles.revoked": (),
        },
        {
            "b2b.security.action": "access_denied",
            "user.id": "u-2",
            "b2b.resource": "business_case/7",
            "b2b.access.action": "delete",
            "client.address": "198.51.100.4",
        },
    ]
    assert [s.name for s in spans] == ["login", "login", "privilege_change", "access_denied"]
    counts = {
        dict(p.attributes)["b2b.security.action"]: p.value for p in capture.points("b2b.security.events")
    }
    assert counts == {"login": 2, "privilege_change": 1, "access_denied": 1}


def test_security_fact_nests_under_the_current_span(capture: Capture) -> None:
    with trace.get_tracer("t").start_as_current_span("request"):
        b2b_otel.security.login("u", "192.0.2.1", success=True)
    assert capture.tree() == ["request", "  login"]


def test_audit_span(capture: Capture) -> None:
    # Without instrument() there is no audit file, so audit() raises (SPEC section 1); the span is made first.
    with pytest.raises(b2b_otel.AuditError):
        b2b_otel.audit("business_case.approved", actor_id="u-7", target="case-42", amount=120000)
    span = capture.span("audit business_case.approved")
    assert dict(span.attributes or {}) == {
        "b2b.audit.action": "business_case.approved",
        "b2b.actor.id": "u-7",
        "b2b.audit.target": "case-42",
        "event.outcome": "success",
    }


# --- context safety --------------------------------------------------------------------------------


async def test_concurrent_asyncio_tasks_never_mix_up_parents(capture: Capture) -> None:
    @b2b_otel.agent("worker")
    async def work(case: str) -> None:
        await asyncio.sleep(0.001)
        with b2b_otel.memory("episodic", "search_memory"):
            await asyncio.sleep(0.001)

    async def one_case(case: str) -> None:
        with b2b_otel.workflow_span("wf", business_case_id=case):
            await asyncio.gather(work(case), work(case))

    await asyncio.gather(*(one_case(f"case-{i}") for i in range(20)))
    spans = capture.spans()
    by_id = {s.context.span_id: s for s in spans}
    for span in spans:
        if span.name == "search_memory episodic":
            agent_span = by_id[span.parent.span_id]  # type: ignore[union-attr]
            workflow_span = by_id[agent_span.parent.span_id]  # type: ignore[union-attr]
            case = workflow_span.attributes["b2b.business_case.id"]  # type: ignore[index]
            assert span.attributes["b2b.business_case.id"] == case  # type: ignore[index]
            assert agent_span.attributes["b2b.business_case.id"] == case  # type: ignore[index]
    assert sum(s.name == "invoke_workflow wf" for s in spans) == 20
    assert sum(s.name == "search_memory episodic" for s in spans) == 40


def test_threads_never_mix_up_parents(capture: Capture) -> None:
    barrier = threading.Barrier(4)

    @b2b_otel.agent("threaded")
    def work(case: str) -> str:
        barrier.wait(timeout=5)
        with b2b_otel.memory("working", "search_memory"):
            return case

    def run(case: str) -> str:
        with b2b_otel.workflow_span("wf", business_case_id=case):
            return work(case)

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(run, ["a", "b", "c", "d"])) == ["a", "b", "c", "d"]
    for span in capture.spans():
        if span.name == "search_memory working":
            agent = next(s for s in capture.spans() if s.context.span_id == span.parent.span_id)  # type: ignore[union-attr]
            assert agent.attributes["b2b.business_case.id"] == span.attributes["b2b.business_case.id"]  # type: ignore[index]


async def test_one_operation_object_entered_from_concurrent_tasks(capture: Capture) -> None:
    shared = b2b_otel.agent_span("shared")

    async def use(i: int) -> None:
        async with shared:
            await asyncio.sleep(0.001 * (i % 3))

    await asyncio.gather(*(use(i) for i in range(10)))
    spans = capture.spans()
    assert len(spans) == 10 and all(s.end_time for s in spans)


def test_helpers_work_without_instrument_and_without_sdk() -> None:
    reset_otel_globals()

    @b2b_otel.agent("no_sdk")
    def run() -> int:
        with b2b_otel.memory("working", "search_memory", cache_hit=True):
            b2b_otel.security.login("u", "192.0.2.1", success=False)
            return 1

    assert run() == 1


def test_a_broken_tracer_never_breaks_the_decorated_call(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import b2b_otel.api.spans as api

    def broken() -> trace.Tracer:
        raise RuntimeError("broken tracer provider")

    monkeypatch.setattr(api, "tracer", broken)

    @b2b_otel.agent("resilient")
    def run() -> int:
        return 7

    assert run() == 7
    assert capture.spans() == []

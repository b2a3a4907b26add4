"""Each agent and workflow span carries, at its end, the sums over the LLM calls made inside it.

Real ``openai`` / ``anthropic`` clients against a local server whose usage numbers differ per request
(read from the prompt), real OTLP receiver. The expected sums are computed from the chat spans the
receiver got, by walking each call's parents: nested agents in a workflow, concurrent asyncio tasks
and threads under one workflow, and tenants kept apart.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import b2b_otel
from b2b_otel.llm.prices import load_prices
from tests.support.llm_servers import LLMServer
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

PRICES = load_prices(None)
SUMMED = ("invoke_agent ", "invoke_workflow ")


def _usage_from_prompt(body: dict[str, Any]) -> tuple[int, int]:
    """``in=<n> out=<m>`` in the last message sets the request's usage."""
    text = str(body["messages"][-1]["content"])
    found = re.search(r"in=(\d+) out=(\d+)", text)
    assert found, text
    return int(found.group(1)), int(found.group(2))


@pytest.fixture
def server() -> Iterator[LLMServer]:
    llm = LLMServer(usage_of=_usage_from_prompt).start()
    yield llm
    llm.stop()


@pytest.fixture(autouse=True)
def instrumented(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "B2B_OTEL_")):
            monkeypatch.delenv(name)
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    reset_otel_globals()
    b2b_otel.instrument(
        service_name="llm-sums", instrumentations="openai,anthropic", log_dir=str(tmp_path / "logs")
    )
    yield
    reset_otel_globals()


def _ask(client: openai.OpenAI, tokens_in: int, tokens_out: int, model: str = "gpt-4o") -> None:
    content = f"in={tokens_in} out={tokens_out}"
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])


def _expected(receiver: OTLPReceiver) -> dict[str, dict[str, Any]]:
    """Per agent/workflow span id: the sums over the chat spans below it, walked from the receiver's spans."""
    spans = {s["span_id"]: s for s in receiver.spans()}
    expected: dict[str, dict[str, Any]] = {
        sid: {"in": 0, "out": 0, "cost": 0.0, "calls": 0}
        for sid, s in spans.items()
        if s["name"].startswith(SUMMED)
    }
    for chat in (
        s for s in spans.values() if s["name"].startswith("chat ") and s["scope"].startswith("opentelemetry")
    ):
        attributes = chat["attributes"]
        tokens_in, tokens_out = (
            attributes["gen_ai.usage.input_tokens"],
            attributes["gen_ai.usage.output_tokens"],
        )
        cost = PRICES.cost(attributes["gen_ai.response.model"], tokens_in, tokens_out)
        assert cost is not None
        parent = chat["parent_span_id"]
        while parent in spans:
            if parent in expected:
                sums = expected[parent]
                sums["in"] += tokens_in
                sums["out"] += tokens_out
                sums["cost"] += cost
                sums["calls"] += 1
            parent = spans[parent]["parent_span_id"]
    return expected


def _assert_sums(receiver: OTLPReceiver) -> dict[str, dict[str, Any]]:
    spans = {s["span_id"]: s for s in receiver.spans()}
    expected = _expected(receiver)
    for span_id, sums in expected.items():
        attributes = spans[span_id]["attributes"]
        name = spans[span_id]["name"]
        if not sums["calls"]:
            assert "gen_ai.usage.input_tokens" not in attributes, name
            continue
        assert attributes["gen_ai.usage.input_tokens"] == sums["in"], name
        assert attributes["gen_ai.usage.output_tokens"] == sums["out"], name
        assert attributes["b2b.llm.cost"] == pytest.approx(sums["cost"], rel=1e-9), name
    return {spans[sid]["name"]: sums for sid, sums in expected.items()}


def test_nested_agents_and_steps_of_a_workflow_each_carry_the_sums_of_the_calls_inside_them(
    server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    client = openai.OpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(base_url=server.base_url, api_key="ak-test", max_retries=0)
    with b2b_otel.workflow_span("build_business_case", business_case_id="BC-7"):
        _ask(client, 100, 10)  # directly in the workflow
        with b2b_otel.workflow_step("research", 1), b2b_otel.agent_span("research_agent"):
            _ask(client, 200, 20)
            with b2b_otel.tool("crm_lookup"):
                _ask(client, 300, 30, model="gpt-4o-mini")
            with b2b_otel.agent_span("fact_checker"):
                claude.messages.create(
                    model="claude-haiku-4-5",
                    max_tokens=9,
                    messages=[{"role": "user", "content": "in=400 out=40"}],
                )
        with b2b_otel.agent_span("idle_agent"):
            pass
    assert b2b_otel.shutdown()
    sums = _assert_sums(otlp_receiver)
    chats = [s for s in otlp_receiver.spans() if s["name"].startswith("chat ")]
    assert len(chats) == 4
    for chat in chats:  # every call carries the workflow and business case it was made for
        assert chat["attributes"]["gen_ai.workflow.name"] == "build_business_case"
        assert chat["attributes"]["b2b.business_case.id"] == "BC-7"
    assert sums["invoke_workflow build_business_case"]["in"] == 1000
    assert sums["invoke_agent research_agent"]["in"] == 900
    assert sums["invoke_agent fact_checker"]["calls"] == 1
    assert sums["invoke_agent idle_agent"]["calls"] == 0


def test_sums_are_exact_with_concurrent_tasks_and_threads_under_one_workflow(
    server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    client = openai.AsyncOpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)
    sync_client = openai.OpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)

    async def agent_task(index: int) -> None:
        async with b2b_otel.agent_span(f"task_agent_{index}"):
            for call in range(1 + index % 3):
                content = f"in={10 * index + call + 1} out={index + 1}"
                await client.chat.completions.create(
                    model="gpt-4.1", messages=[{"role": "user", "content": content}]
                )

    def thread_agent(index: int) -> None:
        with b2b_otel.agent_span(f"thread_agent_{index}"):
            _ask(sync_client, 1000 + index, 7, model="gpt-4.1-nano")
            _ask(sync_client, 2000 + index, 8, model="gpt-4.1-nano")

    async def run() -> None:
        with b2b_otel.workflow_span("parallel_case"):
            await asyncio.gather(*(agent_task(i) for i in range(12)))
            with ThreadPoolExecutor(max_workers=4) as pool:
                futures = [pool.submit(contextvars.copy_context().run, thread_agent, i) for i in range(8)]
                for future in futures:
                    future.result()
        await client.close()

    asyncio.run(run())
    assert b2b_otel.shutdown()
    sums = _assert_sums(otlp_receiver)
    workflow = sums["invoke_workflow parallel_case"]
    assert workflow["calls"] == sum(1 + i % 3 for i in range(12)) + 16
    assert sums["invoke_agent task_agent_5"]["calls"] == 3
    assert sums["invoke_agent thread_agent_3"]["in"] == 1003 + 2003


def test_each_tenants_workflow_sums_only_its_own_calls(
    server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    client = openai.AsyncOpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)

    async def case(tenant: str, tokens: int) -> None:
        with b2b_otel.context(tenant_id=tenant):
            async with b2b_otel.workflow(f"case_{tenant}"):
                for _ in range(4):
                    await asyncio.sleep(0)
                    await client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": f"in={tokens} out=1"}]
                    )

    async def run() -> None:
        await asyncio.gather(*(case(f"tenant-{n}", 100 * (n + 1)) for n in range(5)))
        await client.close()

    asyncio.run(run())
    assert b2b_otel.shutdown()
    sums = _assert_sums(otlp_receiver)
    for n in range(5):
        assert sums[f"invoke_workflow case_tenant-{n}"]["in"] == 4 * 100 * (n + 1)
    costs = {m["attributes"]["b2b.tenant.id"]: m["value"] for m in otlp_receiver.metrics("b2b.llm.cost")}
    for n in range(5):
        expected = PRICES.cost("gpt-4o", 4 * 100 * (n + 1), 4)
        assert costs[f"tenant-{n}"] == pytest.approx(expected)


def test_open_llm_calls_are_bounded_and_an_untracked_call_is_never_an_error() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    from b2b_otel.llm.usage import LLMCallProcessor

    processor = LLMCallProcessor(PRICES, max_open=2)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("genai-like")
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    calls = [tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attributes) for _ in "abc"]
    assert processor.overflowed == 1  # the third call was not tracked
    for span in calls:
        span.set_attribute("gen_ai.usage.input_tokens", 5)
        span.end()  # the tracked ones are priced (no meter bound: nothing recorded), the other ignored
    assert processor.overflowed == 1
    with tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attributes) as span:
        span.set_attribute("gen_ai.usage.input_tokens", 1)
    assert processor.overflowed == 1  # room again once calls ended

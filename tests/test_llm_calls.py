"""LLM calls through the real ``openai`` and ``anthropic`` clients, asserted at a real OTLP receiver.

The clients talk to local servers speaking their HTTP APIs (``tests/support/llm_servers.py``): sync,
async and streaming calls, usage numbers, rate-limit headers, 429 and 500 answers. What is checked is
what a backend receives: the GenAI instrumentations' ``chat {model}`` spans under our agent spans with
the tenant, the token and duration metrics, ``b2b.llm.cost`` per tenant, the quota gauge, errors, and
message content (absent by default; present and scrubbed with ``B2B_OTEL_CAPTURE_CONTENT=true``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import b2b_otel
from b2b_otel.llm.prices import load_prices
from tests.support.llm_servers import ANTHROPIC_SNAPSHOT, OPENAI_SNAPSHOT, LLMServer
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
TENANT = "acme-gmbh"
CARD = "4111 1111 1111 1111"
API_KEY = "sk-proj-Zq8vT3xLm2Pw9Rk4Ns7Jd1Fh6Gb5Yc0A"
PROMPT = f"Bill card {CARD} and call the CRM with api_key={API_KEY} please"
PRICES = load_prices(None)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    llm = LLMServer().start()
    yield llm
    llm.stop()


@pytest.fixture
def instrumented(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Any]:
    """A function that instruments b2b_otel against the receiver (keywords are instrument()'s)."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "B2B_OTEL_", "ANTHROPIC_", "OPENAI_")):
            monkeypatch.delenv(name)
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    reset_otel_globals()

    def instrument(**overrides: Any) -> b2b_otel.Telemetry:
        options: dict[str, Any] = {
            "service_name": "llm-test",
            "instrumentations": "openai,anthropic",
            "log_dir": str(tmp_path / "logs"),
            **overrides,
        }
        return b2b_otel.instrument(**options)

    yield instrument
    reset_otel_globals()


def _openai(server: LLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="sk-test-client", max_retries=0)


def _anthropic(server: LLMServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="ak-test-client", max_retries=0)


def _chat_spans(receiver: OTLPReceiver, provider: str) -> list[dict[str, Any]]:
    return [
        s
        for s in receiver.spans()
        if s["name"].startswith("chat ")
        and s["kind"] == "SPAN_KIND_CLIENT"
        and s["attributes"].get("gen_ai.provider.name") == provider
        and s["scope"].startswith("opentelemetry.instrumentation.genai")
    ]


def _points(receiver: OTLPReceiver, name: str, **attributes: Any) -> list[dict[str, Any]]:
    return [
        m for m in receiver.metrics(name) if all(m["attributes"].get(k) == v for k, v in attributes.items())
    ]


def _cost(model: str, server: LLMServer) -> float:
    value = PRICES.cost(model, server.input_tokens, server.output_tokens, server.cached_tokens)
    assert value is not None
    return value


def _raw(receiver: OTLPReceiver) -> bytes:
    return b"\n".join(e.request.SerializeToString() for e in receiver.requests())


# --- spans, nesting, tenant ---------------------------------------------------------------------------


def test_openai_sync_chat_span_nests_under_the_agent_span_with_the_tenant(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    instrumented()
    client = _openai(server)
    with b2b_otel.context(tenant_id=TENANT), b2b_otel.agent_span("pricing_agent"):
        answer = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "price this case"}]
        )
    assert answer.usage is not None and answer.usage.prompt_tokens == server.input_tokens
    assert b2b_otel.shutdown()
    (chat,) = _chat_spans(otlp_receiver, "openai")
    (agent,) = otlp_receiver.spans("invoke_agent pricing_agent")
    assert chat["name"] == "chat gpt-4o"
    assert chat["parent_span_id"] == agent["span_id"] and chat["trace_id"] == agent["trace_id"]
    attributes = chat["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.response.model"] == "gpt-4o" + OPENAI_SNAPSHOT
    assert attributes["gen_ai.usage.input_tokens"] == server.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == server.output_tokens
    assert attributes["b2b.tenant.id"] == TENANT
    assert agent["attributes"]["b2b.llm.cost"] == pytest.approx(_cost("gpt-4o", server))


def test_openai_async_and_streaming_calls_record_tokens_and_cost(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    instrumented()
    client = openai.AsyncOpenAI(base_url=server.openai_url, api_key="sk-test-client", max_retries=0)

    async def run() -> str:
        with b2b_otel.context(tenant_id=TENANT):
            async with b2b_otel.agent_span("narrative_agent"):
                await client.chat.completions.create(
                    model="gpt-4.1-mini", messages=[{"role": "user", "content": "draft"}]
                )
                stream = await client.chat.completions.create(
                    model="gpt-4.1-mini",
                    messages=[{"role": "user", "content": "draft more"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return text

    assert asyncio.run(run()) == server.reply
    sync_stream = _openai(server).chat.completions.create(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert "".join(c.choices[0].delta.content or "" for c in sync_stream if c.choices) == server.reply
    assert b2b_otel.shutdown()
    chats = _chat_spans(otlp_receiver, "openai")
    assert len(chats) == 3
    assert all(s["attributes"]["gen_ai.usage.output_tokens"] == server.output_tokens for s in chats)
    tokens = _points(otlp_receiver, "gen_ai.client.token.usage", **{"gen_ai.request.model": "gpt-4.1-mini"})
    by_type = {p["attributes"]["gen_ai.token.type"]: p for p in tokens}
    assert by_type["input"]["sum"] == 3 * server.input_tokens and by_type["input"]["count"] == 3
    assert by_type["output"]["sum"] == 3 * server.output_tokens
    (duration,) = _points(
        otlp_receiver, "gen_ai.client.operation.duration", **{"gen_ai.request.model": "gpt-4.1-mini"}
    )
    assert duration["count"] == 3 and duration["sum"] > 0
    costs = {
        m["attributes"].get("b2b.tenant.id"): m["value"]
        for m in _points(otlp_receiver, "b2b.llm.cost", **{"gen_ai.request.model": "gpt-4.1-mini"})
    }
    one = _cost("gpt-4.1-mini", server)
    assert costs == {TENANT: pytest.approx(2 * one), None: pytest.approx(one)}  # the last call had no tenant


def test_anthropic_sync_async_and_streaming_calls_are_chat_spans_with_usage_and_cost(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    server.cached_tokens = 20
    instrumented()
    client = _anthropic(server)
    message = [{"role": "user", "content": "summarise the case"}]
    with b2b_otel.context(tenant_id=TENANT), b2b_otel.agent_span("summary_agent"):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=message)
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=200, messages=message) as stream:
            assert "".join(stream.text_stream).strip() == server.reply
        for _ in client.messages.create(
            model="claude-sonnet-4-5", max_tokens=200, messages=message, stream=True
        ):
            pass

        async def run() -> None:
            async_client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="ak", max_retries=0)
            await async_client.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=message)
            async with async_client.messages.stream(
                model="claude-sonnet-4-5", max_tokens=200, messages=message
            ) as stream:
                async for _ in stream.text_stream:
                    pass
            await async_client.close()

        asyncio.run(run())
    assert b2b_otel.shutdown()
    chats = _chat_spans(otlp_receiver, "anthropic")
    assert len(chats) == 5, [s["name"] for s in otlp_receiver.spans()]
    (agent,) = otlp_receiver.spans("invoke_agent summary_agent")
    for chat in chats:
        assert chat["name"] == "chat claude-sonnet-4-5"
        assert chat["parent_span_id"] == agent["span_id"]
        assert chat["attributes"]["gen_ai.usage.input_tokens"] == server.input_tokens
        assert chat["attributes"]["gen_ai.usage.output_tokens"] == server.output_tokens
        assert chat["attributes"]["gen_ai.response.model"] == "claude-sonnet-4-5" + ANTHROPIC_SNAPSHOT
        assert chat["attributes"]["b2b.tenant.id"] == TENANT
    # Cached input tokens are priced at the cache price; the agent carries the sum over its 5 calls.
    one = _cost("claude-sonnet-4-5", server)
    assert one < PRICES.cost("claude-sonnet-4-5", server.input_tokens, server.output_tokens, 0)  # type: ignore[operator]
    (cost,) = _points(otlp_receiver, "b2b.llm.cost", **{"gen_ai.provider.name": "anthropic"})
    assert cost["value"] == pytest.approx(5 * one)
    assert cost["attributes"] == {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "b2b.tenant.id": TENANT,
    }
    assert agent["attributes"]["gen_ai.usage.input_tokens"] == 5 * server.input_tokens
    assert agent["attributes"]["b2b.llm.cost"] == pytest.approx(5 * one)


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500])
def test_failed_calls_have_error_status_and_error_type_and_cost_nothing(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver, status: int
) -> None:
    instrumented()
    server.fail_next(status, status)
    errors = {
        429: (openai.RateLimitError, anthropic.RateLimitError),
        500: (openai.InternalServerError, anthropic.InternalServerError),
    }[status]
    with b2b_otel.agent_span("fragile_agent"):
        with pytest.raises(errors[0]):
            _openai(server).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
        with pytest.raises(errors[1]):
            _anthropic(server).messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
    assert b2b_otel.shutdown()
    for provider, error in (("openai", errors[0]), ("anthropic", errors[1])):
        (chat,) = _chat_spans(otlp_receiver, provider)
        assert chat["status_code"] == "STATUS_CODE_ERROR"
        assert chat["attributes"]["error.type"] == f"{error.__module__.split('.')[0]}.{error.__name__}"
        (duration,) = _points(
            otlp_receiver, "gen_ai.client.operation.duration", **{"gen_ai.provider.name": provider}
        )
        assert duration["attributes"]["error.type"] == chat["attributes"]["error.type"]
    assert otlp_receiver.metrics("b2b.llm.cost") == []
    (agent,) = otlp_receiver.spans("invoke_agent fragile_agent")
    assert "gen_ai.usage.input_tokens" not in agent["attributes"]  # no usage reported, nothing summed


def test_a_model_without_a_price_is_counted_not_priced(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    instrumented()
    with b2b_otel.workflow_span("triage"):
        _openai(server).chat.completions.create(
            model="house-finetune-7b", messages=[{"role": "user", "content": "x"}]
        )
        _openai(server).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert b2b_otel.shutdown()
    (unpriced,) = otlp_receiver.metrics("b2b.llm.calls.unpriced")
    assert unpriced["value"] == 1
    assert unpriced["attributes"] == {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "house-finetune-7b",
    }
    assert [m["attributes"]["gen_ai.request.model"] for m in otlp_receiver.metrics("b2b.llm.cost")] == [
        "gpt-4o-mini"
    ]
    (workflow,) = otlp_receiver.spans("invoke_workflow triage")
    # Tokens of both calls; the cost of the priced one only.
    assert workflow["attributes"]["gen_ai.usage.input_tokens"] == 2 * server.input_tokens
    assert workflow["attributes"]["b2b.llm.cost"] == pytest.approx(_cost("gpt-4o-mini", server))


def test_tokens_per_tenant_are_counted_for_every_answered_call_and_a_priced_call_span_carries_its_cost(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    telemetry = instrumented()
    gpt, claude = _openai(server), _anthropic(server)
    with b2b_otel.context(tenant_id=TENANT):
        gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        gpt.chat.completions.create(model="house-finetune-7b", messages=[{"role": "user", "content": "x"}])
    with b2b_otel.context(tenant_id="other-tenant"):
        claude.messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        server.fail_next(500)
        with pytest.raises(anthropic.InternalServerError):
            claude.messages.create(
                model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])  # no tenant
    assert telemetry.health()["llm"] == {"unpriced_calls": 1, "untracked_calls": 0}
    assert b2b_otel.shutdown()
    points = otlp_receiver.metrics("b2b.llm.token.usage")
    assert {p["unit"] for p in points} == {"{token}"}
    counted = {
        (
            p["attributes"].get("b2b.tenant.id"),
            p["attributes"]["gen_ai.provider.name"],
            p["attributes"]["gen_ai.request.model"],
            p["attributes"]["gen_ai.token.type"],
        ): p["value"]
        for p in points
    }
    inp, out = server.input_tokens, server.output_tokens
    assert counted == {
        (TENANT, "openai", "gpt-4o", "input"): inp,
        (TENANT, "openai", "gpt-4o", "output"): out,
        (TENANT, "openai", "house-finetune-7b", "input"): inp,  # unpriced, its tokens still counted
        (TENANT, "openai", "house-finetune-7b", "output"): out,
        ("other-tenant", "anthropic", "claude-sonnet-4-5", "input"): inp,  # the failed call counts nothing
        ("other-tenant", "anthropic", "claude-sonnet-4-5", "output"): out,
        (None, "openai", "gpt-4o", "input"): inp,
        (None, "openai", "gpt-4o", "output"): out,
    }
    costs = {
        s["attributes"]["gen_ai.request.model"]: s["attributes"].get("b2b.llm.cost")
        for s in _chat_spans(otlp_receiver, "openai")
        if s["attributes"].get("b2b.tenant.id") is not None
    }
    assert costs["gpt-4o"] == pytest.approx(_cost("gpt-4o", server))
    assert costs["house-finetune-7b"] is None  # no price: no cost, never a guess
    priced_claude = [
        s["attributes"].get("b2b.llm.cost")
        for s in _chat_spans(otlp_receiver, "anthropic")
        if s["attributes"].get("gen_ai.usage.input_tokens")
    ]
    assert priced_claude == [pytest.approx(_cost("claude-sonnet-4-5", server))]
    # The span's cost is the cost metric's: one price per call.
    total = sum(m["value"] for m in otlp_receiver.metrics("b2b.llm.cost"))
    assert total == pytest.approx(2 * _cost("gpt-4o", server) + _cost("claude-sonnet-4-5", server))


def test_health_counts_calls_not_tracked_when_too_many_are_open(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    from b2b_otel.llm.usage import LLMCallProcessor

    telemetry = instrumented()
    (calls,) = [p for p in telemetry._span_processors if isinstance(p, LLMCallProcessor)]
    calls.max_open = 0  # every call finds the table full
    _openai(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    _openai(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert telemetry.health()["llm"] == {"unpriced_calls": 0, "untracked_calls": 2}
    assert b2b_otel.shutdown()
    assert otlp_receiver.metrics("b2b.llm.token.usage") == []  # untracked: not counted, never an error
    (chat, _) = _chat_spans(otlp_receiver, "openai")
    assert "b2b.llm.cost" not in chat["attributes"]


# --- the quota gauge ----------------------------------------------------------------------------------


def test_quota_gauge_is_the_used_share_of_each_providers_limits(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    server.openai_quota.limit_tokens = server.openai_quota.remaining_tokens = 1_000
    server.anthropic_quota.limit_requests = server.anthropic_quota.remaining_requests = 10
    instrumented()
    for _ in range(3):
        _openai(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    stream = _openai(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
    )
    for _ in stream:
        pass
    _anthropic(server).messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert b2b_otel.shutdown()
    gauge = {
        (m["attributes"]["gen_ai.provider.name"], m["attributes"]["b2b.llm.quota.kind"]): m["value"]
        for m in otlp_receiver.metrics("b2b.llm.quota.utilization")
    }
    spent = server.input_tokens + server.output_tokens
    assert gauge[("openai", "tokens")] == pytest.approx(4 * spent / 1_000)  # after the 4th call (a stream)
    assert gauge[("openai", "requests")] == pytest.approx(4 / 1_000)
    assert gauge[("anthropic", "requests")] == pytest.approx(1 / 10)
    assert gauge[("anthropic", "tokens")] == pytest.approx(spent / 100_000)
    assert all(0.0 <= value <= 1.0 for value in gauge.values())


def test_a_429_drives_the_quota_to_full_and_the_rule_fires_once_per_provider_and_kind(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver
) -> None:
    instrumented()
    server.fail_next(429, 429)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            _openai(server).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
    assert b2b_otel.shutdown()
    (point,) = _points(otlp_receiver, "b2b.llm.quota.utilization", **{"b2b.llm.quota.kind": "tokens"})
    assert point["value"] == 1.0
    breaches = [
        r
        for r in otlp_receiver.logs("b2b.sla.breach")
        if r["attributes"]["b2b.rule.id"] == "external.llm.quota"
    ]
    assert len(breaches) == 1, breaches  # two full readings, one entry into the breaching state
    attributes = breaches[0]["attributes"]
    assert attributes["gen_ai.provider.name"] == "openai" and attributes["b2b.llm.quota.kind"] == "tokens"
    assert attributes["b2b.alert.severity"] == "info" and attributes["b2b.observed.value"] == 1.0


# --- message content ----------------------------------------------------------------------------------


def _call_both(server: LLMServer) -> None:
    with b2b_otel.agent_span("billing_agent"):
        _openai(server).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": PROMPT}]
        )
        _anthropic(server).messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": PROMPT}]
        )


def test_message_content_is_not_recorded_by_default(
    instrumented: Any, server: LLMServer, otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upstream variable alone does not switch content on: B2B_OTEL_CAPTURE_CONTENT decides.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_and_event")
    instrumented()
    _call_both(server)
    assert b2b_otel.shutdown()
    assert len(_chat_spans(otlp_receiver, "openai")) == len(_chat_spans(otlp_receiver, "anthropic")) == 1
    for span in otlp_receiver.spans():
        assert not [k for k in span["attributes"] if k.startswith(("gen_ai.input", "gen_ai.output"))]
    raw = _raw(otlp_receiver)
    assert b"Bill card" not in raw and server.reply.encode() not in raw
    assert b"4111" not in raw and API_KEY.encode() not in raw
    assert os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "span_and_event"  # left alone


@pytest.mark.parametrize("mode", [None, "span_and_event"])
def test_captured_content_is_scrubbed_on_spans_and_events(
    instrumented: Any,
    server: LLMServer,
    otlp_receiver: OTLPReceiver,
    monkeypatch: pytest.MonkeyPatch,
    mode: str | None,
) -> None:
    if mode is not None:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    instrumented(capture_content=True)
    _call_both(server)
    assert b2b_otel.shutdown()
    for provider in ("openai", "anthropic"):
        (chat,) = _chat_spans(otlp_receiver, provider)
        prompt = str(chat["attributes"]["gen_ai.input.messages"])
        assert "Bill card" in prompt and "[REDACTED:" in prompt
        assert server.reply in str(chat["attributes"]["gen_ai.output.messages"])
    events = otlp_receiver.logs("gen_ai.client.inference.operation.details")
    if mode is None:
        assert events == []  # SPAN_ONLY: content on the spans only
    else:
        assert len(events) == 2
        assert all("[REDACTED:" in str(e["attributes"]["gen_ai.input.messages"]) for e in events)
    raw = _raw(otlp_receiver)
    assert b"Bill card" in raw
    for secret in (CARD, CARD.replace(" ", ""), API_KEY, API_KEY[8:]):
        assert secret.encode() not in raw, secret
    # Every finding of the scrubber reached the rules: the sensitive-data rule fired.
    assert any(
        r["attributes"]["b2b.rule.id"] == "security.sensitive_data"
        for r in otlp_receiver.logs("b2b.security.event")
    )


# --- zero-code ----------------------------------------------------------------------------------------


ZERO_CODE_APP = textwrap.dedent(
    """
    import sys
    import openai
    import b2b_otel

    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-zero-code", max_retries=0)
    with b2b_otel.context(tenant_id="zero-tenant"), b2b_otel.agent_span("zero_code_agent"):
        client.chat.completions.create(model="o4-mini", messages=[{"role": "user", "content": "hi"}])
    """
)


def test_zero_code_start_instruments_openai_through_the_distro(
    server: LLMServer, otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(ZERO_CODE_APP, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    env.update(otlp_receiver.otel_env())
    env.update(
        {
            "OTEL_PYTHON_DISTRO": "b2b_otel",
            "OTEL_PYTHON_CONFIGURATOR": "b2b_otel",
            "OTEL_SERVICE_NAME": "zero-code-llm",
            "B2B_OTEL_INSTRUMENTATIONS": "openai",
            "B2B_OTEL_LOG_DIR": str(tmp_path / "logs"),
            "PYTHONPATH": str(ROOT),
        }
    )
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "opentelemetry-instrument"),
            sys.executable,
            str(app),
            server.openai_url,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    otlp_receiver.wait_for("spans", lambda spans: any(s["name"] == "chat o4-mini" for s in spans))
    chats = _chat_spans(otlp_receiver, "openai")
    assert len(chats) == 1, "the call was traced twice or not at all"
    (agent,) = otlp_receiver.spans("invoke_agent zero_code_agent")
    assert chats[0]["parent_span_id"] == agent["span_id"]
    assert chats[0]["attributes"]["b2b.tenant.id"] == "zero-tenant"
    assert agent["resource"]["service.name"] == "zero-code-llm"
    assert agent["attributes"]["b2b.llm.cost"] == pytest.approx(_cost("o4-mini", server))


def test_under_the_applications_own_exporting_tracer_provider_calls_are_still_priced_and_summed(
    instrumented: Any, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    app_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    trace.set_tracer_provider(provider)
    telemetry = instrumented()  # b2b_otel's own span exporter is dropped: the application's exports
    with b2b_otel.agent_span("app_agent"):
        _openai(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert telemetry.health()["signals"]["traces"]["exporters"] == []
    (agent,) = [s for s in app_spans.get_finished_spans() if s.name == "invoke_agent app_agent"]
    assert agent.attributes is not None
    assert agent.attributes["b2b.llm.cost"] == pytest.approx(_cost("gpt-4o", server))
    (chat,) = [s for s in app_spans.get_finished_spans() if s.name == "chat gpt-4o"]
    assert chat.attributes is not None and "b2b.llm.cost" not in chat.attributes  # its processors run first
    assert b2b_otel.shutdown()

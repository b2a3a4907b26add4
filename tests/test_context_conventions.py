"""Issue 10's conventions: span kinds of the memory tiers, the agent's optional GenAI attributes.

Asserted as whole attribute snapshots on in-memory providers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.trace import SpanKind

import b2b_otel
from b2b_otel import semconv as sc
from tests.support.capture import Capture, install_capture
from tests.support.otel_globals import reset_otel_globals


@pytest.fixture
def capture() -> Iterator[Capture]:
    yield install_capture()
    reset_otel_globals()


@pytest.mark.parametrize(
    ("tier", "kind"),
    [
        ("episodic", SpanKind.CLIENT),
        ("semantic", SpanKind.CLIENT),
        ("knowledge_graph", SpanKind.CLIENT),
        ("working", SpanKind.INTERNAL),
        ("no_such_tier", SpanKind.INTERNAL),
    ],
)
def test_memory_spans_are_client_out_of_process_and_internal_in_process(
    capture: Capture, tier: str, kind: SpanKind
) -> None:
    with b2b_otel.memory(tier, "search_memory"):
        pass
    (span,) = capture.spans()
    assert span.kind is kind


def test_the_registry_says_client_for_memory_spans() -> None:
    assert sc.SPAN_MEMORY_KIND == "client"


def test_agent_with_every_optional_attribute(capture: Capture) -> None:
    @b2b_otel.agent(
        "pricing_agent", provider="openai", agent_id="agent-7", conversation_id="conv-3", queue_depth=4
    )
    def run() -> None:
        pass

    run()
    span = capture.span("invoke_agent pricing_agent")
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "pricing_agent",
        "gen_ai.provider.name": "openai",
        "gen_ai.agent.id": "agent-7",
        "gen_ai.conversation.id": "conv-3",
        "b2b.agent.queue.depth": 4,
    }


def test_agent_span_takes_the_provider(capture: Capture) -> None:
    with b2b_otel.agent_span("a", provider="anthropic"):
        pass
    assert capture.span("invoke_agent a").attributes["gen_ai.provider.name"] == "anthropic"  # type: ignore[index]


def test_a_bare_decorated_agent_keeps_no_provider_and_a_named_copy_keeps_it(capture: Capture) -> None:
    @b2b_otel.agent
    def bare() -> None:
        pass

    @b2b_otel.agent(provider="openai")
    def named_by_function() -> None:
        pass

    bare()
    named_by_function()
    assert "gen_ai.provider.name" not in (capture.span("invoke_agent bare").attributes or {})
    span = capture.span("invoke_agent named_by_function")
    assert span.attributes["gen_ai.provider.name"] == "openai"  # type: ignore[index]


def test_a_non_text_provider_is_coerced_and_counted(capture: Capture) -> None:
    with b2b_otel.agent_span("a", provider=42):  # type: ignore[arg-type]
        pass
    assert capture.span("invoke_agent a").attributes["gen_ai.provider.name"] == "42"  # type: ignore[index]
    points = capture.points("b2b.telemetry.dropped")
    assert sum(p.value for p in points if p.attributes["reason"] == "invalid_argument") == 1

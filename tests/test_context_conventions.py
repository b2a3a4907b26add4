"""Issue 10's conventions: span kinds of the memory tiers, the agent's optional GenAI attributes.

Asserted as whole attribute snapshots on in-memory providers.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
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


# --- where each name stands upstream (docs/semantic-conventions.md, "Where the names come from") -----

REPO = Path(__file__).resolve().parents[1]
REGISTRY_DIR = REPO / "docs" / "semconv"


def _load_generator() -> ModuleType:
    path = REPO / "scripts" / "gen_semconv.py"
    sys.path.insert(0, str(path.parent))  # it imports semconv_go.py beside it
    spec = importlib.util.spec_from_file_location("_gen_semconv_for_status", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def test_every_name_of_the_registry_has_a_status_and_its_reason() -> None:
    registry = gen.load_registry(REGISTRY_DIR)
    named = gen.named_statuses(registry)
    kinds = {what for what, _, _ in named}
    assert kinds == {"attribute", "value", "span", "metric", "event", "name"}
    # every attribute, value, span, metric, event and name is there once
    expected = (
        len(registry.attributes)
        + sum(len(a.members) for a in registry.attributes.values())
        + len(registry.spans)
        + len(registry.metrics)
        + len(registry.events)
        + len(registry.names)
    )
    assert len(named) == expected
    for what, name, status in named:
        assert status.status in ("upstream", "proposed", "ours"), (what, name)
        if status.status == "proposed":
            assert status.ref and status.ref.startswith("https://github.com/"), (what, name)
        if status.status == "ours":
            assert status.why, (what, name)


def test_the_statuses_found_upstream_for_issue_10(registry_statuses: dict[str, Any]) -> None:
    # Checked against the semantic-conventions-genai repository (model/gen-ai/registry.yaml, metrics.yaml).
    for name in (
        "gen_ai.memory.store.id",
        "gen_ai.memory.record.count",
        "gen_ai.operation.name=search_memory",
        "gen_ai.operation.name=upsert_memory",
        "gen_ai.invoke_agent.duration",
        "gen_ai.execute_tool.duration",
        "gen_ai.invoke_workflow.duration",
        "gen_ai.provider.name",
        "gen_ai.agent.id",
        "gen_ai.conversation.id",
        "user.id",
        "session.id",
        "invoke_agent {name}",
    ):
        assert registry_statuses[name].status == "upstream", name
    assert registry_statuses["gen_ai.operation.name=execute_step"].status == "proposed"
    assert registry_statuses["b2b.llm.cost"].status == "proposed"
    assert registry_statuses["b2b.tenant.id"].status == "ours"
    assert registry_statuses["{operation} {tier}"].status == "ours"


@pytest.fixture
def registry_statuses() -> dict[str, Any]:
    return {name: status for _, name, status in gen.named_statuses(gen.load_registry(REGISTRY_DIR))}


def test_the_document_lists_every_name_that_is_not_upstream() -> None:
    doc = (REPO / "docs" / "semantic-conventions.md").read_text()
    section = doc.split("## Where the names come from", 1)[1]
    for _, name, status in gen.named_statuses(gen.load_registry(REGISTRY_DIR)):
        if status.status != "upstream":
            assert f"`{name}`" in section, name
            assert status.why is None or status.why in section, name


def _registry_with(tmp_path: Path, group: dict[str, Any]) -> Path:
    shutil.copytree(REGISTRY_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "zz_extra.yaml").write_text(yaml.safe_dump({"groups": [group]}))
    return tmp_path


def _attribute(**fields: Any) -> dict[str, Any]:
    return {
        "id": "b2b.example.thing",
        "type": "string",
        "brief": "An example.",
        "examples": ["x"],
        "stability": "development",
        "source": "b2b",
        **fields,
    }


@pytest.mark.parametrize(
    ("group_fields", "attribute_fields", "message"),
    [
        ({}, {}, "a name of our own needs 'why'"),
        ({}, {"status": "upstream", "why": "w"}, "a name of source b2b is ours or proposed"),
        ({}, {"status": "proposed", "why": "w"}, "a proposed name needs 'ref'"),
        ({}, {"status": "ours", "why": "w", "ref": "not a url"}, "must be an https:// URL"),
        ({}, {"status": "maybe", "why": "w"}, "'maybe' is not one of upstream, proposed, ours"),
        ({}, {"source": "otel-proposed", "id": "gen_ai.example"}, "missing key 'status'"),
        ({}, {"source": "otel-proposed", "id": "gen_ai.example", "status": "upstream"}, "needs 'ref'"),
        ({}, {"source": "otel", "id": "gen_ai.example2", "status": "ours", "why": "w"}, "is upstream"),
    ],
)
def test_the_generator_refuses_a_name_without_a_sound_status(
    tmp_path: Path, group_fields: dict[str, Any], attribute_fields: dict[str, Any], message: str
) -> None:
    group = {
        "id": "registry.b2b.example",
        "type": "attribute_group",
        "brief": "Examples.",
        **group_fields,
        "attributes": [_attribute(**attribute_fields)],
    }
    with pytest.raises(gen.RegistryError, match=re.escape(message)):
        gen.load_registry(_registry_with(tmp_path, group))


def test_a_groups_why_serves_its_attributes_and_their_values(tmp_path: Path) -> None:
    enum = {"members": [{"id": "a", "value": "a", "brief": "A.", "source": "b2b"}]}
    group = {
        "id": "registry.b2b.example",
        "type": "attribute_group",
        "brief": "Examples.",
        "why": "Because.",
        "attributes": [_attribute(type=enum)],
    }
    registry = gen.load_registry(_registry_with(tmp_path, group))
    statuses = {name: status for _, name, status in gen.named_statuses(registry)}
    assert statuses["b2b.example.thing"].why == "Because."
    assert statuses["b2b.example.thing=a"].why == "Because."


@pytest.mark.parametrize("kind", ["span", "event", "name"])
def test_spans_events_and_names_must_say_their_status(tmp_path: Path, kind: str) -> None:
    groups = {
        "span": {
            "id": "span.b2b.example",
            "type": "span",
            "brief": "x",
            "helpers": [],
            "span_name": "example",
            "span_kind": "internal",
            "stability": "development",
            "attributes": [],
        },
        "event": {
            "id": "event.b2b.example",
            "type": "event",
            "name": "b2b.example",
            "brief": "x",
            "stability": "development",
            "attributes": [],
        },
        "name": {
            "id": "name.example",
            "type": "name",
            "constant": "EXAMPLE_NAME",
            "value": "example",
            "brief": "x",
            "stability": "development",
        },
    }
    with pytest.raises(gen.RegistryError, match=re.escape("missing key 'status'")):
        gen.load_registry(_registry_with(tmp_path, groups[kind]))

"""LLM calls through the local stack: Jaeger shows the ``chat`` spans under the agent span with the
tenant and the agent's sums; Prometheus has ``b2b.llm.cost`` per tenant and the quota gauge.

An application process uses the real ``openai`` and ``anthropic`` clients against a local server
speaking their APIs (``tests/support/llm_servers.py``) and exports to the collector; one failed call
makes the trace an error trace, which tail sampling always keeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_client import OTLP_HTTP, REPO, jaeger_traces, prometheus_query, wait_for

pytestmark = pytest.mark.e2e

TRACE_WAIT_S = 60
METRIC_WAIT_S = 120

APP = textwrap.dedent(
    """
    import sys
    import anthropic, openai
    import b2b_otel
    from tests.support.llm_servers import LLMServer

    run_id, tenant = sys.argv[1], sys.argv[2]
    server = LLMServer().start()
    b2b_otel.instrument(service_name="llm-stack", instrumentations="openai,anthropic")
    gpt = openai.OpenAI(base_url=server.openai_url, api_key="sk-stack", max_retries=0)
    claude = anthropic.Anthropic(base_url=server.base_url, api_key="ak-stack", max_retries=0)
    with b2b_otel.context(tenant_id=tenant), b2b_otel.workflow_span("llm_case", business_case_id=run_id):
        with b2b_otel.agent_span("stack_llm_agent") as span:
            span.set_attribute("llm.run_id", run_id)
            gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            message = [{"role": "user", "content": "hi"}]
            claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=message)
            server.fail_next(500)
            try:
                gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "again"}])
            except openai.InternalServerError:
                pass
    assert b2b_otel.shutdown(10)
    server.stop()
    """
)


@pytest.fixture(scope="module")
def run(stack: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    run_id, tenant = uuid.uuid4().hex, f"tenant-{uuid.uuid4().hex[:8]}"
    home = tmp_path_factory.mktemp("llm-stack")
    done = subprocess.run(
        [sys.executable, "-c", APP, run_id, tenant],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "PYTHONPATH": str(REPO),
            "OTEL_EXPORTER_OTLP_ENDPOINT": OTLP_HTTP,
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "B2B_OTEL_LOG_DIR": str(home / "logs"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {"run_id": run_id, "tenant": tenant}


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def test_jaeger_shows_the_chat_spans_under_the_agent_with_the_tenant(run: dict[str, str]) -> None:
    def trace() -> dict[str, Any] | None:
        found = jaeger_traces("llm-stack", {"llm.run_id": run["run_id"]})
        spans = found[0]["spans"] if found else []
        return found[0] if sum(s["operationName"].startswith("chat ") for s in spans) >= 3 else None

    found = wait_for(trace, f"the LLM trace of run {run['run_id']} in Jaeger", TRACE_WAIT_S)
    spans = {s["spanID"]: s for s in found["spans"]}
    (agent,) = [s for s in spans.values() if s["operationName"] == "invoke_agent stack_llm_agent"]
    chats = [s for s in spans.values() if s["operationName"] in ("chat gpt-4o", "chat claude-sonnet-4-5")]
    assert len(chats) == 3
    for chat in chats:
        parents = [ref["spanID"] for ref in chat.get("references", []) if ref["refType"] == "CHILD_OF"]
        assert parents == [agent["spanID"]]
        tags = _tags(chat)
        assert tags["b2b.tenant.id"] == run["tenant"]
        assert tags["b2b.business_case.id"] == run["run_id"]
    agent_tags = _tags(agent)
    assert agent_tags["gen_ai.usage.input_tokens"] == 240  # two answered calls of 120 input tokens
    assert agent_tags["b2b.llm.cost"] > 0


def test_prometheus_has_the_cost_per_tenant_and_the_quota_gauge(run: dict[str, str]) -> None:
    tenant = run["tenant"]

    def cost() -> list[dict[str, Any]] | None:
        result = prometheus_query(f'{{__name__=~"b2b_llm_cost.*", b2b_tenant_id="{tenant}"}}')
        return result if len(result) >= 2 else None

    series = wait_for(cost, f"b2b.llm.cost of {tenant} in Prometheus", METRIC_WAIT_S)
    providers = {s["metric"]["gen_ai_provider_name"]: float(s["value"][1]) for s in series}
    assert set(providers) == {"openai", "anthropic"}
    assert all(value > 0 for value in providers.values())

    def quota() -> list[dict[str, Any]] | None:
        query = '{__name__=~"b2b_llm_quota_utilization.*", gen_ai_provider_name="anthropic"}'
        result = prometheus_query(query)
        return result or None

    gauge = wait_for(quota, "b2b.llm.quota.utilization in Prometheus", METRIC_WAIT_S)
    assert {s["metric"]["b2b_llm_quota_kind"] for s in gauge} >= {"tokens", "requests"}

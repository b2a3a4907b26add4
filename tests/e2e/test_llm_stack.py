"""LLM calls through the local stack: Jaeger shows the ``chat`` spans under the agent span with the
tenant, their cost and the agent's sums; Prometheus has ``b2b.llm.cost`` and ``b2b.llm.token.usage``
per tenant and the quota gauge; ``external.llm.quota`` reaches Alertmanager with its tenant.

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

from tests.e2e.stack_client import (
    ALERTMANAGER_API,
    OTLP_HTTP,
    REPO,
    get_json,
    jaeger_traces,
    prometheus_query,
    wait_for,
)

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


# One tenant's calls against an OpenAI quota the test sets before each call: the used shares in argv.
QUOTA_APP = textwrap.dedent(
    """
    import sys
    import openai
    import b2b_otel
    from tests.support.llm_servers import LLMServer

    tenant, shares = sys.argv[1], [float(x) for x in sys.argv[2].split(",")]
    server = LLMServer(input_tokens=1, output_tokens=1).start()
    b2b_otel.instrument(service_name="llm-quota-stack", instrumentations="openai")
    gpt = openai.OpenAI(base_url=server.openai_url, api_key="sk-stack", max_retries=0)
    with b2b_otel.context(tenant_id=tenant):
        for used in shares:
            # The answer reports `used` of 10,000 tokens (the call itself spends 2).
            server.openai_quota.limit_tokens = 10_000
            server.openai_quota.remaining_tokens = round(10_000 * (1 - used)) + 2
            gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert b2b_otel.shutdown(10)
    server.stop()
    """
)


def _run_app(app: str, home: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", app, *args],
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


@pytest.fixture(scope="module")
def run(stack: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    run_id, tenant = uuid.uuid4().hex, f"tenant-{uuid.uuid4().hex[:8]}"
    _run_app(APP, tmp_path_factory.mktemp("llm-stack"), run_id, tenant)
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
    # Each answered call's span carries its own cost; the failed one none; together the agent's sum.
    answered = [_tags(c) for c in chats if _tags(c).get("gen_ai.usage.input_tokens")]
    assert len(answered) == 2 and all(t["b2b.llm.cost"] > 0 for t in answered)
    assert sum(t["b2b.llm.cost"] for t in answered) == pytest.approx(agent_tags["b2b.llm.cost"])
    (failed,) = [_tags(c) for c in chats if "error.type" in _tags(c)]
    assert "b2b.llm.cost" not in failed


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


def test_prometheus_has_the_tokens_per_tenant(run: dict[str, str]) -> None:
    """``b2b.llm.token.usage`` is ``b2b_llm_token_usage_total`` in Prometheus, per tenant and token type."""
    tenant = run["tenant"]

    def tokens() -> list[dict[str, Any]] | None:
        result = prometheus_query(f'b2b_llm_token_usage_total{{b2b_tenant_id="{tenant}"}}')
        return result if len(result) >= 4 else None

    series = wait_for(tokens, f"b2b_llm_token_usage_total of {tenant} in Prometheus", METRIC_WAIT_S)
    counted = {
        (
            s["metric"]["gen_ai_provider_name"],
            s["metric"]["gen_ai_request_model"],
            s["metric"]["gen_ai_token_type"],
        ): (float(s["value"][1]))
        for s in series
    }
    # One answered call per provider (120 input and 30 output tokens each); the failed call counts nothing.
    assert counted == {
        ("openai", "gpt-4o", "input"): 120,
        ("openai", "gpt-4o", "output"): 30,
        ("anthropic", "claude-sonnet-4-5", "input"): 120,
        ("anthropic", "claude-sonnet-4-5", "output"): 30,
    }


@pytest.fixture(scope="module")
def quota_runs(stack: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tenant whose calls stay at or below 80 % of the quota, then one whose call takes it above."""
    calm, hot = f"calm-{uuid.uuid4().hex[:8]}", f"hot-{uuid.uuid4().hex[:8]}"
    _run_app(QUOTA_APP, tmp_path_factory.mktemp("llm-quota-calm"), calm, "0.3,0.79,0.8,0.8")
    _run_app(QUOTA_APP, tmp_path_factory.mktemp("llm-quota-hot"), hot, "0.5,0.86,0.9")
    return {"calm": calm, "hot": hot}


def _quota_alerts() -> list[dict[str, Any]]:
    alerts = get_json(f"{ALERTMANAGER_API}/alerts")
    return [a for a in alerts if a["labels"].get("b2b_rule_id") == "external.llm.quota"]


def test_the_quota_record_reaches_alertmanager_with_its_tenant_and_not_below_80_percent(
    quota_runs: dict[str, str],
) -> None:
    """SDK record (with the tenant) -> gateway count -> Prometheus -> B2BDerivedRecord -> Alertmanager."""
    hot, calm = quota_runs["hot"], quota_runs["calm"]

    def alert() -> dict[str, Any] | None:
        found = [a for a in _quota_alerts() if a["labels"].get("tenant") == hot]
        return found[0] if found else None

    found = wait_for(alert, f"the external.llm.quota alert of {hot} in Alertmanager", METRIC_WAIT_S)
    labels = found["labels"]
    assert labels["alertname"] == "B2BDerivedRecord"
    assert labels["b2b_tenant_id"] == hot
    assert labels["severity"] == "info" and labels["tier"] == "operations"
    # The counter behind it: one record (0.86 entered the breaching state; 0.9 stayed in it).
    (series,) = prometheus_query(
        f'b2b_collector_derived_records_total{{b2b_rule_id="external.llm.quota", b2b_tenant_id="{hot}"}}'
    )
    assert float(series["value"][1]) == 1
    # The calm tenant's process ran first and never went above 80 %: no record, no alert.
    assert prometheus_query(f'b2b_collector_derived_records_total{{b2b_tenant_id="{calm}"}}') == []
    assert [a for a in _quota_alerts() if a["labels"].get("tenant") == calm] == []

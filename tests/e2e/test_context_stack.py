"""The tenant through the real stack: every span of a tenant's trace in Jaeger carries it, and the
Python layer's alert reaches the stack's Alertmanager with the ``tenant`` label.

The application runs as its own process, exporting OTLP/HTTP to the collector, which tail-samples
and forwards to Jaeger; a security fact in the trace makes the gateway keep it.
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

from tests.e2e.stack_client import ALERTMANAGER_API, OTLP_HTTP, REPO, get_json, jaeger_traces, wait_for

pytestmark = pytest.mark.e2e

SERVICE = "context-e2e"
TRACE_WAIT_S = 60

APP = textwrap.dedent(
    """
    import sys
    import threading

    import b2b_otel

    tenant, run_id = sys.argv[1], sys.argv[2]
    telemetry = b2b_otel.instrument(service_name="context-e2e", instrumentations="none")
    with b2b_otel.context(tenant_id=tenant, user_id="u-" + run_id[:6], session_id="s-" + run_id[:6]):
        with b2b_otel.workflow_span("tenant_case", business_case_id=run_id):
            with b2b_otel.agent_span("pricing_agent", provider="openai"):
                worker = threading.Thread(target=lambda: b2b_otel.tool("price_lookup")(lambda: None)())
                worker.start()
                worker.join()
            b2b_otel.security.access_denied("u-intruder", "case/" + run_id, "delete")
    telemetry.shutdown(15)
    """
)


def tag(span: dict[str, Any], key: str) -> Any:
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)


@pytest.fixture(scope="module")
def tenant_run(stack: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    run_id = uuid.uuid4().hex
    tenant = f"tenant-{run_id[:8]}"
    home = tmp_path_factory.mktemp("context")
    app = home / "app.py"
    app.write_text(APP)
    done = subprocess.run(
        [sys.executable, str(app), tenant, run_id],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "PYTHONPATH": str(REPO),
            "OTEL_EXPORTER_OTLP_ENDPOINT": OTLP_HTTP,
            "B2B_OTEL_LOG_DIR": str(home / "logs"),
            "B2B_OTEL_ALERTMANAGER_URL": ALERTMANAGER_API.removesuffix("/api/v2"),
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return tenant, run_id


def test_every_span_of_the_tenants_trace_in_jaeger_carries_the_tenant(tenant_run: tuple[str, str]) -> None:
    tenant, run_id = tenant_run

    def whole_trace() -> dict[str, Any] | None:
        traces = jaeger_traces(SERVICE, {"b2b.business_case.id": run_id})
        names = {s["operationName"] for s in traces[0]["spans"]} if traces else set()
        wanted = {
            "invoke_workflow tenant_case",
            "invoke_agent pricing_agent",
            "execute_tool price_lookup",
            "access_denied",
            "alert security.access.violation",
        }
        return traces[0] if wanted <= names else None

    trace = wait_for(whole_trace, f"the trace of {tenant} in Jaeger", TRACE_WAIT_S)
    for span in trace["spans"]:
        assert tag(span, "b2b.tenant.id") == tenant, span["operationName"]
    by_name = {s["operationName"]: s for s in trace["spans"]}
    assert tag(by_name["invoke_agent pricing_agent"], "session.id") == f"s-{run_id[:6]}"
    assert tag(by_name["invoke_agent pricing_agent"], "gen_ai.provider.name") == "openai"
    assert tag(by_name["access_denied"], "user.id") == "u-intruder"  # the fact's own user wins
    # the tool ran in another thread, inside the agent span
    tool = by_name["execute_tool price_lookup"]
    parents = [r["spanID"] for r in tool.get("references") or [] if r["refType"] == "CHILD_OF"]
    assert parents == [by_name["invoke_agent pricing_agent"]["spanID"]]


def test_the_alert_reaches_the_stacks_alertmanager_with_the_tenant_label(tenant_run: tuple[str, str]) -> None:
    tenant, _ = tenant_run

    def alert() -> dict[str, Any] | None:
        alerts = get_json(f"{ALERTMANAGER_API}/alerts", {"filter": f'tenant="{tenant}"'})
        return next((a for a in alerts if a["labels"].get("alertname") == "security.access.violation"), None)

    found = wait_for(alert, f"the access violation alert of {tenant} in Alertmanager", 30)
    assert found["labels"]["service"] == SERVICE
    assert found["labels"]["user_id"] == "u-intruder"  # the rule groups by user.id

"""The B2BValue workload through the real stack: PostgreSQL, collector, Jaeger, Prometheus, Alertmanager.

One run of the example application (service ``b2bvalue-demo``, every fault injected, thresholds
lowered so the faults stay fast) is shared by the tests of this module; each test reads one backend.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from examples.b2bvalue.app import PLANTED_NOTE
from examples.b2bvalue.faults import RULE_OF_FAULT
from tests.e2e.stack_client import REPO, get_json, prometheus_query, run_example_workload, wait_for

pytestmark = pytest.mark.e2e

SERVICE = "b2bvalue-demo"
JAEGER = "http://127.0.0.1:16686"
ALERTMANAGER = "http://127.0.0.1:9093"
SECRETS = ("4111111111111111", "Acme-Billing-2024", "c2lnbmF0dXJl", "carol-purple-monkey-43")
assert all(secret in PLANTED_NOTE for secret in SECRETS[:3])


class Run:
    """What one workload run left behind."""

    def __init__(self, started_us: int, log_dir: Path, stack_dir: Path, output: str) -> None:
        self.started_us = started_us
        self.log_dir = log_dir
        self.stack_dir = stack_dir
        self.output = output

    def traces(self) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"service": SERVICE, "start": self.started_us, "limit": 1000})
        data: list[dict[str, Any]] = get_json(f"{JAEGER}/api/traces?{query}", timeout_s=30).get("data") or []
        return data


@pytest.fixture(scope="module")
def run(stack: Path, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    log_dir = tmp_path_factory.mktemp("workload-logs")
    started_us = int(time.time() * 1e6)
    done = run_example_workload(SERVICE, log_dir, pg_url, 8, B2B_OTEL_AUDIT_KEY="e2e-audit-key")
    return Run(started_us, log_dir, stack, done.stdout + done.stderr)


def _children(trace: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    children: dict[str, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        for ref in span.get("references", []):
            if ref["refType"] == "CHILD_OF":
                children.setdefault(ref["spanID"], []).append(span)
    return children


def _real_children(children: dict[str, list[dict[str, Any]]], span: dict[str, Any]) -> list[dict[str, Any]]:
    """The span's children except alert marker spans."""
    return [c for c in children.get(span["spanID"], []) if not c["operationName"].startswith("alert ")]


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def _business_case_trace(run: Run) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        for trace in run.traces():
            names = {s["operationName"] for s in trace["spans"]}
            if (
                "invoke_workflow build_business_case" in names
                and "execute_step narrative_generation" in names
            ):
                return trace
        return None

    return wait_for(probe, "a complete business-case trace of b2bvalue-demo in Jaeger", timeout_s=60)


def test_jaeger_has_the_service_with_the_whole_nested_span_tree(run: Run) -> None:
    trace = _business_case_trace(run)  # waits out the gateway's tail-sampling decision time
    assert SERVICE in get_json(f"{JAEGER}/api/services")["data"]
    children = _children(trace)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        by_name.setdefault(span["operationName"], []).append(span)

    (workflow,) = by_name["invoke_workflow build_business_case"]
    workflow_tags = _tags(workflow)
    assert workflow_tags["gen_ai.operation.name"] == "invoke_workflow"
    case_id = workflow_tags["b2b.business_case.id"]
    steps = [s for s in children[workflow["spanID"]] if s["operationName"].startswith("execute_step ")]
    assert [_tags(s)["b2b.workflow.step.index"] for s in sorted(steps, key=lambda s: s["startTime"])] == [
        1,
        2,
        3,
        4,
    ]
    for step in steps:
        assert _tags(step)["gen_ai.workflow.name"] == "build_business_case"
        assert _tags(step)["b2b.business_case.id"] == case_id
        (agent,) = [s for s in children[step["spanID"]] if s["operationName"].startswith("invoke_agent ")]
        assert _tags(agent)["gen_ai.operation.name"] == "invoke_agent"
        assert _tags(agent)["b2b.business_case.id"] == case_id

    # agent -> memory -> psycopg, and agent -> tool -> httpx
    memory = [s for s in trace["spans"] if s["operationName"] == "create_memory episodic"]
    assert memory and all(_tags(m)["b2b.memory.tier"] == "episodic" for m in memory)
    sql = [c for m in memory for c in _real_children(children, m)]
    assert sql and all(_tags(s).get("db.system.name") == "postgresql" for s in sql), [
        (s["operationName"], _tags(s)) for s in sql
    ]
    tools = [s for s in trace["spans"] if s["operationName"].startswith("execute_tool crm_")]
    http = [c for t in tools for c in _real_children(children, t)]
    assert http and all(_tags(h).get("http.request.method") == "GET" for h in http)
    assert all(_tags(h)["span.kind"] == "client" for h in http + sql)


@pytest.mark.parametrize("fault", sorted(RULE_OF_FAULT))
def test_each_injected_fault_shows_up_in_jaeger_collector_files_and_alertmanager(
    run: Run, fault: str
) -> None:
    rule = RULE_OF_FAULT[fault]

    def marker() -> bool | None:
        names = {s["operationName"] for t in run.traces() for s in t["spans"]}
        return True if f"alert {rule}" in names else None

    wait_for(marker, f"marker span 'alert {rule}' in Jaeger", timeout_s=60)

    def collector_record() -> bool | None:
        for name in ("derived.jsonl", "security.jsonl"):
            path = run.stack_dir / name
            if path.exists() and f'"stringValue":"{rule}"' in path.read_text().replace(" ", ""):
                return True
        return None

    wait_for(collector_record, f"a derived log record for {rule} in the collector's files", timeout_s=30)

    def alert() -> bool | None:
        alerts = get_json(f"{ALERTMANAGER}/api/v2/alerts")
        found = [
            a
            for a in alerts
            if a["labels"].get("alertname") == rule and a["labels"].get("service") == SERVICE
        ]
        return True if found else None

    wait_for(alert, f"alert {rule} in Alertmanager's API", timeout_s=30)


def test_no_injected_secret_appears_in_jaeger_the_collector_files_or_the_local_files(run: Run) -> None:
    _business_case_trace(run)
    query = urllib.parse.urlencode({"service": SERVICE, "start": run.started_us, "limit": 1000})
    jaeger_body = json.dumps(get_json(f"{JAEGER}/api/traces?{query}", timeout_s=30))
    assert "[REDACTED:" in jaeger_body  # the planted note did reach Jaeger, scrubbed
    files = [p for p in run.stack_dir.glob("*.jsonl")] + [p for p in run.log_dir.iterdir() if p.is_file()]
    for secret in SECRETS:
        assert secret not in jaeger_body, f"{secret} in Jaeger's API"
        for path in files:
            assert secret not in path.read_text(errors="replace"), f"{secret} in {path}"


def test_prometheus_has_span_metric_series_for_the_agents(run: Run) -> None:
    query = f'sum by (span_name) (traces_span_metrics_calls_total{{service_name="{SERVICE}"}})'

    def agents() -> list[str] | None:
        names = [r["metric"].get("span_name", "") for r in prometheus_query(query)]
        found = [n for n in names if n.startswith("invoke_agent ")]
        return found if len(found) >= 4 else None

    found = wait_for(agents, "span-metric series of the four agents in Prometheus", timeout_s=90, every_s=2)
    assert "invoke_agent roi_calculator_agent" in found


def test_the_audit_chain_of_the_run_verifies_and_tampering_is_detected(run: Run, tmp_path: Path) -> None:
    audit = run.log_dir / "audit.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "B2B_OTEL_AUDIT_KEY": "e2e-audit-key"}
    command = [sys.executable, "-m", "b2b_otel.cli", "audit", "verify"]
    ok = subprocess.run([*command, str(audit)], env=env, capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: ")

    tampered = tmp_path / "audit.log"
    shutil.copy(audit, tampered)
    lines = tampered.read_text().splitlines()
    record = json.loads(lines[2])
    record["actor_id"] = "someone-else"
    lines[2] = json.dumps(record)
    tampered.write_text("\n".join(lines) + "\n")
    bad = subprocess.run([*command, str(tampered)], env=env, capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1
    assert f"seq {record['seq']}: edited" in bad.stdout

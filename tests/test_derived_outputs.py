"""What a firing produces, field by field: the OTel log record, the marker span, the counter, the file lines.

In-process ``instrument()`` exporting to a real OTLP receiver, with local files in a temporary folder.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import b2b_otel
from b2b_otel import semconv as sc
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver


@pytest.fixture(autouse=True)
def clean_globals(otlp_receiver: OTLPReceiver) -> Iterator[None]:
    # Depends on the receiver so the final flush at teardown still finds it listening.
    reset_otel_globals()
    yield
    reset_otel_globals()


def start(receiver: OTLPReceiver, log_dir: Path, **overrides: Any) -> b2b_otel.Telemetry:
    settings: dict[str, Any] = {"metric_export_interval": "1h", "instrumentations": "none", **overrides}
    return b2b_otel.instrument(
        service_name="derive-test", otlp_endpoint=receiver.http_endpoint, log_dir=str(log_dir), **settings
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def derived_logs(receiver: OTLPReceiver, rule_id: str) -> list[dict[str, Any]]:
    return receiver.wait_for_logs(
        lambda logs: any(r["attributes"].get("b2b.rule.id") == rule_id for r in logs)
    )


def test_latency_firing_outputs(
    otlp_receiver: OTLPReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD", "0.05s")
    telemetry = start(otlp_receiver, tmp_path)

    @b2b_otel.agent("data_integration_agent")
    def slow() -> None:
        time.sleep(0.08)

    slow()
    assert telemetry.force_flush(10)

    logs = derived_logs(otlp_receiver, "agent.execution.slow")
    record = next(r for r in logs if r["attributes"].get("b2b.rule.id") == "agent.execution.slow")
    agent_span = otlp_receiver.wait_for_span("invoke_agent data_integration_agent")
    assert record["event_name"] == "b2b.sla.breach"
    assert record["severity_number"] == 13
    assert record["severity_text"] == "WARNING"
    assert (record["trace_id"], record["span_id"]) == (agent_span["trace_id"], agent_span["span_id"])
    attributes = record["attributes"]
    observed = attributes.pop("b2b.observed.value")
    assert 0.08 <= observed < 5
    assert attributes == {
        "b2b.rule.id": "agent.execution.slow",
        "b2b.alert.severity": "warning",
        "b2b.alert.tier": "operations",
        "b2b.alert.respond_within_s": 3600,
        "b2b.threshold.value": 0.05,
        "b2b.scope": "process",
        "gen_ai.agent.name": "data_integration_agent",
    }
    assert record["body"].startswith("data_integration_agent exceeded 0.05s threshold (")
    assert record["resource"]["b2b.derived"] is True

    marker = otlp_receiver.wait_for_span("alert agent.execution.slow")
    assert marker["trace_id"] == agent_span["trace_id"]
    assert marker["parent_span_id"] == agent_span["span_id"]
    assert marker["attributes"]["b2b.rule.id"] == "agent.execution.slow"

    telemetry.shutdown(10)  # the final metric export carries the counter
    points = otlp_receiver.wait_for_metrics(lambda m: any(p["name"] == "b2b.alerts" for p in m))
    alerts = [p for p in points if p["name"] == "b2b.alerts"]
    assert alerts[-1]["value"] == 1
    assert alerts[-1]["attributes"] == {
        "b2b.rule.id": "agent.execution.slow",
        "b2b.alert.severity": "warning",
    }

    performance = lines(tmp_path / "performance.log")
    events = [line["event"] for line in performance]
    assert events == ["AGENT_SLOW", "AGENT_EXECUTION"] or events == ["AGENT_EXECUTION", "AGENT_SLOW"]
    slow_line = next(line for line in performance if line["event"] == "AGENT_SLOW")
    assert slow_line["level"] == "WARNING"
    assert slow_line["trace_id"] == agent_span["trace_id"]
    assert slow_line["attributes"]["b2b.rule.id"] == "agent.execution.slow"
    assert not (tmp_path / "critical.log").exists()
    assert not (tmp_path / "security.log").exists()


SEED_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR|CRITICAL) [A-Z_]+: .+$")


def test_text_format_follows_the_seed_and_its_runbook_commands_work(
    otlp_receiver: OTLPReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD", "0.05s")
    telemetry = start(otlp_receiver, tmp_path, log_format="text")

    @b2b_otel.agent("narrative_generator_agent")
    def run(delay: float, fail: bool = False) -> None:
        time.sleep(delay)
        if fail:
            raise ValueError("bad narrative")

    run(0.06)
    run(0.0)
    with pytest.raises(ValueError):
        run(0.0, fail=True)
    assert telemetry.force_flush(10)
    text = (tmp_path / "performance.log").read_text().splitlines()
    assert all(SEED_LINE.match(line) for line in text), text
    assert any(
        re.search(
            r" WARNING AGENT_SLOW: narrative_generator_agent exceeded 0\.05s threshold \(0\.0\d+s\)$", t
        )
        for t in text
    )
    assert any(
        line.endswith("ERROR AGENT_FAILURE: narrative_generator_agent failed: ValueError") for line in text
    )
    # The seed's runbook: grep "AGENT_EXECUTION" logs/performance.log | awk '{print $NF}' | sort -n
    runbook = subprocess.run(
        f"grep AGENT_EXECUTION {tmp_path}/performance.log | awk '{{print $NF}}' | sort -n",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    durations = runbook.stdout.split()
    assert len(durations) == 3 and all(re.fullmatch(r"\d+(\.\d+)?(e-\d+)?s", d) for d in durations), durations


def test_ratio_firing_outputs(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = start(otlp_receiver, tmp_path)

    @b2b_otel.agent("roi_calculator_agent")
    def run(fail: bool) -> None:
        if fail:
            raise RuntimeError("model timeout")

    for index in range(21):
        try:
            run(fail=index in (3, 17))
        except RuntimeError:
            pass
    assert telemetry.force_flush(10)
    logs = derived_logs(otlp_receiver, "agent.success_rate.low")
    fired = [r for r in logs if r["attributes"].get("b2b.rule.id") == "agent.success_rate.low"]
    assert len(fired) == 1  # once per window and group
    attributes = fired[0]["attributes"]
    assert attributes["b2b.observed.value"] == pytest.approx(18 / 20)  # judged as soon as 20 samples exist
    assert attributes["b2b.threshold.value"] == 0.95
    assert attributes["gen_ai.agent.name"] == "roi_calculator_agent"
    assert fired[0]["event_name"] == "b2b.sla.breach"
    assert otlp_receiver.wait_for_span("alert agent.success_rate.low")
    performance = lines(tmp_path / "performance.log")
    assert [line["event"] for line in performance].count("AGENT_SUCCESS_RATE_LOW") == 1


def test_count_firing_outputs_for_a_security_rule(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    for _ in range(6):
        b2b_otel.security.login("u-9", "203.0.113.50", success=False)
    assert telemetry.force_flush(10)
    logs = derived_logs(otlp_receiver, "security.login.bruteforce")
    fired = [r for r in logs if r["attributes"].get("b2b.rule.id") == "security.login.bruteforce"]
    assert len(fired) == 1
    record = fired[0]
    assert record["event_name"] == "b2b.security.event"
    assert record["severity_number"] == 21
    assert record["attributes"] == {
        "b2b.rule.id": "security.login.bruteforce",
        "b2b.alert.severity": "critical",
        "b2b.alert.tier": "security",
        "b2b.alert.respond_within_s": 300,
        "b2b.observed.value": 5.0,
        "b2b.threshold.value": 5.0,
        "b2b.scope": "process",
        "client.address": "203.0.113.50",
        "event.category": sc.RULES["security.login.bruteforce"].security.event_category,  # type: ignore[union-attr]
        "event.type": sc.RULES["security.login.bruteforce"].security.event_type,  # type: ignore[union-attr]
        "event.outcome": sc.RULES["security.login.bruteforce"].security.event_outcome,  # type: ignore[union-attr]
        "ocsf.class_uid": 3002,
        "ocsf.activity_id": 1,
    }
    login_spans = [s for s in otlp_receiver.wait_for_spans() if s["name"] == "login"]
    assert record["span_id"] in {s["span_id"] for s in login_spans}  # the fifth failed login
    critical = lines(tmp_path / "critical.log")
    security = lines(tmp_path / "security.log")
    assert [line["event"] for line in critical] == ["SECURITY_LOGIN_BRUTEFORCE"]
    assert [line["event"] for line in security] == ["SECURITY_LOGIN_BRUTEFORCE"]
    assert security[0]["attributes"]["client.address"] == "203.0.113.50"
    assert not lines(tmp_path / "performance.log")


def test_event_firing_outputs(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    with b2b_otel.agent_span("reviewer"):
        b2b_otel.security.access_denied("u-3", "business_case/9", "delete", client_address="198.51.100.7")
    assert telemetry.force_flush(10)
    logs = derived_logs(otlp_receiver, "security.access.violation")
    record = next(r for r in logs if r["attributes"].get("b2b.rule.id") == "security.access.violation")
    assert record["severity_number"] == 13
    assert record["attributes"]["user.id"] == "u-3"
    assert record["attributes"]["ocsf.class_uid"] == 6004
    denied = otlp_receiver.wait_for_span("access_denied")
    marker = otlp_receiver.wait_for_span("alert security.access.violation")
    assert marker["parent_span_id"] == denied["span_id"]
    assert [line["event"] for line in lines(tmp_path / "security.log")] == ["SECURITY_ACCESS_VIOLATION"]
    assert not (tmp_path / "critical.log").exists()


def test_audit_records_from_calls_privilege_changes_and_workflows_verify(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = start(otlp_receiver, tmp_path, audit_key="k3y-for-test")
    with b2b_otel.workflow_span("build_business_case", business_case_id="case-1"):
        b2b_otel.audit("business_case.approved", actor_id="u-7", target="case-1", amount=120000)
    b2b_otel.security.privilege_change("admin-1", "u-2", granted=["admin"])
    assert telemetry.force_flush(10)
    records = lines(tmp_path / "audit.log")
    assert [r["action"] for r in records] == [
        "business_case.approved",
        "workflow.completed",
        "privilege_change",
    ]
    # An HMAC log's first record says so (docs/audit.md, the mode marker), beside the application's details.
    assert records[0]["details"] == {
        "b2b.audit.mode": "hmac",
        "b2b.audit.key_id": records[0]["details"]["b2b.audit.key_id"],
        "b2b.audit.log_id": records[0]["details"]["b2b.audit.log_id"],
        "amount": 120000,
    }
    assert records[1]["target"] == "case-1"
    assert records[2]["details"]["granted"] == ["admin"]
    assert [r["seq"] for r in records] == [1, 2, 3]
    audit_span = otlp_receiver.wait_for_span("audit business_case.approved")
    assert records[0]["trace_id"] == audit_span["trace_id"]
    logs = otlp_receiver.wait_for_logs(
        lambda items: sum(r["event_name"] == "b2b.audit.record" for r in items) >= 3
    )
    audit_logs = [r for r in logs if r["event_name"] == "b2b.audit.record"]
    assert {r["attributes"]["b2b.audit.action"] for r in audit_logs} == {
        "business_case.approved",
        "workflow.completed",
        "privilege_change",
    }
    verify = subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "audit", "verify", str(tmp_path / "audit.log")],
        env={"B2B_OTEL_AUDIT_KEY": "k3y-for-test", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "k3y-for-test" not in verify.stdout + verify.stderr


def test_audit_raises_when_the_record_cannot_be_made_durable(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    start(otlp_receiver, tmp_path)
    (tmp_path / "audit.log").mkdir()  # the audit file path is taken by a folder: nothing can be written
    with pytest.raises(b2b_otel.AuditError):
        b2b_otel.audit("invoice.paid", actor_id="u-1", target="inv-1")


def test_a_failing_sink_never_reaches_the_application(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    (tmp_path / "security.log").mkdir()  # the security file cannot be opened
    for _ in range(3):
        b2b_otel.security.access_denied("u-3", "doc", "read")
    assert telemetry.force_flush(10)
    # Three access violations, and the third makes access unusual (>= 3 per user in 10 min).
    assert telemetry.health()["rules"]["firings"] == 4
    # The log records still went out even though the file sink failed.
    logs = derived_logs(otlp_receiver, "security.access.violation")
    assert sum(r["attributes"].get("b2b.rule.id") == "security.access.violation" for r in logs) >= 3


def test_rules_see_spans_the_trace_sampler_dropped(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = start(otlp_receiver, tmp_path, traces_sampler="always_off")
    b2b_otel.security.privilege_change("admin", "u-5", granted=["admin"])
    with b2b_otel.agent_span("unsampled_agent"):
        pass
    assert telemetry.force_flush(10)
    logs = derived_logs(otlp_receiver, "security.privilege.escalation")
    assert any(r["attributes"].get("user.id") == "u-5" for r in logs)
    # The dropped spans were judged but not exported; the alert marker is always exported.
    names = {s["name"] for s in otlp_receiver.spans()}
    assert "privilege_change" not in names and "invoke_agent unsampled_agent" not in names
    assert "alert security.privilege.escalation" in names
    assert "AGENT_EXECUTION" in (tmp_path / "performance.log").read_text()


def test_an_application_span_named_like_an_alert_is_sampled_like_any_other(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = start(otlp_receiver, tmp_path, traces_sampler="always_off")
    tracer = trace.get_tracer("the.application")
    with tracer.start_as_current_span("alert the on-call team"):
        pass
    b2b_otel.security.access_denied("u-9", "doc", "read")
    assert telemetry.force_flush(10)
    names = {s["name"] for s in otlp_receiver.spans()}
    # Only what b2b-otel itself produced (its derived scope) bypasses the user's sampler.
    assert "alert security.access.violation" in names
    assert "alert the on-call team" not in names


def test_group_eviction_is_counted_as_dropped(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = start(otlp_receiver, tmp_path, rules_max_groups=2)
    for index in range(5):
        b2b_otel.security.login("u", f"192.0.2.{index}", success=False)
    assert telemetry.force_flush(10)
    telemetry.shutdown(10)
    points = otlp_receiver.wait_for_metrics(lambda m: any(p["name"] == "b2b.telemetry.dropped" for p in m))
    evicted = [
        p["value"]
        for p in points
        if p["name"] == "b2b.telemetry.dropped"
        and p["attributes"] == {"signal": "rules", "reason": "window_evicted"}
    ]
    assert evicted and evicted[-1] == 3


def test_reported_queue_depth_fires_the_gauge_rule(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    b2b_otel.set_queue_depth("narrative_generator_agent", 4)
    b2b_otel.set_queue_depth("narrative_generator_agent", 11)
    b2b_otel.set_queue_depth("narrative_generator_agent", 12)  # still breaching: no second firing
    assert telemetry.force_flush(10)
    performance = lines(tmp_path / "performance.log")
    assert [line["event"] for line in performance] == ["AGENT_QUEUE_DEPTH"]
    assert performance[0]["level"] == "INFO"
    assert performance[0]["attributes"]["gen_ai.agent.name"] == "narrative_generator_agent"
    assert performance[0]["attributes"]["b2b.observed.value"] == 11.0


def test_exhausted_connection_pool_fires_the_pool_rule(
    otlp_receiver: OTLPReceiver, tmp_path: Path, pg_url: str
) -> None:
    from psycopg_pool import ConnectionPool

    telemetry = start(otlp_receiver, tmp_path, metric_export_interval="1s")
    with ConnectionPool(pg_url, min_size=2, max_size=2, name="episodic-test", open=True) as pool:
        pool.wait(timeout=10)
        b2b_otel.register_pool(pool)
        with pool.connection(), pool.connection():  # 2 of 2 in use: 100 % > 90 %
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (tmp_path / "critical.log").exists():
                time.sleep(0.2)
    assert telemetry.force_flush(10)
    critical = lines(tmp_path / "critical.log")
    assert [line["event"] for line in critical] == ["DB_POOL_EXHAUSTION"]
    assert critical[0]["attributes"]["db.client.connection.pool.name"] == "episodic-test"
    assert critical[0]["attributes"]["b2b.observed.value"] == 1.0


def test_shutdown_alone_exports_the_last_firings_and_their_count(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    b2b_otel.security.privilege_change("admin", "u-8", granted=["admin"])
    assert telemetry.shutdown(10)  # no force_flush first: shutdown judges, then exports everything
    logs = derived_logs(otlp_receiver, "security.privilege.escalation")
    assert any(r["attributes"].get("user.id") == "u-8" for r in logs)
    points = otlp_receiver.wait_for_metrics(lambda m: any(p["name"] == "b2b.alerts" for p in m))
    assert [p["value"] for p in points if p["name"] == "b2b.alerts"][-1] == 1

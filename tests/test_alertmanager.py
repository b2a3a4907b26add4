"""Critical and warning firings reach a real Alertmanager with the right labels; a dead one costs nothing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

import b2b_otel
from tests.support.alertmanager import Alertmanager
from tests.support.otel_globals import reset_otel_globals


@pytest.fixture(autouse=True)
def clean_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


QUIET = {
    "traces_exporter": "none",
    "metrics_exporter": "none",
    "logs_exporter": "none",
    "instrumentations": "none",
}


def test_firings_reach_alertmanager_with_rule_severity_tier_service_and_group_labels(
    alertmanager: Alertmanager, tmp_path: object
) -> None:
    telemetry = b2b_otel.instrument(
        service_name="b2bvalue-demo", alertmanager_url=alertmanager.url, log_dir="none", **QUIET
    )
    for _ in range(5):
        b2b_otel.security.login("u-1", "203.0.113.77", success=False)  # critical: bruteforce
    b2b_otel.security.access_denied("u-2", "case/1", "delete")  # warning: access violation
    b2b_otel.security.privilege_change("admin", "u-3", granted=["admin"])  # critical: escalation
    with b2b_otel.workflow_span("wf"), b2b_otel.workflow_step("data_integration", 1) as step:
        step.set_attribute("b2b.data_quality.score", 0.5)  # info: never pushed
    assert telemetry.force_flush(15)

    alerts = alertmanager.wait_for_alerts(3)
    by_name = {a["labels"]["alertname"]: a for a in alerts}
    assert set(by_name) == {
        "security.login.bruteforce",
        "security.access.violation",
        "security.privilege.escalation",
    }
    brute = by_name["security.login.bruteforce"]
    assert brute["labels"] == {
        "alertname": "security.login.bruteforce",
        "severity": "critical",
        "tier": "security",
        "service": "b2bvalue-demo",
        "scope": "process",
        "client_address": "203.0.113.77",
    }
    annotations = brute["annotations"]
    assert annotations["observed_value"] == "5.0"
    assert annotations["threshold_value"] == "5.0"
    assert annotations["trace"].startswith("http://localhost:16686/trace/")
    assert by_name["security.access.violation"]["labels"]["severity"] == "warning"
    assert by_name["security.privilege.escalation"]["labels"]["user_id"] == "u-3"


def test_a_dead_alertmanager_never_blocks_or_raises() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    telemetry = b2b_otel.instrument(alertmanager_url=f"http://127.0.0.1:{port}", log_dir="none", **QUIET)
    started = time.monotonic()
    for _ in range(50):
        b2b_otel.security.access_denied("u", "r", "read")
    assert time.monotonic() - started < 5  # the application thread only enqueued
    telemetry.force_flush(1)
    assert telemetry.shutdown(5)

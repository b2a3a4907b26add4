"""Spans sent through the gateway: kept by tail sampling, stored in Jaeger, counted in Prometheus,
and scrubbed on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_client import (
    JAEGER_API,
    OTLP_HTTP,
    REPO,
    get_json,
    jaeger_traces,
    otlp_root_span,
    otlp_traces,
    post_json,
    prometheus_query,
    wait_for,
)

pytestmark = pytest.mark.e2e

# Tail sampling decides 2 s after a trace's root arrived; then batch and Jaeger's own batch.
TRACE_WAIT_S = 60
# spanmetrics flushes every 10 s, Prometheus scrapes every 5 s.
METRIC_WAIT_S = 90


LOGIN_CALLS = 'sum(traces_span_metrics_calls_total{service_name="stack-smoke", span_name="login"})'


def login_calls() -> float:
    """How many login spans of stack-smoke the gateway has counted (Prometheus keeps earlier runs)."""
    result = prometheus_query(LOGIN_CALLS)
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def login_calls_before(stack: Path) -> float:
    return login_calls()


@pytest.fixture(scope="module")
def smoke_trace(
    stack: Path, login_calls_before: float, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run the smoke application once; its trace as Jaeger returns it."""
    run_id = uuid.uuid4().hex
    env_dir = tmp_path_factory.mktemp("smoke")
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.smoke_app", run_id],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        # A clean environment: no OTEL_* or B2B_OTEL_* of the test process leaks into the app.
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(env_dir),
            "B2B_OTEL_LOG_DIR": str(env_dir / "logs"),
            "B2B_OTEL_INSTRUMENTATIONS": "none",
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr

    def complete_trace() -> dict[str, Any] | None:
        traces = jaeger_traces("stack-smoke", {"smoke.run_id": run_id})
        # Spans may reach Jaeger in more than one batch: wait for all four.
        return traces[0] if traces and len(traces[0]["spans"]) >= 4 else None

    return wait_for(complete_trace, f"the smoke trace (run {run_id}) in Jaeger", TRACE_WAIT_S)


def tag(span: dict[str, Any], key: str) -> Any:
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)


def test_smoke_trace_reaches_jaeger_with_its_parent_child_shape(smoke_trace: dict[str, Any]) -> None:
    spans = smoke_trace["spans"]
    name_of = {s["spanID"]: s["operationName"] for s in spans}
    parent_of = {}
    for span in spans:
        parents = [r["spanID"] for r in span.get("references") or [] if r["refType"] == "CHILD_OF"]
        parent_of[span["operationName"]] = name_of.get(parents[0]) if parents else None
    assert parent_of == {
        "smoke request": None,
        "login": "smoke request",
        "smoke step": "smoke request",
        "smoke failing call": "smoke step",
    }


def test_smoke_trace_keeps_the_security_action_and_the_error_status(smoke_trace: dict[str, Any]) -> None:
    by_name = {s["operationName"]: s for s in smoke_trace["spans"]}
    assert tag(by_name["login"], "b2b.security.action") == "login"
    assert tag(by_name["smoke failing call"], "error") is True
    assert tag(by_name["smoke request"], "error") is None


def test_jaeger_holds_no_spans_of_its_own(smoke_trace: dict[str, Any]) -> None:
    services = get_json(f"{JAEGER_API}/services")["data"] or []
    assert "stack-smoke" in services
    assert "jaeger" not in services


def test_span_metrics_of_the_smoke_service_reach_prometheus(
    smoke_trace: dict[str, Any], login_calls_before: float
) -> None:
    # This run's login span is counted: the total grows past what earlier runs left in Prometheus.
    wait_for(
        lambda: login_calls() > login_calls_before or None,
        f"{LOGIN_CALLS} to grow past {login_calls_before:g}",
        METRIC_WAIT_S,
        2.0,
    )
    query = 'traces_span_metrics_calls_total{service_name="stack-smoke"}'
    series = wait_for(lambda: prometheus_query(query) or None, f"{query} in Prometheus", METRIC_WAIT_S, 2.0)
    span_names = {s["metric"].get("span_name") for s in series}
    assert {"smoke request", "login", "smoke step", "smoke failing call"} <= span_names
    login = next(s for s in series if s["metric"].get("span_name") == "login")
    assert login["metric"].get("b2b_security_action") == "login"


def test_gateway_masks_a_card_number_that_a_sender_did_not_scrub(stack: Path) -> None:
    # Straight OTLP/JSON, not the SDK: the SDK would scrub the number itself before export.
    run_id = uuid.uuid4().hex
    card = "4111111111111111"
    # An error: tail sampling keeps the trace whatever the sampling percentage.
    span = otlp_root_span(
        "charge card",
        {"e2e.run_id": run_id, "payment.card": card, "payment.note": f"paid with {card} today"},
        error=True,
    )
    body = otlp_traces("stack-redaction", [span])
    assert post_json(f"{OTLP_HTTP}/v1/traces", body) == 200

    traces = wait_for(
        lambda: jaeger_traces("stack-redaction", {"e2e.run_id": run_id}) or None,
        "the redaction test's trace in Jaeger",
        TRACE_WAIT_S,
    )
    assert card not in json.dumps(traces)
    stored = traces[0]["spans"][0]
    assert tag(stored, "payment.card") == "****"
    assert tag(stored, "payment.note") == "paid with **** today"

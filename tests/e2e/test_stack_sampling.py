"""Tail sampling in the gateway: every trace worth looking at is kept, the ordinary ones only in part."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_client import OTLP_HTTP, jaeger_traces, otlp_root_span, otlp_traces, post_json, wait_for

pytestmark = pytest.mark.e2e

SERVICE = "stack-sampling"
# Enough traces that a policy which did not match would be caught: each survives the 25 % share
# with probability 1/4, all of them with 4^-8.
TRACES_PER_CASE = 8
ORDINARY_TRACES = 40
TRACE_WAIT_S = 60


def kept_traces(run_id: str, kind: str) -> int:
    return len(jaeger_traces(SERVICE, {"e2e.run_id": run_id, "e2e.kind": kind}, limit=100))


@pytest.mark.parametrize(
    ("kind", "name", "extra", "duration_s", "error"),
    [
        ("error", "ordinary work", {}, 0.01, True),
        ("alert-marker", "alert agent.execution.slow", {}, 0.0, False),
        ("security-action", "login", {"b2b.security.action": "login"}, 0.01, False),
        ("slow-span", "ordinary work", {}, 3.5, False),
    ],
)
def test_tail_sampling_keeps_every_trace_with(
    stack: Path, kind: str, name: str, extra: dict[str, str], duration_s: float, error: bool
) -> None:
    run_id = uuid.uuid4().hex
    marker = {"e2e.run_id": run_id, "e2e.kind": kind, **extra}
    spans = [otlp_root_span(name, marker, duration_s, error) for _ in range(TRACES_PER_CASE)]
    assert post_json(f"{OTLP_HTTP}/v1/traces", otlp_traces(SERVICE, spans)) == 200
    wait_for(
        lambda: kept_traces(run_id, kind) == TRACES_PER_CASE or None,
        f"all {TRACES_PER_CASE} {kind} traces in Jaeger (found {kept_traces(run_id, kind)})",
        TRACE_WAIT_S,
    )


def test_tail_sampling_keeps_only_a_share_of_ordinary_traces(stack: Path) -> None:
    run_id = uuid.uuid4().hex
    ordinary: list[dict[str, Any]] = [
        otlp_root_span("ordinary work", {"e2e.run_id": run_id, "e2e.kind": "ordinary"})
        for _ in range(ORDINARY_TRACES)
    ]
    # An error trace sent after them: once it is in Jaeger, the ordinary ones have been judged too.
    control = otlp_root_span("ordinary work", {"e2e.run_id": run_id, "e2e.kind": "control"}, error=True)
    assert post_json(f"{OTLP_HTTP}/v1/traces", otlp_traces(SERVICE, ordinary)) == 200
    assert post_json(f"{OTLP_HTTP}/v1/traces", otlp_traces(SERVICE, [control])) == 200
    wait_for(lambda: kept_traces(run_id, "control") or None, "the control trace in Jaeger", TRACE_WAIT_S)
    time.sleep(3)  # the exporters' batches of the same second
    kept = kept_traces(run_id, "ordinary")
    # 25 % of 40 by default: 0 or 40 would each happen by chance less than once in 10^5 runs.
    assert 0 < kept < ORDINARY_TRACES, f"{kept} of {ORDINARY_TRACES} ordinary traces kept"

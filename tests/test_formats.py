"""How durations, values and diagnostics are written where people and runbooks read them."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from b2b_otel._internal import selflog
from b2b_otel._internal.formats import fmt_seconds, json_safe
from b2b_otel.derive.sink import AgentExecution
from b2b_otel.sinks.files import PERFORMANCE, LocalFiles


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(4.1, "4.1s"), (300.0, "300s"), (3.0, "3s"), (0.0, "0s"), (0.25, "0.25s"), (7.19e-05, "0.0000719s")],
)
def test_durations_are_written_in_fixed_point(seconds: float, written: str) -> None:
    assert fmt_seconds(seconds) == written


def test_the_runbook_pipeline_sorts_agent_executions_by_duration(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path, "text")
    for seconds in (0.5, 7.19e-05, 12.0, 0.003):
        files.agent_execution(AgentExecution("data_integration_agent", seconds, None, 1_750_000_000.0, 0, 0))
    files.close()
    # The seed's runbook: grep AGENT_EXECUTION logs/performance.log | awk '{print $NF}' | sort -n
    out = subprocess.run(
        f"grep AGENT_EXECUTION {tmp_path / PERFORMANCE} | awk '{{print $NF}}' | sort -n",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["0.0000719s", "0.003s", "0.5s", "12s"]


def test_non_finite_numbers_reach_the_json_files_as_strings(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path, "json")
    files.agent_execution(AgentExecution("agent", math.inf, None, 1_750_000_000.0, 0, 0))
    files.close()
    line = (tmp_path / PERFORMANCE).read_text().splitlines()[0]
    assert "Infinity" not in line
    assert json.loads(line)["duration_s"] == "inf"  # strict JSON, the value kept readable


def test_json_safe_turns_what_json_cannot_hold_into_strings() -> None:
    assert json_safe({"a": math.nan, "b": [math.inf, 1, "x"], "c": object}) == {
        "a": "nan",
        "b": ["inf", 1, "x"],
        "c": str(object),
    }


def test_the_self_log_rate_limiter_stays_bounded_under_distinct_keys() -> None:
    selflog.reset()
    for i in range(10_000):
        selflog.warn_once_a_minute(f"memory-tier-{i}", "b2b_otel: test %s", i)
    assert len(selflog._last) <= selflog._MAX_KEYS
    selflog.reset()

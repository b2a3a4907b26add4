"""The benchmark harness keeps working (issue 11): each scenario once at a tiny size, and its JSON.

``make bench`` is not part of ``make test``; these tests run ``python -m benchmarks --tiny`` and check
the shape of ``results.json`` and what each scenario checks besides time (every span arrived, the
secrets were found, the attacker was caught, the audit chain verifies, the import check ran). They
never assert a timing: these machines are noisy, and a timed test would flake or prove nothing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALL = ("hot_path", "export_path", "startup", "memory", "sustained", "audit")
WITHOUT_STACK = ("hot_path", "export_path", "startup", "memory", "audit")


def _bench(tmp_path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--only", ",".join(names), "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "verdict" in done.stdout  # the table was printed
    document = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_shape(entry: dict[str, Any], name: str) -> None:
    assert entry["scenario"] == name
    assert isinstance(entry["title"], str) and entry["title"]
    assert _number(entry["ratio"]), f"{name}: ratio {entry['ratio']!r} is not a finite number"
    assert _number(entry["value"]), f"{name}: value {entry['value']!r} is not a finite number"
    target = entry["target"]
    if target is None:
        assert entry["met"] is None
    else:
        assert set(target) == {"metric", "limit", "comparison"}
        assert _number(target["limit"]) and target["comparison"] in ("<=", ">=")
        assert isinstance(entry["met"], bool)
    assert entry["rows"], f"{name}: no rows"
    for item in entry["rows"]:
        assert set(item) == {"case", "value", "unit", "ratio"}
        assert isinstance(item["case"], str) and isinstance(item["unit"], str)
        assert _number(item["value"]), item
        assert item["ratio"] is None or _number(item["ratio"]), item
    assert isinstance(entry["details"], dict)


def test_the_registry_names_every_scenario_of_the_issue() -> None:
    from benchmarks.run import SCENARIOS

    assert tuple(SCENARIOS) == ALL
    assert set(WITHOUT_STACK) | {"sustained"} == set(ALL)


def test_every_scenario_but_sustained_runs_tiny_and_writes_its_json(tmp_path: Path) -> None:
    document = _bench(tmp_path, WITHOUT_STACK)
    assert document["size"] == "tiny"
    assert set(document["machine"]) >= {"time", "python", "cpus", "load_average"}
    assert tuple(document["scenarios"]) == WITHOUT_STACK
    for name, entry in document["scenarios"].items():
        _check_shape(entry, name)
    s = document["scenarios"]

    hot = s["hot_path"]["details"]
    assert hot["spans_received"] >= hot["spans_sent"] > 0  # every span of both cases reached the receiver
    assert set(hot["ratios"]) == {"b2b", "b2b_no_rules", "b2b_wall", "b2b_cpu_thread", "cpu_thread_progress"}
    assert all(_number(v) for v in hot["ratios"].values())

    export = s["export_path"]["details"]
    assert export["batch"] == 512
    assert export["findings_per_batch"] > 0 and export["secrets_caught"]

    checks = s["startup"]["details"]["checks"]
    assert checks["bytecode_compiled_first"] is True
    assert _number(s["startup"]["details"]["ratio_same_features"])
    assert set(checks) >= {
        "not_imported_by_instrument",
        "httpx_imported_after_instrument_is_instrumented",
        "httpx_imported_before_instrument_is_instrumented",
    }
    assert checks["httpx_imported_before_instrument_is_instrumented"] is True

    memory = s["memory"]["details"]
    assert memory["attacker_caught"] is True  # six failures from one address among the tiny flood
    assert memory["addresses"] == 2000

    audit = s["audit"]["details"]
    assert audit["chain_ok"] is True, audit["verify_output"]
    assert len(audit["per_process_calls"]) == 4 and all(n > 0 for n in audit["per_process_calls"])


@pytest.mark.e2e
def test_sustained_runs_tiny_against_the_local_collector(tmp_path: Path) -> None:
    if os.environ.get("B2B_OTEL_TEST_STACK") != "1":
        pytest.skip("needs the local stack (B2B_OTEL_TEST_STACK=1, bash scripts/stack.sh up)")
    document = _bench(tmp_path, ("sustained",))
    entry = document["scenarios"]["sustained"]
    _check_shape(entry, "sustained")
    details = entry["details"]
    assert details["collector_pid"], "the collector's pid (for its CPU time) was not found"
    for name in ("b2b", "plain"):
        (run,) = details["runs"][name]
        assert run["spans"] > 0 and run["collector_cpu_s"] is not None
        assert run["collector_refused"] == 0
    assert entry["value"] == 0  # b2b-otel dropped nothing at its paced rate

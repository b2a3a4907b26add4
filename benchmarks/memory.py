"""Scenario 4, memory: a million distinct client addresses through the brute-force rule.

In a fresh interpreter, ``instrument()`` (rules, local files; no exporters, so only the rules
layer holds spans), then one failed ``b2b_otel.security.login`` from each of N distinct client
addresses, with a real attacker (six failures from one address, spread evenly through the flood)
hidden among them. Measured: the peak RSS growth over the run (VmHWM after minus VmRSS before,
from /proc/self/status, the peak reset first), whether ``security.login.bruteforce`` fired for
the attacker (read back from ``security.log``), and how many times it fired for anyone else.

    python -m benchmarks.memory [--addresses 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import proc_status, report, reset_peak_rss, result, row

ATTACKER = "203.0.113.66"
ATTEMPTS = 6
RULE = "security.login.bruteforce"
FLOOD_RULE = "security.rules.group_flood"


def _address(index: int) -> str:
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def scenario(addresses: int) -> dict[str, Any]:
    import b2b_otel

    with tempfile.TemporaryDirectory(prefix="b2b-bench-") as logs:
        telemetry = b2b_otel.instrument(
            service_name="bench-memory",
            traces_exporter="none",
            metrics_exporter="none",
            logs_exporter="none",
            instrumentations="none",
            log_dir=logs,
        )
        derivation = telemetry.derivation
        assert derivation is not None
        login = b2b_otel.security.login
        for i in range(200):  # warm every path before the baseline is read
            login(f"warm-{i}", f"192.0.2.{i}", success=False)
        derivation.judge_queued(30)
        before = proc_status()["VmRSS"]
        peak_reset = reset_peak_rss()
        every = max(1, addresses // ATTEMPTS)
        started = time.perf_counter()
        for i in range(addresses):
            # The index spreads over 2^24 addresses, so every one is distinct up to 16.7 million.
            login(f"user-{i % 5000}", _address(i + (i >> 24)), success=False)
            if i % every == every // 2:
                login("mallory", ATTACKER, success=False)
        produced = time.perf_counter() - started
        derivation.judge_queued(300)
        judged = time.perf_counter() - started
        status = proc_status()
        peak = status["VmHWM"] if peak_reset else status["VmRSS"]
        health = telemetry.health()
        telemetry.force_flush()
        lines = [
            json.loads(line)
            for line in (Path(logs) / "security.log").read_text(encoding="utf-8").splitlines()
            if line.startswith("{")
        ]
        telemetry.shutdown()

    def rule_of(line: dict[str, Any]) -> str:
        attributes = line.get("attributes") or {}
        return str(attributes.get("b2b.rule.id") or line.get("rule_id") or "")

    brute = [line for line in lines if rule_of(line) == RULE]
    caught = any(ATTACKER in json.dumps(line) for line in brute)
    others = sum(1 for line in brute if ATTACKER not in json.dumps(line))
    floods = sum(1 for line in lines if rule_of(line) == FLOOD_RULE)
    growth_mb = max(0, peak - before) / 1024
    rules = health["rules"]
    return result(
        "memory",
        f"memory: {addresses:,} distinct client addresses through {RULE}",
        [
            row("RSS before", before / 1024, "MB"),
            row("peak RSS growth", growth_mb, "MB"),
            row("logins judged per second", (addresses + ATTEMPTS) / judged, "logins/s", digits=0),
            row("attacker caught (1 = yes)", 1.0 if caught else 0.0, "bool"),
            row("brute-force firings for others", float(others), "firings"),
        ],
        growth_mb,
        64.0,
        "peak RSS growth in MB, attacker caught (ratio: growth / 64 MB)",
        details={
            "addresses": addresses,
            "attacker": ATTACKER,
            "attacker_caught": caught,
            "false_firings": others,
            "group_flood_firings": floods,
            "peak_reset": peak_reset,
            "produce_s": round(produced, 2),
            "judge_s": round(judged, 2),
            "tracked_groups": rules.get("tracked_groups"),
            "evicted_groups": rules.get("evicted_groups"),
            "unjudged": rules.get("unjudged"),
            "backpressure": rules.get("backpressure"),
        },
        against=growth_mb / 64.0,
        also=caught,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    value = scenario(args.addresses)
    report(value, args.json)
    if not args.json:
        print(json.dumps(value["details"], indent=2))


if __name__ == "__main__":
    main()

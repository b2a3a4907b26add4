"""What every scenario shares: alternating rounds, medians and ratios, the result shape, helpers.

A scenario's result (one entry of ``results.json``)::

    {"scenario": "hot_path", "title": "...",
     "target": {"metric": "...", "limit": 1.10, "comparison": "<="} | null,
     "value": 1.03,            # the number the target judges
     "ratio": 1.03,            # b2b-otel against its baseline (for hot path, export path and start-up
                               # the same as value; the other scenarios say what theirs divides)
     "met": true | null,       # null: no target
     "rows": [{"case": "...", "value": 12.3, "unit": "us/call", "ratio": 1.03 | null}, ...],
     "details": {...}}         # counters, checks, settings of the run
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def alternate(cases: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every case once per round, in an order that turns each round, so drift hits all alike.

    Each case returns its own measurement (seconds per call, calls per second, ...).
    """
    names = list(cases)
    results: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(cases[name]())
    return results


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ratio(value: float, base: float) -> float:
    return round(value / base, 3) if base else float("nan")


def row(case: str, value: float, unit: str, base: float | None = None, digits: int = 2) -> dict[str, Any]:
    return {
        "case": case,
        "value": round(value, digits),
        "unit": unit,
        "ratio": ratio(value, base) if base is not None else None,
    }


def result(
    scenario: str,
    title: str,
    rows: list[dict[str, Any]],
    value: float | None,
    limit: float | None,
    metric: str,
    comparison: str = "<=",
    details: dict[str, Any] | None = None,
    against: float | None = None,
    also: bool = True,
) -> dict[str, Any]:
    """One scenario's entry; ``met`` compares ``value`` with ``limit`` (None when there is no target).

    ``against`` is the ratio to the baseline when it is not ``value`` itself; ``also`` is a further
    condition of the target (e.g. the attacker caught, zero drops).
    """
    met: bool | None = None
    if limit is not None and value is not None:
        met = bool(value <= limit) if comparison == "<=" else bool(value >= limit)
        met = met and also
    return {
        "scenario": scenario,
        "title": title,
        "target": None if limit is None else {"metric": metric, "limit": limit, "comparison": comparison},
        "value": None if value is None else round(float(value), 3),
        "ratio": None if (shown := value if against is None else against) is None else round(float(shown), 3),
        "met": met,
        "rows": rows,
        "details": details or {},
    }


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM, ...)."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[key] = int(parts[0])
    return fields


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+: write 5 to clear_refs); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a benchmark subprocess: no OTEL_/B2B_OTEL_ settings leak in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def run_python(args: list[str], env: Mapping[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
    """Run ``python <args>`` in a fresh interpreter; its last stdout line is a JSON object."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=python_env(env),
        cwd=ROOT,
        timeout=timeout,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    value = json.loads(lines[-1])
    assert isinstance(value, dict)
    return value


class Receiver:
    """``benchmarks.receiver`` in its own process, on an ephemeral loopback port."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.receiver"],
            stdout=subprocess.PIPE,
            text=True,
            env=python_env(),
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            self.process.kill()
            raise RuntimeError(f"the benchmark receiver did not start: {line!r}")
        self.port = int(line[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint}/stats", timeout=10) as response:
            value = json.loads(response.read())
        assert isinstance(value, dict)
        return value

    def wait_for_spans(self, count: int, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            seen = int(self.stats()["spans"])
            if seen >= count:
                return seen
            time.sleep(0.05)
        return seen

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def emit(value: dict[str, Any]) -> None:
    """A scenario subprocess's answer: one JSON line on stdout."""
    print(json.dumps(value), flush=True)


def report(value: dict[str, Any], as_json: bool) -> None:
    """A scenario run on its own: its JSON line (``--json``) or its table."""
    if as_json:
        emit(value)
        return
    from benchmarks.run import print_table

    print_table([value])

"""Scenario 6, the audit trail: ``b2b_otel.audit()`` calls per second, each on disk (fsync) when it returns.

- one process: ``instrument()`` with a log directory (no exporters: this is the audit path alone),
  then ``audit()`` in a loop for S seconds;
- four processes appending to the same ``audit.log`` at once (the writer serialises them with
  ``flock``); the chain is then checked with ``b2b-otel audit verify``;
- the floor, for scale: a bare ``os.write`` + ``os.fsync`` of a line of the same size in a loop,
  in the same directory (what any durable append costs on this disk). The ratio is
  ``audit()`` calls/s in one process divided by that floor.

    python -m benchmarks.audit [--seconds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import emit, python_env, report, result, row, run_python


def writer(directory: str, seconds: float, start_at: float) -> dict[str, Any]:
    """In a subprocess: audit() for ``seconds`` from wall-clock time ``start_at``; calls made."""
    import b2b_otel

    telemetry = b2b_otel.instrument(
        service_name="bench-audit",
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter="none",
        instrumentations="none",
        log_dir=directory,
    )
    b2b_otel.audit("bench.warm", actor_id="bench", target="warm")
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    pid = os.getpid()
    while time.perf_counter() < deadline:
        b2b_otel.audit(
            "business_case.approved", actor_id=f"user-{pid}", target=f"case-{calls}", amount=120_000
        )
        calls += 1
    elapsed = time.perf_counter() - started
    telemetry.shutdown()
    return {"calls": calls, "seconds": elapsed}


def floor(directory: str, seconds: float) -> float:
    """Bare durable appends per second: write one ~300-byte line, fsync, repeat."""
    line = (b"x" * 299) + b"\n"
    fd = os.open(os.path.join(directory, "floor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            os.write(fd, line)
            os.fsync(fd)
            count += 1
        return count / (time.perf_counter() - started)
    finally:
        os.close(fd)


def scenario(seconds: float, processes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="b2b-bench-", dir=os.environ.get("B2B_BENCH_DIR")) as root:
        fsync_floor = floor(root, seconds)
        single_dir = os.path.join(root, "single")
        single = run_python(
            ["-m", "benchmarks.audit", "--writer", single_dir, "--seconds", str(seconds), "--start-at", "0"]
        )
        shared_dir = os.path.join(root, "shared")
        start_at = time.time() + 3.0  # every writer has imported and instrumented by then
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.audit",
                    "--writer",
                    shared_dir,
                    "--seconds",
                    str(seconds),
                    "--start-at",
                    str(start_at),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=python_env(),
                cwd=Path(__file__).resolve().parent.parent,
            )
            for _ in range(processes)
        ]
        outputs = []
        for child in children:
            out, _ = child.communicate(timeout=seconds + 120)
            if child.returncode != 0:
                raise RuntimeError(f"an audit writer exited {child.returncode}: {out[-2000:]}")
            outputs.append(json.loads(out.strip().splitlines()[-1]))
        verify = subprocess.run(
            [sys.executable, "-m", "b2b_otel.cli", "audit", "verify", os.path.join(shared_dir, "audit.log")],
            capture_output=True,
            text=True,
            env=python_env(),
        )
    single_rate = single["calls"] / single["seconds"]
    multi_calls = sum(o["calls"] for o in outputs)
    multi_rate = multi_calls / max(o["seconds"] for o in outputs)
    return result(
        "audit",
        "audit(): calls per second, each record fsync'ed before it returns",
        [
            row("bare write + fsync (the floor)", fsync_floor, "appends/s", fsync_floor, digits=0),
            row("audit(), 1 process", single_rate, "calls/s", fsync_floor, digits=0),
            row(f"audit(), {processes} processes, one file", multi_rate, "calls/s", fsync_floor, digits=0),
        ],
        single_rate,
        None,
        "audit() calls/s, 1 process (ratio: / bare write+fsync)",
        details={
            "seconds": seconds,
            "processes": processes,
            "per_process_calls": [o["calls"] for o in outputs],
            "verify_exit": verify.returncode,
            "verify_output": (verify.stdout + verify.stderr).strip()[-400:],
            "chain_ok": verify.returncode == 0,
        },
        against=single_rate / fsync_floor if fsync_floor else float("nan"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--writer", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.writer:
        emit(writer(args.writer, args.seconds, args.start_at))
        return
    value = scenario(args.seconds, args.processes)
    report(value, args.json)
    if not args.json:
        print(value["details"])


if __name__ == "__main__":
    main()

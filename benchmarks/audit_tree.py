"""``audit()`` with the Merkle tree and signed checkpoints, against the hash chain alone (issue 14).

Both cases write durable records (fsync before return) through the same path ``b2b_otel.audit()``
takes after its span: :class:`~b2b_otel.audit_trail.record.AuditRecorder` (scrub, append, emit) over
an :class:`~b2b_otel.audit_trail.writer.AuditLog`:

- ``chain``: today's log without keys (plain SHA-256 chain, head rewritten after every record);
- ``signed``: ``B2B_OTEL_AUDIT_SIGNING_KEY`` set: salted commitments for every details value, the
  tree's frontier in the head, and checkpoints signed by the background thread every
  ``--interval`` seconds (10 s, the default of ``B2B_OTEL_AUDIT_CHECKPOINT_INTERVAL``; ``--interval 1``
  signs ten times as often) and at each round's end.

Each round writes two fresh logs side by side, alternating between them every 10 calls, so that the
noise of a shared disk falls on both; the median, p90 and p99 of the per-call latencies of all
rounds are reported, and the ratio of the medians (target <= 1.2x: the fsyncs dominate).

    python -m benchmarks.audit_tree [--calls 300] [--rounds 5] [--interval 1] [--dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _recorder(folder: Path, signed: bool, interval: float, key_path: Path) -> Any:
    from b2b_otel.audit_trail.record import AuditRecorder
    from b2b_otel.audit_trail.signing import load_private_key
    from b2b_otel.audit_trail.writer import AuditLog
    from b2b_otel.scrub import Scrubber

    signing_key = load_private_key(key_path) if signed else None
    log = AuditLog(folder / "audit.log", signing_key=signing_key, checkpoint_interval=interval)
    return AuditRecorder(log, Scrubber())


def _batch(recorder: Any, start: int, calls: int) -> list[float]:
    from b2b_otel.audit_trail.record import AuditEntry

    latencies: list[float] = []
    for i in range(start, start + calls):
        entry = AuditEntry(
            "invoice.approve",
            f"u-{i % 7}",
            f"invoice-{i}",
            "success",
            details={"amount": 1200 + i, "currency": "EUR", "approver": "finance", "note": "within budget"},
        )
        started = time.perf_counter()
        recorder.record(entry)
        latencies.append(time.perf_counter() - started)
    return latencies


def run(calls: int, rounds: int, interval: float, base: Path | None, batch: int = 10) -> dict[str, Any]:
    from b2b_otel.audit_trail.signing import keygen

    root = Path(tempfile.mkdtemp(prefix="b2b-audit-bench-", dir=base))
    try:
        key_path, _, _ = keygen(root / "keys")
        samples: dict[str, list[float]] = {"chain": [], "signed": []}
        checkpoints = 0
        for n in range(rounds):
            # Both logs side by side, alternating every few calls: the same disk noise hits both cases.
            recorders = {
                case: _recorder(root / f"{case}-{n}", case == "signed", interval, key_path)
                for case in samples
            }
            for start in range(0, calls, batch):
                order = ("chain", "signed") if (start // batch) % 2 == 0 else ("signed", "chain")
                for case in order:
                    samples[case] += _batch(recorders[case], start, min(batch, calls - start))
            for recorder in recorders.values():
                recorder.close()
            with (root / f"signed-{n}" / "audit.log").open() as f:
                checkpoints += sum(1 for line in f if line.startswith('{"checkpoint"'))
        result: dict[str, Any] = {
            "calls": calls,
            "rounds": rounds,
            "interval_s": interval,
            "folder": str(root),
        }
        for case, values in samples.items():
            result[case] = {
                "median_ms": statistics.median(values) * 1000,
                "p90_ms": _percentile(values, 0.90) * 1000,
                "p99_ms": _percentile(values, 0.99) * 1000,
            }
        result["signed_checkpoints"] = checkpoints
        result["ratio"] = result["signed"]["median_ms"] / result["chain"]["median_ms"]
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300, help="audit records per round and case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--interval", type=float, default=1.0, help="checkpoint interval of the signed case (s)"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the logs are written (default: a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.calls, args.rounds, args.interval, args.dir)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"audit() latency, {args.calls} calls x {args.rounds} rounds per case (fsync before return)")
    print(f"  {'case':<8} {'median':>10} {'p90':>10} {'p99':>10}")
    for case in ("chain", "signed"):
        r = result[case]
        print(f"  {case:<8} {r['median_ms']:>8.3f}ms {r['p90_ms']:>8.3f}ms {r['p99_ms']:>8.3f}ms")
    print(
        f"  signed / chain (median): {result['ratio']:.2f}x  (target <= 1.2x; "
        f"{result['signed_checkpoints']} checkpoints signed during the signed rounds)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

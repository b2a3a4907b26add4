"""The audit trail's outside witness: checkpoints reach the gateway's file; `audit verify --witness` uses it.

A demo-like application (instrument() with a signing key, audit records over a few checkpoint
intervals, shutdown) exports to the running stack; the gateway keeps each b2b.audit.checkpoint log
record in ``$B2B_STACK_DIR/audit-checkpoints.jsonl``. The host's log then verifies against that file,
and stops verifying once its tail is cut off (head and all, as an intruder would).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from b2b_otel.audit_trail.signing import keygen
from b2b_otel.audit_trail.witness import read_witness
from tests.e2e.stack_client import REPO, wait_for

pytestmark = pytest.mark.e2e

WITNESS_WAIT_S = 60


def _app(log_dir: Path, key: Path) -> None:
    script = textwrap.dedent(
        """
        import time
        import b2b_otel

        b2b_otel.instrument(service_name="audit-witness-e2e", instrumentations="none")
        for i in range(12):
            b2b_otel.audit("invoice.approve", actor_id=f"u-{i % 3}", target=f"invoice-{i}", amount=100 * i,
                           email=f"buyer{i}@example.com")
            time.sleep(0.25)
        b2b_otel.shutdown()
        """
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("B2B_OTEL_", "OTEL_"))},
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "B2B_OTEL_LOG_DIR": str(log_dir),
        "B2B_OTEL_AUDIT_SIGNING_KEY": str(key),
        "B2B_OTEL_AUDIT_CHECKPOINT_INTERVAL": "1s",
        "OTEL_METRICS_EXPORTER": "none",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def _verify(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("B2B_OTEL_AUDIT")}
    return subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "audit", "verify", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_checkpoints_reach_the_witness_and_catch_a_truncation(stack: Path, tmp_path: Path) -> None:
    private, public, _ = keygen(tmp_path / "keys")
    logs = tmp_path / "logs"
    _app(logs, private)
    lines = [json.loads(line) for line in (logs / "audit.log").read_text().splitlines()]
    checkpoints = [c for c in lines if "checkpoint" in c and "seq" not in c]
    assert len(checkpoints) >= 2 and checkpoints[-1]["tree_size"] == 12
    log_id = checkpoints[0]["log_id"]
    witness = stack / "audit-checkpoints.jsonl"

    def all_witnessed() -> list[dict[str, object]] | None:
        if not witness.exists():
            return None
        seen = [c for c in read_witness(witness)[0] if c["log_id"] == log_id]
        return seen if len(seen) >= len(checkpoints) else None

    seen = wait_for(all_witnessed, "the log's checkpoints in the gateway's witness file", WITNESS_WAIT_S)
    assert sorted(seen, key=lambda c: int(str(c["checkpoint"]))) == checkpoints  # exactly as signed

    ok = _verify(str(logs), "--public-key", str(public), "--witness", str(witness))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{len(checkpoints)} agree with the witness" in ok.stdout

    # An intruder cuts the log back to its first checkpoint and removes the head that would tell.
    text = (logs / "audit.log").read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(text) if json.loads(line).get("checkpoint") == 1)
    (logs / "audit.log").write_text("".join(text[: first + 1]))
    (logs / "audit.log.head").unlink()
    alone = _verify(str(logs), "--public-key", str(public))
    assert alone.returncode == 1 and "head" in alone.stdout  # the head is gone: suspicious already
    caught = _verify(str(logs), "--public-key", str(public), "--witness", str(witness))
    assert caught.returncode == 1, caught.stdout
    covered = checkpoints[0]["tree_size"]
    assert caught.stdout.startswith(f"FAIL: seq {int(str(covered)) + 1}: truncated"), caught.stdout

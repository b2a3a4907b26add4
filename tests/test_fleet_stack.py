"""`scripts/stack.sh up --gateways 2` itself: the two-tier topology on the SPEC's loopback ports.

The script binds the stack's fixed ports (the agent on 4317/4318 and 13133, the replicas on
4417/4418 and 4517/4518), which the standard stack of the other end-to-end tests holds. So the script
runs here in a network namespace of its own (`unshare -n`, as root), whose loopback is empty: the
same script, binaries and configuration files, without disturbing the standard stack. Gated like the
other end-to-end tests (B2B_OTEL_TEST_STACK=1); skipped where namespaces cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OPT_IN = "B2B_OTEL_TEST_STACK"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get(OPT_IN, "").strip().lower() not in ("1", "true", "yes", "on"),
        reason=f"end-to-end tests run with {OPT_IN}=1 (make test-e2e)",
    ),
]

# Runs inside the namespace: the topology up, five failed logins from one address sent as five
# requests of five "services" to the agent, the records in the replicas' files, the alert through the
# stack's Prometheus and Alertmanager, then the plain stack.
SCENARIO = textwrap.dedent(
    """
    set -euo pipefail
    ip link set lo up
    trap 'bash scripts/stack.sh down >/dev/null 2>&1 || true' EXIT
    bash scripts/stack.sh up --gateways 2 > "$OUT/up.log"
    bash scripts/stack.sh status > "$OUT/status.log" || true  # the skipped postgres-exporter: exit 1
    "$PYTHON" "$OUT/send.py"
    bash scripts/stack.sh down > "$OUT/down.log"
    bash scripts/stack.sh up > "$OUT/up-plain.log"
    bash scripts/stack.sh status > "$OUT/status-plain.log" || true
    bash scripts/stack.sh down >> "$OUT/down.log"
    """
)

SEND = textwrap.dedent(
    """
    import json, time, urllib.request, pathlib, os

    out = pathlib.Path(os.environ["OUT"])
    stack = pathlib.Path(os.environ["B2B_STACK_DIR"])
    now = time.time_ns()
    for i in range(5):
        span = {
            "traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "login", "kind": 2,
            "startTimeUnixNano": str(now - 1_000_000), "endTimeUnixNano": str(now),
            "attributes": [
                {"key": "b2b.security.action", "value": {"stringValue": "login"}},
                {"key": "event.outcome", "value": {"stringValue": "failure"}},
                {"key": "client.address", "value": {"stringValue": "203.0.113.99"}},
            ],
        }
        body = {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": f"svc-{i}"}}]},
            "scopeSpans": [{"spans": [span]}]}]}
        request = urllib.request.Request("http://127.0.0.1:4318/v1/traces", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
    def records():
        found = []
        for path in stack.glob("gateway-*/security.jsonl"):
            for line in path.read_text().splitlines():
                for rl in json.loads(line)["resourceLogs"]:
                    for sl in rl["scopeLogs"]:
                        for lr in sl["logRecords"]:
                            attrs = {a["key"]: a["value"] for a in lr["attributes"]}
                            if attrs["b2b.rule.id"]["stringValue"] == "security.login.bruteforce":
                                found.append((path.parent.name, attrs["b2b.scope"]["stringValue"]))
        return found

    deadline = time.monotonic() + 40
    while not records() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # a second record, from windows split over the replicas, would be here by now
    found = records()
    (out / "records.json").write_text(json.dumps(found))

    # The alert: the stack's Prometheus scrapes the replicas, its rules fire, Alertmanager routes it.
    def alerts():
        path = stack / "webhook.jsonl"
        if not path.exists():
            return []
        return [
            (json.loads(line)["path"], alert["labels"])
            for line in path.read_text().splitlines()
            for alert in json.loads(line)["payload"]["alerts"]
            if alert["labels"].get("alertname") == "B2BFailedLoginBurst"
        ]

    deadline = time.monotonic() + 90
    while not alerts() and time.monotonic() < deadline:
        time.sleep(1)
    (out / "alerts.json").write_text(json.dumps(alerts()))
    """
)


def test_stack_up_gateways_2(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip for a network namespace of its own")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.decode(errors='replace')}")
    (tmp_path / "send.py").write_text(SEND)
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "B2B_STACK_DIR": str(tmp_path / "stack"),
        # PostgreSQL lives in the host's namespace; its exporter has nothing to reach here.
        "B2B_STACK_SKIP": "postgres-exporter",
    }
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", SCENARIO],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    logs = "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("*.log")))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
    status = (tmp_path / "status.log").read_text()
    for piece, url in (
        ("gateway-1", "http://127.0.0.1:13233/"),
        ("gateway-2", "http://127.0.0.1:13333/"),
        ("agent", "http://127.0.0.1:13133/"),
    ):
        assert any(line.startswith(piece) and f"answers {url}" in line for line in status.splitlines()), (
            status
        )
    assert "otelcol-b2b " not in status
    up = (tmp_path / "up.log").read_text()
    assert "127.0.0.1:4317" in up
    # Five failures from one address, each through its own request: one fleet record on one replica.
    records = json.loads((tmp_path / "records.json").read_text())
    assert len(records) == 1 and records[0][1] == "fleet", records
    alerts = json.loads((tmp_path / "alerts.json").read_text())
    assert alerts and {path for path, _ in alerts} == {"/security-critical"}, alerts
    # Each replica keeps its files, queue and log apart.
    for k in (1, 2):
        replica = tmp_path / "stack" / f"gateway-{k}"
        assert (replica / "queue").is_dir() and (replica / "logs" / "otelcol-b2b.log").exists()
    # The plain stack afterwards is the one gateway, as before.
    plain = (tmp_path / "status-plain.log").read_text()
    assert any(
        line.startswith("otelcol-b2b") and "answers http://127.0.0.1:13133/" in line
        for line in plain.splitlines()
    )
    assert "gateway-1" not in plain and "agent" not in plain

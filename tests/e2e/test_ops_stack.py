"""The operations package against the real stack after the example workload (issue 12).

One run of the example application (every fault injected, text log lines) feeds the real gateway,
Prometheus, Alertmanager and PostgreSQL; then:
- the node and PostgreSQL exporters are scraped and report what the rules and dashboards read;
- every dashboard panel's PromQL runs against the real Prometheus: no query errors, and each returns
  series unless the panel is listed in MAY_BE_EMPTY with the reason;
- every command in a ``bash`` block of docs/runbook.md runs and succeeds with output;
- alerts reach the right webhook receiver through the stack's Alertmanager, the inhibited one does not,
  and a Prometheus alert raised by the workload (a failed-login burst) is delivered end to end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_client import (
    ALERTMANAGER_API,
    PROMETHEUS_API,
    REPO,
    get_json,
    post_json,
    prometheus_query,
    read_json_lines,
    run_example_workload,
    wait_for,
)

pytestmark = pytest.mark.e2e

SERVICE = "b2bvalue-demo"
DASHBOARDS = REPO / "collector" / "grafana" / "dashboards"
RUNBOOK = REPO / "docs" / "runbook.md"
QUERIES = REPO / "collector" / "prometheus" / "postgres-exporter-queries.yaml"
TIERS = ("operations", "engineering", "security", "management")
SEVERITIES = ("critical", "warning", "info")

# Panel queries that may rightly return no series after the example workload, and why.
MAY_BE_EMPTY = {
    ("b2b-operations", "Telemetry dropped"): "a healthy run drops nothing",
    ("b2b-operations", "Gateway export failures"): "a healthy gateway fails no export",
    ("b2b-performance", "Replication", "pg_replica_replay_lag_seconds"): "the local stack has no replica",
}


def _network_devices() -> set[str]:
    """The network devices node exporter sees here (/proc/net/dev is per network namespace)."""
    with open("/proc/net/dev", encoding="ascii") as table:
        return {line.split(":", 1)[0].strip() for line in table if ":" in line}


if not _network_devices() - {"lo"}:
    # A host (or network namespace) with loopback only has no traffic for the panel to show.
    MAY_BE_EMPTY[("b2b-performance", "Network traffic")] = "this host has no network device but lo"


class Workload:
    def __init__(self, log_dir: Path, stack_dir: Path, pg_url: str) -> None:
        self.log_dir = log_dir
        self.stack_dir = stack_dir
        self.pg_url = pg_url


@pytest.fixture(scope="module")
def workload(stack: Path, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Workload:
    log_dir = tmp_path_factory.mktemp("ops-logs")
    run_example_workload(SERVICE, log_dir, pg_url, 6, B2B_OTEL_LOG_FORMAT="text")
    # The workload's metrics and records have been scraped (export 2 s, scrape 5 s) and judged.
    wait_for(
        lambda: prometheus_query(f'b2b_agent_executions_total{{job="{SERVICE}"}}') or None,
        "the workload's metrics in Prometheus",
        90,
    )
    # rate() and increase() need two samples of a series in their window: wait for them.
    for query in (
        f'rate(b2b_agent_executions_total{{job="{SERVICE}"}}[5m])',
        f'rate(traces_span_metrics_calls_total{{job="{SERVICE}"}}[5m])',
        "rate(node_cpu_seconds_total[5m])",
    ):
        wait_for(lambda query=query: prometheus_query(query) or None, f"two samples: {query}", 90)
    wait_for(
        lambda: prometheus_query('ALERTS{alertname="B2BFailedLoginBurst", alertstate="firing"}') or None,
        "Prometheus to fire B2BFailedLoginBurst from the workload's brute force",
        90,
    )
    return Workload(log_dir, stack, pg_url)


# --- exporters


def test_node_and_postgres_exporters_are_scraped(workload: Workload) -> None:
    up = {r["metric"]["job"]: r["value"][1] for r in prometheus_query('up{job=~"node|postgres"}')}
    assert up == {"node": "1", "postgres": "1"}
    assert prometheus_query("max(pg_up)")[0]["value"][1] == "1"
    for metric in (
        'node_cpu_seconds_total{mode="idle"}',
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_disk_io_time_seconds_total",
        "pg_stat_activity_count",
        "pg_locks_count",
        "pg_locks_waiting_count",
        "pg_database_size_bytes",
        "pg_stat_database_deadlocks",
        "pg_replication_lag_seconds",
        "pg_stat_statements_calls",
        "pg_stat_statements_mean_exec_seconds",
    ):
        assert prometheus_query(metric), f"no series of {metric}"
    # The example's own database shows up in the database's statistics.
    databases = {r["metric"]["datname"] for r in prometheus_query("pg_database_size_bytes")}
    assert workload.pg_url.rsplit("/", 1)[-1] in databases
    assert prometheus_query("max(pg_exporter_last_scrape_error)")[0]["value"][1] == "0"


# --- dashboards


def panel_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((board["uid"], panel["title"], target["expr"]))
    return found


def _may_be_empty(uid: str, title: str, expr: str) -> bool:
    return (uid, title) in MAY_BE_EMPTY or any(
        len(key) == 3 and key[:2] == (uid, title) and key[2] in expr for key in MAY_BE_EMPTY
    )


def test_every_dashboard_query_runs_and_returns_series(workload: Workload) -> None:
    queries = panel_queries()
    assert len(queries) >= 40
    errors, empty = [], []
    for uid, title, expr in queries:
        answer = get_json(f"{PROMETHEUS_API}/query", {"query": expr}, timeout_s=30)
        if answer.get("status") != "success":
            errors.append(f"{uid} / {title}: {answer.get('error')}")
        elif not answer["data"]["result"] and not _may_be_empty(uid, title, expr):
            empty.append(f"{uid} / {title}: {expr}")
    assert not errors, "queries that fail:\n" + "\n".join(errors)
    assert not empty, "queries with no series after the workload:\n" + "\n".join(empty)


# --- the runbook


def runbook_commands() -> list[str]:
    commands, block, current = [], False, ""
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            block = line.strip() == "```bash"
            continue
        if not block or not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\") + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def test_every_runbook_command_works_against_the_stack(workload: Workload) -> None:
    commands = runbook_commands()
    assert len(commands) >= 40
    env = {
        **os.environ,
        "B2B_STACK_DIR": str(workload.stack_dir),
        "B2B_OTEL_LOG_DIR": str(workload.log_dir),
        "PGURL": workload.pg_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    failed = []
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {command}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0 or not done.stdout.strip():
            failed.append(f"$ {command}\n  exit {done.returncode}: {(done.stderr or done.stdout)[-400:]}")
    assert not failed, "runbook commands that fail or print nothing:\n" + "\n".join(failed)


# --- Alertmanager of the stack


def push(alerts: list[dict[str, Any]]) -> None:
    assert post_json(f"{ALERTMANAGER_API}/alerts", alerts) == 200


def alert(name: str, tier: str, severity: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "tier": tier, "severity": severity, **labels},
        "annotations": {"summary": "ops end-to-end test alert"},
        "startsAt": datetime.now(timezone.utc).isoformat(),
    }


def delivered(stack: Path, name: str) -> list[dict[str, Any]]:
    found = []
    for line in read_json_lines(stack / "webhook.jsonl"):
        for item in line["payload"].get("alerts", []):
            if item["labels"].get("alertname") == name:
                found.append({"path": line["path"], "receiver": line["payload"]["receiver"], **item})
    return found


def test_the_stack_delivers_each_tier_and_severity_to_its_receiver(workload: Workload) -> None:
    name = f"OpsStack{uuid.uuid4().hex[:8]}"
    push([alert(name, t, s, service=f"svc-{t}-{s}") for t in TIERS for s in SEVERITIES])
    got = wait_for(
        lambda: found if len(found := delivered(workload.stack_dir, name)) >= 12 else None,
        "12 deliveries",
        60,
    )
    assert {(a["labels"]["tier"], a["labels"]["severity"]): a["path"] for a in got} == {
        (t, s): f"/{t}-{s}" for t in TIERS for s in SEVERITIES
    }


def test_the_stack_inhibits_a_warning_of_the_same_rule_and_group_as_a_critical(workload: Workload) -> None:
    name = f"OpsInhibit{uuid.uuid4().hex[:8]}"
    push([alert(name, "operations", "critical", service=SERVICE)])
    wait_for(lambda: delivered(workload.stack_dir, name) or None, "the critical", 60)
    push(
        [
            alert(name, "operations", "warning", service=SERVICE),
            alert(name, "operations", "warning", service="other"),
        ]
    )
    wait_for(
        lambda: [a for a in delivered(workload.stack_dir, name) if a["labels"]["service"] == "other"] or None,
        "the other service's warning",
        60,
    )
    statuses = [
        a["status"]
        for a in get_json(f"{ALERTMANAGER_API}/alerts")
        if a["labels"]["alertname"] == name
        and a["labels"]["severity"] == "warning"
        and a["labels"]["service"] == SERVICE
    ]
    assert statuses and statuses[0]["inhibitedBy"], statuses
    time.sleep(3)
    assert [
        a["path"] for a in delivered(workload.stack_dir, name) if a["labels"]["severity"] == "warning"
    ] == ["/operations-warning"]


def test_a_prometheus_alert_from_the_workload_reaches_the_security_critical_receiver(
    workload: Workload,
) -> None:
    got = wait_for(
        lambda: delivered(workload.stack_dir, "B2BFailedLoginBurst") or None,
        "B2BFailedLoginBurst at the webhook",
        90,
    )
    assert {a["path"] for a in got} == {"/security-critical"}
    annotations = got[-1]["annotations"]
    assert annotations["runbook_url"].endswith("docs/runbook.md#failed-login-burst")
    assert re.fullmatch(r"http://localhost:3000/d/b2b-security/b2b-security", annotations["dashboard_url"])


# --- replication, where a replica exists


def _as_owner(*argv: str) -> list[str]:
    """The command as the cluster owner (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _metrics(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
    return text


def test_replication_lag_is_reported_where_a_replica_exists(workload: Workload, tmp_path: Path) -> None:
    import shutil
    import tempfile
    import urllib.parse

    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    primary = urllib.parse.urlsplit(workload.pg_url)
    data = Path(tempfile.mkdtemp(prefix="b2b-ops-replica-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    data.chmod(0o700)
    port, exporter_port = _free_port(), _free_port()
    log = tmp_path / "exporter.log"
    exporter: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            _as_owner(
                str(bindir / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data}"
        subprocess.run(
            _as_owner(
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(data / "replica.log"),
                "-w",
                "-o",
                options,
                "start",
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        # Something to replay, so that the standby has a last replayed transaction.
        subprocess.run(
            [
                "psql",
                workload.pg_url,
                "-qc",
                "CREATE TABLE IF NOT EXISTS ops_replication (at timestamptz);"
                " INSERT INTO ops_replication VALUES (now())",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        replica_url = workload.pg_url.replace(f":{primary.port}/", f":{port}/") + "?sslmode=disable"
        with log.open("wb") as out:
            exporter = subprocess.Popen(
                [
                    "prometheus-postgres-exporter",
                    f"--web.listen-address=127.0.0.1:{exporter_port}",
                    f"--extend.query-path={QUERIES}",
                ],
                env={**os.environ, "DATA_SOURCE_NAME": replica_url},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def replica_metrics() -> str | None:
            try:
                text = _metrics(f"http://127.0.0.1:{exporter_port}/metrics")
            except OSError:
                return None
            return text if re.search(r"^pg_replication_is_replica\{[^}]*\} 1$", text, re.M) else None

        text = wait_for(replica_metrics, "the replica's exporter to report a standby", 60)
        assert re.search(r"^pg_up 1$", text, re.M), text[-2000:]
        lag = re.search(r"^pg_replication_lag_seconds\{[^}]*\} (\S+)$", text, re.M)
        assert lag and float(lag.group(1)) >= 0

        # The primary's exporter (the stack's) sees the connected replica and its replay lag.
        def primary_metrics() -> str | None:
            text = _metrics("http://127.0.0.1:9187/metrics")
            return text if "pg_replica_replay_lag_seconds{" in text else None

        primary_text = wait_for(primary_metrics, "the primary's exporter to list the replica", 60)
        assert re.search(r'^pg_replica_replay_lag_seconds\{application_name="[^"]+"', primary_text, re.M)
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(10)
        subprocess.run(
            _as_owner(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(data, ignore_errors=True)

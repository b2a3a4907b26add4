"""``make demo``: the B2BValue workload through the local stack, then a summary read from the real services.

Expects the stack to be up (``scripts/stack.sh up``, which ``make demo`` runs first) and PostgreSQL
(``scripts/pg.sh``). Runs ``python -m examples.b2bvalue`` as its own process with service name
``b2bvalue-demo``, exporting over OTLP to the collector, pushing alerts to Alertmanager and writing
local files under ``.cache/demo/logs``; then asks Jaeger's API, the collector's files, Alertmanager's
API and the audit trail what happened, and prints where to look.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVICE = "b2bvalue-demo"
JAEGER = "http://127.0.0.1:16686"
ALERTMANAGER = "http://127.0.0.1:9093"
PROMETHEUS = "http://127.0.0.1:9090"


def _stack_dir() -> Path:
    value = os.environ.get("B2B_STACK_DIR", ".cache/stack")
    path = Path(value)
    return path if path.is_absolute() else REPO / path


def _get(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def jaeger_traces(service: str, limit: int = 200) -> list[dict[str, Any]]:
    """Traces of ``service`` from Jaeger's query API (most recent first)."""
    query = urllib.parse.urlencode({"service": service, "limit": limit, "lookback": "1h"})
    data: list[dict[str, Any]] = _get(f"{JAEGER}/api/traces?{query}").get("data") or []
    return data


def span_tree(trace: dict[str, Any], max_lines: int = 60) -> list[str]:
    """A trace from Jaeger's API as an indented outline of span names."""
    spans = trace["spans"]
    children: dict[str, list[dict[str, Any]]] = {}
    ids = {s["spanID"] for s in spans}
    roots = []
    for span in sorted(spans, key=lambda s: s["startTime"]):
        parent = next((r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"), None)
        if parent is not None and parent in ids:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    lines: list[str] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        if len(lines) < max_lines:
            lines.append(f"{'  ' * depth}{span['operationName']}  ({span['duration'] / 1000:.1f} ms)")
        for child in children.get(span["spanID"], []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return lines


def run_workload(cases: int, faults: str, log_dir: Path) -> int:
    pg_url = subprocess.run(
        ["bash", str(REPO / "scripts" / "pg.sh"), "url"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        "B2B_OTEL_LOG_DIR": str(log_dir),
        "B2B_OTEL_ALERTMANAGER_URL": ALERTMANAGER,
        "B2B_OTEL_TRACE_LINK": f"{JAEGER}/trace/{{trace_id}}",
        "B2B_OTEL_ENVIRONMENT": "demo",
        "B2BVALUE_PG_URL": pg_url,
    }
    command = [sys.executable, "-m", "examples.b2bvalue", "--cases", str(cases), "--faults", faults]
    # The application's own console log goes to a file: its handler is the application's, not
    # b2b-otel's, so it prints the planted fake secrets verbatim (the telemetry copies are scrubbed).
    console = log_dir.parent / "workload-console.log"
    with console.open("w") as stderr:
        code = subprocess.run(command, env=env, cwd=REPO, stderr=stderr).returncode
    print(f"(the application's own console log, not scrubbed by b2b-otel: {console})")
    return code


def summary(log_dir: Path, started: float) -> int:
    problems = 0
    _step("what reached the backends")
    deadline = time.monotonic() + 30
    traces: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        traces = [
            t
            for t in jaeger_traces(SERVICE)
            if t["spans"] and min(s["startTime"] for s in t["spans"]) >= started * 1e6
        ]
        if any(any(s["operationName"].startswith("invoke_workflow") for s in t["spans"]) for t in traces):
            break
        time.sleep(1)
    spans = sum(len(t["spans"]) for t in traces)
    print(f"Jaeger ({JAEGER}/api/traces?service={SERVICE}): {len(traces)} traces, {spans} spans")
    business = [
        t
        for t in traces
        if any(s["operationName"] == "invoke_workflow build_business_case" for s in t["spans"])
    ]
    if business:
        trace = max(business, key=lambda t: len(t["spans"]))
        print(f"one business case, trace {trace['traceID']} ({JAEGER}/api/traces/{trace['traceID']}):")
        for line in span_tree(trace):
            print(f"    {line}")
    else:
        print("  no business-case trace found in Jaeger yet: see .cache/stack/logs/otelcol-b2b.log")
        problems += 1
    markers = Counter(
        s["operationName"] for t in traces for s in t["spans"] if s["operationName"].startswith("alert ")
    )
    print(f"alert marker spans in Jaeger: {dict(sorted(markers.items())) or 'none'}")

    local: Counter[str] = Counter()
    for name in ("critical.log", "security.log", "performance.log"):
        path = log_dir / name
        if path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                rule = record.get("attributes", {}).get("b2b.rule.id")
                if rule and name != "critical.log":
                    local[rule] += 1
    print("derived records by rule id (local files of the process):")
    for rule, count in sorted(local.items()):
        print(f"    {rule:<34} {count}")
    collector_files = _stack_dir()
    fleet: Counter[str] = Counter()
    for name in ("derived.jsonl", "security.jsonl"):
        path = collector_files / name
        if path.exists():
            for line in path.read_text().splitlines():
                for rl in json.loads(line).get("resourceLogs", []):
                    for sl in rl.get("scopeLogs", []):
                        for rec in sl.get("logRecords", []):
                            if int(rec.get("timeUnixNano") or 0) < started * 1e9:
                                continue  # an earlier run's record
                            attrs = {a["key"]: a["value"] for a in rec.get("attributes", [])}
                            rule = attrs.get("b2b.rule.id", {}).get("stringValue")
                            if rule:
                                fleet[rule] += 1
    print(f"derived log records in the collector's files ({collector_files}): {sum(fleet.values())}")

    alerts = _get(f"{ALERTMANAGER}/api/v2/alerts")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
    ours = [a for a in alerts if a["labels"].get("service") == SERVICE and a.get("updatedAt", "") >= since]
    names = Counter(a["labels"]["alertname"] for a in ours)
    print(f"alerts in Alertmanager ({ALERTMANAGER}/api/v2/alerts): {dict(sorted(names.items())) or 'none'}")
    if not ours:
        problems += 1

    verify = subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "audit", "verify", str(log_dir / "audit.log")],
        capture_output=True,
        text=True,
    )
    print(f"audit chain ({log_dir / 'audit.log'}): {verify.stdout.strip() or verify.stderr.strip()}")
    problems += verify.returncode != 0

    try:
        query = urllib.parse.quote(
            'sum by (span_name) (traces_span_metrics_calls_total{service_name="b2bvalue-demo"})'
        )
        result = _get(f"{PROMETHEUS}/api/v1/query?query={query}")["data"]["result"]
        print(f"span-metric series in Prometheus ({PROMETHEUS}): {len(result)}")
    except Exception as exc:  # the summary goes on without Prometheus
        print(f"Prometheus query failed: {exc!r}")

    print(
        "\nwhere to look:\n"
        f"  traces       {JAEGER}/api/services, {JAEGER}/api/traces?service={SERVICE}\n"
        "               (this Jaeger is built from its Go module and has no bundled UI; docs/collector.md\n"
        "                shows how to point the official Jaeger image, with its UI, at the same collector)\n"
        f"  metrics      {PROMETHEUS}/graph, collector exporter http://127.0.0.1:8889/metrics\n"
        f"  alerts       {ALERTMANAGER}/#/alerts, webhook deliveries {collector_files / 'webhook.jsonl'}\n"
        f"  local files  {log_dir}/critical.log security.log performance.log audit.log\n"
        f"  collector    {collector_files}/derived.jsonl security.jsonl audit.jsonl\n"
        f"               and its logs in {collector_files}/logs\n"
        "  dashboards   collector/grafana/dashboards/: b2b-operations.json, b2b-business.json,\n"
        "               b2b-security.json, b2b-performance.json (Grafana JSON, each panel's PromQL in its\n"
        "               targets; provisioning in collector/grafana/provisioning)\n"
        f"  alert rules  collector/prometheus/rules/ (firing: {PROMETHEUS}/alerts),\n"
        "               routing collector/alertmanager/alertmanager.yml\n"
        "  runbook      docs/runbook.md\n"
        "  stop         make down"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m examples.b2bvalue demo", description=__doc__)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--faults", default="all")
    args = parser.parse_args(argv)
    log_dir = REPO / ".cache" / "demo" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if log_dir.exists():
        for old in log_dir.iterdir():
            if old.is_file():
                old.unlink()
    started = time.time()
    _step(f"running the B2BValue workload ({args.cases} business cases, faults: {args.faults})")
    code = run_workload(args.cases, args.faults, log_dir)
    if code not in (0, 1):
        print(f"the workload failed (exit {code})", file=sys.stderr)
        return code
    problems = summary(log_dir, started)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

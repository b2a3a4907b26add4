"""``make demo``: the B2BValue workload through the local stack, then a summary read from the real services.

Expects the stack to be up (``scripts/stack.sh up``, which ``make demo`` runs first) and PostgreSQL
(``scripts/pg.sh``). Runs ``python -m examples.b2bvalue`` as its own process with service name
``b2bvalue-demo``, exporting over OTLP to the collector, pushing alerts to Alertmanager and writing
local files under ``.cache/demo/logs``; then asks Jaeger's API, the collector's files, Alertmanager's
API, Prometheus and the audit trail what happened, and prints where to look.

LLM tokens and cost are read where an operator reads them: per business case from the workflow spans
in Jaeger (``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``b2b.llm.cost``), per
tenant from those spans and from Prometheus (``b2b.llm.cost`` by ``b2b.tenant.id``, the token usage
histogram), selected by this run's ``service.instance.id``. Jaeger holds the traces the collector's
tail sampling kept (every trace with an error, an alert or a security action, a share of the rest);
Prometheus counts every call.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVICE = "b2bvalue-demo"
JAEGER = "http://127.0.0.1:16686"
ALERTMANAGER = "http://127.0.0.1:9093"
PROMETHEUS = "http://127.0.0.1:9090"
WORKFLOW_SPAN = "invoke_workflow build_business_case"
# How long the collector may hold a trace before its tail-sampling decision (decision_wait + margin).
TAIL_DECISION_S = 15.0
# How long to wait for Prometheus to have scraped the run's last metric export.
PROMETHEUS_WAIT_S = 45.0


def _stack_dir() -> Path:
    value = os.environ.get("B2B_STACK_DIR", ".cache/stack")
    path = Path(value)
    return path if path.is_absolute() else REPO / path


def _get(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def jaeger_traces(service: str, limit: int = 200, start_us: int | None = None) -> list[dict[str, Any]]:
    """Traces of ``service`` from Jaeger's query API (most recent first), since ``start_us`` if given."""
    params: dict[str, Any] = {"service": service, "limit": limit, "lookback": "1h"}
    if start_us is not None:
        params["start"] = start_us
    query = urllib.parse.urlencode(params)
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


def run_workload(cases: int, faults: str, log_dir: Path, instance_id: str) -> tuple[int, str]:
    """Run the workload as its own process; its exit code and its report (also printed)."""
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
        # This run's series in Prometheus are the ones with instance=<this id>.
        "OTEL_RESOURCE_ATTRIBUTES": ",".join(
            part
            for part in (os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""), f"service.instance.id={instance_id}")
            if part
        ),
    }
    command = [sys.executable, "-m", "examples.b2bvalue", "--cases", str(cases), "--faults", faults]
    # The application's own console log goes to a file: its handler is the application's, not
    # b2b-otel's, so it prints the planted fake secrets verbatim (the telemetry copies are scrubbed).
    console = log_dir.parent / "workload-console.log"
    with console.open("w") as stderr:
        done = subprocess.run(command, env=env, cwd=REPO, stderr=stderr, stdout=subprocess.PIPE, text=True)
    print(done.stdout, end="")
    print(f"(the application's own console log, not scrubbed by b2b-otel: {console})")
    return done.returncode, done.stdout


# --- LLM usage: per business case and per tenant

# The workload's report: "b2bvalue run <id>: ..." and one line per case ending in "<in>/<out>".
_RUN_LINE = re.compile(r"^b2bvalue run (\w+):", re.MULTILINE)
_CASE_LINE = re.compile(r"^\s+(bc-\w+-\d+)\s+(\S+)\s.*\s(\d+)/(\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Usage:
    """LLM tokens and cost of one business case, or summed over several."""

    cases: int
    input_tokens: int
    output_tokens: int
    cost: float


def _total(items: Iterable[Usage]) -> Usage:
    items = list(items)
    return Usage(
        sum(u.cases for u in items),
        sum(u.input_tokens for u in items),
        sum(u.output_tokens for u in items),
        sum(u.cost for u in items),
    )


def reported_usage(report: str) -> tuple[str | None, dict[str, tuple[str, Usage]]]:
    """The run id and, per case, (tenant, tokens) as the application counted them (no cost)."""
    run = _RUN_LINE.search(report)
    cases = {
        case: (tenant, Usage(1, int(tokens_in), int(tokens_out), 0.0))
        for case, tenant, tokens_in, tokens_out in _CASE_LINE.findall(report)
    }
    return (run.group(1) if run else None), cases


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def jaeger_case_usage(traces: list[dict[str, Any]], run_id: str) -> dict[str, tuple[str, Usage]]:
    """Per business case of run ``run_id``: (tenant, usage) from its workflow span in Jaeger."""
    found: dict[str, tuple[str, Usage]] = {}
    for trace in traces:
        for span in trace["spans"]:
            if span["operationName"] != WORKFLOW_SPAN:
                continue
            tags = _tags(span)
            case = str(tags.get("b2b.business_case.id", ""))
            if not case.startswith(f"bc-{run_id}-"):
                continue
            found[case] = (
                str(tags.get("b2b.tenant.id", "")),
                Usage(
                    1,
                    int(tags.get("gen_ai.usage.input_tokens", 0)),
                    int(tags.get("gen_ai.usage.output_tokens", 0)),
                    float(tags.get("b2b.llm.cost", 0.0)),
                ),
            )
    return found


def by_tenant(cases: dict[str, tuple[str, Usage]]) -> dict[str, Usage]:
    """The per-case usage summed per tenant."""
    tenants = sorted({tenant for tenant, _ in cases.values()})
    return {t: _total(usage for tenant, usage in cases.values() if tenant == t) for t in tenants}


def prometheus_vector(query: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    data = _get(f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': query})}")
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def prometheus_llm_usage(instance_id: str) -> tuple[dict[str, float], dict[tuple[str, str], int]]:
    """This run's LLM cost per tenant and tokens per (tenant or "", token type) from Prometheus."""
    selector = f'job="{SERVICE}",instance="{instance_id}"'
    cost = {
        row["metric"].get("b2b_tenant_id", ""): float(row["value"][1])
        for row in prometheus_vector(f'sum by (b2b_tenant_id) ({{__name__=~"b2b_llm_cost.*",{selector}}})')
    }
    tokens = {
        (row["metric"].get("b2b_tenant_id", ""), row["metric"].get("gen_ai_token_type", "")): round(
            float(row["value"][1])
        )
        for row in prometheus_vector(
            "sum by (b2b_tenant_id, gen_ai_token_type) "
            f'({{__name__=~"gen_ai_client_token_usage.*_sum",{selector}}})'
        )
    }
    return cost, tokens


def _wait(probe: Callable[[], Any | None], timeout_s: float, every_s: float = 1.0) -> Any | None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = probe()
        except Exception:  # a backend still starting counts as "not yet"
            found = None
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(every_s)


def _usage_line(usage: Usage) -> str:
    return f"{usage.input_tokens:>10} {usage.output_tokens:>11} {usage.cost:>13.6f}"


def llm_summary(report: str, instance_id: str, finished: float, started: float) -> int:
    """Print tokens and cost per business case and per tenant; the number of problems found."""
    run_id, reported = reported_usage(report)
    if run_id is None or not reported:
        print("LLM usage: the workload's report has no business cases")
        return 1
    problems = 0
    # Kept traces reach Jaeger once the collector has decided on them.
    time.sleep(max(0.0, finished + TAIL_DECISION_S - time.time()))
    traces = [
        t
        for t in jaeger_traces(SERVICE, limit=1000, start_us=int(started * 1e6))
        if t["spans"] and min(s["startTime"] for s in t["spans"]) >= started * 1e6
    ]
    cases = jaeger_case_usage(traces, run_id)
    print(
        "LLM usage per business case (workflow spans in Jaeger: gen_ai.usage.input_tokens, "
        "gen_ai.usage.output_tokens, b2b.llm.cost):"
    )
    print(f"    {'case':<18} {'tenant':<10} {'tokens in':>10} {'tokens out':>11} {'cost (USD)':>13}")
    for case, (tenant, _) in sorted(reported.items()):
        if case in cases:
            print(f"    {case:<18} {cases[case][0]:<10} {_usage_line(cases[case][1])}")
        else:
            print(f"    {case:<18} {tenant:<10} not kept by the collector's tail sampling")
    mismatched = [
        case
        for case, (_, usage) in cases.items()
        if case in reported
        and (usage.input_tokens, usage.output_tokens)
        != (reported[case][1].input_tokens, reported[case][1].output_tokens)
    ]
    if mismatched:
        print(f"    tokens differ from what the provider told the application: {', '.join(mismatched)}")
        problems += 1
    print(f"LLM usage per tenant, from the {len(cases)} of {len(reported)} cases in Jaeger:")
    print(f"    {'tenant':<10} {'cases':>6} {'tokens in':>10} {'tokens out':>11} {'cost (USD)':>13}")
    for tenant, usage in by_tenant(cases).items():
        print(f"    {tenant:<10} {usage.cases:>6} {_usage_line(usage)}")

    # Prometheus has every call: wait until it has scraped the run's last export.
    expected = _total(usage for _, usage in reported.values())

    def complete() -> tuple[dict[str, float], dict[tuple[str, str], int]] | None:
        cost, tokens = prometheus_llm_usage(instance_id)
        seen_in = sum(n for (_, kind), n in tokens.items() if kind == "input")
        return (cost, tokens) if cost and seen_in >= expected.input_tokens else None

    found = _wait(complete, PROMETHEUS_WAIT_S, every_s=2.0)
    if found is None:
        print(f"LLM usage in Prometheus ({PROMETHEUS}, instance={instance_id}): not there (yet)")
        return problems + 1
    cost, tokens = found
    print(f"LLM usage per tenant in Prometheus ({PROMETHEUS}, every call; instance=\"{instance_id}\"):")
    split = any(tenant for tenant, _ in tokens)
    for tenant in sorted(cost):
        line = f"    {tenant or '(no tenant)':<10} cost (USD) {cost[tenant]:>10.6f}   b2b_llm_cost"
        if split:
            tenant_in, tenant_out = tokens.get((tenant, "input"), 0), tokens.get((tenant, "output"), 0)
            line += f"; tokens {tenant_in} in / {tenant_out} out"
        print(line)
    tokens_in = sum(n for (_, kind), n in tokens.items() if kind == "input")
    tokens_out = sum(n for (_, kind), n in tokens.items() if kind == "output")
    print(
        f"    all tenants: {tokens_in} tokens in / {tokens_out} out (gen_ai_client_token_usage); "
        f"the application counted {expected.input_tokens} / {expected.output_tokens}"
    )
    if (tokens_in, tokens_out) != (expected.input_tokens, expected.output_tokens):
        problems += 1
    quota = {
        row["metric"].get("b2b_llm_quota_kind", "?"): float(row["value"][1])
        for row in prometheus_vector(
            "max by (b2b_llm_quota_kind) "
            f'({{__name__=~"b2b_llm_quota_utilization.*",job="{SERVICE}",instance="{instance_id}"}})'
        )
    }
    print(
        "    provider quota in use at the end (b2b_llm_quota_utilization; rule external.llm.quota > 80 %): "
        + (", ".join(f"{kind} {share:.0%}" for kind, share in sorted(quota.items())) or "no series")
    )
    return problems


def summary(log_dir: Path, started: float, report: str = "", instance_id: str = "") -> int:
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
    if report:
        problems += llm_summary(report, instance_id, time.time(), started)

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
    instance_id = str(uuid.uuid4())
    _step(f"running the B2BValue workload ({args.cases} business cases, faults: {args.faults})")
    code, report = run_workload(args.cases, args.faults, log_dir, instance_id)
    if code not in (0, 1):
        print(f"the workload failed (exit {code})", file=sys.stderr)
        return code
    problems = summary(log_dir, started, report, instance_id)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Writes the four Grafana dashboards of the seed (Operations, Business, Security, Performance).

    .venv/bin/python scripts/gen_dashboards.py          # writes collector/grafana/dashboards/*.json
    .venv/bin/python scripts/gen_dashboards.py --check  # exit 1 when a committed file is stale

Dashboards as code with grafana-foundation-sdk (the Grafana project's builder library, generated for
Grafana 11.6): this file says which panels each dashboard has and which PromQL each panel runs; the
SDK builds the dashboard models and their JSON. Every query reads the stack's Prometheus through the
provisioned data source (uid ``b2b-prometheus``, collector/grafana/provisioning/). Metric names are
what the collector's Prometheus exporter, prometheus-node-exporter and prometheus-postgres-exporter
produce (OTel names with dots as underscores, units and ``_total`` as suffixes).

tests/test_ops_dashboards.py fails when a committed file is not what this script writes, and runs
every panel's queries against the real Prometheus of the end-to-end stack.
"""

# PromQL reads best on one line per query: long lines are allowed in this file only.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import table as gtable
from grafana_foundation_sdk.builders import timeseries as gts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "collector" / "grafana" / "dashboards"
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="b2b-prometheus")
RUNBOOK = "https://github.com/b2b-otel/b2b-otel/blob/main/docs/runbook.md"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # timeseries | stat | table
    unit: str = "short"
    width: int = 12


@dataclass
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: list[tuple[str, list[PanelSpec]]] = field(default_factory=list)


def q(expr: str, legend: str = "", instant: bool = False) -> Query:
    return Query(" ".join(expr.split()), legend, instant)


def panel(title: str, description: str, *queries: Query, kind: str = "timeseries", unit: str = "short",
          width: int = 12) -> PanelSpec:
    return PanelSpec(title, description, tuple(queries), kind, unit, width)


CALLS = "traces_span_metrics_calls_total"
ERR = 'status_code="STATUS_CODE_ERROR"'


def error_share(by: str, selector: str = "") -> str:
    """Failing share of the spans matching ``selector`` by ``by``: 0, not nothing, when none failed."""
    sel = f"{{{selector}}}" if selector else ""
    sel_err = f"{{{selector + ', ' if selector else ''}{ERR}}}"
    total = f"sum by ({by}) (rate({CALLS}{sel}[5m]))"
    return f"(sum by ({by}) (rate({CALLS}{sel_err}[5m])) or {total} * 0) / {total}"


def p95(metric: str, by: str, selector: str = "") -> str:
    sel = f"{{{selector}}}" if selector else ""
    return f"histogram_quantile(0.95, sum by ({by}, le) (rate({metric}_bucket{sel}[5m])))"


OPERATIONS = DashboardSpec(
    "b2b-operations",
    "B2B Operations",
    "System health, agent execution status, error rates and trends, resource utilisation (the seed's"
    " Operations dashboard). Runbook: docs/runbook.md.",
    [
        ("System health", [
            panel("Components up", "1 when Prometheus scrapes the component (gateway, Jaeger, exporters).",
                  q("up", "{{job}} {{instance}}", instant=True), kind="stat", width=12),
            panel("Firing alerts by severity", "Alerts Prometheus evaluates as firing now.",
                  q('count by (severity) (ALERTS{alertstate="firing"})', "{{severity}}", instant=True),
                  kind="stat", width=6),
            panel("Derived records by rule (1 h)", "SLA breaches and security events the gateway saw.",
                  q("sum by (b2b_rule_id, b2b_alert_severity) (increase(b2b_collector_derived_records_total[1h]))",
                    "{{b2b_rule_id}} ({{b2b_alert_severity}})", instant=True), kind="table", width=6),
        ]),
        ("Agent execution status", [
            panel("Agent executions by outcome", "b2b.agent.executions per second, by agent and outcome.",
                  q("sum by (job, gen_ai_agent_name, outcome) (rate(b2b_agent_executions_total[5m]))",
                    "{{gen_ai_agent_name}} {{outcome}}"), unit="ops"),
            panel("Agent success rate (1 h)", "Alert B2BAgentSuccessRateLow under 95 %.",
                  q('sum by (job, gen_ai_agent_name) (increase(b2b_agent_executions_total{outcome="success"}[1h]))'
                    " / sum by (job, gen_ai_agent_name) (increase(b2b_agent_executions_total[1h]))",
                    "{{gen_ai_agent_name}}"), unit="percentunit"),
            panel("Agent queue depth", "Pending executions per agent; alert B2BAgentQueueDeep over 10.",
                  q("max by (job, gen_ai_agent_name) (b2b_agent_queue_depth)", "{{gen_ai_agent_name}}")),
            panel("Agent runs over 5 minutes", "Runs outside the 300 s bucket (alert B2BAgentExecutionBlocked).",
                  q('sum by (job, gen_ai_agent_name) (increase(traces_span_metrics_duration_seconds_count{gen_ai_operation_name="invoke_agent"}[1h]))'
                    ' - sum by (job, gen_ai_agent_name) (increase(traces_span_metrics_duration_seconds_bucket{gen_ai_operation_name="invoke_agent", le="300"}[1h]))',
                    "{{gen_ai_agent_name}}")),
        ]),
        ("Error rates and trends", [
            panel("Error share by operation", "Failing share of the spans of each GenAI operation (span metrics).",
                  q(error_share("job, gen_ai_operation_name", 'gen_ai_operation_name!=""'),
                    "{{job}} {{gen_ai_operation_name}}"), unit="percentunit"),
            panel("Telemetry dropped", "b2b.telemetry.dropped by signal and reason (should stay 0).",
                  q("sum by (job, signal, reason) (increase(b2b_telemetry_dropped_total[1h]))",
                    "{{job}} {{signal}} {{reason}}")),
            panel("Gateway export failures", "Items the gateway's exporters failed to send.",
                  q('sum by (exporter) (rate({__name__=~"otelcol_exporter_send_failed_(spans|log_records|metric_points)_total"}[5m]))',
                    "{{exporter}}"), unit="ops"),
            panel("Gateway items received", "Spans, log records and metric points accepted by the gateway.",
                  q('sum by (receiver) (rate({__name__=~"otelcol_receiver_accepted_(spans|log_records|metric_points)_total"}[5m]))',
                    "{{receiver}}"), unit="ops"),
        ]),
        ("Resource utilisation", [
            panel("Host CPU busy", "1 - idle, per host (node exporter); alert B2BHostCPUHigh at 80 % / 95 %.",
                  q('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', "{{instance}}"),
                  unit="percentunit"),
            panel("Host memory used", "1 - MemAvailable / MemTotal; alert B2BHostMemoryHigh at 85 % / 95 %.",
                  q("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}"),
                  unit="percentunit"),
            panel("File systems used", "Alert B2BHostDiskFull at 80 % / 90 %.",
                  q('1 - node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|devtmpfs|squashfs|nsfs|proc|sysfs|fuse.*"}'
                    ' / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs|devtmpfs|squashfs|nsfs|proc|sysfs|fuse.*"}',
                    "{{instance}} {{mountpoint}}"), unit="percentunit"),
            panel("Service process CPU", "process.cpu.time of each instrumented service (system_metrics).",
                  q("sum by (job) (rate(process_cpu_time_seconds_total[5m]))", "{{job}}"), unit="percentunit"),
            panel("Service process memory", "process.memory.usage (resident) of each instrumented service.",
                  q("sum by (job) (process_memory_usage_bytes)", "{{job}}"), unit="bytes"),
            panel("Service threads", "process.thread.count of each instrumented service.",
                  q("sum by (job) (process_thread_count)", "{{job}}")),
            panel("Service GC collections", "cpython.gc.collections per second, by generation (system_metrics).",
                  q("sum by (job, cpython_gc_generation) (rate(cpython_gc_collections_total[5m]))",
                    "{{job}} gen {{cpython_gc_generation}}"), unit="ops"),
        ]),
    ],
)

BUSINESS = DashboardSpec(
    "b2b-business",
    "B2B Business",
    "Workflow completion rates, user engagement, business case quality, ROI calculation (the seed's"
    " Business dashboard).",
    [
        ("Workflow completion", [
            panel("Workflow completion rate", "Share of workflows that finished without error (alert"
                  " B2BWorkflowFailureRateHigh over 5 % failures).",
                  q("1 - " + error_share("job", 'gen_ai_operation_name="invoke_workflow"'), "{{job}}"),
                  unit="percentunit"),
            panel("Workflows per minute", "Finished workflow spans, by outcome.",
                  q('sum by (job, status_code) (rate(traces_span_metrics_calls_total{gen_ai_operation_name="invoke_workflow"}[5m])) * 60',
                    "{{job}} {{status_code}}")),
            panel("Average completion time", "Alert B2BWorkflowCompletionSlow over 30 minutes.",
                  q("sum by (job, gen_ai_workflow_name) (rate(gen_ai_invoke_workflow_duration_seconds_sum[15m]))"
                    " / sum by (job, gen_ai_workflow_name) (rate(gen_ai_invoke_workflow_duration_seconds_count[15m]))",
                    "{{gen_ai_workflow_name}}"), unit="s"),
            panel("Workflow steps by outcome", "b2b.workflow.steps: step completion and abandonment.",
                  q("sum by (job, outcome) (rate(b2b_workflow_steps_total[5m])) * 60", "{{outcome}}")),
        ]),
        ("User engagement and quality", [
            panel("Logins by outcome", "Sign-ins recorded by the services (gateway count of security spans).",
                  q('sum by (event_outcome) (increase(b2b_collector_security_actions_total{b2b_security_action="login"}[1h]))',
                    "{{event_outcome}}", instant=True), kind="stat", width=6),
            panel("Data quality breaches (1 h)", "Steps whose b2b.data_quality.score was under 0.85"
                  " (alert B2BDataQualityLow).",
                  q('sum (increase(b2b_collector_derived_records_total{b2b_rule_id="workflow.data_quality.low"}[1h]))',
                    "breaches", instant=True), kind="stat", width=6),
            panel("ROI calculation success", "Success share of the ROI calculator agent's runs.",
                  q('sum by (job) (increase(b2b_agent_executions_total{gen_ai_agent_name=~".*roi.*", outcome="success"}[1h]))'
                    ' / sum by (job) (increase(b2b_agent_executions_total{gen_ai_agent_name=~".*roi.*"}[1h]))',
                    "{{job}}"), unit="percentunit"),
            panel("LLM cost by tenant (1 h)", "b2b.llm.cost (USD) of the LLM calls made for each tenant.",
                  q("sum by (b2b_tenant_id) (increase(b2b_llm_cost_USD_total[1h]))", "{{b2b_tenant_id}}",
                    instant=True), kind="table", unit="currencyUSD"),
            panel("LLM tokens by tenant (1 h)", "b2b.llm.token.usage: input and output tokens of the LLM"
                  " calls made for each tenant.",
                  q("sum by (b2b_tenant_id, gen_ai_token_type) (increase(b2b_llm_token_usage_total[1h]))",
                    "{{b2b_tenant_id}} {{gen_ai_token_type}}", instant=True), kind="table"),
            panel("LLM tokens by type", "gen_ai.client.token.usage of the services' LLM calls.",
                  q("sum by (job, gen_ai_token_type) (rate(gen_ai_client_token_usage_sum[5m])) * 60",
                    "{{job}} {{gen_ai_token_type}}")),
        ]),
    ],
)

SECURITY = DashboardSpec(
    "b2b-security",
    "B2B Security",
    "Authentication events, access violations, compliance status, threat indicators (the seed's"
    " Security dashboard).",
    [
        ("Authentication and access", [
            panel("Security actions by outcome", "Spans recording a security action, by action and outcome.",
                  q("sum by (b2b_security_action, event_outcome) (increase(b2b_collector_security_actions_total[1h]))",
                    "{{b2b_security_action}} {{event_outcome}}", instant=True), kind="table"),
            panel("Failed logins per minute", "Failed sign-ins across the fleet (bursts per address: alert"
                  " B2BFailedLoginBurst).",
                  q('sum (rate(b2b_collector_security_actions_total{b2b_security_action="login", event_outcome="failure"}[5m])) * 60',
                    "failed logins")),
            panel("Access violations per minute", "access_denied events recorded by the services.",
                  q('sum by (job) (rate(b2b_security_events_total{b2b_security_action="access_denied"}[5m])) * 60',
                    "{{job}}")),
            panel("Privilege changes (1 h)", "privilege_change events (escalations alert B2BPrivilegeEscalation).",
                  q('sum by (job) (increase(b2b_security_events_total{b2b_security_action="privilege_change"}[1h]))',
                    "{{job}}", instant=True), kind="stat"),
        ]),
        ("Compliance and threats", [
            panel("Sensitive data found (1 h)", "Findings the SDK scrubbed before export (alert"
                  " B2BSensitiveDataDetected).",
                  q('sum by (job) (increase(b2b_security_events_total{b2b_security_action="sensitive_data"}[1h]))',
                    "{{job}}", instant=True), kind="stat"),
            panel("Audit records (1 h)", "Audit trail records the services wrote (b2b.audit.record).",
                  q('sum by (b2b_security_action) (increase(b2b_collector_security_actions_total{b2b_security_action=~"audit|privilege_change"}[1h]))',
                    "{{b2b_security_action}}", instant=True), kind="stat"),
            panel("Threat indicators (1 h)", "Security rules that fired, fleet-wide.",
                  q('sum by (b2b_rule_id, b2b_alert_severity) (increase(b2b_collector_derived_records_total{b2b_alert_tier="security"}[1h]))',
                    "{{b2b_rule_id}} ({{b2b_alert_severity}})", instant=True), kind="table"),
            panel("Security alerts firing", "Prometheus alerts of the security tier firing now.",
                  q('count by (alertname, severity) (ALERTS{alertstate="firing", tier="security"})',
                    "{{alertname}} ({{severity}})", instant=True), kind="table"),
        ]),
    ],
)

PERFORMANCE = DashboardSpec(
    "b2b-performance",
    "B2B Performance",
    "Response times, throughput, database performance, external API health (the seed's Performance"
    " dashboard).",
    [
        ("Response times", [
            panel("Agent p95", "gen_ai.invoke_agent.duration (alert B2BAgentLatencyHigh over 3 s).",
                  q(p95("gen_ai_invoke_agent_duration_seconds", "job, gen_ai_agent_name"), "{{gen_ai_agent_name}}"),
                  unit="s"),
            panel("Tool p95", "gen_ai.execute_tool.duration.",
                  q(p95("gen_ai_execute_tool_duration_seconds", "job, gen_ai_tool_name"), "{{gen_ai_tool_name}}"),
                  unit="s"),
            panel("Memory operation p95 by tier", "b2b.memory.operation.duration.",
                  q(p95("b2b_memory_operation_duration_seconds", "job, b2b_memory_tier"), "{{b2b_memory_tier}}"),
                  unit="s"),
            panel("Working-memory cache hit rate", "Alert B2BMemoryCacheHitRateLow under 80 %.",
                  q('sum by (job) (rate(b2b_memory_cache_requests_total{hit="true"}[15m]))'
                    " / sum by (job) (rate(b2b_memory_cache_requests_total[15m]))", "{{job}}"), unit="percentunit"),
        ]),
        ("Throughput", [
            panel("Spans per second by operation", "Every span of the fleet, before tail sampling.",
                  q("sum by (job, gen_ai_operation_name) (rate(traces_span_metrics_calls_total[5m]))",
                    "{{job}} {{gen_ai_operation_name}}"), unit="ops"),
            panel("Memory operations per second", "By tier and operation.",
                  q("sum by (b2b_memory_tier, gen_ai_operation_name) (rate(b2b_memory_operation_duration_seconds_count[5m]))",
                    "{{b2b_memory_tier}} {{gen_ai_operation_name}}"), unit="ops"),
        ]),
        ("Database performance", [
            panel("Query p95 (application)", "db.client.operation.duration (alert B2BDatabaseQuerySlow over 10 s).",
                  q(p95("db_client_operation_duration_seconds", "job, db_system_name"), "{{job}} {{db_system_name}}"),
                  unit="s"),
            panel("Pool utilisation", "Used over max connections of each registered pool (alert"
                  " B2BDatabasePoolExhausted over 90 %).",
                  q('sum by (job, db_client_connection_pool_name) (db_client_connection_count{state="used"})'
                    " / sum by (job, db_client_connection_pool_name) (db_client_connection_max)",
                    "{{db_client_connection_pool_name}}"), unit="percentunit"),
            panel("Server connections by state", "pg_stat_activity, per database and state.",
                  q("sum by (datname, state) (pg_stat_activity_count)", "{{datname}} {{state}}")),
            panel("Locks by mode", "Locks held, and lock requests waiting (alert B2BPostgresLockContention).",
                  q("sum by (mode) (pg_locks_count)", "held {{mode}}"),
                  q("sum by (mode) (pg_locks_waiting_count)", "waiting {{mode}}")),
            panel("Slowest statements (mean)", "pg_stat_statements: the 10 statements with the highest mean"
                  " time; read the text with the runbook's psql command.",
                  q("topk(10, max by (datname, queryid) (pg_stat_statements_mean_exec_seconds))",
                    "{{datname}} {{queryid}}", instant=True), kind="table", unit="s"),
            panel("Database size", "pg_database_size_bytes.",
                  q("max by (datname) (pg_database_size_bytes)", "{{datname}}"), unit="bytes"),
            panel("Deadlocks and rollbacks", "pg_stat_database per database (alert B2BPostgresDeadlock).",
                  q("sum by (datname) (increase(pg_stat_database_deadlocks[1h]))", "deadlocks {{datname}}"),
                  q("sum by (datname) (rate(pg_stat_database_xact_rollback[5m]))", "rollbacks/s {{datname}}")),
            panel("Replication", "Replay lag of this server when it is a standby; per replica on a primary.",
                  q("max by (instance) (pg_replication_lag_seconds)", "lag {{instance}}"),
                  q("max by (application_name) (pg_replica_replay_lag_seconds)", "replica {{application_name}}"),
                  unit="s"),
        ]),
        ("External API health", [
            panel("External API error share", "Failing share of HTTP client requests per server (alert"
                  " B2BExternalAPIUnavailable over 5 %).",
                  q('(sum by (job, server_address) (rate(http_client_request_duration_seconds_count{error_type!=""}[5m]))'
                    " or sum by (job, server_address) (rate(http_client_request_duration_seconds_count[5m])) * 0)"
                    " / sum by (job, server_address) (rate(http_client_request_duration_seconds_count[5m]))",
                    "{{server_address}}"), unit="percentunit"),
            panel("External API p95", "http.client.request.duration (alert B2BExternalAPISlow over 5 s).",
                  q(p95("http_client_request_duration_seconds", "job, server_address"), "{{server_address}}"),
                  unit="s"),
            panel("LLM quota used", "b2b.llm.quota.utilization (alert B2BLLMQuotaHigh over 80 %).",
                  q("max by (job, gen_ai_provider_name, b2b_llm_quota_kind) (b2b_llm_quota_utilization_ratio)",
                    "{{gen_ai_provider_name}} {{b2b_llm_quota_kind}}"), unit="percentunit"),
            panel("LLM call p95", "gen_ai.client.operation.duration of the services' LLM calls.",
                  q(p95("gen_ai_client_operation_duration_seconds", "job, gen_ai_request_model"),
                    "{{gen_ai_request_model}}"), unit="s"),
        ]),
        ("Host I/O", [
            panel("Disk busy", "Share of time each device was busy (alert B2BHostDiskIOSaturated over 90 %).",
                  q("max by (instance, device) (rate(node_disk_io_time_seconds_total[5m]))", "{{instance}} {{device}}"),
                  unit="percentunit"),
            panel("Network traffic", "Bytes received and sent per interface.",
                  q('sum by (instance, device) (rate(node_network_receive_bytes_total{device!="lo"}[5m]))',
                    "in {{device}}"),
                  q('sum by (instance, device) (rate(node_network_transmit_bytes_total{device!="lo"}[5m]))',
                    "out {{device}}"), unit="Bps"),
        ]),
    ],
)

DASHBOARDS = (OPERATIONS, BUSINESS, SECURITY, PERFORMANCE)


def _target(query: Query, ref: str) -> gprom.Dataquery:
    target = gprom.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
    if query.legend:
        target = target.legend_format(query.legend)
    return target.instant() if query.instant else target.range()


def _panel(spec: PanelSpec, panel_id: int) -> gts.Panel | gstat.Panel | gtable.Panel:
    builder: gts.Panel | gstat.Panel | gtable.Panel
    if spec.kind == "stat":
        builder = gstat.Panel()
    elif spec.kind == "table":
        builder = gtable.Panel()
    else:
        builder = gts.Panel()
    builder = builder.id(panel_id).title(spec.title).description(spec.description).datasource(DATASOURCE)
    builder = builder.unit(spec.unit).span(spec.width).height(8)
    for index, query in enumerate(spec.queries):
        builder = builder.with_target(_target(query, chr(ord("A") + index)))
    return builder


def build(spec: DashboardSpec) -> dict[str, object]:
    board = (
        gdash.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["b2b-otel"])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .link(gdash.DashboardLink("B2B dashboards").type(models.DashboardLinkType.DASHBOARDS)
              .tags(["b2b-otel"]).as_dropdown(True).keep_time(True))
        .link(gdash.DashboardLink("Runbook").type(models.DashboardLinkType.LINK).url(RUNBOOK).target_blank(True))
    )
    panel_id = 0
    for title, panels in spec.rows:
        panel_id += 1
        board = board.with_row(gdash.Row(title).id(panel_id))
        for panel_spec in panels:
            panel_id += 1
            board = board.with_panel(_panel(panel_spec, panel_id))
    encoded: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def render(spec: DashboardSpec) -> str:
    return json.dumps(build(spec), indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed file is stale")
    args = parser.parse_args()
    stale = []
    for spec in DASHBOARDS:
        path = OUT / f"{spec.uid}.json"
        text = render(spec)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(REPO)))
            continue
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(f"stale (run scripts/gen_dashboards.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

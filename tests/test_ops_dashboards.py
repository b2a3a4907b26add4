"""The four Grafana dashboards of the seed (issue 12), built as code with grafana-foundation-sdk.

The committed JSON is what scripts/gen_dashboards.py writes (a stale file fails); each dashboard has the
panels the seed lists; every panel reads the provisioned Prometheus data source and has PromQL that
Prometheus' own parser accepts (promtool). tests/e2e/test_ops_stack.py runs every query against the real
Prometheus of the stack after the example workload.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ops_tools import REPO, tool

DASHBOARDS = REPO / "collector" / "grafana" / "dashboards"
PROVISIONING = REPO / "collector" / "grafana" / "provisioning"

# The seed's "Dashboard Categories", item by item -> the panel titles that show it.
SEED_PANELS = {
    "b2b-operations": {
        "System health indicators": ["Components up", "Firing alerts by severity"],
        "Agent execution status": [
            "Agent executions by outcome",
            "Agent success rate (1 h)",
            "Agent queue depth",
        ],
        "Error rates and trends": ["Error share by operation", "Telemetry dropped"],
        "Resource utilization": [
            "Host CPU busy",
            "Host memory used",
            "File systems used",
            "Service process CPU",
            "Service process memory",
            "Service threads",
            "Service GC collections",
        ],
    },
    "b2b-business": {
        "Workflow completion rates": ["Workflow completion rate", "Average completion time"],
        "User engagement metrics": ["Logins by outcome", "Workflow steps by outcome"],
        "Business case quality scores": ["Data quality breaches (1 h)"],
        "ROI calculation accuracy": ["ROI calculation success"],
    },
    "b2b-security": {
        "Authentication events": ["Security actions by outcome", "Failed logins per minute"],
        "Access violations": ["Access violations per minute"],
        "Compliance status": ["Sensitive data found (1 h)", "Audit records (1 h)"],
        "Threat indicators": ["Threat indicators (1 h)", "Privilege changes (1 h)"],
    },
    "b2b-performance": {
        "Response times": ["Agent p95", "Tool p95", "Memory operation p95 by tier"],
        "Throughput metrics": ["Spans per second by operation", "Memory operations per second"],
        "Database performance": [
            "Query p95 (application)",
            "Pool utilisation",
            "Server connections by state",
            "Locks by mode",
            "Slowest statements (mean)",
            "Database size",
            "Replication",
        ],
        "External API health": ["External API error share", "External API p95", "LLM quota used"],
    },
}


def load(uid: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DASHBOARDS / f"{uid}.json").read_text(encoding="utf-8"))
    return board


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def all_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) of every target of every panel."""
    return [
        (uid, panel["title"], target["expr"])
        for uid in SEED_PANELS
        for panel in panels(load(uid))
        for target in panel["targets"]
    ]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="grafana-foundation-sdk needs Python 3.11")
def test_the_committed_json_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("gen_dashboards", REPO / "scripts" / "gen_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    assert [s.uid for s in module.DASHBOARDS] == list(SEED_PANELS)
    for board in module.DASHBOARDS:
        assert (DASHBOARDS / f"{board.uid}.json").read_text(encoding="utf-8") == module.render(board), (
            f"collector/grafana/dashboards/{board.uid}.json is stale: run scripts/gen_dashboards.py"
        )
    assert sorted(p.stem for p in DASHBOARDS.glob("*.json")) == sorted(SEED_PANELS)


@pytest.mark.parametrize("uid", list(SEED_PANELS))
def test_each_dashboard_has_the_panels_the_seed_lists(uid: str) -> None:
    board = load(uid)
    assert board["uid"] == uid and board["title"].startswith("B2B ")
    titles = {p["title"] for p in panels(board)}
    for item, expected in SEED_PANELS[uid].items():
        missing = set(expected) - titles
        assert not missing, f"{uid}: '{item}' lacks panels {sorted(missing)}"
    assert all(p["targets"] and p["description"] for p in panels(board))
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_reads_the_provisioned_prometheus() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "b2b-prometheus.yaml").read_text())
    (source,) = provisioned["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://127.0.0.1:9090")
    for uid in SEED_PANELS:
        for panel in panels(load(uid)):
            refs = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
            assert all(r == {"type": "prometheus", "uid": source["uid"]} for r in refs), panel["title"]
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "b2b-otel.yaml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    # promtool parses a rule file's expressions with Prometheus' own parser: one rule per query.
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, (_uid, _title, expr) in enumerate(all_queries())
    ]
    assert len(rules) >= 40
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    done = subprocess.run(
        [tool("promtool", "prometheus"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr

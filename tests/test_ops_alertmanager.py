"""The shipped Alertmanager routing (issue 12): four tiers x three severities, the seed's channels.

Checked with the real amtool (check-config, config routes test) on the production file and on the local
stack's file generated from it, and end to end with a real Alertmanager delivering to a real webhook
receiver (scripts/stack_webhook.py): each tier x severity reaches its own receiver, and a warning of the
same rule and group as a firing critical is inhibited.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ops_tools import REPO, free_port, stop, tool, wait_ready

PRODUCTION = REPO / "collector" / "alertmanager" / "alertmanager.yml"
LOCAL = REPO / "collector" / "alertmanager" / "local" / "alertmanager.yml"
TIERS = ("operations", "engineering", "security", "management")
SEVERITIES = ("critical", "warning", "info")
COMBOS = [(tier, severity) for tier in TIERS for severity in SEVERITIES]
# The seed's response times: the repeat interval of each severity.
REPEAT = {"critical": "5m", "warning": "1h", "info": "24h"}


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_alertmanager_local", REPO / "scripts" / "gen_alertmanager_local.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def amtool(*argv: str) -> subprocess.CompletedProcess[str]:
    binary = tool("amtool", "prometheus-alertmanager")
    return subprocess.run([binary, *argv], capture_output=True, text=True, timeout=60, cwd=REPO)


def production() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(PRODUCTION.read_text(encoding="utf-8"))
    return config


def receivers() -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in production()["receivers"]}


def route_of(tier: str, severity: str) -> dict[str, Any]:
    (tier_route,) = [r for r in production()["route"]["routes"] if r["matchers"] == [f'tier="{tier}"']]
    (route,) = [r for r in tier_route["routes"] if r["matchers"] == [f'severity="{severity}"']]
    return dict(route)


# --- static: the files and the tools' verdicts


def test_the_local_file_is_generated_from_the_production_file() -> None:
    assert LOCAL.read_text(encoding="utf-8") == _generator().render(), (
        "collector/alertmanager/local/alertmanager.yml is stale: run scripts/gen_alertmanager_local.py"
    )


@pytest.mark.parametrize("path", [PRODUCTION, LOCAL], ids=["production", "local"])
def test_amtool_check_config_accepts_it(path: Path) -> None:
    done = amtool("check-config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "13 receivers" in done.stdout


@pytest.mark.parametrize("path", [PRODUCTION, LOCAL], ids=["production", "local"])
@pytest.mark.parametrize(("tier", "severity"), COMBOS)
def test_amtool_routes_every_tier_and_severity_to_its_receiver(path: Path, tier: str, severity: str) -> None:
    done = amtool("config", "routes", "test", f"--config.file={path}", f"tier={tier}", f"severity={severity}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"{tier}-{severity}"


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("severity=critical",), "unrouted"),
        (("tier=finance", "severity=critical"), "unrouted"),
        (("tier=engineering",), "engineering-warning"),
        (("tier=security", "severity=debug"), "security-warning"),
    ],
)
def test_amtool_routes_what_lacks_a_known_tier_or_severity_somewhere_visible(
    labels: tuple[str, ...], receiver: str
) -> None:
    done = amtool("config", "routes", "test", f"--config.file={PRODUCTION}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver


@pytest.mark.parametrize("tier", TIERS)
def test_each_tier_has_the_seed_channels_per_severity(tier: str) -> None:
    by_name = receivers()
    critical = by_name[f"{tier}-critical"]
    assert [c["routing_key_file"] for c in critical["pagerduty_configs"]]
    assert [c["channel"] for c in critical["slack_configs"]] == ["#critical-alerts"]
    assert critical["email_configs"] and critical["webhook_configs"]  # on-call mail, a ticket
    warning = by_name[f"{tier}-warning"]
    assert "pagerduty_configs" not in warning
    assert [c["channel"] for c in warning["slack_configs"]] == ["#monitoring"]
    assert warning["email_configs"]
    assert [c["http_config"]["authorization"]["credentials_file"] for c in warning["webhook_configs"]]
    info = by_name[f"{tier}-info"]
    assert set(info) == {"name", "email_configs"}  # the daily digest only
    assert "digest" in info["email_configs"][0]["headers"]["Subject"]


@pytest.mark.parametrize(("tier", "severity"), COMBOS)
def test_intervals_match_the_response_times(tier: str, severity: str) -> None:
    route = route_of(tier, severity)
    assert route["receiver"] == f"{tier}-{severity}"
    assert route["repeat_interval"] == REPEAT[severity]
    if severity == "info":
        # One mail per tier and day with every info alert: the digest.
        assert (route["group_by"], route["group_interval"]) == (["tier"], "24h")


def _keys(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from _keys(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _keys(value, f"{path}[{index}]")


SECRET_FIELDS = (
    "smtp_auth_password",
    "smtp_auth_secret",
    "slack_api_url",
    "api_url",
    "routing_key",
    "service_key",
    "auth_password",
    "auth_secret",
    "credentials",
    "password",
    "bearer_token",
    "api_key",
)


def test_secrets_are_read_from_files_never_inline() -> None:
    fields = [(path, value) for path, value in _keys(production())]
    leaf = {path.rsplit(".", 1)[-1] for path, _ in fields}
    assert not leaf & set(SECRET_FIELDS), f"inline secrets: {sorted(leaf & set(SECRET_FIELDS))}"
    files = [value for path, value in fields if path.endswith("_file")]
    assert len(files) >= 4 + 4 + 2  # four PagerDuty keys, ticket tokens, the SMTP password, the Slack URL
    assert all(str(value).startswith("/etc/alertmanager/secrets/") for value in files)


def test_a_critical_inhibits_warnings_and_infos_of_the_same_rule_and_group() -> None:
    (rule,) = production()["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"']
    assert rule["target_matchers"] == ['severity=~"warning|info"']
    assert {"alertname", "tier", "service"} <= set(rule["equal"])
    assert set(production()["route"]["group_by"]) <= set(rule["equal"])


# --- end to end: a real Alertmanager with the local tree, delivering to the real webhook receiver


class Delivery:
    def __init__(self, url: str, out: Path) -> None:
        self.url = url
        self.out = out

    def push(self, alerts: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def notifications(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text(encoding="utf-8").splitlines() if line]

    def received(self, alertname: str, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """(path, alert) of every delivered alert with that name (and labels)."""
        found = []
        for line in self.notifications():
            for alert in line["payload"].get("alerts", []):
                if alert["labels"].get("alertname") != alertname:
                    continue
                if labels and any(alert["labels"].get(k) != v for k, v in labels.items()):
                    continue
                found.append({"path": line["path"], "receiver": line["payload"]["receiver"], **alert})
        return found

    def api_alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            data: list[dict[str, Any]] = json.loads(response.read())
        return data


@pytest.fixture
def delivery(tmp_path: Path) -> Iterator[Delivery]:
    binary = tool("prometheus-alertmanager", "prometheus-alertmanager")
    hook_port, am_port = free_port(), free_port()
    out = tmp_path / "webhook.jsonl"
    hook_log = tmp_path / "webhook.log"
    with hook_log.open("wb") as log:
        hook = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "scripts" / "stack_webhook.py"),
                "--listen",
                f"127.0.0.1:{hook_port}",
                "--out",
                str(out),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"http://127.0.0.1:{hook_port}/-/ready", hook, hook_log)
        generator = _generator()
        config = generator.local_config(production(), webhook=f"http://127.0.0.1:{hook_port}")
        config_path = tmp_path / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        am_log = tmp_path / "alertmanager.log"
        with am_log.open("wb") as log:
            am = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_ready(f"http://127.0.0.1:{am_port}/-/ready", am, am_log)
            yield Delivery(f"http://127.0.0.1:{am_port}", out)
        finally:
            stop(am)
    finally:
        stop(hook)


def alert(name: str, tier: str, severity: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "tier": tier, "severity": severity, **labels},
        "annotations": {"summary": f"{tier} {severity} test alert"},
        "startsAt": datetime.now(timezone.utc).isoformat(),
    }


def wait_for(check: Any, what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def test_every_tier_and_severity_reaches_its_webhook_receiver(delivery: Delivery) -> None:
    name = f"OpsRouting{uuid.uuid4().hex[:8]}"
    delivery.push(
        [alert(name, tier, severity, service=f"svc-{tier}-{severity}") for tier, severity in COMBOS]
    )
    got = wait_for(lambda: len(delivery.received(name)) >= 12 and delivery.received(name), "12 deliveries")
    paths = {(a["labels"]["tier"], a["labels"]["severity"]): a["path"] for a in got}
    assert paths == {(tier, severity): f"/{tier}-{severity}" for tier, severity in COMBOS}
    assert all(a["receiver"] == a["path"].lstrip("/") and a["status"] == "firing" for a in got)


def test_a_warning_of_the_same_rule_and_group_as_a_critical_is_inhibited(delivery: Delivery) -> None:
    name = f"OpsInhibit{uuid.uuid4().hex[:8]}"
    delivery.push([alert(name, "engineering", "critical", service="b2bvalue-demo")])
    wait_for(lambda: delivery.received(name, {"severity": "critical"}), "the critical")
    delivery.push(
        [
            alert(name, "engineering", "warning", service="b2bvalue-demo"),  # same rule and group
            alert(name, "engineering", "warning", service="other-service"),  # another group: delivered
        ]
    )
    delivered = wait_for(
        lambda: delivery.received(name, {"service": "other-service"}), "the other group's warning"
    )
    assert delivered[0]["path"] == "/engineering-warning"

    def inhibited() -> list[dict[str, Any]]:
        return [
            a
            for a in delivery.api_alerts()
            if a["labels"]["alertname"] == name
            and a["labels"]["severity"] == "warning"
            and a["labels"]["service"] == "b2bvalue-demo"
            and a["status"]["inhibitedBy"]
        ]

    assert wait_for(inhibited, "Alertmanager to mark the warning inhibited")
    time.sleep(3)  # past group_wait (1 s) of the warning's own group
    assert delivery.received(name, {"severity": "warning", "service": "b2bvalue-demo"}) == []

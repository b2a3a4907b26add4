"""The shipped configurations are valid for the very binaries and tools that run them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.stack_client import REPO

pytestmark = pytest.mark.e2e

GATEWAY = REPO / "collector" / "config" / "gateway.yaml"
JAEGER = REPO / "collector" / "config" / "jaeger.yaml"
PROMETHEUS = REPO / "collector" / "prometheus" / "prometheus.yml"
# The stack runs the local file (production's tree with webhook receivers): tests/test_ops_alertmanager.py.
ALERTMANAGER = REPO / "collector" / "alertmanager" / "local" / "alertmanager.yml"


def run(*argv: str | Path, env_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None if env_dir is None else {**os.environ, "B2B_STACK_DIR": str(env_dir)}
    return subprocess.run(
        [str(a) for a in argv], cwd=REPO, capture_output=True, text=True, env=env, timeout=120
    )


def test_gateway_config_validates(stack_built: Path, tmp_path: Path) -> None:
    done = run(stack_built / "otelcol-b2b", "validate", f"--config=file:{GATEWAY}", env_dir=tmp_path)
    assert done.returncode == 0, done.stderr


def test_gateway_distribution_has_every_component_the_pipeline_needs(stack_built: Path) -> None:
    done = run(stack_built / "otelcol-b2b", "components")
    assert done.returncode == 0, done.stderr
    listed = yaml.safe_load(done.stdout)
    kinds = ("receivers", "processors", "connectors", "exporters", "extensions")
    names = {kind: {c["name"] for c in listed.get(kind) or []} for kind in kinds}
    assert {"otlp"} <= names["receivers"]
    assert {
        "batch",
        "memory_limiter",
        "redaction",
        "tail_sampling",
        "transform",
        "filter",
        "attributes",
        "delta_to_cumulative",
        "b2bspool",
    } <= names["processors"]
    assert {"span_metrics", "count", "forward", "b2bderive"} <= names["connectors"]
    assert {"otlp_grpc", "otlp_http", "prometheus", "file", "debug"} <= names["exporters"]
    assert {"health_check", "file_storage"} <= names["extensions"]


def test_jaeger_config_validates(stack_built: Path) -> None:
    done = run(stack_built / "jaeger", "validate", f"--config=file:{JAEGER}")
    assert done.returncode == 0, done.stderr


def test_prometheus_config_and_rules_pass_promtool(stack_built: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/stack.sh build installs the prometheus package"
    done = run(promtool, "check", "config", PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rule files found" in done.stdout


def test_alertmanager_config_passes_amtool(stack_built: Path) -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool missing: scripts/stack.sh build installs the prometheus-alertmanager package"
    done = run(amtool, "check-config", ALERTMANAGER)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("tier=security", "severity=critical"), "security-critical"),
        (("tier=security", "severity=warning"), "security-warning"),
        (("tier=engineering", "severity=critical"), "engineering-critical"),
        (("tier=engineering", "severity=info"), "engineering-info"),
        (("tier=operations", "severity=critical"), "operations-critical"),
        (("tier=operations", "severity=warning"), "operations-warning"),
        (("tier=management", "severity=critical"), "management-critical"),
        (("tier=management", "severity=info"), "management-info"),
        (("severity=critical",), "unrouted"),
    ],
)
def test_alertmanager_routes_by_tier_then_severity(
    stack_built: Path, labels: tuple[str, ...], receiver: str
) -> None:
    amtool = shutil.which("amtool")
    assert amtool
    done = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver

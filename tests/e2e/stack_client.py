"""Talking to the local stack from the end-to-end tests: its addresses, HTTP with JSON, bounded waits.

Standard library only, so that nothing here depends on the SDK under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".cache" / "bin"

OTLP_HTTP = "http://127.0.0.1:4318"
JAEGER_API = "http://127.0.0.1:16686/api"
PROMETHEUS_API = "http://127.0.0.1:9090/api/v1"
ALERTMANAGER_API = "http://127.0.0.1:9093/api/v2"

T = TypeVar("T")


def stack_dir() -> Path:
    """Where the stack writes its files: B2B_STACK_DIR (relative to the repository) or .cache/stack."""
    configured = Path(os.environ.get("B2B_STACK_DIR", ".cache/stack"))
    return configured if configured.is_absolute() else REPO / configured


def get_json(url: str, params: dict[str, str] | None = None, timeout_s: float = 5.0) -> Any:
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def post_json(url: str, body: Any, timeout_s: float = 5.0) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(response.status)


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = 60.0, every_s: float = 0.5) -> T:
    """Call probe until it returns something other than None; fail naming `what` after timeout_s.

    A probe that raises a connection error counts as "not yet" (a piece may still be starting).
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result is not None:
                return result
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_error = error
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise AssertionError(f"waited {timeout_s:.0f}s for {what}{detail}")
        time.sleep(every_s)


def jaeger_traces(service: str, tags: dict[str, str], limit: int = 20) -> list[dict[str, Any]]:
    """Traces of `service` whose spans carry all `tags`, from Jaeger's query API."""
    found = get_json(
        f"{JAEGER_API}/traces",
        {"service": service, "tags": json.dumps(tags), "lookback": "1h", "limit": str(limit)},
    )
    return list(found.get("data") or [])


def prometheus_query(query: str) -> list[dict[str, Any]]:
    found = get_json(f"{PROMETHEUS_API}/query", {"query": query})
    assert found["status"] == "success", found
    return list(found["data"]["result"])


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    # The writer may be mid-line; a partial last line is read next time.
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def otlp_attributes(values: dict[str, str]) -> list[dict[str, Any]]:
    """OTLP/JSON key-value list of string attributes."""
    return [{"key": key, "value": {"stringValue": value}} for key, value in values.items()]


def now_unix_nano(offset_s: float = 0.0) -> str:
    # OTLP/JSON carries 64-bit integers as strings.
    return str(time.time_ns() + int(offset_s * 1e9))


def otlp_traces(service: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    """An OTLP/JSON ExportTraceServiceRequest: `spans` from one service."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": otlp_attributes({"service.name": service})},
                "scopeSpans": [{"scope": {"name": "tests.e2e"}, "spans": spans}],
            }
        ]
    }


def otlp_root_span(
    name: str, attributes: dict[str, str], duration_s: float = 0.01, error: bool = False
) -> dict[str, Any]:
    """A root span of a trace of its own, ending now (start and end from one clock reading)."""
    end = time.time_ns()
    span: dict[str, Any] = {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(end - round(duration_s * 1e9)),
        "endTimeUnixNano": str(end),
        "attributes": otlp_attributes(attributes),
    }
    if error:
        span["status"] = {"code": 2, "message": "failed"}
    return span


def run_example_workload(
    service: str, log_dir: Path, pg_url: str, cases: int, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """The example application with every fault, through the local stack's collector, as the e2e tests
    run it: slow agents and CRM calls over the lowered thresholds, 2 s metric export. Asserts it ran."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))},
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_METRIC_EXPORT_INTERVAL": "2000",
        "B2B_OTEL_LOG_DIR": str(log_dir),
        "B2B_OTEL_ALERTMANAGER_URL": "http://127.0.0.1:9093",
        "B2BVALUE_PG_URL": pg_url,
        "B2BVALUE_SLOW_AGENT_S": "0.6",
        "B2BVALUE_SLOW_CRM_S": "0.7",
        "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "0.5s",
        "B2B_OTEL_RULE_EXTERNAL_API_SLOW_THRESHOLD": "0.5s",
        "PYTHONPATH": str(REPO),
        **extra_env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "examples.b2bvalue", "--cases", str(cases), "--faults", "all"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done

"""The gateway's b2bderive connector: the rules judged fleet-wide, and on spans no b2b_otel process judged.

Spans are sent as raw OTLP/JSON, the way any service (or several replicas of one) would send them.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_client import OTLP_HTTP, now_unix_nano, post_json, read_json_lines, wait_for

pytestmark = pytest.mark.e2e

# The file exporter flushes every second; the batch processor waits up to a second.
FILE_WAIT_S = 30
# How long a record that must not exist is given to appear after one sent later has landed.
SETTLE_S = 3


def any_value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    return value


def attributes_of(item: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: any_value(a["value"]) for a in item.get("attributes", [])}


def records(path: Path, **wanted: Any) -> list[dict[str, Any]]:
    """Log records of an exported OTLP/JSON lines file whose attributes include `wanted`.

    Each record gets `_attributes` and `_resource` (plain dicts) for the assertions.
    """
    found = []
    for line in read_json_lines(path):
        for resource_logs in line.get("resourceLogs", []):
            resource = attributes_of(resource_logs.get("resource", {}))
            for scope_logs in resource_logs.get("scopeLogs", []):
                for record in scope_logs.get("logRecords", []):
                    attributes = attributes_of(record)
                    if all(attributes.get(k.replace("__", ".")) == v for k, v in wanted.items()):
                        found.append({**record, "_attributes": attributes, "_resource": resource})
    return found


def send_spans(resource: dict[str, Any], spans: list[dict[str, Any]]) -> None:
    resource_attributes = [
        {"key": k, "value": {"boolValue": v} if isinstance(v, bool) else {"stringValue": v}}
        for k, v in resource.items()
    ]
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": resource_attributes},
                "scopeSpans": [{"scope": {"name": "tests.e2e.b2bderive"}, "spans": spans}],
            }
        ]
    }
    assert post_json(f"{OTLP_HTTP}/v1/traces", body) == 200


def span(name: str, attributes: dict[str, str], duration_s: float = 0.01) -> dict[str, Any]:
    # One clock reading: two would put the time between them into the span's duration.
    end = int(now_unix_nano())
    return {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(end - round(duration_s * 1e9)),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
    }


def test_failed_logins_spread_over_replicas_are_caught_at_fleet_level(stack: Path) -> None:
    # A client address of this run only, so that earlier runs' windows do not count.
    address = f"e2e-{uuid.uuid4().hex[:12]}"
    service = "b2bderive-e2e-auth"
    for replica in range(3):
        # Each replica is a b2b_otel process: it judged its own 2 failures, below its threshold of 5.
        resource = {"service.name": service, "service.instance.id": f"replica-{replica}", "b2b.derived": True}
        failures = [
            span(
                "login",
                {"b2b.security.action": "login", "event.outcome": "failure", "client.address": address},
            )
            for _ in range(2)
        ]
        send_spans(resource, failures)
        time.sleep(0.05)

    security = stack / "security.jsonl"
    found = wait_for(
        lambda: records(security, b2b__rule__id="security.login.bruteforce", client__address=address) or None,
        f"a security.login.bruteforce record for {address} in {security}",
        FILE_WAIT_S,
    )
    time.sleep(SETTLE_S)
    found = records(security, b2b__rule__id="security.login.bruteforce", client__address=address)
    assert len(found) == 1, "a window rule fires once per window and group"
    record = found[0]
    assert record["eventName"] == "b2b.security.event"
    assert record["severityNumber"] == 21
    assert record["_attributes"]["b2b.scope"] == "fleet"
    assert record["_attributes"]["b2b.observed.value"] == 5.0
    assert record["_attributes"]["ocsf.class_uid"] == 3002
    assert record["_resource"]["service.name"] == service
    assert "b2b.derived" not in record["_resource"]
    assert not [r for r in found if r["_attributes"].get("b2b.scope") == "process"]
    assert records(stack / "derived.jsonl", client__address=address) == []


def test_a_span_from_a_non_b2b_otel_service_is_judged_by_the_connector(stack: Path) -> None:
    run = uuid.uuid4().hex[:12]
    judged_agent, raw_agent = f"judged-agent-{run}", f"raw-agent-{run}"
    agent = {"gen_ai.operation.name": "invoke_agent"}
    # The same slow agent span, first from a b2b_otel process (which judged it), then from a raw sender.
    send_spans(
        {"service.name": "b2bderive-e2e-sdk", "b2b.derived": True},
        [span(f"invoke_agent {judged_agent}", {**agent, "gen_ai.agent.name": judged_agent}, duration_s=4.0)],
    )
    send_spans(
        {"service.name": "b2bderive-e2e-raw"},
        [span(f"invoke_agent {raw_agent}", {**agent, "gen_ai.agent.name": raw_agent}, duration_s=4.0)],
    )

    derived = stack / "derived.jsonl"
    found = wait_for(
        lambda: records(derived, b2b__rule__id="agent.execution.slow", gen_ai__agent__name=raw_agent) or None,
        f"an agent.execution.slow record for {raw_agent} in {derived}",
        FILE_WAIT_S,
    )
    record = found[0]
    assert record["eventName"] == "b2b.sla.breach"
    assert record["severityNumber"] == 13
    assert record["_attributes"]["b2b.scope"] == "fleet"
    assert record["_attributes"]["b2b.threshold.value"] == 3.0
    assert record["_attributes"]["b2b.observed.value"] == pytest.approx(4.0)
    assert record["_resource"]["service.name"] == "b2bderive-e2e-raw"
    assert len(record["traceId"]) == 32 and len(record["spanId"]) == 16

    time.sleep(SETTLE_S)
    assert records(derived, gen_ai__agent__name=judged_agent) == [], "the connector re-judged a judged span"

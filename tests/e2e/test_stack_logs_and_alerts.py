"""Derived records land in their own files; alerts reach the right receiver."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_client import (
    ALERTMANAGER_API,
    OTLP_HTTP,
    now_unix_nano,
    otlp_attributes,
    post_json,
    read_json_lines,
    wait_for,
)

pytestmark = pytest.mark.e2e

# The file exporter flushes every second; the batch processor waits up to a second.
FILE_WAIT_S = 30
# Alertmanager's group_wait is 1 s in the stack's configuration.
ALERT_WAIT_S = 30

FILES = {
    "b2b.security.event": "security.jsonl",
    "b2b.audit.record": "audit.jsonl",
    "b2b.sla.breach": "derived.jsonl",
}


def send_log_record(event_name: str, run_id: str) -> None:
    record = {
        "timeUnixNano": now_unix_nano(),
        "eventName": event_name,
        "severityNumber": 13,
        "severityText": "WARN",
        "body": {"stringValue": f"e2e {event_name}"},
        "attributes": otlp_attributes({"e2e.run_id": run_id, "b2b.rule.id": "e2e.rule"}),
    }
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": otlp_attributes({"service.name": "stack-logs"})},
                "scopeLogs": [{"scope": {"name": "tests.e2e"}, "logRecords": [record]}],
            }
        ]
    }
    assert post_json(f"{OTLP_HTTP}/v1/logs", body) == 200


def records_with(path: Path, run_id: str) -> list[dict[str, Any]]:
    """The log records in an exported OTLP/JSON lines file that carry e2e.run_id=run_id."""
    found = []
    for line in read_json_lines(path):
        for resource_logs in line.get("resourceLogs", []):
            for scope_logs in resource_logs.get("scopeLogs", []):
                for record in scope_logs.get("logRecords", []):
                    attributes = {
                        a["key"]: a["value"].get("stringValue") for a in record.get("attributes", [])
                    }
                    if attributes.get("e2e.run_id") == run_id:
                        found.append(record)
    return found


@pytest.mark.parametrize("event_name", sorted(FILES))
def test_a_derived_record_lands_in_its_own_file_only(stack: Path, event_name: str) -> None:
    run_id = uuid.uuid4().hex
    send_log_record(event_name, run_id)
    own = stack / FILES[event_name]
    records = wait_for(
        lambda: records_with(own, run_id) or None, f"the {event_name} record in {own}", FILE_WAIT_S
    )
    assert [r["eventName"] for r in records] == [event_name]
    for other in set(FILES.values()) - {FILES[event_name]}:
        assert records_with(stack / other, run_id) == [], f"{event_name} also landed in {other}"


def test_an_ordinary_log_record_lands_in_no_derived_file(stack: Path) -> None:
    run_id = uuid.uuid4().hex
    send_log_record("app.started", run_id)
    # A marker record sent after it: once it is written, the ordinary one has been through the filters.
    send_log_record("b2b.sla.breach", run_id + "-marker")
    wait_for(
        lambda: records_with(stack / "derived.jsonl", run_id + "-marker") or None, "the marker", FILE_WAIT_S
    )
    for name in set(FILES.values()):
        assert records_with(stack / name, run_id) == []


def test_a_security_critical_alert_reaches_the_security_critical_receiver(stack: Path) -> None:
    alertname = f"StackE2E{uuid.uuid4().hex[:12]}"
    alert = {
        "labels": {"alertname": alertname, "tier": "security", "severity": "critical"},
        "annotations": {"summary": "end-to-end test alert"},
        "startsAt": datetime.now(timezone.utc).isoformat(),
    }
    assert post_json(f"{ALERTMANAGER_API}/alerts", [alert]) == 200

    def notification() -> dict[str, Any] | None:
        for line in read_json_lines(stack / "webhook.jsonl"):
            alerts = line["payload"].get("alerts", [])
            if any(a["labels"].get("alertname") == alertname for a in alerts):
                return line
        return None

    received = wait_for(notification, f"a webhook notification for {alertname}", ALERT_WAIT_S)
    assert received["path"] == "/security-critical"
    assert received["payload"]["receiver"] == "security-critical"
    assert received["payload"]["status"] == "firing"

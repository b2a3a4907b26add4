"""The console exporters print every batch, bytes values included, and no secret in bytes leaks.

The SDK's console span and metric exporters could not print a bytes value: one bytes attribute
anywhere in a batch (span, event, link, resource, data point) failed the whole batch. A real process
with ``OTEL_*_EXPORTER=console`` prints its spans and metrics on stdout, and the test reads them back.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r"""
from opentelemetry import metrics, trace
from opentelemetry.trace import Link
import b2b_otel

telemetry = b2b_otel.instrument(service_name="console-bytes")
tracer = trace.get_tracer("console.bytes")
with tracer.start_as_current_span("first") as first:
    pass
for index in range(3):  # one batch: the span with bytes must not take the others down with it
    with tracer.start_as_current_span(f"plain {index}"):
        pass
span = tracer.start_span(
    "with bytes",
    attributes={"app.raw": b"header password=Hunter2xyz \xff tail", "app.blob": b"\x00\x01\x02"},
    links=[Link(first.get_span_context(), {"link.raw": b"ssn 219-09-9999"})],
)
span.add_event("event", {"event.raw": b"Bearer zQ8vTkLmN3pRsW7xYq"})
span.end()
counter = metrics.get_meter("console.bytes").create_counter("console.bytes.count")
counter.add(1, {"point.raw": b"token=Zr8kQw2mXv9p"})
telemetry.shutdown()
"""

SECRETS = ["Hunter2xyz", "219-09-9999", "zQ8vTkLmN3pRsW7xYq", "Zr8kQw2mXv9p"]


def json_objects(text: str) -> Iterator[Any]:
    """The JSON documents printed one after another (indented, as the SDK prints them)."""
    decoder = json.JSONDecoder()
    index = 0
    while True:
        start = text.find("{", index)
        if start < 0:
            return
        try:
            value, index = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        yield value


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def base64_forms(secret: str) -> set[str]:
    """The base64 of ``secret`` at each of the three alignments it can have inside a longer value."""
    forms = set()
    for pad in range(3):
        encoded = base64.b64encode(b"x" * pad + secret.encode()).decode()
        forms.add(encoded[4 if pad else 0 : -4])
    return {form for form in forms if len(form) >= 8}


def test_console_exporters_print_a_batch_with_bytes_and_leak_no_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "console",
            "OTEL_LOGS_EXPORTER": "none",
            "B2B_OTEL_INSTRUMENTATIONS": "none",
            "B2B_OTEL_LOG_DIR": str(tmp_path),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "export of" not in done.stderr and "failed" not in done.stderr, done.stderr
    printed = list(json_objects(done.stdout))
    spans = {o["name"]: o for o in printed if isinstance(o, dict) and "context" in o and "name" in o}
    assert {"first", "plain 0", "plain 1", "plain 2", "with bytes"} <= set(spans), sorted(spans)

    with_bytes = spans["with bytes"]
    raw = base64.b64decode(with_bytes["attributes"]["app.raw"])
    assert raw == b"header password=[REDACTED:secret_key] \xff tail"  # scrubbed, then printed as base64
    assert base64.b64decode(with_bytes["attributes"]["app.blob"]) == b"\x00\x01\x02"
    assert base64.b64decode(with_bytes["links"][0]["attributes"]["link.raw"]) == b"ssn [REDACTED:us_ssn]"
    event_raw = base64.b64decode(with_bytes["events"][0]["attributes"]["event.raw"])
    assert event_raw == b"[REDACTED:bearer_token]"

    metric_points = [
        point
        for o in printed
        if isinstance(o, dict) and "resource_metrics" in o
        for rm in o["resource_metrics"]
        for sm in rm["scope_metrics"]
        for metric in sm["metrics"]
        if metric["name"] == "console.bytes.count"
        for point in metric["data"]["data_points"]
    ]
    assert metric_points, done.stdout[-2000:]
    assert base64.b64decode(metric_points[-1]["attributes"]["point.raw"]) == b"token=[REDACTED:secret_key]"

    # No secret on stdout, neither in clear nor base64-encoded inside a printed value.
    decoded = "\n".join(
        base64.b64decode(s + "=" * (-len(s) % 4)).decode("latin-1")
        for s in strings(printed)
        if s and len(s) % 4 == 0 and s.replace("+", "").replace("/", "").rstrip("=").isalnum()
    )
    for secret in SECRETS:
        assert secret not in done.stdout and secret not in done.stderr
        assert secret not in decoded
        assert not [form for form in base64_forms(secret) if form in done.stdout], secret

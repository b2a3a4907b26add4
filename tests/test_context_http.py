"""The context across an HTTP hop between two real processes, into a real OTLP receiver.

The test process is the client: ``instrument()`` with the httpx instrumentation, a real ``httpx``
client inside ``b2b_otel.context(...)``. The server is a second process (``tests/support/context_server.py``:
wsgiref behind the OpenTelemetry WSGI middleware, instrumented by b2b_otel). Both export to the same
receiver, so the spans of both services can be compared.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import b2b_otel
from b2b_otel import semconv as sc
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

REPO = Path(__file__).resolve().parents[1]
TENANT, USER, SESSION = sc.B2B_TENANT_ID, sc.USER_ID, sc.SESSION_ID


class Server:
    def __init__(self, receiver: OTLPReceiver, **env: str) -> None:
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))},
            **receiver.otel_env(),
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_BLRP_SCHEDULE_DELAY": "50",
            "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.context_server"],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise AssertionError(f"server did not start: {line!r}\n{err}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/quote"

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


@pytest.fixture
def client(otlp_receiver: OTLPReceiver) -> Iterator[b2b_otel.Telemetry]:
    reset_otel_globals()
    yield b2b_otel.instrument(
        service_name="context-client",
        otlp_endpoint=otlp_receiver.http_endpoint,
        instrumentations="httpx",
        log_dir="none",
        metric_export_interval="1h",
    )
    reset_otel_globals()


def by_service(spans: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["resource"].get("service.name") == service]


def context_of(span: dict[str, Any]) -> dict[str, Any]:
    return {k: span["attributes"][k] for k in (TENANT, USER, SESSION) if k in span["attributes"]}


def call(server: Server, headers: dict[str, str] | None = None) -> dict[str, Any]:
    with httpx.Client(timeout=10) as http:
        response = http.get(server.url, headers=headers or {})
    assert response.status_code == 200
    return dict(response.json())


def wait_for_both(receiver: OTLPReceiver, requests: int = 1) -> list[dict[str, Any]]:
    """The spans once the server's SERVER and tool spans and the client's CLIENT spans all arrived."""

    def arrived(spans: list[dict[str, Any]]) -> bool:
        server = by_service(spans, "context-server")
        return (
            sum(s["kind"] == "SPAN_KIND_SERVER" for s in server) >= requests
            and sum(s["name"] == "execute_tool lookup_account" for s in server) >= requests
            and sum(s["kind"] == "SPAN_KIND_CLIENT" for s in by_service(spans, "context-client")) >= requests
        )

    return receiver.wait_for_spans(arrived, timeout=20)


def test_outgoing_requests_carry_the_context_as_baggage_and_the_next_service_records_it(
    otlp_receiver: OTLPReceiver, client: b2b_otel.Telemetry
) -> None:
    server = Server(otlp_receiver)
    try:
        with (
            b2b_otel.context(tenant_id="acme-gmbh", user_id="u-17", session_id="s-9"),
            b2b_otel.agent_span("pricing_agent"),
        ):
            answer = call(server)
        assert client.force_flush(10)
        spans = wait_for_both(otlp_receiver)
    finally:
        stderr = server.stop()
    # The wire: a W3C baggage header with the three entries.
    entries = dict(item.split("=", 1) for item in answer["baggage"].split(","))
    assert entries == {TENANT: "acme-gmbh", USER: "u-17", SESSION: "s-9"}, answer
    assert answer["seen"] == {TENANT: "acme-gmbh", USER: "u-17", SESSION: "s-9"}
    expected = {TENANT: "acme-gmbh", USER: "u-17", SESSION: "s-9"}
    client_spans = by_service(spans, "context-client")
    server_spans = by_service(spans, "context-server")
    (http_client,) = [s for s in client_spans if s["kind"] == "SPAN_KIND_CLIENT"]
    (http_server,) = [s for s in server_spans if s["kind"] == "SPAN_KIND_SERVER"]
    (tool,) = [s for s in server_spans if s["name"] == "execute_tool lookup_account"]
    assert context_of(http_client) == expected
    assert context_of(http_server) == expected  # read by on_start from the extracted parent context
    assert context_of(tool) == expected
    assert {s["trace_id"] for s in (http_client, http_server, tool)} == {http_client["trace_id"]}
    assert http_server["parent_span_id"] == http_client["span_id"], stderr


def test_an_untrusting_service_drops_the_claimed_tenant_and_its_own_context_wins(
    otlp_receiver: OTLPReceiver, client: b2b_otel.Telemetry
) -> None:
    server = Server(otlp_receiver, B2B_OTEL_TRUST_INCOMING_CONTEXT="false")
    try:
        with b2b_otel.context(tenant_id="evil-corp", user_id="u-1"):
            claimed = call(server)
            authenticated = call(server, {"X-Authenticated-Tenant": "acme-gmbh"})
        assert client.force_flush(10)
        spans = wait_for_both(otlp_receiver, requests=2)
    finally:
        stderr = server.stop()
    assert TENANT in claimed["baggage"]  # it was on the wire ...
    assert claimed["seen"] == {}  # ... and refused: neither tenant nor user reached the handler
    assert authenticated["seen"] == {TENANT: "acme-gmbh"}
    server_spans = by_service(spans, "context-server")
    assert server_spans
    for span in server_spans:
        assert context_of(span).get(TENANT) in (None, "acme-gmbh"), span
    tools = [s for s in server_spans if s["name"] == "execute_tool lookup_account"]
    assert sorted(str(context_of(s).get(TENANT)) for s in tools) == ["None", "acme-gmbh"]
    assert "B2B_OTEL_TRUST_INCOMING_CONTEXT=false" in stderr  # said, not silent


def test_a_trusting_service_still_lets_its_own_context_win_inside_the_handler(
    otlp_receiver: OTLPReceiver, client: b2b_otel.Telemetry
) -> None:
    server = Server(otlp_receiver)
    try:
        with b2b_otel.context(tenant_id="evil-corp"):
            answer = call(server, {"X-Authenticated-Tenant": "acme-gmbh"})
        assert client.force_flush(10)
        spans = wait_for_both(otlp_receiver)
    finally:
        server.stop()
    assert answer["seen"] == {TENANT: "acme-gmbh"}
    (tool,) = [s for s in by_service(spans, "context-server") if s["name"] == "execute_tool lookup_account"]
    assert context_of(tool) == {TENANT: "acme-gmbh"}

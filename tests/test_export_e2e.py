"""Every signal reaches a real OTLP endpoint over both protocols; psycopg and httpx spans from real peers.

The application runs as a separate process (tests/apps/signals_app.py) exactly as a user runs it:
with ``b2b_otel.instrument()`` at start-up, or under ``opentelemetry-instrument``. Its telemetry goes
over the network to a real OTLP receiver that decodes the protobuf payloads; PostgreSQL is real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from b2b_otel.semconv import METRIC_DB_CLIENT_OPERATION_DURATION_BUCKETS
from tests.support.otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "apps" / "signals_app.py"
BIN = Path(sys.executable).parent


def run_app(
    env: dict[str, str], zero_code: bool = False, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "B2B_OTEL_")) and key != "PYTHONPATH"
    }
    base.update({"B2B_OTEL_LOG_DIR": "none", "OTEL_METRIC_EXPORT_INTERVAL": "60000", "PYTHONPATH": str(ROOT)})
    base.update(env)
    if zero_code:
        base.update({"OTEL_PYTHON_DISTRO": "b2b_otel", "OTEL_PYTHON_CONFIGURATOR": "b2b_otel"})
        command = [str(BIN / "opentelemetry-instrument"), sys.executable, str(APP)]
    else:
        base["SAMPLE_MODE"] = "instrument"
        command = [sys.executable, str(APP)]
    result = subprocess.run(command, env=base, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, f"app failed:\n{result.stdout}\n{result.stderr}"
    return result


def by_name(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        grouped.setdefault(span["name"], []).append(span)
    return grouped


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_traces_metrics_and_logs_reach_a_real_otlp_endpoint(
    protocol: str, otlp_receiver: OTLPReceiver, pg_url: str
) -> None:
    run_app({**otlp_receiver.otel_env(protocol), "OTEL_SERVICE_NAME": "signals-app", "SAMPLE_PG_URL": pg_url})
    wire = "grpc" if protocol == "grpc" else "http"

    spans = otlp_receiver.wait_for_spans(lambda s: any(x["name"] == "sample-work" for x in s))
    root = next(s for s in spans if s["name"] == "sample-work")
    assert root["protocol"] == wire
    assert root["attributes"]["sample.kind"] == "e2e"
    assert root["resource"]["service.name"] == "signals-app"
    assert root["resource"]["telemetry.distro.name"] == "b2b-otel"
    children = [s for s in spans if s["parent_span_id"] == root["span_id"]]
    assert len(children) >= 6  # three httpx calls, three psycopg queries (plain, async, pool)
    assert {s["trace_id"] for s in spans} == {root["trace_id"]}

    metrics = otlp_receiver.wait_for_metrics(lambda m: any(p["name"] == "sample.requests" for p in m))
    point = next(p for p in metrics if p["name"] == "sample.requests")
    assert point["value"] == 3
    assert point["attributes"] == {"route": "/accounts"}
    assert point["protocol"] == wire

    logs = otlp_receiver.wait_for_logs(
        lambda items: any(r["body"] == "sample work done for acme" for r in items)
    )
    record = next(r for r in logs if r["body"] == "sample work done for acme")
    assert record["trace_id"] == root["trace_id"]
    assert record["span_id"] == root["span_id"]
    assert record["severity_number"] == 13  # WARN
    assert record["protocol"] == wire


def test_psycopg_spans_follow_the_stable_database_conventions(
    otlp_receiver: OTLPReceiver, pg_url: str
) -> None:
    run_app({**otlp_receiver.otel_env(), "SAMPLE_PG_URL": pg_url, "OTEL_LOGS_EXPORTER": "none"})
    spans = otlp_receiver.wait_for_spans(lambda s: sum(x["name"] == "SELECT" for x in s) >= 3)
    queries = {s["attributes"]["db.query.text"]: s for s in spans if s["name"] == "SELECT"}
    assert set(queries) == {"SELECT 1", "SELECT 2", "SELECT 3"}  # sync, async, pooled connection
    for span in queries.values():
        assert span["kind"] == "SPAN_KIND_CLIENT"
        assert span["attributes"]["db.system.name"] == "postgresql"
        assert span["attributes"]["server.address"] == "127.0.0.1"
        assert "db.statement" not in span["attributes"]  # old conventions are not emitted


def test_httpx_spans_follow_the_stable_http_conventions(otlp_receiver: OTLPReceiver) -> None:
    run_app({**otlp_receiver.otel_env(), "OTEL_LOGS_EXPORTER": "none"})
    spans = otlp_receiver.wait_for_spans(lambda s: sum(x["name"] == "GET" for x in s) >= 3)
    calls = {s["attributes"]["url.full"].rsplit("/", 1)[-1]: s for s in spans if s["name"] == "GET"}
    assert set(calls) == {"sync", "async", "missing"}
    assert calls["sync"]["attributes"]["http.request.method"] == "GET"
    assert calls["sync"]["attributes"]["http.response.status_code"] == 200
    assert calls["sync"]["kind"] == "SPAN_KIND_CLIENT"
    assert calls["missing"]["attributes"]["http.response.status_code"] == 404
    assert calls["missing"]["attributes"]["error.type"] == "404"
    assert "http.method" not in calls["sync"]["attributes"]


def test_otlp_headers_are_sent_with_every_export(otlp_receiver: OTLPReceiver) -> None:
    run_app(
        {**otlp_receiver.otel_env("grpc"), "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr3t,x-tenant=acme"}
    )
    otlp_receiver.wait_for_span("sample-work")
    headers = otlp_receiver.headers("traces")
    assert headers and all(h.get("x-api-key") == "s3cr3t" and h.get("x-tenant") == "acme" for h in headers)


def test_gzip_compression_is_honoured(otlp_receiver: OTLPReceiver) -> None:
    run_app({**otlp_receiver.otel_env(), "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
    otlp_receiver.wait_for_span("sample-work")
    assert any(h.get("content-encoding") == "gzip" for h in otlp_receiver.headers("traces"))


def test_zero_code_start_gives_the_same_spans_as_instrument(otlp_receiver: OTLPReceiver, pg_url: str) -> None:
    def shape(spans: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        names = {s["span_id"]: s["name"] for s in spans}
        return sorted(
            (
                s["name"],
                s["kind"],
                names.get(s["parent_span_id"], ""),
                s["scope"],
                tuple(sorted(k for k in s["attributes"] if k not in ("server.port", "url.full"))),
                s["resource"].get("telemetry.distro.name"),
            )
            for s in spans
        )

    env = {**otlp_receiver.otel_env(), "SAMPLE_PG_URL": pg_url, "OTEL_SERVICE_NAME": "zero-code"}
    run_app(env)
    with_instrument = otlp_receiver.wait_for_spans(lambda s: any(x["name"] == "sample-work" for x in s))
    otlp_receiver.clear()
    run_app(env, zero_code=True)
    with_zero_code = otlp_receiver.wait_for_spans(lambda s: any(x["name"] == "sample-work" for x in s))

    assert shape(with_zero_code) == shape(with_instrument)
    assert len(with_zero_code) == len(with_instrument) >= 7
    zero_logs = otlp_receiver.wait_for_logs(
        lambda items: any(r["body"] == "sample work done for acme" for r in items)
    )
    assert zero_logs[0]["resource"]["service.name"] == "zero-code"


def test_zero_code_start_with_bad_configuration_reports_the_variable_and_the_app_still_runs(
    otlp_receiver: OTLPReceiver,
) -> None:
    result = run_app(
        {**otlp_receiver.otel_env(), "OTEL_EXPORTER_OTLP_PROTOCOL": "smoke-signals"}, zero_code=True
    )
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='smoke-signals'" in result.stderr


def test_http_and_db_client_duration_metrics_are_exported(otlp_receiver: OTLPReceiver, pg_url: str) -> None:
    run_app({**otlp_receiver.otel_env(), "SAMPLE_PG_URL": pg_url, "OTEL_LOGS_EXPORTER": "none"})
    wanted = {"http.client.request.duration", "db.client.operation.duration"}
    points = otlp_receiver.wait_for_metrics(lambda m: wanted <= {p["name"] for p in m})
    http = [p for p in points if p["name"] == "http.client.request.duration"]
    assert {p["attributes"].get("http.response.status_code") for p in http} == {200, 404}
    assert all(p["unit"] == "s" and p["type"] == "histogram" for p in http)
    db = [p for p in points if p["name"] == "db.client.operation.duration"]
    assert sum(p["count"] for p in db) == 3  # sync, async and pooled queries, recorded once each
    assert db[0]["attributes"]["db.system.name"] == "postgresql"
    assert db[0]["scope"] == "opentelemetry.instrumentation.psycopg"
    assert (
        tuple(db[0]["explicit_bounds"]) == METRIC_DB_CLIENT_OPERATION_DURATION_BUCKETS
    )  # seconds, via a View

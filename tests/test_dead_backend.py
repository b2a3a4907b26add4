"""A dead or hanging backend never raises into the application nor stretches shutdown past its timeout."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from opentelemetry import metrics, trace

import b2b_otel
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

# Generous slack over the requested timeout: the bound is functional (seconds, not tens of seconds),
# and CI machines are noisy.
SLACK_S = 2.0


@pytest.fixture(autouse=True)
def clean_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def produce_telemetry() -> None:
    tracer = trace.get_tracer("app")
    counter = metrics.get_meter("app").create_counter("app.work")
    for index in range(50):
        with tracer.start_as_current_span(f"work-{index}"):
            counter.add(1)
            logging.getLogger("app").warning("unit of work %d", index)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_nothing_listening_neither_raises_nor_delays_shutdown(protocol: str) -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=f"http://127.0.0.1:{closed_port()}",
        otlp_protocol=protocol,
        otlp_timeout="1s",
        log_dir="none",
        instrumentations="logging",
    )
    produce_telemetry()
    telemetry.force_flush(timeout_s=3)
    started = time.monotonic()
    telemetry.shutdown(timeout_s=2)
    elapsed = time.monotonic() - started
    assert elapsed < 2 + SLACK_S, f"shutdown took {elapsed:.1f}s for a 2s timeout"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_hanging_backend_does_not_stretch_shutdown(protocol: str, black_hole: int) -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=f"http://127.0.0.1:{black_hole}",
        otlp_protocol=protocol,
        log_dir="none",
        instrumentations="none",
    )  # default export timeout 10 s: the shutdown bound must cut it short
    produce_telemetry()
    started = time.monotonic()
    assert telemetry.force_flush(timeout_s=1) is False
    telemetry.shutdown(timeout_s=1)
    elapsed = time.monotonic() - started
    assert elapsed < 2 + SLACK_S, f"flush+shutdown took {elapsed:.1f}s for 1s+1s timeouts"


def test_failed_exports_are_counted_and_reported_in_health() -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=f"http://127.0.0.1:{closed_port()}",
        otlp_timeout="500ms",
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )
    produce_telemetry()
    telemetry.force_flush(timeout_s=5)
    traces = telemetry.health()["signals"]["traces"]
    assert traces["last_failure"] is not None
    assert traces["last_failure"]["error"]
    assert traces["dropped"].get("export_failed", 0) == 50
    assert traces["last_success"] is None


def test_full_queue_drops_and_counts_instead_of_growing(otlp_receiver: OTLPReceiver) -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=otlp_receiver.http_endpoint,
        bsp_max_queue_size=10,
        bsp_max_export_batch_size=10,
        bsp_schedule_delay="1h",
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )
    otlp_receiver.fail_with = 503  # hold the exporter back so the queue fills
    tracer = trace.get_tracer("app")
    for index in range(200):
        with tracer.start_as_current_span(f"burst-{index}"):
            pass
    health = telemetry.health()["signals"]["traces"]
    assert health["queue"]["size"] <= 10
    assert health["dropped"].get("queue_full", 0) > 0


def test_recovered_backend_records_a_success(otlp_receiver: OTLPReceiver) -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=otlp_receiver.http_endpoint,
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )
    with trace.get_tracer("app").start_as_current_span("ok"):
        pass
    assert telemetry.force_flush(timeout_s=5)
    assert otlp_receiver.wait_for_span("ok")
    health = telemetry.health()["signals"]["traces"]
    assert health["last_success"] is not None
    assert health["exported"] == 1

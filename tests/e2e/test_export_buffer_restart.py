"""A collector restart in the middle of a run: with B2B_OTEL_EXPORT_BUFFER_DIR nothing is lost and nothing
arrives twice; without it the loss is counted as dropped, so the buffer is what makes the difference.

The collector is the real otelcol-b2b, our own instance on free loopback ports with a minimal
configuration (OTLP/HTTP and OTLP/gRPC in, OTLP/HTTP out to the in-process test receiver, no queue, no
retry and no batching in the collector, so an answered request has reached the receiver); the shared
stack is not touched. It is stopped with SIGTERM, as an orchestrator restarts it, for several export
intervals. The application exports over either protocol (the gRPC exporter's own retries and
reconnects are on the way too).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import b2b_otel
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

pytestmark = pytest.mark.e2e

CONFIG = """
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
exporters:
  otlphttp:
    endpoint: {downstream}
    compression: none
    sending_queue:
      enabled: false
    retry_on_failure:
      enabled: false
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
"""

UNITS_BEFORE, UNITS_DURING, UNITS_AFTER = 30, 60, 30
UNIT_PAUSE_S = 0.05  # the outage lasts UNITS_DURING * UNIT_PAUSE_S = 3 s: 15 span export intervals
SCHEDULE_DELAY = "200ms"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Collector:
    """One otelcol-b2b process on a fixed port, started and stopped at will."""

    def __init__(self, binary: Path, workdir: Path, downstream: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.grpc_port = free_port()
        self.config = workdir / "collector.yaml"
        self.config.write_text(CONFIG.format(port=self.port, grpc_port=self.grpc_port, downstream=downstream))
        self.log = workdir / "collector.log"
        self.process: subprocess.Popen[bytes] | None = None

    def endpoint(self, protocol: str) -> str:
        port = self.grpc_port if protocol == "grpc" else self.port
        return f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 30.0) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), f"--config=file:{self.config}"], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"otelcol-b2b exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                for port in (self.port, self.grpc_port):
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        pass
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"otelcol-b2b did not listen on {self.port} within {timeout_s}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


@pytest.fixture
def collector(stack_built: Path, tmp_path: Path, otlp_receiver: OTLPReceiver) -> Iterator[Collector]:
    instance = Collector(stack_built / "otelcol-b2b", tmp_path, otlp_receiver.http_endpoint)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(autouse=True)
def clean_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def run_units(prefix: str, count: int) -> list[str]:
    """``count`` units of work, each one span and one log record carrying a unique id."""
    tracer = trace.get_tracer("restart-workload")
    log = logging.getLogger("restart-workload")
    ids = []
    for index in range(count):
        unit = f"{prefix}-{index:03d}"
        with tracer.start_as_current_span("unit", attributes={"unit.id": unit}):
            log.warning("unit %s", unit)
        ids.append(unit)
        time.sleep(UNIT_PAUSE_S)
    return ids


def received(receiver: OTLPReceiver) -> tuple[Counter[str], Counter[str]]:
    spans = Counter(s["attributes"]["unit.id"] for s in receiver.spans() if "unit.id" in s["attributes"])
    logs = Counter(
        str(r["body"]).removeprefix("unit ")
        for r in receiver.logs()
        if isinstance(r["body"], str) and r["body"].startswith("unit ")
    )
    return spans, logs


def workload_across_a_restart(
    collector: Collector, buffer_dir: Path | None, protocol: str = "http/protobuf"
) -> tuple[list[str], Any]:
    grpc: dict[str, Any] = {"otlp_insecure": True} if protocol == "grpc" else {}
    telemetry = b2b_otel.instrument(
        service_name="restart-workload",
        otlp_endpoint=collector.endpoint(protocol),
        otlp_protocol=protocol,
        **grpc,
        otlp_timeout="1s",
        bsp_schedule_delay=SCHEDULE_DELAY,
        blrp_schedule_delay=SCHEDULE_DELAY,
        export_buffer_dir=None if buffer_dir is None else str(buffer_dir),
        metrics_exporter="none",
        log_dir="none",
        instrumentations="logging",
    )
    sent = run_units("before", UNITS_BEFORE)
    stopper = threading.Thread(target=collector.stop)
    stopper.start()  # SIGTERM while the workload goes on
    sent += run_units("during", UNITS_DURING)
    stopper.join()
    collector.start()
    sent += run_units("after", UNITS_AFTER)
    telemetry.force_flush(timeout_s=10)
    return sent, telemetry


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_collector_restart_loses_nothing_with_the_disk_buffer(
    collector: Collector, otlp_receiver: OTLPReceiver, tmp_path: Path, protocol: str
) -> None:
    sent, telemetry = workload_across_a_restart(collector, tmp_path / "buffer", protocol)

    def all_arrived() -> bool:
        spans, logs = received(otlp_receiver)
        return set(spans) >= set(sent) and set(logs) >= set(sent)

    otlp_receiver.wait_until(all_arrived, timeout=40, what=f"all {len(sent)} spans and log records")
    time.sleep(1.0)  # anything sent twice would arrive now
    spans, logs = received(otlp_receiver)
    health = telemetry.health()["signals"]
    print(
        f"\nwith buffer ({protocol}): sent {len(sent)} spans / {len(sent)} logs; "
        f"received {sum(spans.values())} spans / {sum(logs.values())} logs; replayed from disk: "
        f"{health['traces']['buffer']['replayed']} spans, {health['logs']['buffer']['replayed']} logs"
    )
    assert sorted(spans) == sorted(sent) and set(spans.values()) == {1}, "each span exactly once"
    assert sorted(logs) == sorted(sent) and set(logs.values()) == {1}, "each log record exactly once"
    for signal in ("traces", "logs"):
        assert health[signal]["dropped"] == {}, health[signal]
        assert health[signal]["buffer"]["replayed"] > 0, health[signal]  # the outage was bridged by disk
        assert health[signal]["buffer"]["batches"] == 0, health[signal]


def test_without_the_buffer_the_same_restart_loses_telemetry_and_counts_it(
    collector: Collector, otlp_receiver: OTLPReceiver
) -> None:
    sent, telemetry = workload_across_a_restart(collector, None)
    after = {unit for unit in sent if unit.startswith("after-")}
    otlp_receiver.wait_until(
        lambda: all(after <= set(view) for view in received(otlp_receiver)),
        timeout=30,
        what="the spans and logs sent after the restart",
    )
    spans, logs = received(otlp_receiver)
    health = telemetry.health()["signals"]
    print(
        f"\nwithout buffer: sent {len(sent)} spans / {len(sent)} logs; received {sum(spans.values())} spans "
        f"/ {sum(logs.values())} logs; dropped {health['traces']['dropped']} / {health['logs']['dropped']}"
    )
    assert set(spans.values()) == {1} and set(logs.values()) == {1}
    for signal, got in (("traces", spans), ("logs", logs)):
        dropped = sum(health[signal]["dropped"].values())
        assert len(got) < len(sent), f"{signal}: the outage lost nothing, so this test proves nothing"
        # Nothing lost silently: what did not arrive is exactly what was counted as dropped. Log records
        # may include b2b_otel's own export warnings, which are not units; only units are compared.
        if signal == "traces":
            assert len(got) + dropped == len(sent), health[signal]
        else:
            assert len(got) + dropped >= len(sent), health[signal]

"""Every finished span is judged under load: a burst queues, applies back-pressure, never drops.

In-process ``instrument()`` with its default settings (exporting to a real OTLP receiver, local files
in a temporary folder). No assertion on speed: only on what was judged and what ``health()`` says.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import b2b_otel
from b2b_otel import semconv as sc
from b2b_otel.derive.processor import DerivationProcessor, queue_capacity
from b2b_otel.derive.sink import AgentExecution
from b2b_otel.rules import load_rules
from b2b_otel.scrub import Scrubber
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

THREADS = 20
RUNS = 1_000


@pytest.fixture(autouse=True)
def clean_globals(otlp_receiver: OTLPReceiver) -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def in_threads(count: int, work: Any) -> None:
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_20_threads_of_1000_agent_runs_are_all_judged(otlp_receiver: OTLPReceiver, tmp_path: Path) -> None:
    telemetry = b2b_otel.instrument(
        service_name="load-test", otlp_endpoint=otlp_receiver.http_endpoint, log_dir=str(tmp_path)
    )
    derivation = telemetry.derivation
    assert derivation is not None
    dropped: list[tuple[str, int]] = []
    counted = derivation.on_drop
    assert counted is not None
    derivation.on_drop = lambda reason, count: (dropped.append((reason, count)), counted(reason, count))

    @b2b_otel.tool("lookup_case")
    def lookup(index: int) -> int:
        return index

    @b2b_otel.agent("load_agent")
    def run(index: int) -> int:
        # An agent run as applications write them: a memory read and a tool call inside it.
        with b2b_otel.memory("working", "search_memory", cache_hit=True):
            pass
        return lookup(index)

    in_threads(THREADS, lambda: [run(index) for index in range(RUNS)])
    assert telemetry.force_flush(120)

    spans = THREADS * RUNS * 3
    assert derivation.processed == spans
    assert dropped == []
    rules = telemetry.health()["rules"]
    assert rules["unjudged"] == {}
    assert rules["processed"] == spans
    assert rules["queue"] == {"size": 0, "capacity": queue_capacity(2048)}
    executions = (tmp_path / "performance.log").read_text().count("AGENT_EXECUTION")
    assert executions == THREADS * RUNS


class SlowSink:
    """A sink that takes its time over each agent execution (a slow disk, say)."""

    name = "slow"

    def __init__(self) -> None:
        self.executions = 0

    def write(self, record: Any) -> None:
        pass

    def agent_execution(self, execution: AgentExecution) -> None:
        self.executions += 1
        sum(range(5_000))  # CPU work holding the GIL, as a Python sink would

    def flush(self, timeout_s: float) -> bool:
        return True

    def close(self, timeout_s: float) -> None:
        pass


def test_a_worker_slower_than_the_application_makes_it_wait_instead_of_dropping() -> None:
    sink = SlowSink()
    derivation = DerivationProcessor(load_rules(None, {}), Scrubber(), [sink], max_queue=512)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(derivation)
    tracer = provider.get_tracer("load")
    attributes = {sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_AGENT_NAME: "slow"}

    def burst() -> None:
        for _ in range(200):
            tracer.start_span("invoke_agent slow", attributes=attributes).end()

    in_threads(10, burst)
    assert derivation.force_flush(120_000)
    assert sink.executions == 2000
    health = derivation.health()
    assert health["unjudged"] == {}
    assert health["backpressure"]["waits"] > 0
    assert health["queue"]["capacity"] == 512
    provider.shutdown()


class StuckSink(SlowSink):
    """A sink that hangs until released: the worker makes no progress."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def agent_execution(self, execution: AgentExecution) -> None:
        self.release.wait(60)
        self.executions += 1


def test_a_stuck_worker_costs_the_application_one_bounded_wait_then_drops_are_counted() -> None:
    sink = StuckSink()
    derivation = DerivationProcessor(load_rules(None, {}), Scrubber(), [sink], max_queue=64)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(derivation)
    tracer = provider.get_tracer("load")
    attributes = {sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_AGENT_NAME: "stuck"}
    try:
        for _ in range(500):
            tracer.start_span("invoke_agent stuck", attributes=attributes).end()
        health = derivation.health()
        assert health["backpressure"]["stalled"] is True
        assert health["backpressure"]["waits"] >= 1
        # Everything over the capacity was counted, and said so.
        assert health["unjudged"][sc.ReasonValues.QUEUE_FULL] >= 500 - 64 - 1
    finally:
        sink.release.set()
    assert derivation.force_flush(60_000)
    assert derivation.health()["backpressure"]["stalled"] is False
    provider.shutdown()

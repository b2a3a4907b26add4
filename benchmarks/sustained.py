"""Scenario 5, sustained load: agent invocations per second through to the real collector, no drops.

Each case runs in a fresh interpreter for S seconds (rounds alternate between the cases): one
application thread calls the hot path's agent function (b2b-otel: ``instrument()`` with every
default; plain: the hand-written span and metrics with the SDK's batch processor) as fast as the
pipeline takes it, against the local stack's collector (``scripts/stack.sh up``; OTLP/HTTP on
127.0.0.1:4318). The application paces itself the way a well-behaved producer does: after every 64
calls, while the span export queue is more than half full, it yields a millisecond at a time, so
the number is the pipeline's sustained rate with zero drops, not the rate of filling a queue.
Reported per case: spans/s, the drop counters (b2b-otel's health; for plain, spans that found the
SDK queue full), what the collector's receiver accepted and refused (its :8888 metrics), and the
collector's CPU time over the run, from /proc of the collector process.

    python -m benchmarks.sustained [--seconds 30] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, alternate, cpu_seconds, emit, median, report, result, row, run_python

ENDPOINT = "http://127.0.0.1:4318"
COLLECTOR_METRICS = "http://127.0.0.1:8888/metrics"
STACK_DIR = Path(os.environ.get("B2B_STACK_DIR", ".cache/stack"))
PID_FILE = (STACK_DIR if STACK_DIR.is_absolute() else ROOT / STACK_DIR) / "run" / "otelcol-b2b.pid"


def collector_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def collector_counts() -> dict[str, float]:
    """The collector receiver's accepted and refused span totals (all transports, our receiver)."""
    totals = {"accepted": 0.0, "refused": 0.0}
    try:
        with urllib.request.urlopen(COLLECTOR_METRICS, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return totals
    for line in text.splitlines():
        match = re.match(r"otelcol_receiver_(accepted|refused)_spans(?:_total)?\{([^}]*)\} (\S+)", line)
        if match and 'receiver="otlp"' in match.group(2):
            totals[match.group(1)] += float(match.group(3))
    return totals


def one_case(case: str, seconds: float, endpoint: str) -> dict[str, Any]:
    """In the subprocess: run ``case`` for ``seconds``; return spans/s and the drop counters."""
    from opentelemetry.sdk.trace import TracerProvider

    from benchmarks.hot_path import AGENT, body

    flush: Any
    dropped: Any
    queue: Any
    capacity: int
    with tempfile.TemporaryDirectory(prefix="b2b-bench-") as logs:
        if case == "b2b":
            import b2b_otel

            telemetry = b2b_otel.instrument(
                service_name="bench-sustained", otlp_endpoint=endpoint, log_dir=logs, instrumentations="none"
            )

            @b2b_otel.agent(AGENT, agent_id="roi-1", conversation_id="conv-42")
            def call() -> int:
                return body()

            provider = telemetry.tracer_provider
            assert isinstance(provider, TracerProvider)
            batch = next(
                p for p in provider._active_span_processor._span_processors if hasattr(p, "_batch_processor")
            )
            queue, capacity = batch._batch_processor._queue, batch._batch_processor._max_queue_size
            flush = provider.force_flush

            def dropped() -> dict[str, Any]:
                health = telemetry.health()
                return {
                    "traces": health["signals"]["traces"]["dropped"],
                    "rules_unjudged": health["rules"]["unjudged"],
                    "rules_backpressure_waits": health["rules"]["backpressure"]["waits"],
                }

            def shutdown() -> None:
                telemetry.shutdown()
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            resource = Resource.create({"service.name": "bench-sustained-plain"})
            provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
            provider.add_span_processor(processor)
            meters = MeterProvider(
                resource=resource,
                metric_readers=[
                    PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
                ],
                shutdown_on_exit=False,
            )
            queue, capacity = processor._batch_processor._queue, processor._batch_processor._max_queue_size
            full = [0]
            original_on_end = processor.on_end

            def counting_on_end(span: Any) -> None:
                if len(queue) == capacity:
                    full[0] += 1  # the SDK drops the oldest span to make room for this one
                original_on_end(span)

            processor.on_end = counting_on_end  # type: ignore[method-assign]
            tracer = provider.get_tracer("bench.plain")
            meter = meters.get_meter("bench.plain")
            histogram = meter.create_histogram("gen_ai.invoke_agent.duration", unit="s")
            counter = meter.create_counter("b2b.agent.executions", unit="{execution}")
            attributes = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": AGENT,
                "gen_ai.agent.id": "roi-1",
                "gen_ai.conversation.id": "conv-42",
            }

            def call() -> int:
                started = time.perf_counter()
                with tracer.start_as_current_span(f"invoke_agent {AGENT}", attributes=attributes):
                    value = body()
                histogram.record(
                    time.perf_counter() - started,
                    {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT},
                )
                counter.add(1, {"gen_ai.agent.name": AGENT, "outcome": "success"})
                return value

            flush = provider.force_flush

            def dropped() -> dict[str, Any]:
                return {"traces": {"queue_full": full[0]} if full[0] else {}}

            def shutdown() -> None:
                provider.shutdown()
                meters.shutdown()

        half = capacity // 2
        spans = 0
        yields = 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            for _ in range(64):
                call()
            spans += 64
            while len(queue) > half:  # 64 more fit whatever happens: the queue holds 2048
                yields += 1
                time.sleep(0.001)
            if time.perf_counter() >= deadline:
                break
        flush()
        elapsed = time.perf_counter() - started
        drops = dropped()
        shutdown()
    return {
        "spans": spans,
        "seconds": elapsed,
        "spans_per_s": spans / elapsed,
        "yields": yields,
        "dropped": drops,
    }


def _dropped_total(drops: dict[str, Any]) -> int:
    total = 0
    for key, value in drops.items():
        if isinstance(value, dict):
            total += sum(int(v) for v in value.values())
        elif key != "rules_backpressure_waits":
            total += int(value)
    return total


def scenario(seconds: float, rounds: int, endpoint: str) -> dict[str, Any]:
    pid = collector_pid()
    runs: dict[str, list[dict[str, Any]]] = {"b2b": [], "plain": []}

    def case(name: str) -> Any:
        def one_round() -> float:
            counts = collector_counts()
            cpu = cpu_seconds(pid) if pid is not None else None
            value = run_python(
                [
                    "-m",
                    "benchmarks.sustained",
                    "--case",
                    name,
                    "--seconds",
                    str(seconds),
                    "--endpoint",
                    endpoint,
                    "--json",
                ]
            )
            time.sleep(1.5)  # the collector's batch and export of the last requests
            after = collector_counts()
            value["collector_cpu_s"] = (
                None if cpu is None or pid is None else round(cpu_seconds(pid) - cpu, 2)
            )
            value["collector_accepted"] = after["accepted"] - counts["accepted"]
            value["collector_refused"] = after["refused"] - counts["refused"]
            runs[name].append(value)
            return float(value["spans_per_s"])

        return one_round

    if pid is None or (not collector_counts()["accepted"] and not _answers(endpoint)):
        raise SystemExit(f"sustained: no collector at {endpoint} (start the stack: bash scripts/stack.sh up)")
    results = alternate({"plain": case("plain"), "b2b": case("b2b")}, rounds)
    b2b, plain = median(results["b2b"]), median(results["plain"])

    def total(name: str, key: str) -> float:
        return float(sum(r[key] or 0 for r in runs[name]))

    drops = {name: sum(_dropped_total(r["dropped"]) for r in runs[name]) for name in runs}
    cpu_per_kspan = {
        name: (total(name, "collector_cpu_s") / max(1.0, total(name, "spans")) * 1000) if pid else None
        for name in runs
    }
    return result(
        "sustained",
        f"sustained load: {rounds} x {seconds:g} s per case to the local collector",
        [
            row("plain OpenTelemetry", plain, "spans/s", plain, digits=0),
            row("b2b-otel", b2b, "spans/s", plain, digits=0),
            row("dropped, plain", float(drops["plain"]), "spans"),
            row("dropped, b2b-otel", float(drops["b2b"]), "spans"),
            row("collector CPU, plain", (cpu_per_kspan["plain"] or 0) * 1000, "ms/1k spans", digits=1),
            row("collector CPU, b2b-otel", (cpu_per_kspan["b2b"] or 0) * 1000, "ms/1k spans", digits=1),
        ],
        float(drops["b2b"]),
        0,
        "spans dropped by b2b-otel (ratio: b2b-otel spans/s / plain)",
        details={
            "endpoint": endpoint,
            "collector_pid": pid,
            "runs": runs,
            "collector_cpu_s": {name: total(name, "collector_cpu_s") for name in runs},
            "collector_refused": {name: total(name, "collector_refused") for name in runs},
        },
        against=b2b / plain if plain else float("nan"),
        also=all(r["collector_refused"] == 0 for name in runs for r in runs[name]),
    )


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(endpoint, timeout=2)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per round and case")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--endpoint", default=ENDPOINT)
    parser.add_argument("--case", choices=("b2b", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.case:
        emit(one_case(args.case, args.seconds, args.endpoint))
        return
    value = scenario(args.seconds, args.rounds, args.endpoint)
    report(value, args.json)


if __name__ == "__main__":
    main()

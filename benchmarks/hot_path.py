"""Scenario 1, the hot path: one agent invocation through ``@b2b_otel.agent`` against the same by hand.

Both cases run in this process against one loopback OTLP/HTTP receiver in another process:

- b2b-otel: ``instrument()`` (rules, scrubbing, local files, OTLP/HTTP for every signal) and an
  ``@b2b_otel.agent`` function with four attributes from the decorator and four set in its body;
  its span, ``gen_ai.invoke_agent.duration`` and ``b2b.agent.executions`` come from b2b-otel;
- plain OpenTelemetry: a TracerProvider with the same BatchSpanProcessor and OTLP/HTTP span
  exporter, a MeterProvider with an OTLP/HTTP metric reader, and the same span, eight attributes,
  histogram record and counter add written by hand.

b2b-otel records its two metrics while the span is current, so (with the SDK's default
``trace_based`` exemplar filter) its points carry exemplars linking them to the span; the plain case
records after its span ended and keeps none. That work is b2b-otel's and stays in its number.

One round is N calls and then a flush of the tracer provider, so what the export thread and the
rules worker do for those calls is inside the round. The targeted number is the process's CPU time
per call over the round (every thread: application, export, rules worker), which the load of other
processes on a shared machine hardly moves; wall time per call is reported beside it, the loop
alone (``call_only_us``) and the application thread's own CPU time in the loop (``main_thread_us``,
``time.thread_time``: what the call costs the thread that makes it) in the details. Rounds
alternate between the cases; medians are reported. Variants: the rules layer off (the derivation
processor removed: scrubbing and export stay), and a CPU-bound application thread running all the
time (the worker threads' cost through the GIL shows as a slower main thread and a slower spinner).

    python -m benchmarks.hot_path [--spans 5000] [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import Receiver, alternate, median, report, result, row

AGENT = "roi_calculator_agent"
SPAN_NAME = f"invoke_agent {AGENT}"


def body() -> int:
    """The agent's own work: four attributes of its result on the current span."""
    from opentelemetry import trace

    span = trace.get_current_span()
    span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
    span.set_attribute("b2b.business_case.id", "case-0042")
    span.set_attribute("b2bvalue.roi.npv", 125_000.5)
    span.set_attribute("b2bvalue.roi.pct", 18.25)
    return 1


class Spinner:
    """A CPU-bound application thread: pure-Python work, counted in iterations."""

    def __init__(self) -> None:
        self.iterations = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            total = 0
            for i in range(2_000):
                total += i * i
            self.iterations += 1

    def __enter__(self) -> Spinner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def scenario(spans: int, rounds: int) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    import b2b_otel
    from b2b_otel import semconv as sc

    queue = max(2048, 2 * spans)
    with Receiver() as receiver, tempfile.TemporaryDirectory(prefix="b2b-bench-") as logs:
        telemetry = b2b_otel.instrument(
            service_name="bench",
            otlp_endpoint=receiver.endpoint,
            otlp_protocol="http/protobuf",
            log_dir=logs,
            instrumentations="none",
            # Both cases get a queue that holds a whole round: a span dropped on a full queue is work
            # not done, and would flatter whichever case drops more.
            bsp_max_queue_size=queue,
        )
        provider = telemetry.tracer_provider
        assert isinstance(provider, TracerProvider)
        derivation = telemetry.derivation
        multi = provider._active_span_processor
        with_rules = multi._span_processors
        without_rules = tuple(p for p in with_rules if p is not derivation)

        @b2b_otel.agent(AGENT, agent_id="roi-1", conversation_id="conv-42")
        def b2b_call() -> int:
            return body()

        resource = Resource.create({"service.name": "bench-plain"})
        plain_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        plain_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces"), max_queue_size=queue
            )
        )
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{receiver.endpoint}/v1/metrics"))
        plain_meters = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
        tracer = plain_provider.get_tracer("bench.plain")
        meter = plain_meters.get_meter("bench.plain")
        info = sc.METRICS[sc.METRIC_GEN_AI_INVOKE_AGENT_DURATION]
        histogram = meter.create_histogram(
            info.name,
            unit=info.unit,
            explicit_bucket_boundaries_advisory=list(info.buckets) if info.buckets else None,
        )
        counter = meter.create_counter(sc.METRIC_B2B_AGENT_EXECUTIONS, unit="{execution}")
        start_attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": AGENT,
            "gen_ai.agent.id": "roi-1",
            "gen_ai.conversation.id": "conv-42",
        }

        def plain_call() -> int:
            started = time.perf_counter()
            with tracer.start_as_current_span(SPAN_NAME, kind=SpanKind.INTERNAL, attributes=start_attributes):
                value = body()
            histogram.record(
                time.perf_counter() - started,
                {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT},
            )
            counter.add(1, {"gen_ai.agent.name": AGENT, "outcome": "success"})
            return value

        calls: dict[str, list[float]] = {}
        spinners: dict[str, list[float]] = {}

        walls: dict[str, list[float]] = {}
        mains: dict[str, list[float]] = {}

        def measure(
            name: str,
            call: Callable[[], int],
            flush: Callable[[], Any],
            rules: bool | None = None,
            cpu: bool = True,
        ) -> Callable[[], float]:
            """One round; returns the process's CPU time per call (every thread: the application's,
            the export thread's, the rules worker's), or with ``cpu=False`` the wall time."""

            def one_round() -> float:
                if rules is not None:
                    multi._span_processors = with_rules if rules else without_rules
                cpu_started = time.process_time()
                started = time.perf_counter()
                thread_started = time.thread_time()
                for _ in range(spans):
                    call()
                thread_done = time.thread_time()
                looped = time.perf_counter()
                flush()
                done = time.perf_counter()
                cpu_done = time.process_time()
                calls.setdefault(name, []).append((looped - started) / spans)
                mains.setdefault(name, []).append((thread_done - thread_started) / spans)
                walls.setdefault(name, []).append((done - started) / spans)
                return ((cpu_done - cpu_started) if cpu else (done - started)) / spans

            return one_round

        def spinning(name: str, inner: Callable[[], float]) -> Callable[[], float]:
            def one_round() -> float:
                with Spinner() as spinner:
                    time.sleep(0.02)  # the spinner holds the GIL's rhythm before the round starts
                    started = time.perf_counter()
                    value = inner()
                    seconds = time.perf_counter() - started
                    iterations = spinner.iterations
                spinners.setdefault(name, []).append(iterations / seconds)
                return value

            return one_round

        b2b_flush = provider.force_flush
        plain_flush = plain_provider.force_flush
        # Warm both paths (first-call caches, the exporters' connections) outside the rounds.
        for _ in range(200):
            b2b_call()
            plain_call()
        b2b_flush()
        plain_flush()
        warm = receiver.wait_for_spans(400)

        results = alternate(
            {
                "plain": measure("plain", plain_call, plain_flush),
                "b2b": measure("b2b", b2b_call, b2b_flush, rules=True),
                "b2b_no_rules": measure("b2b_no_rules", b2b_call, b2b_flush, rules=False),
            },
            rounds,
        )
        gil = alternate(
            {
                "plain_cpu": spinning("plain_cpu", measure("plain_cpu", plain_call, plain_flush, cpu=False)),
                "b2b_cpu": spinning(
                    "b2b_cpu", measure("b2b_cpu", b2b_call, b2b_flush, rules=True, cpu=False)
                ),
            },
            rounds,
        )
        multi._span_processors = with_rules
        results.update(gil)
        expected = warm + spans * rounds * 5
        received = receiver.wait_for_spans(expected, timeout_s=30)
        health = telemetry.health()
        plain_provider.shutdown()
        plain_meters.shutdown()
        telemetry.shutdown()

    m = {name: median(values) for name, values in results.items()}
    c = {name: median(values) for name, values in calls.items()}
    w = {name: median(values) for name, values in walls.items()}
    s = {name: median(values) for name, values in spinners.items()}
    t = {name: median(values) for name, values in mains.items()}
    rows = [
        row("plain OpenTelemetry", m["plain"] * 1e6, "CPU us/call", m["plain"] * 1e6),
        row("b2b-otel", m["b2b"] * 1e6, "CPU us/call", m["plain"] * 1e6),
        row("b2b-otel, rules layer off", m["b2b_no_rules"] * 1e6, "CPU us/call", m["plain"] * 1e6),
        row("plain OpenTelemetry (wall)", w["plain"] * 1e6, "us/call", w["plain"] * 1e6),
        row("b2b-otel (wall)", w["b2b"] * 1e6, "us/call", w["plain"] * 1e6),
        row("plain OpenTelemetry + CPU-bound thread", m["plain_cpu"] * 1e6, "us/call", m["plain_cpu"] * 1e6),
        row("b2b-otel + CPU-bound thread", m["b2b_cpu"] * 1e6, "us/call", m["plain_cpu"] * 1e6),
        row("CPU-bound thread beside plain", s["plain_cpu"], "iterations/s", s["plain_cpu"], digits=1),
        row("CPU-bound thread beside b2b-otel", s["b2b_cpu"], "iterations/s", s["plain_cpu"], digits=1),
    ]
    dropped = {signal: values["dropped"] for signal, values in health["signals"].items()}
    dropped["rules_unjudged"] = health["rules"].get("unjudged", {})
    return result(
        "hot_path",
        "hot path: one agent invocation (span, 8 attributes, duration histogram, counter, OTLP/HTTP)",
        rows,
        m["b2b"] / m["plain"],
        1.10,
        "b2b-otel / plain OTel, process CPU per call incl. its export",
        details={
            "spans_per_round": spans,
            "rounds": rounds,
            "ratios": {
                "b2b": round(m["b2b"] / m["plain"], 3),
                "b2b_no_rules": round(m["b2b_no_rules"] / m["plain"], 3),
                "b2b_wall": round(w["b2b"] / w["plain"], 3),
                "b2b_cpu_thread": round(m["b2b_cpu"] / m["plain_cpu"], 3),
                "cpu_thread_progress": round(s["b2b_cpu"] / s["plain_cpu"], 3),
            },
            "call_only_us": {name: round(value * 1e6, 2) for name, value in c.items()},
            "main_thread_us": {name: round(value * 1e6, 2) for name, value in t.items()},
            "main_thread_ratio": round(t["b2b"] / t["plain"], 3),
            "spans_sent": expected,
            "spans_received": received,
            "dropped": dropped,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=5_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    value = scenario(args.spans, args.rounds)
    report(value, args.json)


if __name__ == "__main__":
    main()

"""Hot-path cost of b2b_otel against plain OpenTelemetry, measured in the same process.

Prints ratios against a baseline run in the same process, never verdicts: these machines are noisy.
Every variant runs the same workload, one agent invocation as a span around a trivial function, on
an SDK TracerProvider whose spans go to a batch processor with an exporter that discards them:

- plain span: ``tracer.start_as_current_span`` with the two GenAI attributes;
- plain span + metrics: the same plus the duration histogram and execution counter recorded by hand
  (what an application would write to get the metrics b2b_otel gives);
- b2b_otel without rules: ``@b2b_otel.agent`` (span, attributes, both metrics), derivation removed;
- b2b_otel: ``@b2b_otel.agent`` with the derivation processor judging every span in its worker.

It also reports the worker's CPU time per span (the rules engine run synchronously on the same spans),
which the application pays for through the GIL when it is CPU bound.

    python benchmarks/hot_path.py [--spans 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class Discard(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def per_call(func: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        func()
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import b2b_otel

    telemetry = b2b_otel.instrument(
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=args.spans * 4))
    derivation = telemetry.derivation
    assert derivation is not None
    with_rules = provider._active_span_processor._span_processors
    without_rules = tuple(p for p in with_rules if p is not derivation)

    plain_provider = TracerProvider(shutdown_on_exit=False)
    plain_provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=args.spans * 4))
    tracer = plain_provider.get_tracer("bench")
    meter = metrics.get_meter("bench")
    histogram = meter.create_histogram("bench.invoke_agent.duration", unit="s")
    counter = meter.create_counter("bench.agent.executions")
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bench"}

    def plain_span() -> int:
        with tracer.start_as_current_span("invoke_agent bench", attributes=attributes):
            return 1

    def plain_span_metrics() -> int:
        started = time.perf_counter()
        with tracer.start_as_current_span("invoke_agent bench", attributes=attributes):
            result = 1
        histogram.record(time.perf_counter() - started, attributes)
        counter.add(1, {"gen_ai.agent.name": "bench", "outcome": "success"})
        return result

    @b2b_otel.agent("bench")
    def b2b_agent() -> int:
        return 1

    results: dict[str, list[float]] = {k: [] for k in ("plain", "plain+metrics", "b2b-no-rules", "b2b")}
    for _ in range(args.rounds):
        results["plain"].append(per_call(plain_span, args.spans))
        results["plain+metrics"].append(per_call(plain_span_metrics, args.spans))
        provider._active_span_processor._span_processors = without_rules
        results["b2b-no-rules"].append(per_call(b2b_agent, args.spans))
        provider._active_span_processor._span_processors = with_rules
        results["b2b"].append(per_call(b2b_agent, args.spans))
        derivation.force_flush(60_000)  # let the worker catch up before the next round

    # The worker's own CPU per span, measured synchronously on captured spans.
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    captured = InMemorySpanExporter()
    provider._active_span_processor._span_processors = (*without_rules, SimpleSpanProcessor(captured))
    for _ in range(args.spans):
        b2b_agent()
    spans = captured.get_finished_spans()
    started = time.perf_counter()
    for span in spans:
        derivation._judge_span(span)
    worker = (time.perf_counter() - started) / len(spans)

    base = statistics.median(results["plain"])
    print(
        f"{'variant':<28}{'us/span':>10}{'ratio':>9}   (median of {args.rounds} rounds x {args.spans} spans)"
    )
    labels = {
        "plain": "plain OTel span",
        "plain+metrics": "plain OTel span + metrics",
        "b2b-no-rules": "b2b_otel.agent, no rules",
        "b2b": "b2b_otel.agent with rules",
    }
    for key, label in labels.items():
        value = statistics.median(results[key])
        print(f"{label:<28}{value * 1e6:>10.2f}{value / base:>8.2f}x")
    fair = statistics.median(results["plain+metrics"])
    print(f"{'rules worker CPU per span':<28}{worker * 1e6:>10.2f}{worker / base:>8.2f}x")
    for key in ("b2b", "b2b-no-rules"):
        ratio = statistics.median(results[key]) / fair
        print(f"{labels[key]} / plain OTel span + metrics: {ratio:.2f}x")


if __name__ == "__main__":
    main()

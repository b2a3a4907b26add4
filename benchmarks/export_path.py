"""Scenario 2, the export path: judging and scrubbing a batch against OTLP protobuf encoding of it.

The batch is 512 finished spans with the example application's attribute mix — per business case a
workflow, its steps, agents, tools with their HTTP client spans, memory operations with their
PostgreSQL spans, logins — and a few secrets in it (a password in a connection string, an API key
in a URL query, a card number in a CRM note, a bearer token in an exception message).

- b2b-otel: what b2b-otel does with a batch on top of exporting it: ``ScrubbingSpanExporter``
  (in front of an exporter that discards) and the rules worker's judgement of each span
  (``DerivationProcessor._judge_span``: facts, the rules engine, the side effects of agent and
  audit spans; sinks none, so no file writes are counted here: the hot path counts them);
- baseline: ``encode_spans(batch).SerializeToString()``, the OTLP exporter's own work per batch.

All three are timed in this thread's CPU time (``time.thread_time``), which other processes' load on a
shared machine hardly moves.

    python -m benchmarks.export_path [--rounds 9] [--batches 5] [--json]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.common import alternate, median, report, result, row

BATCH = 512


def realistic_batch(size: int = BATCH, first_case: int = 0) -> list[Any]:
    """``size`` finished spans in the example application's shapes, a few with secrets.

    Business cases are numbered from ``first_case``: batches made from different numbers carry
    different case ids, conversation ids, client addresses and URLs, as consecutive batches do.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    captured = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "b2bvalue", "deployment.environment.name": "bench"}),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(captured))
    tracer = provider.get_tracer("b2b_otel", "bench")
    http_tracer = provider.get_tracer("opentelemetry.instrumentation.httpx", "0.66b1")
    db_tracer = provider.get_tracer("opentelemetry.instrumentation.psycopg", "0.66b1")
    agents = (
        "data_integration_agent",
        "value_driver_agent",
        "roi_calculator_agent",
        "narrative_generator_agent",
    )
    case = first_case
    while len(captured.get_finished_spans()) < size:
        case += 1
        case_id = f"case-{case:05d}"
        workflow = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": "build_business_case",
            "b2b.business_case.id": case_id,
        }
        with tracer.start_as_current_span("invoke_workflow build_business_case", attributes=workflow):
            for index, name in enumerate(agents, start=1):
                step = name.removesuffix("_agent")
                with tracer.start_as_current_span(
                    f"execute_step {step}",
                    attributes={
                        "gen_ai.operation.name": "execute_step",
                        "b2b.workflow.step.name": step,
                        "b2b.workflow.step.index": index,
                        "gen_ai.workflow.name": "build_business_case",
                        "b2b.business_case.id": case_id,
                    },
                ) as step_span:
                    step_span.set_attribute("b2b.data.quality_score", 0.93)
                    with tracer.start_as_current_span(
                        f"invoke_agent {name}",
                        attributes={
                            "gen_ai.operation.name": "invoke_agent",
                            "gen_ai.agent.name": name,
                            "gen_ai.conversation.id": f"session-{case % 17}",
                            "gen_ai.workflow.name": "build_business_case",
                            "b2b.business_case.id": case_id,
                            "b2b.agent.queue.depth": case % 5,
                        },
                    ):
                        _memory(tracer, db_tracer, case, name)
                        _tool(tracer, http_tracer, case, name)
        # Logins: mostly successes, now and then a failure.
        with tracer.start_as_current_span(
            "login",
            attributes={
                "b2b.security.action": "login",
                "event.category": "authentication",
                "event.outcome": "failure" if case % 7 == 0 else "success",
                "user.id": f"user-{case % 40}",
                "client.address": f"10.0.{case % 9}.{case % 250}",
                "b2b.auth.method": "password",
            },
        ):
            pass
        if case % 9 == 0:  # an exception message with a bearer token in it
            with tracer.start_as_current_span("execute_tool erp_get_financials") as span:
                span.record_exception(
                    RuntimeError(
                        "ERP refused: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
                    )
                )
                span.set_status(Status(StatusCode.ERROR, "ERP refused"))
                span.set_attribute("error.type", "RuntimeError")
    trace.get_tracer_provider()  # the global provider is untouched
    return list(captured.get_finished_spans()[:size])


def _memory(tracer: Any, db_tracer: Any, case: int, agent: str) -> None:
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(
        "search_memory episodic",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "search_memory",
            "b2b.memory.tier": "episodic",
            "gen_ai.memory.store.id": "episodic-pg",
            "gen_ai.memory.record.count": case % 4,
        },
    ):
        query = "SELECT id, content FROM episodic_memory WHERE agent = %s AND case_id = %s LIMIT 20"
        if case % 11 == 0:  # a literal where the application forgot its parameters
            query = "SELECT id FROM users WHERE email = 'jane@example.com' AND password = 'hunter2hunter2'"
        with db_tracer.start_as_current_span(
            "SELECT b2bvalue.episodic_memory",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": "postgresql",
                "db.namespace": "b2bvalue",
                "db.operation.name": "SELECT",
                "db.collection.name": "episodic_memory",
                "db.query.text": query,
                "server.address": "127.0.0.1",
                "server.port": 5432,
            },
        ):
            pass
    with tracer.start_as_current_span(
        "search_memory working",
        attributes={
            "gen_ai.operation.name": "search_memory",
            "b2b.memory.tier": "working",
            "gen_ai.memory.store.id": "working-cache",
            "b2b.memory.cache.hit": case % 3 == 0,
            "gen_ai.memory.record.count": 1,
        },
    ):
        pass


def _tool(tracer: Any, http_tracer: Any, case: int, agent: str) -> None:
    from opentelemetry.trace import SpanKind

    tool = "crm_get_account" if agent.startswith("data") else "financial_model"
    with tracer.start_as_current_span(
        f"execute_tool {tool}",
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool},
    ) as span:
        if tool == "financial_model":
            span.set_attribute("b2bvalue.roi.npv", 125_000.0 + case)
            span.set_attribute("b2bvalue.roi.pct", 18.5)
            return
        note = "net 30; renewal in Q3"
        if case % 13 == 0:
            note = "card on file 4111 1111 1111 1111, exp 09/29"
        span.set_attribute("b2bvalue.crm.billing_note", note)
        url = f"http://127.0.0.1:8089/accounts/{case}"
        if case % 10 == 0:
            url += "?api_key=sk-live-0123456789abcdef0123"
        with http_tracer.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.full": url,
                "server.address": "127.0.0.1",
                "server.port": 8089,
                "network.protocol.version": "1.1",
                "http.response.status_code": 200,
            },
        ):
            pass


def scenario(rounds: int, batches: int) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from b2b_otel.derive.processor import DerivationProcessor
    from b2b_otel.export.scrubbing import ScrubbingSpanExporter
    from b2b_otel.rules.loader import load_rules
    from b2b_otel.scrub import Finding, Scrubber

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    # Every round scrubs and judges batches it has not seen (b2b-otel remembers what repeats, and a
    # batch seen again would be all repeats); the warm-up batch comes first, from the same stream.
    # They are made when needed, outside the timing: thousands of spans held at once would make the
    # garbage collector's passes part of every number.
    made = iter(range(10**9))
    batch = realistic_batch(BATCH, first_case=0)
    scrubber = Scrubber()
    findings: list[tuple[Finding, int, int]] = []
    scrubbing = ScrubbingSpanExporter(Discard(), scrubber, lambda f, t, s: findings.append((f, t, s)))
    derivation = DerivationProcessor(load_rules(None, {}), scrubber)

    def unseen(count: int) -> list[list[Any]]:
        return [realistic_batch(BATCH, first_case=(next(made) + 1) * 100) for _ in range(count)]

    def scrub() -> float:
        todo = unseen(batches)
        started = time.thread_time()
        for each in todo:
            scrubbing.export(each)
        return (time.thread_time() - started) / batches

    def judge() -> float:
        todo = unseen(batches)
        judge_span = derivation._judge_span
        started = time.thread_time()
        for each in todo:
            for span in each:
                judge_span(span)
        return (time.thread_time() - started) / batches

    def encode() -> float:
        started = time.thread_time()
        for _ in range(batches):
            encode_spans(batch).SerializeToString()
        return (time.thread_time() - started) / batches

    scrubbing.export(batch)  # warm: first-use caches, compiled patterns
    for span in batch:
        derivation._judge_span(span)
    encode()
    findings.clear()
    scrubbing.export(unseen(1)[0])
    per_batch = len(findings)
    # Scrubbing and judging each see batches they have not seen; the encoder has nothing to remember.
    results = alternate({"encode": encode, "scrub": scrub, "judge": judge}, rounds)
    m = {name: median(values) * 1e3 for name, values in results.items()}
    m["b2b"] = m["scrub"] + m["judge"]
    derivation.shutdown()
    return result(
        "export_path",
        f"export path: a batch of {len(batch)} realistic spans",
        [
            row("OTLP protobuf encoding (baseline)", m["encode"], "ms/batch", m["encode"], digits=3),
            row("b2b-otel scrub + judge", m["b2b"], "ms/batch", m["encode"], digits=3),
            row("  of which scrubbing", m["scrub"], "ms/batch", m["encode"], digits=3),
            row("  of which judging", m["judge"], "ms/batch", m["encode"], digits=3),
        ],
        m["b2b"] / m["encode"],
        0.5,
        "b2b-otel scrub+judge / OTLP encoding of the same batch",
        details={
            "batch": len(batch),
            "rounds": rounds,
            "batches_per_round": batches,
            "findings_per_batch": per_batch,
            "secrets_caught": sorted({f.pattern for f, _, _ in findings}),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batches", type=int, default=5, help="batches per round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    value = scenario(args.rounds, args.batches)
    report(value, args.json)


if __name__ == "__main__":
    main()

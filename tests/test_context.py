"""``b2b_otel.context()``: tenant, user and session on every span, log record and derived record.

The API part runs on in-memory providers with the context span processor; the rest runs
``instrument()`` in process against the real OTLP receiver (spans, logs, derived records, files).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import random
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import _logs, baggage, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import b2b_otel
from b2b_otel import semconv as sc
from b2b_otel.api.context import INVALID, MAX_LENGTH, ContextSpanProcessor, current
from b2b_otel.derive.records import DerivedRecord
from b2b_otel.sinks.alertmanager import AlertmanagerSink
from tests.support.capture import Capture, install_capture
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

TENANT, USER, SESSION = sc.B2B_TENANT_ID, sc.USER_ID, sc.SESSION_ID
CONTEXT_KEYS = (TENANT, USER, SESSION)


@pytest.fixture
def capture() -> Iterator[Capture]:
    captured = install_capture()
    captured.tracer_provider.add_span_processor(ContextSpanProcessor())
    yield captured
    reset_otel_globals()


def context_of(span: Any) -> dict[str, Any]:
    attributes = span.attributes if isinstance(span.attributes, dict) else dict(span.attributes or {})
    return {k: attributes[k] for k in CONTEXT_KEYS if k in attributes}


# --- the context manager and decorator --------------------------------------------------------------


def test_context_sets_the_three_baggage_entries_and_restores_on_exit() -> None:
    with b2b_otel.context(tenant_id="acme", user_id="u-1", session_id="s-1") as scope:
        assert baggage.get_baggage(TENANT) == "acme"
        assert current() == {TENANT: "acme", USER: "u-1", SESSION: "s-1"}
        assert scope.values == {TENANT: "acme", USER: "u-1", SESSION: "s-1"}
    assert current() == {}


def test_nested_contexts_inner_values_win_and_none_keeps_the_outer_value() -> None:
    with b2b_otel.context(tenant_id="acme", user_id="u-1", session_id="s-1"):
        with b2b_otel.context(user_id="u-2"):
            assert current() == {TENANT: "acme", USER: "u-2", SESSION: "s-1"}
            with b2b_otel.context(tenant_id="globex", session_id=None):
                assert current() == {TENANT: "globex", USER: "u-2", SESSION: "s-1"}
            assert current()[TENANT] == "acme"
        assert current() == {TENANT: "acme", USER: "u-1", SESSION: "s-1"}


def test_other_baggage_entries_are_kept() -> None:
    from opentelemetry import context as otel_context

    token = otel_context.attach(baggage.set_baggage("region", "eu"))
    try:
        with b2b_otel.context(tenant_id="acme"):
            assert baggage.get_baggage("region") == "eu"
    finally:
        otel_context.detach(token)


def test_spans_inside_carry_tenant_user_and_session(capture: Capture) -> None:
    with (
        b2b_otel.context(tenant_id="acme", user_id="u-1", session_id="s-1"),
        b2b_otel.agent_span("a"),
        b2b_otel.tool("lookup"),
    ):
        pass
    trace.get_tracer("t").start_span("outside").end()
    assert context_of(capture.span("invoke_agent a")) == {TENANT: "acme", USER: "u-1", SESSION: "s-1"}
    assert context_of(capture.span("execute_tool lookup")) == {TENANT: "acme", USER: "u-1", SESSION: "s-1"}
    assert context_of(capture.span("outside")) == {}


def test_an_attribute_given_at_span_start_wins_over_the_context(capture: Capture) -> None:
    with b2b_otel.context(tenant_id="acme", user_id="operator-1"):
        b2b_otel.security.login("u-9", "203.0.113.5", success=False)
    login = capture.span("login")
    assert context_of(login) == {TENANT: "acme", USER: "u-9"}


def test_decorator_on_a_sync_function(capture: Capture) -> None:
    @b2b_otel.context(tenant_id="acme")
    @b2b_otel.agent("a")
    def run() -> str:
        return str(baggage.get_baggage(TENANT))

    assert run() == "acme"
    assert current() == {}
    assert context_of(capture.span("invoke_agent a")) == {TENANT: "acme"}


async def test_decorator_on_a_coroutine_function(capture: Capture) -> None:
    @b2b_otel.context(tenant_id="acme", session_id="s-2")
    async def run() -> None:
        await asyncio.sleep(0)
        with b2b_otel.agent_span("a"):
            await asyncio.sleep(0)

    await run()
    assert current() == {}
    assert context_of(capture.span("invoke_agent a")) == {TENANT: "acme", SESSION: "s-2"}


async def test_async_with(capture: Capture) -> None:
    async with b2b_otel.context(tenant_id="acme"):
        with b2b_otel.tool("t"):
            await asyncio.sleep(0)
    assert context_of(capture.span("execute_tool t")) == {TENANT: "acme"}


def test_decorated_generator_has_the_context_only_while_its_body_runs(capture: Capture) -> None:
    @b2b_otel.context(tenant_id="acme")
    def items() -> Iterator[str | None]:
        for _ in range(2):
            with b2b_otel.tool("item"):
                yield baggage.get_baggage(TENANT)  # type: ignore[misc]

    seen_by_consumer = []
    for value in items():
        assert value == "acme"
        seen_by_consumer.append(baggage.get_baggage(TENANT))
    assert seen_by_consumer == [None, None]
    assert [context_of(s) for s in capture.spans()] == [{TENANT: "acme"}] * 2


async def test_decorated_async_generator(capture: Capture) -> None:
    @b2b_otel.context(tenant_id="acme")
    async def items() -> AsyncIterator[str | None]:
        for _ in range(2):
            await asyncio.sleep(0)
            yield baggage.get_baggage(TENANT)  # type: ignore[misc]

    got = []
    async for value in items():
        got.append((value, baggage.get_baggage(TENANT)))
    assert got == [("acme", None), ("acme", None)]


def test_decorated_method_and_exception_passes_unchanged() -> None:
    class Boom(Exception):
        pass

    class Service:
        @b2b_otel.context(tenant_id="acme")
        def handle(self, x: int) -> int:
            raise Boom(x)

    with pytest.raises(Boom):
        Service().handle(1)
    assert current() == {}


def test_one_scope_entered_concurrently_from_two_threads() -> None:
    scope = b2b_otel.context(tenant_id="acme")
    barrier = threading.Barrier(2)
    seen: list[Any] = []

    def work() -> None:
        with scope:
            barrier.wait(5)
            seen.append(baggage.get_baggage(TENANT))
        seen.append(baggage.get_baggage(TENANT))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen.count("acme") == 2 and seen.count(None) == 2


# --- bad values -----------------------------------------------------------------------------------


def test_int_and_uuid_ids_are_recorded_as_their_text() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    with b2b_otel.context(tenant_id=42, user_id=ident):
        assert current() == {TENANT: "42", USER: str(ident)}


@pytest.mark.parametrize(
    "bad",
    ["", "x" * (MAX_LENGTH + 1), "acme\n", "ac\x00me", 3.5, True, b"acme", object(), ["acme"]],
    ids=["empty", "too-long", "newline", "nul", "float", "bool", "bytes", "object", "list"],
)
def test_a_bad_id_becomes_invalid_is_counted_and_never_inherits_the_outer_tenant(
    capture: Capture, bad: object
) -> None:
    with b2b_otel.context(tenant_id="acme"), b2b_otel.context(tenant_id=bad):
        assert baggage.get_baggage(TENANT) == INVALID
        with b2b_otel.tool("t"):
            pass
    assert context_of(capture.span("execute_tool t")) == {TENANT: INVALID}
    dropped = [
        p for p in capture.points("b2b.telemetry.dropped") if p.attributes.get("reason") == "invalid_argument"
    ]
    assert sum(p.value for p in dropped) == 1


def test_hostile_values_never_raise() -> None:
    class Raising:
        def __str__(self) -> str:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no")

        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no")

        __hash__ = None  # type: ignore[assignment]

    for value in (10**5000, -(10**5000), Raising(), float("nan"), {"a": 1}, (1, 2)):
        with b2b_otel.context(tenant_id=value, user_id=value, session_id=value):
            assert current() == {TENANT: INVALID, USER: INVALID, SESSION: INVALID}


def test_a_raising_str_never_reaches_the_application() -> None:
    class Hostile(str):
        def __str__(self) -> str:
            raise RuntimeError("no")

    with b2b_otel.context(tenant_id=Hostile("acme")):
        assert current() == {TENANT: "acme"}


def test_a_hostile_incoming_value_is_recorded_as_invalid(capture: Capture) -> None:
    from opentelemetry import context as otel_context

    token = otel_context.attach(baggage.set_baggage(TENANT, "x" * 5000))
    try:
        with b2b_otel.tool("t"):
            pass
    finally:
        otel_context.detach(token)
    assert context_of(capture.span("execute_tool t")) == {TENANT: INVALID}


# --- no cross-tenant bleed --------------------------------------------------------------------------

TENANTS = [f"tenant-{n}" for n in range(5)]


async def test_fifty_concurrent_tasks_of_five_tenants_never_mix(capture: Capture) -> None:
    rng = random.Random(7)

    async def case(index: int) -> None:
        tenant = TENANTS[index % 5]
        async with b2b_otel.context(tenant_id=tenant, session_id=f"s-{index}"):
            with b2b_otel.workflow_span(f"case-{index}"):
                for step in range(3):
                    with b2b_otel.workflow_step(f"case-{index}", step):
                        await asyncio.sleep(rng.random() / 200)
                # a task started inside inherits the context (contextvars are copied)
                await asyncio.create_task(child(index))

    async def child(index: int) -> None:
        with b2b_otel.tool(f"case-{index}"):
            await asyncio.sleep(rng.random() / 200)

    await asyncio.gather(*(case(i) for i in range(50)))
    spans = capture.spans()
    assert len(spans) == 50 * 5
    for span in spans:
        index = int(span.name.rsplit("-", 1)[1])
        assert context_of(span) == {TENANT: TENANTS[index % 5], SESSION: f"s-{index}"}, span.name


# --- through instrument(): spans, logs, derived records, threads --------------------------------------


@pytest.fixture
def clean(otlp_receiver: OTLPReceiver) -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def start(receiver: OTLPReceiver, log_dir: Path, **overrides: Any) -> b2b_otel.Telemetry:
    settings: dict[str, Any] = {"metric_export_interval": "1h", "instrumentations": "logging", **overrides}
    return b2b_otel.instrument(
        service_name="context-test", otlp_endpoint=receiver.http_endpoint, log_dir=str(log_dir), **settings
    )


def received_context(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record["attributes"][k] for k in CONTEXT_KEYS if k in record["attributes"]}


def test_spans_and_log_records_reach_the_receiver_with_the_context(
    otlp_receiver: OTLPReceiver, tmp_path: Path, clean: None
) -> None:
    telemetry = start(otlp_receiver, tmp_path)
    with b2b_otel.context(tenant_id="acme", user_id="u-1", session_id="s-1"), b2b_otel.agent_span("a"):
        logging.getLogger("app").warning("quote ready")
        _logs.get_logger("app").emit(body="api record")
    logging.getLogger("app").warning("outside")
    assert telemetry.force_flush(10)
    span = otlp_receiver.wait_for_span("invoke_agent a")
    assert received_context(span) == {TENANT: "acme", USER: "u-1", SESSION: "s-1"}
    logs = otlp_receiver.wait_for_logs(lambda items: sum(r["body"] == "outside" for r in items) == 1)
    by_body = {r["body"]: r for r in logs}
    assert received_context(by_body["quote ready"]) == {TENANT: "acme", USER: "u-1", SESSION: "s-1"}
    assert received_context(by_body["api record"]) == {TENANT: "acme", USER: "u-1", SESSION: "s-1"}
    assert received_context(by_body["outside"]) == {}


def test_derived_records_marker_spans_and_file_lines_carry_the_triggering_spans_tenant(
    otlp_receiver: OTLPReceiver, tmp_path: Path, clean: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD", "1ms")
    telemetry = start(otlp_receiver, tmp_path)
    with b2b_otel.context(tenant_id="acme", user_id="u-1"), b2b_otel.agent_span("slow_agent"):
        time.sleep(0.01)
    with b2b_otel.context(tenant_id="globex", user_id="operator-9"):
        b2b_otel.security.access_denied("u-2", "/admin", "read")
    assert telemetry.force_flush(10)
    logs = otlp_receiver.wait_for_logs(
        lambda items: (
            {"agent.execution.slow", "security.access.violation"}
            <= {r["attributes"].get("b2b.rule.id") for r in items}
        )
    )
    slow = next(r for r in logs if r["attributes"].get("b2b.rule.id") == "agent.execution.slow")
    assert slow["event_name"] == "b2b.sla.breach"
    # A per-span rule's record carries the triggering span's tenant, user and session.
    assert received_context(slow) == {TENANT: "acme", USER: "u-1"}
    denied = next(r for r in logs if r["attributes"].get("b2b.rule.id") == "security.access.violation")
    assert denied["event_name"] == "b2b.security.event"
    # user.id is the span's own (the user who was denied), not the context's
    assert received_context(denied) == {TENANT: "globex", USER: "u-2"}
    marker = otlp_receiver.wait_for_span("alert agent.execution.slow")
    assert marker["attributes"][TENANT] == "acme"
    performance = [json.loads(line) for line in (tmp_path / "performance.log").read_text().splitlines()]
    sla = next(line for line in performance if line.get("event") == "AGENT_SLOW")
    assert sla["attributes"][TENANT] == "acme"
    execution = next(line for line in performance if line.get("event") == "AGENT_EXECUTION")
    assert execution["tenant"] == "acme"
    security = [json.loads(line) for line in (tmp_path / "security.log").read_text().splitlines()]
    assert security[0]["attributes"][TENANT] == "globex"


def test_threads_and_thread_pools_carry_the_context_without_bleed(
    otlp_receiver: OTLPReceiver, tmp_path: Path, clean: None
) -> None:
    original_start, original_submit = threading.Thread.start, ThreadPoolExecutor.submit
    telemetry = start(otlp_receiver, tmp_path)

    def work(index: int) -> str | None:
        with b2b_otel.tool(f"pooled-{index}"):
            return baggage.get_baggage(TENANT)  # type: ignore[return-value]

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = []
        for index in range(50):
            with b2b_otel.context(tenant_id=TENANTS[index % 5]):
                futures.append(pool.submit(work, index))
        assert [f.result() for f in futures] == [TENANTS[i % 5] for i in range(50)]

    threads = []
    for index in range(5):
        with b2b_otel.context(tenant_id=TENANTS[index]):
            threads.append(threading.Thread(target=work, args=(100 + index,)))
            threads[-1].start()
    for t in threads:
        t.join()
    assert telemetry.force_flush(10)
    spans = otlp_receiver.wait_for_spans(lambda items: len(items) >= 55)
    tools = [s for s in spans if s["name"].startswith("execute_tool pooled-")]
    assert len(tools) == 55
    for span in tools:
        index = int(span["name"].rsplit("-", 1)[1])
        assert span["attributes"][TENANT] == TENANTS[index % 5], span["name"]
    assert threading.Thread.start is not original_start  # carried while instrumented ...
    telemetry.shutdown()
    assert threading.Thread.start is original_start  # ... and put back by shutdown()
    assert ThreadPoolExecutor.submit is original_submit


def test_the_applications_own_providers_get_the_context_before_their_exporters(
    otlp_receiver: OTLPReceiver, tmp_path: Path, clean: None
) -> None:
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))  # exports in its on_emit
    trace.set_tracer_provider(tracer_provider)
    _logs.set_logger_provider(logger_provider)
    start(otlp_receiver, tmp_path, instrumentations="none")
    with b2b_otel.context(tenant_id="acme"):
        with b2b_otel.tool("t"):
            pass
        _logs.get_logger("app").emit(body="hello")
    (span,) = [s for s in spans.get_finished_spans() if s.name == "execute_tool t"]
    assert context_of(span) == {TENANT: "acme"}
    (record,) = [r for r in logs.get_finished_logs() if r.log_record.body == "hello"]
    assert dict(record.log_record.attributes or {})[TENANT] == "acme"


def test_instrument_twice_after_shutdown_adds_the_processors_once(
    otlp_receiver: OTLPReceiver, tmp_path: Path, clean: None
) -> None:
    from b2b_otel._internal import sdk_private
    from b2b_otel.api.context import ContextLogProcessor

    tracer_provider = TracerProvider(shutdown_on_exit=False)
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    trace.set_tracer_provider(tracer_provider)
    _logs.set_logger_provider(logger_provider)
    start(otlp_receiver, tmp_path, instrumentations="none")
    b2b_otel.shutdown()
    start(otlp_receiver, tmp_path, instrumentations="none")
    span_processors = sdk_private.provider_processors(tracer_provider) or ()
    log_processors = sdk_private.provider_processors(logger_provider) or ()
    assert sum(isinstance(p, ContextSpanProcessor) for p in span_processors) == 1
    assert sum(isinstance(p, ContextLogProcessor) for p in log_processors) == 1
    assert isinstance(log_processors[0], ContextLogProcessor)


# --- rules and Alertmanager ------------------------------------------------------------------------

PER_TENANT_RULES = """\
version: 1
rules:
  - id: tenant.access.denied.burst
    kind: count
    severity: warning
    tier: security
    description: access denied three times for one tenant within a minute
    match:
      - attribute: b2b.security.action
        equals: access_denied
    group_by: [b2b.tenant.id]
    threshold: 3
    comparison: gte
    window: 1m
"""


def test_a_rules_file_may_group_by_tenant(otlp_receiver: OTLPReceiver, tmp_path: Path, clean: None) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(PER_TENANT_RULES)
    telemetry = start(otlp_receiver, tmp_path, rules_file=str(rules))
    for tenant, times in (("acme", 3), ("globex", 2), ("initech", 3)):
        with b2b_otel.context(tenant_id=tenant):
            for _ in range(times):
                b2b_otel.security.access_denied("u-1", "/admin", "read")
    assert telemetry.force_flush(10)
    rule = "tenant.access.denied.burst"
    logs = otlp_receiver.wait_for_logs(
        lambda items: sum(r["attributes"].get("b2b.rule.id") == rule for r in items) >= 2
    )
    fired = [r for r in logs if r["attributes"].get("b2b.rule.id") == rule]
    assert sorted(r["attributes"][TENANT] for r in fired) == ["acme", "initech"]
    # a window rule's record keeps only the tenant: its user and session would name one of many
    assert all(USER not in r["attributes"] and SESSION not in r["attributes"] for r in fired)


def _record(attributes: dict[str, Any]) -> DerivedRecord:
    return DerivedRecord(
        rule_id="agent.execution.slow",
        event_name=sc.EVENT_B2B_SLA_BREACH,
        severity="warning",
        tier="operations",
        attributes={sc.B2B_RULE_ID: "agent.execution.slow", **attributes},
        message="slow",
        trace_id=1,
        span_id=2,
        time_s=1_700_000_000.0,
    )


def test_alertmanager_alerts_have_a_tenant_label_and_user_and_session_annotations() -> None:
    sink = AlertmanagerSink("http://127.0.0.1:9", service="svc", trace_link="")
    alert = sink.alert(_record({TENANT: "acme", sc.GEN_AI_AGENT_NAME: "a", USER: "u-1", SESSION: "s-1"}))
    assert alert["labels"]["tenant"] == "acme"
    assert alert["labels"]["gen_ai_agent_name"] == "a"
    assert "user_id" not in alert["labels"] and "session_id" not in alert["labels"]
    assert (alert["annotations"]["user_id"], alert["annotations"]["session_id"]) == ("u-1", "s-1")
    assert "tenant" not in sink.alert(_record({}))["labels"]


def test_a_user_the_rule_groups_by_stays_a_label() -> None:
    sink = AlertmanagerSink("http://127.0.0.1:9", service="svc", trace_link="")
    record = dataclasses.replace(_record({USER: "u-3"}), group_keys=(USER,))
    assert sink.alert(record)["labels"]["user_id"] == "u-3"


def test_b2b_otels_own_worker_threads_do_not_run_in_the_context_that_started_them(
    otlp_receiver: OTLPReceiver, tmp_path: Path, clean: None
) -> None:
    from b2b_otel.derive.processor import DerivationProcessor
    from b2b_otel.derive.sink import AgentExecution, Sink
    from b2b_otel.rules import load_rules
    from b2b_otel.scrub import Scrubber

    start(otlp_receiver, tmp_path, instrumentations="none")  # context into threads is on

    seen: list[tuple[dict[str, Any], bool]] = []

    class Probe(Sink):
        name = "probe"

        def agent_execution(self, execution: AgentExecution) -> None:
            span_context = trace.get_current_span().get_span_context()
            seen.append((dict(baggage.get_all()), span_context.is_valid))

    processor = DerivationProcessor(load_rules(None, {}), Scrubber(), [Probe()])
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    try:
        # The first span's end starts the worker: inside tenant acme's context and an open span.
        with b2b_otel.context(tenant_id="acme"), tracer.start_as_current_span("request"):
            tracer.start_span("invoke_agent a", attributes={"gen_ai.operation.name": "invoke_agent"}).end()
        with b2b_otel.context(tenant_id="globex"):
            tracer.start_span("invoke_agent b", attributes={"gen_ai.operation.name": "invoke_agent"}).end()
        assert processor.force_flush(5000)
    finally:
        processor.shutdown()
    assert seen == [({}, False), ({}, False)]


def test_a_real_alertmanager_receives_the_tenant_label(alertmanager: Any, clean: None) -> None:
    telemetry = b2b_otel.instrument(
        service_name="context-test",
        alertmanager_url=alertmanager.url,
        log_dir="none",
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter="none",
        instrumentations="none",
    )
    with b2b_otel.context(tenant_id="acme-gmbh", user_id="operator-1"):
        b2b_otel.security.access_denied("u-2", "case/1", "delete")
    assert telemetry.force_flush(15)
    (alert,) = alertmanager.wait_for_alerts(1)
    assert alert["labels"]["alertname"] == "security.access.violation"
    assert alert["labels"]["tenant"] == "acme-gmbh"
    assert alert["labels"]["service"] == "context-test"


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"max_span_attribute_length": 4}, {TENANT: "acme", USER: "u-17"}),  # the SDK's value-length limit
        ({"max_span_attributes": 1}, {USER: "u-17"}),  # the SDK's count limit keeps the newest
    ],
)
def test_the_sdks_span_limits_still_apply(limits: dict[str, int], expected: dict[str, str]) -> None:
    from opentelemetry.sdk.trace import SpanLimits

    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(**limits), shutdown_on_exit=False)
    provider.add_span_processor(ContextSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with b2b_otel.context(tenant_id="acme-gmbh", user_id="u-17"):
        provider.get_tracer("t").start_span("s").end()
    (span,) = exporter.get_finished_spans()
    assert context_of(span) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.none(),
        st.text(max_size=300),
        st.binary(max_size=20),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.uuids(),
        st.lists(st.text(max_size=3), max_size=3),
    )
)
def test_any_value_gives_a_valid_id_or_invalid_and_never_raises(capture: Capture, value: object) -> None:
    capture.spans_exporter.clear()
    with b2b_otel.context(tenant_id=value), b2b_otel.tool("t"):
        pass
    recorded = context_of(capture.span("execute_tool t")).get(TENANT)
    if value is None:
        assert recorded is None
    else:
        assert isinstance(recorded, str)
        assert recorded == INVALID or (0 < len(recorded) <= MAX_LENGTH and recorded.isprintable())


def test_the_context_reaches_every_kind_of_thread_and_is_undone_on_uninstall(clean: None) -> None:
    """Built in (no extra): Thread, a subclass with its own run(), Timer, pools; outside a context
    nothing changes; after the undo the originals are back."""
    from opentelemetry import context as otel_context

    from b2b_otel.setup import threads

    original_start, original_submit = threading.Thread.start, ThreadPoolExecutor.submit
    undo = threads.install()
    assert undo is not None
    assert threads.install() is None  # on already: not the second caller's to undo
    gc.disable()  # a reference cycle must not be collected by chance before the check below
    try:
        seen: dict[str, object] = {}

        class Worker(threading.Thread):
            def run(self) -> None:
                seen["subclass"] = baggage.get_baggage(TENANT)

        def read(key: str) -> None:
            seen[key] = baggage.get_baggage(TENANT)

        with b2b_otel.context(tenant_id="acme"):
            started = [
                threading.Thread(target=read, args=("thread",)),
                Worker(),
                threading.Timer(0.01, read, args=("timer",)),
            ]
            for t in started:
                t.start()
            with ThreadPoolExecutor(max_workers=1) as pool:
                assert pool.submit(baggage.get_baggage, TENANT).result() == "acme"

            async def in_executor() -> object:  # asyncio's default executor goes through submit()
                return await asyncio.get_running_loop().run_in_executor(None, baggage.get_baggage, TENANT)

            assert asyncio.run(in_executor()) == "acme"
        outside = threading.Thread(target=read, args=("outside",))
        outside.start()
        for t in [*started, outside]:
            t.join()
        assert seen == {"thread": "acme", "subclass": "acme", "timer": "acme", "outside": None}
        assert not hasattr(outside, threads._CARRIED)  # a thread started outside a context is untouched
        carried = weakref.ref(started[0])
        del started, t
        assert carried() is None  # no reference cycle: a finished thread goes with its last reference
        assert otel_context.get_current() == otel_context.Context()  # the caller's context is intact
        with pytest.raises(RuntimeError, match="once"):  # the application's errors are its own
            outside.start()
    finally:
        gc.enable()
        undo()
    assert threading.Thread.start is original_start
    assert ThreadPoolExecutor.submit is original_submit
    assert not threads.installed()
    with b2b_otel.context(tenant_id="acme"):
        after: list[object] = []
        t = threading.Thread(target=lambda: after.append(baggage.get_baggage(TENANT)))
        t.start()
        t.join()
    assert after == [None]


def test_a_wrapper_put_over_the_carrier_keeps_working_after_the_undo(clean: None) -> None:
    from b2b_otel.setup import threads

    original_start = threading.Thread.start
    undo = threads.install()
    assert undo is not None
    ours = threading.Thread.start
    calls: list[str] = []

    def theirs(self: threading.Thread) -> None:  # another instrumentation wraps ours later
        calls.append(self.name)
        ours(self)

    threading.Thread.start = theirs  # type: ignore[method-assign]
    try:
        undo()
        assert threading.Thread.start is theirs  # not torn out from under the later wrapper
        with b2b_otel.context(tenant_id="acme"):
            got: list[object] = []
            t = threading.Thread(target=lambda: got.append(baggage.get_baggage(TENANT)), name="w")
            t.start()
            t.join()
        assert calls == ["w"] and got == [None]  # passed through, no longer carried
    finally:
        threading.Thread.start = ours  # type: ignore[method-assign]
        threads.uninstall()
    assert threading.Thread.start is original_start  # restored once ours is outermost again


def test_the_contrib_threading_instrumentation_when_on_is_left_to_carry_the_context(clean: None) -> None:
    threading_instrumentation = pytest.importorskip("opentelemetry.instrumentation.threading")
    from b2b_otel.setup import threads

    instrumentor = threading_instrumentation.ThreadingInstrumentor()
    instrumentor.instrument()
    try:
        assert threads.install() is None
        assert not threads.installed()
        with b2b_otel.context(tenant_id="acme"), ThreadPoolExecutor(max_workers=1) as pool:
            assert pool.submit(baggage.get_baggage, TENANT).result() == "acme"
    finally:
        instrumentor.uninstrument()

"""The hot path's shortcuts keep what they shortcut: exemplars, window sums, rule plans.

b2b_otel's instruments keep exemplars in ``LatestExemplars`` (the same exemplars as the SDK's
aligned-bucket reservoir, linked to the span they were recorded in); rule windows keep their sums
as buckets change instead of adding them up per span; the engine judges a span by a plan cached per
span shape. Each is checked here against what it replaces.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.sdk.metrics import AlignedHistogramBucketExemplarReservoir, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import b2b_otel
from b2b_otel import semconv as sc
from b2b_otel.api.exemplars import LatestExemplars
from b2b_otel.api.metrics import histogram_views
from b2b_otel.rules.engine import BUCKETS_PER_WINDOW, Engine, SpanFacts, _Window, matches
from b2b_otel.rules.loader import load_rules
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

pytest_plugins = ["tests.support.fixtures"]


# --- exemplars ---------------------------------------------------------------------------------------


def test_latest_exemplars_keep_what_the_sdks_aligned_bucket_reservoir_keeps() -> None:
    boundaries = [0.01, 0.1, 1.0, 10.0]
    provider = TracerProvider(shutdown_on_exit=False)
    tracer = provider.get_tracer("t")
    ours, sdk = LatestExemplars(boundaries), AlignedHistogramBucketExemplarReservoir(boundaries)
    rng = random.Random(7)
    values = [0.0, 0.01, 0.0100001, 0.1, 1.0, 10.0, 10.5, 1e9] + [rng.uniform(0, 12) for _ in range(200)]
    for number, value in enumerate(values):
        span = tracer.start_span(f"s{number}")
        ctx = trace.set_span_in_context(span)
        attributes = {"route": "/x", "n": number}
        ours.offer(value, number, attributes, ctx)
        sdk.offer(value, number, attributes, ctx)
        span.end()
    point = {"route": "/x"}
    assert ours.collect(point) == sdk.collect(point)
    assert ours.collect(point) == sdk.collect(point) == []  # collecting resets both
    # Without a span: an exemplar without ids (the SDK's bucket would keep an earlier span's ids).
    ours.offer(0.5, 999, None, otel_context.Context())
    sdk.offer(0.5, 999, None, otel_context.Context())
    assert ours.collect(point) == sdk.collect(point)


def test_a_counters_exemplar_is_its_latest_measurement_with_its_span() -> None:
    reservoir = LatestExemplars()
    provider = TracerProvider(shutdown_on_exit=False)
    spans = [provider.get_tracer("t").start_span(f"s{n}") for n in range(3)]
    for number, span in enumerate(spans):
        reservoir.offer(1, number, {"outcome": "success"}, trace.set_span_in_context(span))
    (exemplar,) = reservoir.collect({"outcome": "success"})
    context = spans[-1].get_span_context()
    assert (exemplar.value, exemplar.time_unix_nano) == (1, 2)
    assert (exemplar.span_id, exemplar.trace_id) == (context.span_id, context.trace_id)
    assert exemplar.filtered_attributes == {}


def test_b2b_otels_own_meter_provider_links_agent_metrics_to_the_agent_span() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], views=histogram_views(), shutdown_on_exit=False)
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("t")
    meter = meters.get_meter(sc.INSTRUMENTATION_SCOPE)
    info = sc.METRICS[sc.METRIC_GEN_AI_INVOKE_AGENT_DURATION]
    histogram = meter.create_histogram(
        info.name, unit=info.unit, explicit_bucket_boundaries_advisory=list(info.buckets or ())
    )
    counter = meter.create_counter(sc.METRIC_B2B_AGENT_EXECUTIONS)
    other = meters.get_meter("someone.else").create_counter("other.count")
    with tracer.start_as_current_span("invoke_agent a") as span:
        histogram.record(0.2, {sc.GEN_AI_AGENT_NAME: "a"})
        counter.add(1, {sc.GEN_AI_AGENT_NAME: "a"})
        other.add(1)
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, Any] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                (point,) = metric.data.data_points
                found[metric.name] = point
    span_id = span.get_span_context().span_id
    for name in (info.name, sc.METRIC_B2B_AGENT_EXECUTIONS, "other.count"):
        (exemplar,) = found[name].exemplars
        assert exemplar.span_id == span_id
    # The histogram's buckets are the registry's (the View left the aggregation alone).
    assert tuple(found[info.name].explicit_bounds) == tuple(info.buckets or ())


def _exemplar_span_ids(receiver: OTLPReceiver) -> dict[tuple[str, str], list[str]]:
    """Per (metric, outcome or error type): the span ids of its points' exemplars, as received."""
    exemplars: dict[tuple[str, str], list[str]] = {}
    for entry in receiver.requests("metrics"):
        request = cast(metrics_service_pb2.ExportMetricsServiceRequest, entry.request)
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points if kind else ():
                        labels = {kv.key: kv.value.string_value for kv in point.attributes}
                        key = (metric.name, labels.get(sc.OUTCOME) or labels.get(sc.ERROR_TYPE) or "")
                        exemplars.setdefault(key, []).extend(e.span_id.hex() for e in point.exemplars)
    return exemplars


@pytest.fixture
def receiver(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[OTLPReceiver]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "B2B_OTEL_")):
            monkeypatch.delenv(name)
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    reset_otel_globals()
    b2b_otel.instrument(service_name="hot-path", instrumentations="none", log_dir=str(tmp_path))
    yield otlp_receiver
    reset_otel_globals()


def test_an_agents_duration_and_execution_points_carry_exemplars_of_its_spans(receiver: OTLPReceiver) -> None:
    @b2b_otel.agent("roi_calculator_agent")
    def run(fail: bool) -> None:
        if fail:
            raise ValueError("no")

    run(False)
    with pytest.raises(ValueError):
        run(True)
    assert b2b_otel.shutdown()
    spans = {span["span_id"]: span for span in receiver.spans("invoke_agent roi_calculator_agent")}
    assert len(spans) == 2
    exemplars = _exemplar_span_ids(receiver)
    failed = next(i for i, s in spans.items() if s["status_code"] == "STATUS_CODE_ERROR")
    succeeded = next(i for i in spans if i != failed)
    duration = sc.METRIC_GEN_AI_INVOKE_AGENT_DURATION
    assert exemplars[(sc.METRIC_B2B_AGENT_EXECUTIONS, sc.OutcomeValues.SUCCESS)] == [succeeded]
    assert exemplars[(sc.METRIC_B2B_AGENT_EXECUTIONS, sc.OutcomeValues.FAILURE)] == [failed]
    assert exemplars[(duration, "")] == [succeeded]
    assert exemplars[(duration, "ValueError")] == [failed]


# --- rule windows and plans --------------------------------------------------------------------------


def test_a_windows_kept_sums_equal_its_buckets_through_moves_restores_and_resets() -> None:
    rng = random.Random(11)
    window = _Window.new()
    bucket = 1_000
    for step in range(20_000):
        roll = rng.random()
        if roll < 0.001:
            window.reset()
        elif roll < 0.002:
            window.reset()
            window.restore(bucket, rng.randint(1, 50))
        else:
            bucket += rng.choice((0, 0, 0, 1, 2, 7, BUCKETS_PER_WINDOW + 3, -1))
            window.add(bucket, rng.random() < 0.3)
        assert window.sums() == (sum(window.totals), sum(window.hits)), step


def _facts(
    attributes: dict[str, Any], name: str = "x", kind: str = "internal", status: str = "unset"
) -> SpanFacts:
    return SpanFacts(name, kind, status, 0.5, attributes)


SHAPES = [
    {sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_AGENT_NAME: "a"},
    {sc.GEN_AI_OPERATION_NAME: "invoke_workflow", sc.GEN_AI_WORKFLOW_NAME: "w"},
    {sc.B2B_MEMORY_TIER: "working", sc.B2B_MEMORY_CACHE_HIT: False},
    {sc.B2B_MEMORY_TIER: "episodic"},
    {"http.request.method": "GET", "server.address": "api"},
    {"db.system.name": "postgresql"},
    {sc.B2B_SECURITY_ACTION: "login", "event.outcome": "failure", "client.address": "10.0.0.1"},
    {sc.B2B_SECURITY_ACTION: "privilege_change", "b2b.roles.granted": ("admin",), sc.USER_ID: "u"},
    {sc.B2B_SECURITY_ACTION: "privilege_change", "b2b.roles.granted": ()},
    {sc.B2B_SECURITY_ACTION: "access_denied", sc.USER_ID: "u"},
    {"b2b.data_quality.score": 0.5, sc.GEN_AI_WORKFLOW_NAME: "w"},
    {sc.GEN_AI_OPERATION_NAME: 7},
    {sc.GEN_AI_OPERATION_NAME: ["invoke_agent"], sc.B2B_SECURITY_ACTION: ["login"]},  # unhashable
    {},
]


@pytest.mark.parametrize("attributes", SHAPES)
@pytest.mark.parametrize("kind", ["internal", "client"])
@pytest.mark.parametrize("status", ["unset", "error"])
def test_a_spans_plan_holds_exactly_the_rules_whose_match_holds(
    attributes: dict[str, Any], kind: str, status: str
) -> None:
    engine = Engine(load_rules(None, {}), clock=lambda: 1_000.0)
    facts = _facts(attributes, kind=kind, status=status)
    planned = [rule.id for rule, rest, _ in engine._plan(attributes) if not rest or matches(rest, facts)]
    expected = [rule.id for rule in engine._candidates(attributes) if matches(rule.match, facts)]
    every = [rule.id for rule in engine.rules.enabled() if rule.match and matches(rule.match, facts)]
    assert planned == expected
    assert set(every) <= set(planned) | {r.id for r in engine._gauge_rules}


def test_otel_metrics_exemplar_filter_always_off_turns_the_exemplars_off(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "B2B_OTEL_")):
            monkeypatch.delenv(name)
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "always_off")
    reset_otel_globals()
    try:
        b2b_otel.instrument(service_name="hot-path", instrumentations="none", log_dir=str(tmp_path))

        @b2b_otel.agent("roi_calculator_agent")
        def run() -> None:
            pass

        run()
        assert b2b_otel.shutdown()
        exemplars = _exemplar_span_ids(otlp_receiver)
        assert (sc.METRIC_B2B_AGENT_EXECUTIONS, sc.OutcomeValues.SUCCESS) in exemplars  # the point came
        assert not any(exemplars.values())
    finally:
        reset_otel_globals()

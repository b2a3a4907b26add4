"""Every public helper under hostile arguments: nothing escapes from inside telemetry but the
application's own exception, and what is recorded stays bounded and well-typed.

The arguments are what a buggy caller hands over: None, bools, ints (huge too), floats (NaN and
infinity), bytes, huge strings, unhashable containers, and objects whose ``__str__``, ``__repr__``,
``__hash__``, ``__eq__``, ``__bool__`` or ``__iter__`` raise.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import b2b_otel
from b2b_otel import semconv as sc
from b2b_otel.api.arguments import OTHER
from tests.support.capture import Capture, install_capture
from tests.support.otel_globals import reset_otel_globals

# Modest and without hypothesis' explain phase, which re-runs a failure hundreds of times.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
)


class Sentinel(Exception):
    """The application's own exception: it must come out of every decorated call unchanged."""


class Raising:
    """An object that raises from every dunder a helper might touch."""

    def _raise(self, *args: Any) -> Any:
        raise RuntimeError("hostile argument")

    __str__ = __repr__ = __format__ = __hash__ = __eq__ = __bool__ = __iter__ = __len__ = _raise
    __int__ = __index__ = __float__ = __lt__ = _raise


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")


class RaisingHash:
    def __hash__(self) -> int:
        raise RuntimeError("no hash")

    def __repr__(self) -> str:
        return "RaisingHash()"


class RaisingEq:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    def __hash__(self) -> int:
        return hash("episodic")  # collides with a registry value, so a set lookup must compare


class StrSubclass(str):
    def __str__(self) -> str:
        raise RuntimeError("str subclass without str")

    def __hash__(self) -> int:
        raise RuntimeError("str subclass without hash")


def endless() -> Iterator[str]:
    while True:
        yield "role"


def failing_iterator() -> Iterator[str]:
    yield "viewer"
    raise RuntimeError("iterator broke")


HUGE_INT = 10**5000  # too large even for repr() and float()
HUGE_TEXT = "n" * 200_000

# Factories, not values: hypothesis hashes what it samples (and reprs explicit examples), which
# these objects refuse.
HOSTILE = [
    Raising,
    RaisingStr,
    RaisingHash,
    RaisingEq,
    lambda: StrSubclass("episodic"),
    object,
    lambda: HUGE_INT,
    lambda: -HUGE_INT,
    lambda: 2**63,
    lambda: HUGE_TEXT,
    lambda: b"\xff\xfe bytes",
    lambda: bytearray(b"ba"),
    lambda: float("nan"),
    lambda: float("inf"),
    lambda: -float("inf"),
    endless,
    failing_iterator,
]
hostile = st.sampled_from(HOSTILE).map(lambda make: make())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=20),
    st.text(max_size=20),
    st.sampled_from(sc.B2B_MEMORY_TIER_VALUES + sc.SPAN_MEMORY_GEN_AI_OPERATION_NAME_VALUES),
)
anything = st.one_of(
    scalars,
    hostile,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    st.sets(st.integers(), max_size=3),
    st.builds(endless),
    st.builds(failing_iterator),
)

ALLOWED_ATTRIBUTE_TYPES = (str, bool, int, float)


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Fresh providers per test (not per example: ``fresh`` clears the spans of each example)."""
    yield install_capture()
    reset_otel_globals()


def fresh(capture: Capture) -> Capture:
    capture.spans_exporter.clear()
    return capture


def raiser() -> None:
    raise SENTINEL


SENTINEL = Sentinel("the application's own")


def assert_sentinel_propagates(call: Any) -> None:
    with pytest.raises(Sentinel) as raised:
        call()
    assert raised.value is SENTINEL


def assert_well_typed(span: ReadableSpan) -> None:
    assert type(span.name) is str
    for key, value in (span.attributes or {}).items():
        values = value if isinstance(value, tuple) else (value,)
        assert all(isinstance(v, ALLOWED_ATTRIBUTE_TYPES) for v in values), (key, value)
        if isinstance(value, int) and not isinstance(value, bool):
            assert -(2**63) <= value < 2**63, key  # OTLP's int64


def assert_metric_points_well_typed(capture: Capture) -> None:
    data = capture.reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    for key, value in point.attributes.items():
                        assert isinstance(value, ALLOWED_ATTRIBUTE_TYPES), (metric.name, key, value)


# --- span helpers -------------------------------------------------------------------------------------


@FUZZ
@given(name=anything, agent_id=anything, conversation_id=anything, queue_depth=anything)
def test_agent_decorator_and_span_never_raise_but_the_application_s_exception(
    capture: Capture, name: Any, agent_id: Any, conversation_id: Any, queue_depth: Any
) -> None:
    fresh(capture)
    kwargs = {"agent_id": agent_id, "conversation_id": conversation_id, "queue_depth": queue_depth}
    decorated = b2b_otel.agent(name, **kwargs) if not callable(name) else b2b_otel.agent(name)
    assert_sentinel_propagates(lambda: decorated(raiser)())
    assert_sentinel_propagates(lambda: _in(b2b_otel.agent_span(name, **kwargs)))
    spans = capture.spans()
    assert len(spans) == 2
    for span in spans:
        assert span.name.startswith("invoke_agent ")
        assert_well_typed(span)
    assert_metric_points_well_typed(capture)


def _in(operation: Any) -> None:
    with operation:
        raise SENTINEL


@FUZZ
@given(name=anything)
def test_tool_never_raises_but_the_application_s_exception(capture: Capture, name: Any) -> None:
    fresh(capture)
    assert_sentinel_propagates(lambda: b2b_otel.tool(name)(raiser)())
    assert_sentinel_propagates(lambda: _in(b2b_otel.tool(name)))
    assert [s.name.startswith("execute_tool ") for s in capture.spans()] == [True, True]
    for span in capture.spans():
        assert_well_typed(span)


@FUZZ
@given(name=anything, business_case_id=anything, step_name=anything, index=anything)
def test_workflow_and_steps_never_raise_but_the_application_s_exception(
    capture: Capture, name: Any, business_case_id: Any, step_name: Any, index: Any
) -> None:
    fresh(capture)

    def run() -> None:
        with b2b_otel.workflow_span(name, business_case_id), b2b_otel.workflow_step(step_name, index):
            raise SENTINEL

    assert_sentinel_propagates(run)
    assert_sentinel_propagates(lambda: b2b_otel.workflow(name, business_case_id=business_case_id)(raiser)())
    assert_sentinel_propagates(lambda: b2b_otel.workflow_step(step_name, index)(raiser)())
    spans = capture.spans()
    assert len(spans) == 4
    for span in spans:
        assert_well_typed(span)
    step = next(s for s in spans if s.name.startswith("execute_step "))
    index_attribute = (step.attributes or {}).get(sc.B2B_WORKFLOW_STEP_INDEX)
    assert index_attribute is None or type(index_attribute) is int
    assert_metric_points_well_typed(capture)


@FUZZ
@given(tier=anything, operation=anything, store_id=anything, record_count=anything, cache_hit=anything)
def test_memory_never_raises_and_names_only_registry_values(
    capture: Capture, tier: Any, operation: Any, store_id: Any, record_count: Any, cache_hit: Any
) -> None:
    fresh(capture)
    kwargs = {"store_id": store_id, "record_count": record_count, "cache_hit": cache_hit}
    assert_sentinel_propagates(lambda: _in(b2b_otel.memory(tier, operation, **kwargs)))
    assert_sentinel_propagates(lambda: b2b_otel.memory(tier, operation, **kwargs)(raiser)())
    tiers = {*sc.B2B_MEMORY_TIER_VALUES, OTHER}
    operations = {*sc.SPAN_MEMORY_GEN_AI_OPERATION_NAME_VALUES, OTHER}
    allowed_names = {sc.memory_span_name(o, t) for o in operations for t in tiers}
    for span in capture.spans():
        assert span.name in allowed_names
        assert_well_typed(span)
    for point in capture.points(sc.METRIC_B2B_MEMORY_OPERATION_DURATION):
        assert point.attributes[sc.B2B_MEMORY_TIER] in tiers
        assert point.attributes[sc.GEN_AI_OPERATION_NAME] in operations


class BrokenPool:
    """Looks like a pool; reading it fails, and so does its name."""

    name = Raising()

    def get_stats(self) -> dict[str, int]:
        raise RuntimeError("closed")


@FUZZ
@given(
    agent_name=anything, depth=anything, pool=st.one_of(anything, st.builds(BrokenPool)), pool_name=anything
)
def test_gauges_and_pools_never_raise(
    capture: Capture, agent_name: Any, depth: Any, pool: Any, pool_name: Any
) -> None:
    assert b2b_otel.set_queue_depth(agent_name, depth) is None
    assert b2b_otel.register_pool(pool, pool_name) is None
    assert_metric_points_well_typed(capture)  # also runs the pool callbacks
    for point in capture.points(sc.METRIC_B2B_AGENT_QUEUE_DEPTH):
        assert type(point.value) is int and 0 <= point.value < 2**63


@pytest.mark.parametrize("make", HOSTILE)
def test_every_hostile_value_in_every_argument_of_the_helpers(capture: Capture, make: Any) -> None:
    fresh(capture)
    assert_sentinel_propagates(lambda: b2b_otel.agent(make(), agent_id=make(), queue_depth=make())(raiser)())
    assert_sentinel_propagates(lambda: _in(b2b_otel.agent_span(make(), conversation_id=make())))
    assert_sentinel_propagates(lambda: b2b_otel.tool(make())(raiser)())
    assert_sentinel_propagates(lambda: _in(b2b_otel.workflow_span(make(), make())))
    assert_sentinel_propagates(lambda: b2b_otel.workflow(make(), business_case_id=make())(raiser)())
    assert_sentinel_propagates(lambda: _in(b2b_otel.workflow_step(make(), make())))
    kwargs = {"store_id": make(), "record_count": make(), "cache_hit": make()}
    assert_sentinel_propagates(lambda: _in(b2b_otel.memory(make(), make(), **kwargs)))
    b2b_otel.set_queue_depth(make(), make())
    b2b_otel.register_pool(make(), make())
    b2b_otel.security.login(make(), make(), make(), make())
    b2b_otel.security.privilege_change(make(), make(), make(), make(), make())
    b2b_otel.security.access_denied(make(), make(), make(), make())
    assert len(capture.spans()) == 10
    for span in capture.spans():
        assert_well_typed(span)
    assert_metric_points_well_typed(capture)


def test_audit_with_a_hostile_action_raises_nothing_but_audit_error(capture: Capture) -> None:
    try:
        b2b_otel.audit(Raising(), Raising(), Raising(), Raising(), detail=Raising())  # type: ignore[arg-type]
    except b2b_otel.AuditError:
        pass


@pytest.mark.parametrize(
    "make", [lambda: HUGE_INT, Raising, lambda: 1e11], ids=["huge int", "raising repr", "finite 1e11 s"]
)
def test_flush_and_shutdown_with_a_hostile_timeout_never_raise(make: Any) -> None:
    reset_otel_globals()
    try:
        telemetry = b2b_otel.instrument(
            log_dir="none", instrumentations="none", shutdown_timeout="1s", **QUIET
        )
        telemetry.force_flush(make())
        telemetry.shutdown(make())
        b2b_otel.shutdown(make())
    finally:
        reset_otel_globals()


# --- security facts ----------------------------------------------------------------------------------


@FUZZ
@given(args=st.lists(anything, min_size=4, max_size=4), roles=st.lists(anything, min_size=3, max_size=3))
def test_security_facts_never_raise(capture: Capture, args: list[Any], roles: list[Any]) -> None:
    fresh(capture)
    user_id, client_address, success, method = args
    assert b2b_otel.security.login(user_id, client_address, success, method) is None
    assert b2b_otel.security.privilege_change(user_id, method, *roles) is None
    assert b2b_otel.security.access_denied(user_id, client_address, method, success) is None
    spans = capture.spans()
    assert [s.name for s in spans] == ["login", "privilege_change", "access_denied"]
    for span in spans:
        assert_well_typed(span)
    login = spans[0].attributes or {}
    expected = {True: "success", False: "failure"}[success] if type(success) is bool else "unknown"
    assert login[sc.EVENT_OUTCOME] == expected
    for key in (sc.USER_ROLES, sc.B2B_ROLES_GRANTED, sc.B2B_ROLES_REVOKED):
        assert len(spans[1].attributes[key]) <= 256  # type: ignore[index]


@FUZZ
@given(
    action=st.one_of(scalars, st.lists(scalars, max_size=3)),
    args=st.lists(anything, min_size=3, max_size=3),
    details=st.dictionaries(st.text(max_size=5), anything),
)
def test_audit_raises_nothing_but_audit_error(
    capture: Capture, action: Any, args: list[Any], details: dict[str, Any]
) -> None:
    actor_id, target, outcome = args
    try:
        b2b_otel.audit(action, actor_id, target, outcome, **details)
    except b2b_otel.AuditError:
        pass  # by contract: no audit file here, so the record could not be made durable


# --- the handle ---------------------------------------------------------------------------------------

QUIET = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
# Every kind of wrong timeout (the hostile ones: test_flush_and_shutdown_with_a_hostile_timeout_...).
_small_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(max_value=1e6),
    st.binary(max_size=5),
    st.text(max_size=5),
)
timeouts = st.one_of(
    _small_scalars,
    st.lists(_small_scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), _small_scalars, max_size=2),
    st.floats(min_value=0, max_value=0.5),
    st.sampled_from(
        [
            math.inf,
            -math.inf,
            math.nan,
            -1,
            "1",
            "x",
        ]
    ),
)


@settings(FUZZ, max_examples=25, phases=(Phase.explicit, Phase.generate))  # an instrument() per example
@given(flush=timeouts, stop=timeouts, module_stop=timeouts)
def test_flush_shutdown_and_health_never_raise(flush: Any, stop: Any, module_stop: Any) -> None:
    reset_otel_globals()
    try:
        telemetry = b2b_otel.instrument(
            log_dir="none", instrumentations="none", shutdown_timeout="1s", **QUIET
        )
        assert telemetry.force_flush(flush) in (True, False)
        assert isinstance(telemetry.health(), dict)
        assert telemetry.shutdown(stop) in (True, False)
        assert telemetry.shutdown(stop) is True  # a second shutdown is a no-op
        assert isinstance(telemetry.health(), dict)
        assert b2b_otel.shutdown(module_stop) in (True, False)
    finally:
        reset_otel_globals()


# --- bounded series ----------------------------------------------------------------------------------


class SpanNames(SpanExporter):
    """Keeps the distinct span names only, so 200,000 spans cost no memory here."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def export(self, spans: Any) -> SpanExportResult:
        self.names.update(s.name for s in spans)
        return SpanExportResult.SUCCESS


def test_200000_distinct_memory_tiers_make_one_metric_series_and_are_counted() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    reset_otel_globals()
    names = SpanNames()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(names))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], shutdown_on_exit=False))
    try:
        for i in range(200_000):
            with b2b_otel.memory(f"tier-{i}", sc.GenAiOperationNameValues.SEARCH_MEMORY):
                pass
        data = reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        (duration,) = points[sc.METRIC_B2B_MEMORY_OPERATION_DURATION]
        assert dict(duration.attributes) == {
            sc.B2B_MEMORY_TIER: OTHER,
            sc.GEN_AI_OPERATION_NAME: sc.GenAiOperationNameValues.SEARCH_MEMORY,
        }
        assert duration.count == 200_000
        # Only this test's reason is asserted: an earlier test's abandoned exporter may still be
        # retrying in the background and count its own drops (another reason) on this provider.
        invalid = {sc.SIGNAL: sc.SignalValues.TRACES, sc.REASON: sc.ReasonValues.INVALID_ARGUMENT}
        (dropped,) = [p for p in points[sc.METRIC_B2B_TELEMETRY_DROPPED] if dict(p.attributes) == invalid]
        assert dropped.value == 200_000
        assert names.names == {sc.memory_span_name(sc.GenAiOperationNameValues.SEARCH_MEMORY, OTHER)}
    finally:
        reset_otel_globals()

"""The metric instruments of SPEC section 4, created once per meter provider from ``semconv.METRICS``.

Histograms carry their explicit bucket boundaries as an advisory, so they apply whether b2b_otel
created the MeterProvider or the application did.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .. import semconv as sc
from .._internal import selflog
from .._version import __version__
from . import arguments


class Instruments:
    """Every synchronous instrument the helpers record into, bound to one meter.

    Only these are created: the registry also names metrics that other instrumentations record
    (``db.client.operation.duration``, the GenAI client metrics) under their own scopes.
    """

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.agent_duration = _create(meter, sc.METRIC_GEN_AI_INVOKE_AGENT_DURATION)
        self.tool_duration = _create(meter, sc.METRIC_GEN_AI_EXECUTE_TOOL_DURATION)
        self.workflow_duration = _create(meter, sc.METRIC_GEN_AI_INVOKE_WORKFLOW_DURATION)
        self.agent_executions = _create(meter, sc.METRIC_B2B_AGENT_EXECUTIONS)
        self.queue_depth = _create(meter, sc.METRIC_B2B_AGENT_QUEUE_DEPTH)
        self.memory_duration = _create(meter, sc.METRIC_B2B_MEMORY_OPERATION_DURATION)
        self.cache_requests = _create(meter, sc.METRIC_B2B_MEMORY_CACHE_REQUESTS)
        self.workflow_steps = _create(meter, sc.METRIC_B2B_WORKFLOW_STEPS)
        self.alerts = _create(meter, sc.METRIC_B2B_ALERTS)
        self.security_events = _create(meter, sc.METRIC_B2B_SECURITY_EVENTS)
        self.dropped = _create(meter, sc.METRIC_B2B_TELEMETRY_DROPPED)
        info_count = sc.METRICS[sc.METRIC_DB_CLIENT_CONNECTION_COUNT]
        info_max = sc.METRICS[sc.METRIC_DB_CLIENT_CONNECTION_MAX]
        meter.create_observable_up_down_counter(
            info_count.name,
            callbacks=[_observe_pool_counts],
            unit=info_count.unit,
            description=info_count.description,
        )
        meter.create_observable_up_down_counter(
            info_max.name, callbacks=[_observe_pool_max], unit=info_max.unit, description=info_max.description
        )


def _create(meter: Meter, name: str) -> Any:
    """The synchronous instrument of a registry metric, with its unit, description and buckets."""
    info = sc.METRICS[name]
    if info.instrument == "histogram":
        return meter.create_histogram(
            name,
            unit=info.unit,
            description=info.description,
            explicit_bucket_boundaries_advisory=list(info.buckets) if info.buckets else None,
        )
    if info.instrument == "counter":
        return meter.create_counter(name, unit=info.unit, description=info.description)
    if info.instrument == "gauge":
        return meter.create_gauge(name, unit=info.unit, description=info.description)
    raise ValueError(f"{name} is a {info.instrument}, which the helpers do not record synchronously")


_lock = threading.Lock()
# The processor layer's gauge input (rules of kind gauge with a metric source).
_gauge_listener: Callable[[str, float, dict[str, Any]], None] | None = None


def set_gauge_listener(listener: Callable[[str, float, dict[str, Any]], None] | None) -> None:
    """Where reported gauge values go besides the metric (the rules engine)."""
    global _gauge_listener
    _gauge_listener = listener


def report_gauge(source: str, value: float, attributes: dict[str, Any]) -> None:
    """Hand a gauge value to the rules engine, if one is installed."""
    listener = _gauge_listener
    if listener is not None:
        listener(source, value, attributes)


_bound: tuple[Any, Instruments] | None = None
_tracer_bound: tuple[Any, trace.Tracer] | None = None


def histogram_views() -> list[Any]:
    """The Views of a MeterProvider that b2b_otel owns.

    Bucket boundaries for histograms that other instrumentations create without an advisory: the
    contrib psycopg instrumentation records ``db.client.operation.duration`` in seconds but leaves
    the SDK's default (millisecond-shaped) buckets. And b2b_otel's own instruments keep their
    exemplars in :class:`~b2b_otel.api.exemplars.LatestExemplars` (their aggregation stays the default).
    """
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    from .exemplars import exemplars

    return [
        View(
            instrument_name=sc.METRIC_DB_CLIENT_OPERATION_DURATION,
            aggregation=ExplicitBucketHistogramAggregation(
                list(sc.METRIC_DB_CLIENT_OPERATION_DURATION_BUCKETS)
            ),
        ),
        View(meter_name=sc.INSTRUMENTATION_SCOPE, instrument_name="*", exemplar_reservoir_factory=exemplars),
    ]


def instruments() -> Instruments:
    """The instruments of the current global meter provider (re-created when it changes)."""
    global _bound
    provider = metrics.get_meter_provider()
    bound = _bound
    if bound is not None and bound[0] is provider:
        return bound[1]
    with _lock:
        if _bound is None or _bound[0] is not provider:
            _bound = (
                provider,
                Instruments(provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__, schema_url=None)),
            )
        return _bound[1]


def tracer() -> trace.Tracer:
    """b2b_otel's tracer from the current global tracer provider (cached per provider)."""
    global _tracer_bound
    provider = trace.get_tracer_provider()
    bound = _tracer_bound
    if bound is not None and bound[0] is provider:
        return bound[1]
    created = provider.get_tracer(sc.INSTRUMENTATION_SCOPE, __version__)
    _tracer_bound = (provider, created)
    return created


# --- connection pools ------------------------------------------------------------------------------

_pools: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
# Each pool is a metric series of its own; more than this many at once is a leak in the application.
_MAX_POOLS = 64


def register_pool(pool: Any, name: str | None = None) -> None:
    """Report a ``psycopg_pool`` pool's connections as ``db.client.connection.count`` / ``.max``.

    The pool is held weakly: a closed and dropped pool simply stops reporting.
    """
    signal = sc.SignalValues.METRICS
    try:
        if not callable(getattr(pool, "get_stats", None)):
            arguments.report(signal, "register_pool pool", pool, "not a pool with get_stats(); not reported")
            return
        pool_name = arguments.optional_text(name, signal, "register_pool name")
        if not pool_name:
            own = getattr(pool, "name", None)
            pool_name = own if type(own) is str and own else f"pool-{id(pool):x}"
        if pool_name not in _pools and len(_pools) >= _MAX_POOLS:
            arguments.report(
                signal, "register_pool pool", pool, f"{_MAX_POOLS} pools already reported; not reported"
            )
            return
        _pools[pool_name] = pool
        instruments()  # make sure the observable instruments exist on the current provider
    except Exception as exc:
        selflog.warn_once_a_minute("register-pool", "b2b_otel: cannot register pool: %r", exc)


def pool_stats() -> dict[str, dict[str, int]]:
    """``{pool name: {"used", "idle", "max"}}`` for every registered pool; never raises."""
    result: dict[str, dict[str, int]] = {}
    for name, pool in list(_pools.items()):
        try:
            stats = pool.get_stats()
            size = int(stats.get("pool_size", 0))
            available = int(stats.get("pool_available", 0))
            result[name] = {
                sc.StateValues.USED: max(0, size - available),
                sc.StateValues.IDLE: available,
                "max": int(getattr(pool, "max_size", size) or size),
            }
        except Exception as exc:  # a closed pool, or a pool of another library
            selflog.warn_once_a_minute("pool-read", "b2b_otel: cannot read pool %s: %r", name, exc)
    return result


def _observe_pool_counts(options: CallbackOptions) -> Iterable[Observation]:
    for name, stats in pool_stats().items():
        for state in sc.STATE_VALUES:
            yield Observation(stats[state], {sc.DB_CLIENT_CONNECTION_POOL_NAME: name, sc.STATE: state})


def _observe_pool_max(options: CallbackOptions) -> Iterable[Observation]:
    for name, stats in pool_stats().items():
        yield Observation(stats["max"], {sc.DB_CLIENT_CONNECTION_POOL_NAME: name})

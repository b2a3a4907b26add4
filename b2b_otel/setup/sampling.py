"""The trace sampler: the user's choice (``OTEL_TRACES_SAMPLER``), wrapped so that the rules see every span.

The rules must see every finished span whatever the trace sampler chose; exporters only see the
sampled ones. A span the wrapped sampler drops is made RECORD_ONLY: recorded (so span processors
get it) but not sampled (so batch processors do not export it). Alert marker spans are sampled by
their own tracer (see ``b2b_otel._internal.sdk_private.always_sampled_tracer``), not by a name test
here: an application span that happens to be called ``alert ...`` is sampled like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from .settings import Settings

# OTEL_TRACES_SAMPLER's values and the sampler each names, given OTEL_TRACES_SAMPLER_ARG's ratio.
_SAMPLERS: dict[str, Callable[[float], Sampler]] = {
    "always_on": lambda _ratio: ALWAYS_ON,
    "always_off": lambda _ratio: ALWAYS_OFF,
    "traceidratio": TraceIdRatioBased,
    "parentbased_always_on": lambda _ratio: ParentBased(ALWAYS_ON),
    "parentbased_always_off": lambda _ratio: ParentBased(ALWAYS_OFF),
    "parentbased_traceidratio": lambda ratio: ParentBased(TraceIdRatioBased(ratio)),
}


def build_sampler(settings: Settings) -> Sampler:
    """The trace sampler of OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG."""
    ratio = 1.0 if settings.traces_sampler_arg is None else settings.traces_sampler_arg
    return _SAMPLERS.get(settings.traces_sampler, _SAMPLERS["parentbased_always_on"])(ratio)


class RecordAllSampler(Sampler):
    """Wraps ``inner``: DROP becomes RECORD_ONLY, so that span processors see every span."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is Decision.DROP:
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordAll{{{self.inner.get_description()}}}"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

"""A sampler wrapper that records every span, keeping the user's decision for export.

The rules must see every finished span whatever the trace sampler chose; exporters only see the
sampled ones. A span the wrapped sampler drops is made RECORD_ONLY: recorded (so span processors
get it) but not sampled (so batch processors do not export it). Alert marker spans are always
sampled, so an alert shows in the trace backend even when its trace was not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

ALERT_PREFIX = "alert "


class RecordAllSampler(Sampler):
    """Wraps ``inner``: DROP becomes RECORD_ONLY; ``alert *`` spans are always sampled."""

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
        if name.startswith(ALERT_PREFIX):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
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

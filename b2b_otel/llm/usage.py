"""What LLM calls cost, and the sums of the calls made inside each agent and workflow span.

The GenAI instrumentations end a ``chat {model}`` span with ``gen_ai.usage.input_tokens`` /
``output_tokens``. :class:`LLMCallProcessor` reads them when that span ends, prices the call with the
:class:`~b2b_otel.llm.prices.PriceTable`, records ``b2b.llm.cost`` (or counts the call in
``b2b.llm.calls.unpriced``) and adds tokens and cost to every agent and workflow span the call was
made in, at any depth.

How the call finds its agents and workflows: each agent and workflow span opens a :class:`Sums` and
puts it, after those of its enclosing agents and workflows, into the OpenTelemetry context it runs in
(:func:`with_sums`), so the chain reaches the LLM call across tasks and threads wherever the context
does. The call's span takes the chain from its parent context when it starts; the call ends before
its ancestors do, and each ancestor writes its sums onto its own span just before it ends
(:func:`write_sums`). Hot path: one context value per agent/workflow span; one ``kind`` check per
other span, one dict entry per LLM call.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, cast

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind

from .. import semconv as sc
from .._internal import selflog
from .._internal.sdk_private import add_to_ended_span
from .._version import __version__
from .prices import PriceTable

_SUMS_KEY = otel_context.create_key("b2b_otel.llm.sums")
INFERENCE_OPERATIONS = frozenset(
    {sc.LLM_OPERATION_CHAT, sc.LLM_OPERATION_TEXT_COMPLETION, sc.LLM_OPERATION_GENERATE_CONTENT}
)
# The GenAI conventions name an inference span "{gen_ai.operation.name} {gen_ai.request.model}": the
# name is the cheap first test on the hot path (reading a span's attributes costs about a microsecond).
_SPAN_NAME_PREFIXES = tuple(f"{operation} " for operation in sorted(INFERENCE_OPERATIONS))
# The GenAI conventions' value for a provider (or other enum value) the instrumentation did not know.
_UNKNOWN = "_OTHER"
# LLM calls started and not yet ended; more than this many at once is a leak (spans never ended).
MAX_OPEN_CALLS = 10_000

# One lock for every Sums: additions happen once per LLM call (milliseconds to seconds apart).
_lock = threading.Lock()


class Sums:
    """Tokens and cost of the LLM calls made inside one agent or workflow ``span``."""

    __slots__ = ("calls", "cost", "input_tokens", "output_tokens", "priced", "span")

    def __init__(self, span: Any = None) -> None:
        self.span = span
        self.calls = 0
        self.priced = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0

    def add(self, input_tokens: int, output_tokens: int, cost: float | None) -> None:
        with _lock:
            self.calls += 1
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            if cost is not None:
                self.priced += 1
                self.cost += cost


def with_sums(ctx: Context, sums: Sums) -> Context:
    """``ctx`` with ``sums`` appended to the chain of open agent and workflow sums."""
    chain = cast("tuple[Sums, ...]", ctx.get(_SUMS_KEY) or ())
    return otel_context.set_value(_SUMS_KEY, (*chain, sums), ctx)


def write_sums(span: Any, sums: Sums) -> None:
    """Put the sums on the agent or workflow ``span`` before it ends; nothing when no LLM call was made.

    ``b2b.llm.cost`` is the sum over the priced calls; it is left out when none was priced.
    """
    if not sums.calls:  # the common case, without the lock: the calls inside ended before this span
        return
    with _lock:
        attributes: dict[str, Any] = {
            sc.GEN_AI_USAGE_INPUT_TOKENS: sums.input_tokens,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: sums.output_tokens,
        }
        if sums.priced:
            attributes[sc.B2B_LLM_COST] = sums.cost
    try:
        span.set_attributes(attributes)
    except Exception as exc:
        selflog.warn_once_a_minute("llm-sums", "b2b_otel: could not set the LLM sums: %r", exc)


# The workflow facts every span inside a workflow carries (api/spans.py sets them on our helpers' spans).
_WORKFLOW_ATTRIBUTES = (sc.GEN_AI_WORKFLOW_NAME, sc.B2B_BUSINESS_CASE_ID)


def _inherit_workflow(call: Span, enclosing: Any) -> None:
    """The LLM call gets the workflow name and business case of the agent or workflow it is made in."""
    attributes = getattr(enclosing, "attributes", None)
    if not attributes:
        return
    for key in _WORKFLOW_ATTRIBUTES:
        value = attributes.get(key)
        if value is not None and call.attributes is not None and key not in call.attributes:
            call.set_attribute(key, value)


def _tokens(value: object) -> int:
    return value if type(value) is int and value > 0 else 0


def is_llm_call(kind: SpanKind | None, attributes: Mapping[str, Any] | None) -> bool:
    """A GenAI inference call's span: CLIENT with an inference ``gen_ai.operation.name``."""
    return (
        kind is SpanKind.CLIENT
        and attributes is not None
        and attributes.get(sc.GEN_AI_OPERATION_NAME) in INFERENCE_OPERATIONS
    )


class LLMCallProcessor(SpanProcessor):
    """Prices each LLM call span when it ends and adds it to the sums of its agents and workflows.

    :meth:`bind` gives it the meter provider of the ``b2b.llm.cost`` counter (USD), the
    ``b2b.llm.token.usage`` counter (tokens per tenant) and the ``b2b.llm.calls.unpriced`` counter
    (b2b_otel's scope). With ``annotate`` (set by the composition root once this processor runs
    before every other processor of its provider), a priced call's own span gets ``b2b.llm.cost`` too.
    Never raises.
    """

    def __init__(self, prices: PriceTable, max_open: int = MAX_OPEN_CALLS) -> None:
        self.prices = prices
        self.max_open = max_open
        self.overflowed = 0  # calls not tracked: more than max_open were open at once
        self.unpriced = 0  # calls with usage that the price table had no price for
        self.annotate = False
        self._open: dict[int, tuple[tuple[Sums, ...], str | None]] = {}
        self._cost: Any = None
        self._tokens: Any = None
        self._unpriced: Any = None

    def bind(self, meter_provider: Any) -> None:
        """Record the cost metrics into ``meter_provider`` (once the composition root has it)."""
        meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
        cost = sc.METRICS[sc.METRIC_B2B_LLM_COST]
        unpriced = sc.METRICS[sc.METRIC_B2B_LLM_CALLS_UNPRICED]
        tokens = sc.METRICS[sc.METRIC_B2B_LLM_TOKEN_USAGE]
        self._cost = meter.create_counter(cost.name, unit=cost.unit, description=cost.description)
        self._tokens = meter.create_counter(tokens.name, unit=tokens.unit, description=tokens.description)
        self._unpriced = meter.create_counter(
            unpriced.name, unit=unpriced.unit, description=unpriced.description
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # The cheap tests first: most spans stop here.
        if span.kind is not SpanKind.CLIENT or not span.name.startswith(_SPAN_NAME_PREFIXES):
            return
        try:
            if not is_llm_call(span.kind, span.attributes):
                return
            ctx = parent_context if parent_context is not None else otel_context.get_current()
            if trace.get_current_span(ctx).get_span_context().span_id in self._open:
                # The same call traced twice (the anthropic SDK's own span under the instrumentation's):
                # counted once, at the outermost span.
                return
            chain = cast("tuple[Sums, ...]", ctx.get(_SUMS_KEY) or ())
            if chain:
                _inherit_workflow(span, chain[-1].span)
            tenant = baggage.get_baggage(sc.B2B_TENANT_ID, ctx)
            if len(self._open) >= self.max_open:
                self.overflowed += 1
                selflog.warn_once_a_minute(
                    "llm-open-calls",
                    "b2b_otel: %d LLM calls open at once; this one is not priced or summed",
                    self.max_open,
                )
                return
            span_context = span.get_span_context()
            self._open[span_context.span_id] = (chain, tenant if isinstance(tenant, str) else None)
        except Exception as exc:
            selflog.warn_once_a_minute("llm-start", "b2b_otel: LLM call not tracked: %r", exc)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._open or span.kind is not SpanKind.CLIENT:  # no call open: most spans stop here
            return
        span_context = span.get_span_context()
        if span_context is None:
            return
        opened = self._open.pop(span_context.span_id, None)
        if opened is None:
            return
        try:
            self._account(span, *opened)
        except Exception as exc:
            selflog.warn_once_a_minute("llm-cost", "b2b_otel: could not price an LLM call: %r", exc)

    def _account(self, span: ReadableSpan, chain: tuple[Sums, ...], tenant: str | None) -> None:
        attributes = span.attributes or {}
        input_tokens = _tokens(attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS))
        output_tokens = _tokens(attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS))
        if not input_tokens and not output_tokens:
            return  # no usage reported (a failed call): nothing was spent that we can see
        provider = attributes.get(sc.GEN_AI_PROVIDER_NAME)
        requested = attributes.get(sc.GEN_AI_REQUEST_MODEL)
        answered = attributes.get(sc.GEN_AI_RESPONSE_MODEL)
        cached = _tokens(attributes.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS))
        cost: float | None = None
        for model in (answered, requested):
            if isinstance(model, str) and cost is None:
                cost = self.prices.cost(model, input_tokens, output_tokens, cached)
        point: dict[str, Any] = {sc.GEN_AI_PROVIDER_NAME: str(provider) if provider else _UNKNOWN}
        model_name = requested if isinstance(requested, str) else answered
        if isinstance(model_name, str):
            point[sc.GEN_AI_REQUEST_MODEL] = model_name
        tenant_point = point if tenant is None else {**point, sc.B2B_TENANT_ID: tenant}
        if self._tokens is not None:
            for token_type, count in (
                (sc.GenAiTokenTypeValues.INPUT, input_tokens),
                (sc.GenAiTokenTypeValues.OUTPUT, output_tokens),
            ):
                if count:
                    self._tokens.add(count, {**tenant_point, sc.GEN_AI_TOKEN_TYPE: token_type})
        if cost is None:
            self.unpriced += 1
            if self._unpriced is not None:
                self._unpriced.add(1, point)
            selflog.warn_once_a_minute(
                "llm-unpriced",
                "b2b_otel: no price for LLM model %r (%s); add it to B2B_OTEL_LLM_PRICES_FILE",
                answered or requested,
                self.prices.source,
            )
        else:
            if self._cost is not None:
                self._cost.add(cost, tenant_point)
            if self.annotate:
                # Before any other processor or exporter has seen the ended span (see annotate).
                add_to_ended_span(span, {sc.B2B_LLM_COST: cost})
        for sums in chain:
            sums.add(input_tokens, output_tokens, cost)

    def shutdown(self) -> None:
        self._open.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

"""The providers' rate-limit quotas, read from their response headers: ``b2b.llm.quota.utilization``.

OpenAI answers every call with ``x-ratelimit-limit-tokens`` / ``x-ratelimit-remaining-tokens`` and
the ``-requests`` pair; Anthropic with ``anthropic-ratelimit-{requests,tokens,input-tokens,
output-tokens}-{limit,remaining}``. Utilisation is ``1 - remaining / limit`` (0..1) per quota kind;
``tokens`` is the most used of the token limits a response names (Anthropic's input and output token
limits are token quotas too: whichever runs out first stops the calls).

Where the headers are read: both clients send every request, retries and streams included, through
``Client.send`` / ``AsyncClient.send`` of httpx (or of httpx2, which newer releases use). Those
methods are wrapped (the public client API, whatever transport or ``http_client`` the application
gave the client); the provider is the
``gen_ai.provider.name`` of the LLM call span current while the request is sent, so a response is
only read inside an instrumented LLM call, and any base URL (a proxy, a gateway, a test server)
works. A 429 carries the headers too (remaining 0: utilisation 1).
"""

from __future__ import annotations

import functools
import importlib
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage, trace

from .. import semconv as sc
from .._internal import selflog
from .._version import __version__
from .usage import is_llm_call

# (limit header, remaining header) pairs of each quota kind.
HEADERS: dict[str, tuple[tuple[str, str], ...]] = {
    sc.B2bLlmQuotaKindValues.TOKENS: (
        (sc.HEADER_OPENAI_LIMIT_TOKENS, sc.HEADER_OPENAI_REMAINING_TOKENS),
        (sc.HEADER_ANTHROPIC_TOKENS_LIMIT, sc.HEADER_ANTHROPIC_TOKENS_REMAINING),
        (sc.HEADER_ANTHROPIC_INPUT_TOKENS_LIMIT, sc.HEADER_ANTHROPIC_INPUT_TOKENS_REMAINING),
        (sc.HEADER_ANTHROPIC_OUTPUT_TOKENS_LIMIT, sc.HEADER_ANTHROPIC_OUTPUT_TOKENS_REMAINING),
    ),
    sc.B2bLlmQuotaKindValues.REQUESTS: (
        (sc.HEADER_OPENAI_LIMIT_REQUESTS, sc.HEADER_OPENAI_REMAINING_REQUESTS),
        (sc.HEADER_ANTHROPIC_REQUESTS_LIMIT, sc.HEADER_ANTHROPIC_REQUESTS_REMAINING),
    ),
}


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def utilisation(headers: Mapping[str, str]) -> dict[str, float]:
    """``{kind: used share 0..1}`` for each quota kind the headers describe (none: empty).

    >>> utilisation({"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "150"})
    {'tokens': 0.85}
    """
    result: dict[str, float] = {}
    for kind, pairs in HEADERS.items():
        for limit_name, remaining_name in pairs:
            limit = _number(headers.get(limit_name))
            remaining = _number(headers.get(remaining_name))
            if not limit or remaining is None:  # no header, or a limit of 0 (nothing to share)
                continue
            used = min(1.0, max(0.0, 1.0 - remaining / limit))
            result[kind] = max(used, result.get(kind, 0.0))
    return result


class QuotaReader:
    """Records the utilisation a response's headers give, and hands it to the rules (``report``)."""

    def __init__(self, meter_provider: Any, report: Callable[[str, float, dict[str, Any]], None]) -> None:
        info = sc.METRICS[sc.METRIC_B2B_LLM_QUOTA_UTILIZATION]
        meter = meter_provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__)
        self._gauge = meter.create_gauge(info.name, unit=info.unit, description=info.description)
        self._report = report

    def observe(self, provider: str, headers: Mapping[str, str], tenant: str | None = None) -> None:
        """Record the reading; the rules also get ``tenant``, the tenant of the call that was answered.

        The gauge is the provider's (one quota per provider and kind, whoever spent it): the tenant is
        not on its series. The rules see it beside the reading, so the record of ``external.llm.quota``
        names the tenant whose call took the quota over the threshold (it groups by provider and kind).
        """
        for kind, value in utilisation(headers).items():
            point = {sc.GEN_AI_PROVIDER_NAME: provider, sc.B2B_LLM_QUOTA_KIND: kind}
            self._gauge.set(value, point)
            self._report(
                sc.METRIC_B2B_LLM_QUOTA_UTILIZATION,
                value,
                point if tenant is None else {**point, sc.B2B_TENANT_ID: tenant},
            )


_lock = threading.Lock()
_reader: QuotaReader | None = None
_originals: dict[str, tuple[Any, Any]] = {}


def _seen(response: Any) -> None:
    """Read a response's rate-limit headers when it answers an LLM call; never raises."""
    reader = _reader
    if reader is None:
        return
    try:
        span = trace.get_current_span()
        attributes = getattr(span, "attributes", None)
        if not is_llm_call(getattr(span, "kind", None), attributes):
            return
        assert attributes is not None
        provider = attributes.get(sc.GEN_AI_PROVIDER_NAME)
        if isinstance(provider, str) and provider:
            tenant = baggage.get_baggage(sc.B2B_TENANT_ID)  # b2b_otel.context() of the call
            reader.observe(provider, response.headers, tenant if isinstance(tenant, str) else None)
    except Exception as exc:
        selflog.warn_once_a_minute("llm-quota", "b2b_otel: could not read rate-limit headers: %r", exc)


def _sync_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = original(self, request, *args, **kwargs)
        _seen(response)
        return response

    return send


def _async_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = await original(self, request, *args, **kwargs)
        _seen(response)
        return response

    return send


# The HTTP clients the LLM SDKs send with: httpx, and its successor httpx2 that newer openai and
# anthropic releases use; both have the same ``Client.send`` / ``AsyncClient.send``.
HTTP_CLIENT_MODULES = ("httpx", "httpx2")


def install(reader: QuotaReader) -> None:
    """Read rate-limit headers with ``reader`` from now on (the clients are wrapped once; a second call
    swaps the reader)."""
    global _reader
    with _lock:
        _reader = reader
        if _originals:
            return
        for module_name in HTTP_CLIENT_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for cls_name, wrap in (("Client", _sync_send), ("AsyncClient", _async_send)):
                cls = getattr(module, cls_name, None)
                original = getattr(cls, "send", None)
                if cls is None or original is None:
                    continue
                _originals[f"{module_name}.{cls_name}"] = (cls, original)
                cls.send = wrap(original)


def uninstall() -> None:
    """Put the clients' ``send`` methods back and stop reading."""
    global _reader
    with _lock:
        _reader = None
        for cls, original in _originals.values():
            cls.send = original
        _originals.clear()

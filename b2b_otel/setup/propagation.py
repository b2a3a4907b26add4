"""How the OTel context travels to other services (``OTEL_PROPAGATORS``); into threads: ``threads.py``.

Which headers carry the trace context and baggage (``b2b_otel.context()``'s tenant, user and
session) to other services, and whether those three are taken from an incoming request
(``B2B_OTEL_TRUST_INCOMING_CONTEXT``).

Propagators are found as OpenTelemetry finds them, by name in the ``opentelemetry_propagator``
entry-point group: ``tracecontext`` and ``baggage`` come with ``opentelemetry-api``; ``b3`` and
``b3multi`` with ``opentelemetry-propagator-b3``; ``jaeger`` with ``opentelemetry-propagator-jaeger``.
``none`` propagates nothing. Every name is loaded while the settings are validated, so that
installing them afterwards cannot fail half-way.

Names are matched exactly, as ``opentelemetry.propagate`` matches them: that module reads
``OTEL_PROPAGATORS`` itself when it is first imported (by the httpx instrumentation, for one) and
raises on a name it cannot find, so nothing here imports it before the names are known to be good.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from .. import semconv as sc
from .._internal import selflog

ENTRY_POINT_GROUP = "opentelemetry_propagator"
DEFAULT = ("tracecontext", "baggage")
NONE = "none"
# The propagators SPEC section 2 names, and the distribution that provides each.
KNOWN: dict[str, str] = {
    "tracecontext": "opentelemetry-api",
    "baggage": "opentelemetry-api",
    "b3": "opentelemetry-propagator-b3",
    "b3multi": "opentelemetry-propagator-b3",
    "jaeger": "opentelemetry-propagator-jaeger",
}


def _installed() -> tuple[EntryPoint, ...]:
    """The installed propagators' entry points, read once per import path: each read scans every
    installed distribution's metadata (tens of milliseconds at start-up, several reads per instrument())."""
    return _installed_on(tuple(sys.path))


@functools.lru_cache(maxsize=4)
def _installed_on(path: tuple[str, ...]) -> tuple[EntryPoint, ...]:  # path: the cache key
    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def _entry_point(name: str) -> EntryPoint | None:
    return next((ep for ep in _installed() if ep.name == name), None)


def _api_propagator(name: str) -> TextMapPropagator | None:
    """The W3C propagators the OpenTelemetry API itself registers, without reading every installed
    distribution's metadata for them (the default list costs no entry-point scan at start-up)."""
    if name == "tracecontext":
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        return TraceContextTextMapPropagator()
    if name == "baggage":
        from opentelemetry.baggage.propagation import W3CBaggagePropagator

        return W3CBaggagePropagator()
    return None


def available() -> tuple[str, ...]:
    """The names accepted here: every installed propagator, and ``none``."""
    names = {ep.name for ep in _installed()}
    return (*sorted(names), NONE)


def accepted() -> str:
    """What ``OTEL_PROPAGATORS`` accepts on this installation, for error messages and the docs."""
    return f"comma list of {', '.join(n for n in available() if n != NONE)}; or none"


def build(names: Sequence[str]) -> TextMapPropagator:
    """The composite propagator of ``names``; ``ValueError`` says which name is unknown or not installed.

    >>> type(build(["tracecontext", "baggage"])).__name__
    'CompositePropagator'
    """
    if not names:
        raise ValueError("empty list")
    if NONE in names:
        if len(names) > 1:
            raise ValueError("'none' cannot be combined with other propagators")
        return CompositePropagator([])
    propagators: list[TextMapPropagator] = []
    for name in names:
        builtin = _api_propagator(name)
        if builtin is not None:
            propagators.append(builtin)
            continue
        entry = _entry_point(name)
        if entry is None:
            if name in KNOWN:
                raise ValueError(
                    f"propagator {name!r} needs the package {KNOWN[name]}, which is not installed"
                )
            raise ValueError(f"unknown propagator {name!r}")
        try:
            propagator = entry.load()()
        except Exception as exc:
            raise ValueError(f"propagator {name!r} could not be loaded ({type(exc).__name__})") from None
        if not isinstance(propagator, TextMapPropagator):
            raise ValueError(f"propagator {name!r} is not a TextMapPropagator")
        propagators.append(propagator)
    return CompositePropagator(propagators)


# The baggage entries of b2b_otel.context(): who the work is for.
CONTEXT_KEYS = (sc.B2B_TENANT_ID, sc.USER_ID, sc.SESSION_ID)


class UntrustedContextFilter(TextMapPropagator):
    """Extracts as ``inner`` does, minus the tenant, user and session an incoming request claimed.

    For a service whose callers are not trusted to say which tenant they are (a public edge): a
    client-controlled ``baggage: b2b.tenant.id=...`` header would otherwise put its claim on every
    span, log record, cost metric and outgoing request of that request. Other baggage entries and
    the trace context pass. Injecting is unchanged, so ``b2b_otel.context()`` values still travel on.
    Each refusal is said once a minute in b2b_otel's own log (never the value: it is the caller's).
    """

    def __init__(self, inner: TextMapPropagator) -> None:
        self.inner = inner

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        extracted = self.inner.extract(carrier, context=context, getter=getter)
        try:
            refused = [
                key
                for key in CONTEXT_KEYS
                if baggage.get_baggage(key, extracted) is not None
                and baggage.get_baggage(key, extracted) != baggage.get_baggage(key, context)
            ]
            for key in refused:
                extracted = baggage.remove_baggage(key, extracted)
                previous = baggage.get_baggage(key, context)
                if previous is not None:  # what this process had set stays
                    extracted = baggage.set_baggage(key, previous, extracted)
            if refused:
                selflog.warn_once_a_minute(
                    "untrusted-context",
                    "b2b_otel: ignored %s from an incoming request's baggage "
                    "(B2B_OTEL_TRUST_INCOMING_CONTEXT=false; said at most once a minute)",
                    ", ".join(refused),
                )
        except Exception:
            pass
        return extracted

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        self.inner.inject(carrier, context=context, setter=setter)

    @property
    def fields(self) -> set[str]:
        return self.inner.fields


def install(names: Sequence[str], trust_incoming_context: bool = True) -> None:
    """Make ``names`` the global propagator (already validated by ``resolve()``).

    With ``trust_incoming_context=False`` the tenant, user and session of incoming baggage are
    dropped on extract (:class:`UntrustedContextFilter`).
    """
    from opentelemetry import propagate

    propagator = build(names)
    propagate.set_global_textmap(propagator if trust_incoming_context else UntrustedContextFilter(propagator))


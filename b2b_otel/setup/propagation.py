"""``OTEL_PROPAGATORS``: which headers carry the trace context and baggage to other services.

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

from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator

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


def _entry_point(name: str) -> EntryPoint | None:
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    return next(iter(found), None)


def available() -> tuple[str, ...]:
    """The names accepted here: every installed propagator, and ``none``."""
    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
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


def install(names: Sequence[str]) -> None:
    """Make ``names`` the global propagator (already validated by ``resolve()``)."""
    from opentelemetry import propagate

    propagate.set_global_textmap(build(names))

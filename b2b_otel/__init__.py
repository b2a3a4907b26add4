"""b2b-otel: OpenTelemetry for agentic business applications.

Call :func:`instrument` once at start-up::

    import b2b_otel

    telemetry = b2b_otel.instrument(service_name="b2bvalue")
    ...
    telemetry.shutdown()  # also done at exit
"""

from __future__ import annotations

from typing_extensions import Unpack

# First, before the SDK is imported: one of its import-time warnings quotes OTEL_RESOURCE_ATTRIBUTES.
from .scrub import logfilter as _logfilter  # noqa: F401

# isort: split
from . import security
from ._internal.errors import AuditError, ConfigError
from ._version import __version__
from .api.context import context
from .api.metrics import register_pool
from .api.spans import (
    agent,
    agent_span,
    memory,
    set_queue_depth,
    tool,
    workflow,
    workflow_span,
    workflow_step,
)
from .audit_trail.record import audit
from .setup.options import InstrumentOptions
from .setup.telemetry import Telemetry

__all__ = [
    "AuditError",
    "ConfigError",
    "InstrumentOptions",
    "Telemetry",
    "__version__",
    "agent",
    "agent_span",
    "audit",
    "context",
    "instrument",
    "memory",
    "register_pool",
    "security",
    "set_queue_depth",
    "shutdown",
    "tool",
    "workflow",
    "workflow_span",
    "workflow_step",
]


def instrument(**overrides: Unpack[InstrumentOptions]) -> Telemetry:
    """Set up traces, metrics and logs for this process and return the handle.

    Keyword overrides win over environment variables, which win over defaults; every setting and
    its keyword is listed in ``docs/configuration.md`` (e.g. ``service_name``, ``otlp_protocol``,
    ``traces_exporter``) and typed by :class:`InstrumentOptions`, so a type checker flags a misspelt
    keyword; at run time an unknown keyword raises ``ConfigError`` naming it. A second call
    returns the same handle and changes nothing. Providers the application already installed are
    kept: b2b_otel adds its processors and readers to them.

    Raises:
        ConfigError: listing every invalid variable (secrets masked); nothing is installed then.

    Example::

        telemetry = b2b_otel.instrument(service_name="b2bvalue", otlp_protocol="grpc")
    """
    from .setup.install import instrument as _instrument

    return _instrument(**overrides)


def shutdown(timeout_s: float | None = None) -> bool:
    """Flush and stop the installed telemetry within ``timeout_s`` (default ``B2B_OTEL_SHUTDOWN_TIMEOUT``).

    Returns False when the timeout ran out; never raises.
    """
    from .setup.install import shutdown as _shutdown

    return _shutdown(timeout_s)

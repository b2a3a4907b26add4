"""Resetting OpenTelemetry's set-once global providers between in-process tests."""

from __future__ import annotations

from opentelemetry import _logs, metrics, trace
from opentelemetry.util._once import Once

from b2b_otel.setup import install as _telemetry


def reset_otel_globals() -> None:
    """Shut b2b_otel down and put the global providers back to their unset (proxy) state."""
    _telemetry.shutdown(timeout_s=5)
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    metrics._internal._METER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    metrics._internal._METER_PROVIDER = None  # type: ignore[attr-defined]
    _logs._internal._LOGGER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    _logs._internal._LOGGER_PROVIDER = None  # type: ignore[attr-defined]

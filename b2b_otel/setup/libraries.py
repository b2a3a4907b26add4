"""The contrib instrumentations b2b_otel installs: psycopg, httpx and the logging bridge.

Each is a contrib ``BaseInstrumentor``; they are singletons that ignore a second ``instrument()``
and restore the originals on ``uninstrument()``, so installing is harmless to repeat.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .._internal import selflog

# The stable database and HTTP semantic conventions (db.query.text, http.request.method, ...).
# The contrib instrumentations read this once, at the first instrumentor, so it is set first.
SEMCONV_OPT_IN_VAR = "OTEL_SEMCONV_STABILITY_OPT_IN"
SEMCONV_OPT_IN_VALUE = "database,http"


def opt_in_stable_semconv() -> None:
    """Select the stable db/http conventions unless the user chose something already."""
    if not os.environ.get(SEMCONV_OPT_IN_VAR, "").strip():
        os.environ[SEMCONV_OPT_IN_VAR] = SEMCONV_OPT_IN_VALUE


def _psycopg() -> Any:
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    return PsycopgInstrumentor()


def _httpx() -> Any:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    return HTTPXClientInstrumentor()


def _logging() -> Any:
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    return LoggingInstrumentor()


FACTORIES: dict[str, Callable[[], Any]] = {"psycopg": _psycopg, "httpx": _httpx, "logging": _logging}


def install(names: tuple[str, ...], tracer_provider: Any, meter_provider: Any) -> list[str]:
    """Instrument each named library; returns the names actually installed by this call."""
    installed: list[str] = []
    for name in names:
        instrumentor = FACTORIES[name]()
        if instrumentor.is_instrumented_by_opentelemetry:
            continue
        kwargs: dict[str, Any] = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
        if name == "logging":
            # Log records become OTel logs (with trace and span ids) through the global logger
            # provider; the application's own log format is left alone.
            kwargs = {"tracer_provider": tracer_provider}
        try:
            instrumentor.instrument(**kwargs)
        except Exception as exc:
            selflog.warn_once_a_minute(
                f"instrument-{name}", "b2b_otel: could not instrument %s: %r", name, exc
            )
            continue
        installed.append(name)
    return installed


def uninstall(names: list[str]) -> None:
    """Undo :func:`install` for the given names, restoring the original library functions."""
    for name in names:
        try:
            instrumentor = FACTORIES[name]()
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        except Exception as exc:
            selflog.warn_once_a_minute(
                f"uninstrument-{name}", "b2b_otel: could not uninstrument %s: %r", name, exc
            )

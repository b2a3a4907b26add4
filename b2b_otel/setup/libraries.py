"""The contrib instrumentations b2b_otel installs: psycopg, httpx and the logging bridge.

Each is a contrib ``BaseInstrumentor``; they are singletons that ignore a second ``instrument()``
and restore the originals on ``uninstrument()``, so installing is harmless to repeat.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from .._internal import selflog

# The stable database and HTTP semantic conventions (db.query.text, http.request.method, ...).
# The contrib instrumentations read this once, at the first instrumentor, so it is set first.
SEMCONV_OPT_IN_VAR = "OTEL_SEMCONV_STABILITY_OPT_IN"
SEMCONV_OPT_IN_VALUE = "database,http"


def opt_in_stable_semconv() -> str | None:
    """Select the stable db/http conventions unless the user chose something already.

    Returns the variable's value before, for :func:`restore_semconv_opt_in` when instrument() fails.
    """
    before = os.environ.get(SEMCONV_OPT_IN_VAR)
    if not (before or "").strip():
        os.environ[SEMCONV_OPT_IN_VAR] = SEMCONV_OPT_IN_VALUE
    return before


def restore_semconv_opt_in(before: str | None) -> None:
    """Put ``OTEL_SEMCONV_STABILITY_OPT_IN`` back as it was before :func:`opt_in_stable_semconv`."""
    if before is None:
        os.environ.pop(SEMCONV_OPT_IN_VAR, None)
    else:
        os.environ[SEMCONV_OPT_IN_VAR] = before


class _LastResort(logging.Handler):
    """Python's ``logging.lastResort`` kept working while the logging bridge sits on the root logger.

    Python writes a record to stderr (``logging.lastResort``) when no handler is found for it; the
    bridge's handler on the root logger counts as one, so the application's own warnings would vanish
    from stderr (even with ``OTEL_LOGS_EXPORTER=none``). This handler gives a record to
    ``logging.lastResort`` exactly when no handler but the bridge's and this one would have seen it.
    """

    def __init__(self, bridge: logging.Handler | None) -> None:
        super().__init__(logging.NOTSET)
        self._bridge = bridge

    def emit(self, record: logging.LogRecord) -> None:
        last = logging.lastResort
        if last is None or record.levelno < last.level:
            return
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(h is not self and h is not self._bridge for h in logger.handlers):
                return  # the application has a handler: it was never lastResort's record
            logger = logger.parent if logger.propagate else None
        last.handle(record)


_last_resort: _LastResort | None = None


def _add_last_resort() -> None:
    global _last_resort
    if _last_resort is None:
        from opentelemetry.instrumentation.logging import LoggingInstrumentor

        bridge = getattr(LoggingInstrumentor, "_logging_handler", None)
        _last_resort = _LastResort(bridge if isinstance(bridge, logging.Handler) else None)
        logging.getLogger().addHandler(_last_resort)


def _remove_last_resort() -> None:
    global _last_resort
    if _last_resort is not None:
        logging.getLogger().removeHandler(_last_resort)
        _last_resort = None


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
        if name == "logging":
            _add_last_resort()
    return installed


def uninstall(names: list[str]) -> None:
    """Undo :func:`install` for the given names, restoring the original library functions."""
    for name in names:
        try:
            instrumentor = FACTORIES[name]()
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
            if name == "logging":
                _remove_last_resort()
        except Exception as exc:
            selflog.warn_once_a_minute(
                f"uninstrument-{name}", "b2b_otel: could not uninstrument %s: %r", name, exc
            )

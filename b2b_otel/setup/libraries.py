"""The instrumentations b2b_otel installs: psycopg, httpx, the logging bridge, the OpenAI and Anthropic
clients (the official OpenTelemetry GenAI instrumentations) and the process metrics.

Each is an OpenTelemetry ``BaseInstrumentor``; they are singletons that ignore a second
``instrument()`` and restore the originals on ``uninstrument()``, so installing is harmless to repeat.
Each but logging is an extra of the package (``b2b-otel[psycopg]``, ...): :data:`LIBRARIES` says
which client library and which instrumentor an instrumentation needs, and what to install.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .._internal import selflog
from ..api.metrics import report_gauge
from ..llm import quota
from . import app_logging, lazy


@dataclass(frozen=True)
class Library:
    """What one instrumentation needs: the client library's module, the instrumentor's module and the
    distribution that brings it, and the b2b-otel extra that installs it (None: always installed)."""

    module: str
    instrumentor: str
    package: str
    extra: str | None

    def missing(self) -> str | None:
        """What is not installed, with what to install; None when both parts are there."""
        if not _importable(self.module):
            return f"its library is not installed (import {self.module})"
        if not _importable(self.instrumentor):
            how = f"pip install 'b2b-otel[{self.extra}]'" if self.extra else f"pip install {self.package}"
            return f"its instrumentation is not installed ({how})"
        return None


# Instrumentation name (as B2B_OTEL_INSTRUMENTATIONS writes it) -> what it needs.
LIBRARIES: dict[str, Library] = {
    "psycopg": Library(
        "psycopg", "opentelemetry.instrumentation.psycopg", "opentelemetry-instrumentation-psycopg", "psycopg"
    ),
    "httpx": Library(
        "httpx", "opentelemetry.instrumentation.httpx", "opentelemetry-instrumentation-httpx", "httpx"
    ),
    "logging": Library(
        "logging", "opentelemetry.instrumentation.logging", "opentelemetry-instrumentation-logging", None
    ),
    "openai": Library(
        "openai",
        "opentelemetry.instrumentation.genai.openai",
        "opentelemetry-instrumentation-genai-openai",
        "openai",
    ),
    "anthropic": Library(
        "anthropic",
        "opentelemetry.instrumentation.genai.anthropic",
        "opentelemetry-instrumentation-genai-anthropic",
        "anthropic",
    ),
    "system_metrics": Library(
        "psutil",
        "opentelemetry.instrumentation.system_metrics",
        "opentelemetry-instrumentation-system-metrics",
        "system-metrics",
    ),
}
# The LLM client instrumentations: their spans are priced and summed, their responses' rate-limit
# headers read, and their message content governed by B2B_OTEL_CAPTURE_CONTENT.
LLM_CLIENTS = frozenset({"openai", "anthropic"})
# Instrumented when the application imports their library (setup/lazy.py), so that instrument()
# imports none of them itself; logging is imported already, and the process metrics start at once.
LAZY = frozenset({"psycopg", "httpx", "openai", "anthropic"})


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available() -> tuple[str, ...]:
    """The instrumentations whose library and instrumentor are both installed (what ``auto`` means)."""
    return tuple(name for name, library in LIBRARIES.items() if library.missing() is None)

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
        # The application's basicConfig()/dictConfig() after instrument() still work (app_logging.py).
        app_logging.install([h for h in (_last_resort._bridge, _last_resort) if h is not None])


def _remove_last_resort() -> None:
    global _last_resort
    if _last_resort is not None:
        logging.getLogger().removeHandler(_last_resort)
        _last_resort = None
        app_logging.uninstall()


def _psycopg() -> Any:
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    return PsycopgInstrumentor()


def _httpx() -> Any:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    return HTTPXClientInstrumentor()


def _logging() -> Any:
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    return LoggingInstrumentor()


def _openai() -> Any:
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    return OpenAIInstrumentor()


def _anthropic() -> Any:
    from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor

    return AnthropicInstrumentor()


# The instrumentation's own variable for leaving metrics out (fnmatch patterns, comma-separated).
SYSTEM_METRICS_EXCLUDED_VAR = "OTEL_PYTHON_SYSTEM_METRICS_EXCLUDED_METRICS"
# The process metrics only: host metrics (system.*) belong to the host's exporter (node exporter or
# the collector's hostmetrics receiver), once per host rather than once per process; process.runtime.*
# are the deprecated duplicates of process.*.
SYSTEM_METRICS_LEFT_OUT = ("system.*", "process.runtime.*")


def _system_metrics() -> Any:
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    # The instrumentor reads its exclusions once, when constructed: ours are added to the user's.
    own = os.environ.get(SYSTEM_METRICS_EXCLUDED_VAR, "")
    patterns = ",".join(p for p in (own.strip(), *SYSTEM_METRICS_LEFT_OUT) if p)
    with _environment({SYSTEM_METRICS_EXCLUDED_VAR: patterns}):
        return SystemMetricsInstrumentor()


FACTORIES: dict[str, Callable[[], Any]] = {
    "psycopg": _psycopg,
    "httpx": _httpx,
    "logging": _logging,
    "openai": _openai,
    "anthropic": _anthropic,
    "system_metrics": _system_metrics,
}

# The GenAI instrumentations read these when instrumented (their TelemetryHandler keeps the mode).
GENAI_CAPTURE_VAR = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
GENAI_HOOK_VAR = "OTEL_INSTRUMENTATION_GENAI_COMPLETION_HOOK"
_CAPTURING_MODES = ("SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT")
_NO_CONTENT = "NO_CONTENT"


def genai_environment(capture_content: bool) -> dict[str, str | None]:
    """The GenAI variables while the LLM instrumentations are set up, from ``B2B_OTEL_CAPTURE_CONTENT``.

    Off: no content, whatever ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says (b2b-otel's
    one switch; a contrary value is reported once). On: content on the spans (``SPAN_ONLY``), unless
    that variable names another capturing mode, which is kept. The completion hook (upload of prompts
    to a file store) is never loaded: it would take the messages past the scrubber.
    """
    asked = (os.environ.get(GENAI_CAPTURE_VAR) or "").strip().upper()
    if capture_content:
        mode = asked if asked in _CAPTURING_MODES else _CAPTURING_MODES[0]
    else:
        mode = _NO_CONTENT
        if asked and asked != _NO_CONTENT:
            selflog.warn_once_a_minute(
                "genai-capture",
                "b2b_otel: %s=%s is ignored: message content is recorded only with "
                "B2B_OTEL_CAPTURE_CONTENT=true",
                GENAI_CAPTURE_VAR,
                asked,
            )
    if (os.environ.get(GENAI_HOOK_VAR) or "").strip():
        selflog.warn_once_a_minute(
            "genai-hook",
            "b2b_otel: %s is ignored: a completion hook would send message content past the scrubber",
            GENAI_HOOK_VAR,
        )
    return {GENAI_CAPTURE_VAR: mode, GENAI_HOOK_VAR: None}


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or with None remove) environment variables for the block, then put them back."""
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _on_import(name: str, *args: Any) -> lazy.Callback:
    """What installs ``name`` once the application imported its library: :func:`install` again."""

    def callback(_module: object) -> None:
        install((name,), *args)

    return callback


def install(
    names: tuple[str, ...],
    tracer_provider: Any,
    meter_provider: Any,
    logger_provider: Any = None,
    capture_content: bool = False,
) -> list[str]:
    """Instrument each named library; returns the names actually installed by this call."""
    installed: list[str] = []
    for name in names:
        if name in LAZY and LIBRARIES[name].module not in sys.modules:
            later = _on_import(name, tracer_provider, meter_provider, logger_provider, capture_content)
            lazy.when_imported(LIBRARIES[name].module, later)
            installed.append(name)
            continue
        try:
            instrumentor = FACTORIES[name]()
        except Exception as exc:
            selflog.warn_once_a_minute(f"instrument-{name}", "b2b_otel: cannot load %s: %r", name, exc)
            continue
        if instrumentor.is_instrumented_by_opentelemetry:
            continue
        kwargs: dict[str, Any] = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
        environment: dict[str, str | None] = {}
        if name == "logging":
            # Log records become OTel logs (with trace and span ids) through the global logger
            # provider; the application's own log format is left alone.
            kwargs = {"tracer_provider": tracer_provider}
        elif name in LLM_CLIENTS:
            kwargs["logger_provider"] = logger_provider
            environment = genai_environment(capture_content)
        if _met_by_imported_versions(instrumentor):
            kwargs["skip_dep_check"] = True  # already checked, without the metadata scan
        try:
            with _environment(environment):
                instrumentor.instrument(**kwargs)
        except Exception as exc:
            selflog.warn_once_a_minute(
                f"instrument-{name}", "b2b_otel: could not instrument %s: %r", name, exc
            )
            continue
        if not instrumentor.is_instrumented_by_opentelemetry:
            # BaseInstrumentor declines (and logs) when the installed library's version is outside
            # the instrumentation's range.
            selflog.warn_once_a_minute(
                f"instrument-{name}",
                "b2b_otel: %s was not instrumented: the installed library's version is not one its "
                "instrumentation supports",
                name,
            )
            continue
        installed.append(name)
        if name == "logging":
            _add_last_resort()
        if name in LLM_CLIENTS:
            quota.install(quota.QuotaReader(meter_provider, report_gauge))
    return installed


def _met_by_imported_versions(instrumentor: Any) -> bool:
    """Whether the instrumentation's requirements are met by the ``__version__`` of modules already
    imported (psutil for the process metrics), so that ``instrument()`` can skip its own check, which
    looks each distribution up on ``sys.path`` (milliseconds of start-up). False when unsure: then the
    instrumentor checks, and declines an unsupported version, as always.
    """
    try:
        from packaging.requirements import Requirement  # the instrumentor base imported it already

        for text in instrumentor.instrumentation_dependencies():
            requirement = Requirement(text)
            version = getattr(sys.modules.get(requirement.name), "__version__", None)
            if requirement.marker is not None or not isinstance(version, str):
                return False
            if not requirement.specifier.contains(version, prereleases=True):
                return False
        return True
    except Exception:
        return False


def uninstall(names: list[str]) -> None:
    """Undo :func:`install` for the given names, restoring the original library functions."""
    for name in names:
        if name in LAZY and lazy.cancel(LIBRARIES[name].module):
            continue  # its library was never imported: nothing was patched
        try:
            instrumentor = FACTORIES[name]()
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
            if name == "logging":
                _remove_last_resort()
            if name in LLM_CLIENTS:
                quota.uninstall()
        except Exception as exc:
            selflog.warn_once_a_minute(
                f"uninstrument-{name}", "b2b_otel: could not uninstrument %s: %r", name, exc
            )

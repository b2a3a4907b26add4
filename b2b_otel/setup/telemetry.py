"""The handle ``instrument()`` returns: flush and shut down within a bound, and report health."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from .. import semconv as sc
from .._internal import selflog
from .._version import __version__
from ..api.arguments import safe_repr
from ..api.metrics import instruments, set_gauge_listener
from ..export.health import SignalHealth
from . import libraries
from .settings import SIGNALS, Settings

MAX_TIMEOUT_S = 86_400.0
"""The longest bound a flush or shutdown accepts (longer ones are cut to it)."""

if TYPE_CHECKING:  # `import b2b_otel` stays cheap: the processor layer loads in instrument()
    from ..audit_trail.record import AuditRecorder
    from ..derive.processor import DerivationProcessor
    from ..rules.schema import RuleSet
    from ..scrub import Scrubber
    from ..sinks.alertmanager import AlertmanagerSink
    from ..sinks.files import LocalFiles


class Telemetry:
    """The handle ``instrument()`` returns: flush, shut down, and report health."""

    def __init__(self, settings: Settings, resource: Resource | None) -> None:
        self.settings: Settings = settings
        self.resource: Resource | None = resource
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.logger_provider: LoggerProvider | None = None
        self.health_by_signal: dict[str, SignalHealth] = {s: SignalHealth(s) for s in SIGNALS}
        self.instrumented: list[str] = []
        self._span_processors: list[SpanProcessor] = []
        self._log_processors: list[LogRecordProcessor] = []
        self._metric_readers: list[MetricReader] = []
        # Which providers b2b_otel created (and so shuts down) versus found and only added to.
        self._owns: dict[str, bool] = {s: False for s in SIGNALS}
        self._installed = False
        # The processor layer (set by install._build_derivation).
        self.rules: RuleSet | None = None
        self.scrubber: Scrubber | None = None
        self.files: LocalFiles | None = None
        self.alertmanager: AlertmanagerSink | None = None
        self.audit: AuditRecorder | None = None
        self.derivation: DerivationProcessor | None = None
        self._shutdown_done = False
        self._lock = threading.Lock()
        # Run first by shutdown(), e.g. putting back the signal handlers instrument() replaced.
        self._on_shutdown: list[Callable[[], None]] = []

    @property
    def disabled(self) -> bool:
        """True when OTEL_SDK_DISABLED made this a no-op handle."""
        return self.settings.sdk_disabled

    # --- self-metrics

    def _count_drop(self, signal: str, reason: str, count: int) -> None:
        """Add to ``b2b.telemetry.dropped{signal, reason}`` (once installed)."""
        if self._installed:
            instruments().dropped.add(count, {sc.SIGNAL: signal, sc.REASON: reason})

    # --- lifecycle

    def force_flush(self, timeout_s: float | None = None) -> bool:
        """Judge and export everything buffered; False when ``timeout_s`` ran out first. Never raises.

        ``timeout_s`` defaults to ``B2B_OTEL_SHUTDOWN_TIMEOUT``; a value that is not a finite number of
        seconds >= 0 is replaced by that default (and said once in b2b_otel's own log).
        """
        timeout = self._timeout(timeout_s, "force_flush")
        if self.disabled:
            return True
        return self._ordered(self._flush_steps(), timeout, "force_flush", count_unfinished=False)

    def shutdown(self, timeout_s: float | None = None) -> bool:
        """Flush and stop every exporter within ``timeout_s``, even when the backend is dead. Never raises.

        ``timeout_s`` as for :meth:`force_flush`. What is still queued when the bound runs out is
        counted in ``b2b.telemetry.dropped{reason=shutdown}`` and in ``health()``.
        """
        timeout = self._timeout(timeout_s, "shutdown")
        with self._lock:
            if self._shutdown_done:
                return True
            self._shutdown_done = True
        for hook in self._on_shutdown:
            try:
                hook()
            except Exception as exc:
                selflog.warn_once_a_minute("shutdown-hook", "b2b_otel: error during shutdown: %r", exc)
        if self.disabled:
            return True
        libraries.uninstall(self.instrumented)
        self.instrumented = []
        set_gauge_listener(None)
        return self._ordered(self._shutdown_steps(), timeout, "shutdown", count_unfinished=True)

    def _timeout(self, value: object, what: str) -> float:
        """``value`` as a bound in seconds: None, and anything not finite and >= 0, mean the default."""
        default = float(self.settings.shutdown_timeout)
        if value is None:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                seconds = float(value)
            except OverflowError:  # an int beyond any float
                seconds = math.inf
            if math.isfinite(seconds) and seconds >= 0:
                # Past a day a bound means "forever" to nobody, and threading's waits overflow far beyond.
                return min(seconds, MAX_TIMEOUT_S)
        selflog.warn_once_a_minute(
            f"{what}-timeout-argument",
            "b2b_otel: %s(timeout_s=%s) is not a finite number of seconds >= 0; "
            "using B2B_OTEL_SHUTDOWN_TIMEOUT (%gs)",
            what,
            safe_repr(value)[:40],
            default,
        )
        return default

    def _flush_steps(self) -> list[tuple[str, Callable[[float], object]]]:
        derivation = self.derivation
        spans, logs = self._span_processors, self._log_processors
        steps: list[tuple[str, Callable[[float], object]]] = []
        if derivation is not None:
            steps.append(("judge", lambda t: derivation.judge_queued(t)))
        steps.append(("export spans", lambda t: _each(spans, "force_flush", t, skip=derivation)))
        # Log records are scrubbed on export too: their findings are judged with the spans' findings.
        steps.append(("export logs", lambda t: _each(logs, "force_flush", t)))
        if derivation is not None:
            steps.append(("judge findings", lambda t: derivation.judge_queued(t)))
            steps.append(("export markers", lambda t: _each(spans, "force_flush", t, skip=derivation)))
        steps.append(("export metrics", lambda t: _each(self._metric_readers, "force_flush", t)))
        if derivation is not None:  # the sinks (files, Alertmanager): after the exports, not before them
            steps.append(("flush sinks", lambda t: derivation.force_flush(_millis(t))))
        steps.append(("export derived logs", lambda t: _each(logs, "force_flush", t)))
        return steps

    def _shutdown_steps(self) -> list[tuple[str, Callable[[float], object]]]:
        """Judge, export spans (findings made), judge findings, export markers, stop judging, metrics, logs.

        Each step hands on what it produced to the next: the last export's findings still become
        ``security.sensitive_data`` records, their markers and log records are still exported, and the
        ``b2b.alerts`` and ``b2b.telemetry.dropped`` counts of all that reach the metric export.
        """
        derivation = self.derivation
        # Judge .. export markers, as a flush does; the sinks are closed (bounded) by the processor.
        steps = self._flush_steps()[:5]
        steps.append(("stop spans", lambda t: _each(self._span_processors, "shutdown", t, skip=derivation)))
        if derivation is not None:
            steps.append(("stop derivation", lambda t: derivation.shutdown()))
        steps.append(("stop metrics", lambda t: self._stop_metrics(t)))
        steps.append(("stop logs", lambda t: self._stop_logs(t)))
        # Providers b2b_otel created also hold the application's processors, if it added any.
        steps.append(("trace provider", lambda t: self._stop_trace_provider()))
        return steps

    def _stop_trace_provider(self) -> None:
        if self._owns[sc.SignalValues.TRACES] and self.tracer_provider is not None:
            self.tracer_provider.shutdown()

    def _stop_metrics(self, timeout_s: float) -> None:
        if self._owns[sc.SignalValues.METRICS] and self.meter_provider is not None:
            self.meter_provider.shutdown(timeout_millis=_millis(timeout_s))
        else:
            _each(self._metric_readers, "shutdown", timeout_s)

    def _stop_logs(self, timeout_s: float) -> None:
        if self._owns[sc.SignalValues.LOGS] and self.logger_provider is not None:
            self.logger_provider.shutdown()
        else:
            _each(self._log_processors, "shutdown", timeout_s)

    def _ordered(
        self,
        steps: list[tuple[str, Callable[[float], object]]],
        timeout_s: float,
        what: str,
        count_unfinished: bool,
    ) -> bool:
        """Run ``steps`` in order in one worker thread; wait at most ``timeout_s`` for all of them.

        Each step is given the time left. When the bound runs out, what is still queued is counted
        as dropped (reason ``shutdown``) and the caller goes on; the worker may still finish later.
        """
        deadline = time.monotonic() + timeout_s
        progress: list[str] = []
        failures: list[tuple[str, BaseException]] = []

        def run() -> None:
            for name, step in steps:
                progress.append(name)
                try:
                    step(max(0.0, deadline - time.monotonic()))
                except Exception as exc:
                    failures.append((name, exc))
            progress.append("")

        thread = threading.Thread(target=run, name=f"b2b-otel-{what}", daemon=True)
        thread.start()
        thread.join(max(0.0, timeout_s))
        if thread.is_alive():
            step_name = progress[-1] if progress else "start"
            if count_unfinished:
                dropped = self._count_unfinished()
                selflog.warn_once_a_minute(
                    f"{what}-timeout",
                    "b2b_otel: %s did not finish within %gs (at: %s); %d queued item(s) counted as dropped",
                    what,
                    timeout_s,
                    step_name,
                    dropped,
                )
            else:
                selflog.warn_once_a_minute(
                    f"{what}-timeout",
                    "b2b_otel: %s did not finish within %gs (at: %s)",
                    what,
                    timeout_s,
                    step_name,
                )
            return False
        for name, exc in failures:
            selflog.warn_once_a_minute(
                f"{what}-error-{name}", "b2b_otel: %s (%s) failed: %r", what, name, exc
            )
        return not failures

    def _count_unfinished(self) -> int:
        """Count what is still queued as dropped for reason ``shutdown``; returns the total."""
        total = 0
        for health in self.health_by_signal.values():
            size = health.queued()
            if size:
                health.drop(sc.ReasonValues.SHUTDOWN, size, self._count_drop)
                total += size
        if self.derivation is not None:
            pending = self.derivation.pending()
            if pending:
                self._count_drop(sc.SignalValues.RULES, sc.ReasonValues.SHUTDOWN, pending)
                total += pending
        return total

    # --- health

    def health(self) -> dict[str, Any]:
        """A cheap snapshot for the application's health endpoint."""
        log_path = self.settings.log_path
        log_dir: dict[str, Any] = {"path": None if log_path is None else str(log_path), "writable": None}
        if log_path is not None:
            log_dir["writable"] = _writable_dir(log_path)
        return self._health_snapshot(log_dir, self._audit_health())

    def _audit_health(self) -> dict[str, Any]:
        """State ``not_configured``, ``writable``, ``not_writable`` or ``last_write_failed``."""
        if self.audit is None:
            return {
                "path": None,
                "state": "not_configured",
                "writable": False,
                "error": None,
                "mode": None,
                "checkpoints": None,
            }
        status = self.audit.status()
        if status["state"] == "writable":
            audit_file = Path(status["path"])
            if audit_file.exists():
                ok = audit_file.is_file() and os.access(audit_file, os.W_OK)
            else:
                ok = _writable_dir(audit_file.parent)
            if not ok:
                status["state"] = "not_writable"
        status["writable"] = status["state"] == "writable"
        return status

    def _health_snapshot(self, log_dir: dict[str, Any], audit: dict[str, Any]) -> dict[str, Any]:
        return {
            "distro": {"name": sc.DISTRO_NAME, "version": __version__},
            "enabled": not self.disabled,
            "shut_down": self._shutdown_done,
            "service": None if self.resource is None else self.resource.attributes.get(SERVICE_NAME),
            "signals": {s: h.snapshot() for s, h in self.health_by_signal.items()},
            "instrumentations": list(self.instrumented),
            "rules": {
                "loaded": 0 if self.rules is None else len(self.rules.enabled()),
                "source": self.settings.rules_file or "built-in",
                "firings": 0 if self.derivation is None else self.derivation.firings,
                "tracked_groups": 0 if self.derivation is None else self.derivation.engine.tracked_groups(),
                # processed, queue size/capacity, unjudged by reason, back-pressure, evicted groups
                **({} if self.derivation is None else self.derivation.health()),
            },
            "llm": self._llm_health(),
            "log_dir": log_dir,
            "audit_file": audit,
        }

    def _llm_health(self) -> dict[str, int]:
        """LLM calls the price table had no price for, and calls not tracked at all (too many open)."""
        from ..llm.usage import LLMCallProcessor

        for processor in self._span_processors:
            if isinstance(processor, LLMCallProcessor):
                return {"unpriced_calls": processor.unpriced, "untracked_calls": processor.overflowed}
        return {"unpriced_calls": 0, "untracked_calls": 0}


def _writable_dir(path: Path) -> bool:
    return bool(os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)) or (
        not os.path.exists(path) and os.access(os.path.dirname(os.path.abspath(path)) or ".", os.W_OK)
    )


def _millis(seconds: float) -> int:
    return max(0, int(seconds * 1000))


def _each(items: Sequence[Any], method: str, timeout_s: float, skip: object = None) -> None:
    """Call ``method`` on every item but ``skip`` within ``timeout_s`` in all; the SDK's own signatures."""
    deadline = time.monotonic() + timeout_s
    for item in items:
        if item is skip:
            continue
        left = max(0.0, deadline - time.monotonic())
        if method == "force_flush":
            item.force_flush(_millis(left))
        elif isinstance(item, MetricReader):
            item.shutdown(timeout_millis=_millis(left))
        else:
            item.shutdown()

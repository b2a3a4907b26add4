"""The handle ``instrument()`` returns: flush and shut down within a bound, and report health."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
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
from ..api.metrics import instruments, set_gauge_listener
from ..audit_trail.chain import DEFAULT_LOG_NAME
from ..export.health import SignalHealth
from . import libraries
from .settings import SIGNALS, Settings

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

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Export everything buffered; returns False when ``timeout_s`` ran out first. Never raises."""
        return _bounded(self._flush_all, timeout_s, "force_flush")

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Flush and stop every exporter within ``timeout_s``, even when the backend is dead. Never raises."""
        with self._lock:
            if self._shutdown_done:
                return True
            self._shutdown_done = True
        libraries.uninstall(self.instrumented)
        self.instrumented = []
        set_gauge_listener(None)
        return _bounded(self._shutdown_all, timeout_s, "shutdown")

    def _flush_all(self) -> None:
        for processor in self._span_processors:
            processor.force_flush()
        for reader in self._metric_readers:
            reader.force_flush()
        for log_processor in self._log_processors:
            log_processor.force_flush()

    def _shutdown_all(self) -> None:
        # Traces first: the judging processor's last firings add to b2b.alerts and emit log records,
        # which the metric and log shutdowns after it still export.
        steps: list[Callable[[], Any]] = []
        if self._owns[sc.SignalValues.TRACES] and self.tracer_provider is not None:
            steps.append(self.tracer_provider.shutdown)
        else:
            steps += [p.shutdown for p in self._span_processors]
        if self._owns[sc.SignalValues.METRICS] and self.meter_provider is not None:
            steps.append(self.meter_provider.shutdown)
        else:
            steps += [r.shutdown for r in self._metric_readers]
        if self._owns[sc.SignalValues.LOGS] and self.logger_provider is not None:
            steps.append(self.logger_provider.shutdown)
        else:
            steps += [p.shutdown for p in self._log_processors]
        for step in steps:
            try:
                step()
            except Exception as exc:
                selflog.warn_once_a_minute("shutdown-step", "b2b_otel: error during shutdown: %r", exc)

    # --- health

    def health(self) -> dict[str, Any]:
        """A cheap snapshot for the application's health endpoint."""
        log_path = self.settings.log_path
        log_dir: dict[str, Any] = {"path": None if log_path is None else str(log_path), "writable": None}
        audit: dict[str, Any] = {"path": None, "writable": None}
        if log_path is not None:
            log_dir["writable"] = _writable_dir(log_path)
            audit_file = log_path / DEFAULT_LOG_NAME
            audit["path"] = str(audit_file)
            audit["writable"] = (
                os.access(audit_file, os.W_OK) if audit_file.exists() else bool(log_dir["writable"])
            )
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
            },
            "log_dir": log_dir,
            "audit_file": audit,
        }


def _writable_dir(path: Path) -> bool:
    return bool(os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)) or (
        not os.path.exists(path) and os.access(os.path.dirname(os.path.abspath(path)) or ".", os.W_OK)
    )


def _bounded(work: Callable[[], None], timeout_s: float, what: str) -> bool:
    """Run ``work`` in a daemon thread and wait at most ``timeout_s`` for it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"b2b-otel-{what}", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout_s))
    if thread.is_alive():
        selflog.warn_once_a_minute(
            f"{what}-timeout",
            "b2b_otel: %s did not finish within %.1fs; unsent telemetry is dropped",
            what,
            timeout_s,
        )
        return False
    if errors:
        selflog.warn_once_a_minute(f"{what}-error", "b2b_otel: %s failed: %r", what, errors[0])
        return False
    return True

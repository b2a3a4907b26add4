"""``instrument()``: build the providers, processors and exporters from settings, then install them.

Order matters for "nothing half-installed": everything is validated and built first; only when all
of it exists are the global providers set and the libraries instrumented.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from .. import semconv as sc
from .._version import __version__
from ..pipeline.sampling import RecordAllSampler
from . import exporters as exp
from . import instrumentations, selflog
from .errors import ConfigError, Problem
from .instruments import histogram_views, instruments, set_gauge_listener
from .resource import build_resource
from .settings import SIGNALS, Settings, resolve


def build_sampler(settings: Settings) -> Sampler:
    """The trace sampler of OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG."""
    ratio = 1.0 if settings.traces_sampler_arg is None else settings.traces_sampler_arg
    name = settings.traces_sampler
    if name == "always_on":
        return ALWAYS_ON
    if name == "always_off":
        return ALWAYS_OFF
    if name == "traceidratio":
        return TraceIdRatioBased(ratio)
    if name == "parentbased_always_off":
        return ParentBased(ALWAYS_OFF)
    if name == "parentbased_traceidratio":
        return ParentBased(TraceIdRatioBased(ratio))
    return ParentBased(ALWAYS_ON)


class _QueueWatch:
    """Counts what a batch processor drops because its bounded queue is full."""

    def __init__(self, processor: Any, health: exp.SignalHealth, on_drop: exp.DropCounter) -> None:
        batch = getattr(processor, "_batch_processor", None)
        self._queue = getattr(batch, "_queue", None)
        self._capacity = getattr(batch, "_max_queue_size", None)
        self._health = health
        self._on_drop = on_drop
        if self._queue is not None:
            queue = self._queue
            health.queue_size = lambda: len(queue)
            health.queue_capacity = self._capacity

    def before_enqueue(self) -> None:
        queue = self._queue
        if queue is not None and len(queue) == self._capacity:
            self._health.drop("queue_full", 1, self._on_drop)


class _WatchedBatchSpanProcessor(BatchSpanProcessor):
    def __init__(self, exporter: Any, watch_factory: Callable[[Any], _QueueWatch], **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._watch = watch_factory(self)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            # Unsampled (record-only) spans are never queued, so they cannot be dropped either.
            if span.context is not None and span.context.trace_flags.sampled:
                self._watch.before_enqueue()
            super().on_end(span)
        except Exception:
            pass


class _WatchedBatchLogRecordProcessor(BatchLogRecordProcessor):
    def __init__(self, exporter: Any, watch_factory: Callable[[Any], _QueueWatch], **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._watch = watch_factory(self)

    def on_emit(self, log_record: Any) -> None:
        try:
            self._watch.before_enqueue()
            super().on_emit(log_record)
        except Exception:
            pass


class Telemetry:
    """The handle ``instrument()`` returns: flush, shut down, and report health."""

    def __init__(self, settings: Settings, resource: Resource | None) -> None:
        self.settings = settings
        self.resource = resource
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.logger_provider: LoggerProvider | None = None
        self.health_by_signal = {s: exp.SignalHealth(s) for s in SIGNALS}
        self.instrumented: list[str] = []
        self._span_processors: list[SpanProcessor] = []
        self._log_processors: list[LogRecordProcessor] = []
        self._metric_readers: list[MetricReader] = []
        # Which providers b2b_otel created (and so shuts down) versus found and only added to.
        self._owns: dict[str, bool] = {s: False for s in SIGNALS}
        self._installed = False
        # The processor layer (set by _build_derivation).
        self.rules: Any = None
        self.scrubber: Any = None
        self.sinks: Any = None
        self.derivation: Any = None
        self._shutdown_done = False
        self._lock = threading.Lock()

    @property
    def disabled(self) -> bool:
        """True when OTEL_SDK_DISABLED made this a no-op handle."""
        return self.settings.sdk_disabled

    # --- self-metrics

    def _count_drop(self, signal: str, reason: str, count: int) -> None:
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
        instrumentations.uninstall(self.instrumented)
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
        if self._owns["traces"] and self.tracer_provider is not None:
            steps.append(self.tracer_provider.shutdown)
        else:
            steps += [p.shutdown for p in self._span_processors]
        if self._owns["metrics"] and self.meter_provider is not None:
            steps.append(self.meter_provider.shutdown)
        else:
            steps += [r.shutdown for r in self._metric_readers]
        if self._owns["logs"] and self.logger_provider is not None:
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
            audit_file = log_path / "audit.log"
            audit["path"] = str(audit_file)
            audit["writable"] = (
                os.access(audit_file, os.W_OK) if audit_file.exists() else bool(log_dir["writable"])
            )
        return {
            "distro": {"name": "b2b-otel", "version": __version__},
            "enabled": not self.disabled,
            "shut_down": self._shutdown_done,
            "service": None if self.resource is None else self.resource.attributes.get("service.name"),
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


def _writable_dir(path: Any) -> bool:
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


# --- instrument() ---------------------------------------------------------------------------------------

_current: Telemetry | None = None
_install_lock = threading.RLock()
_atexit_registered = False


def current() -> Telemetry | None:
    """The installed handle, if ``instrument()`` ran."""
    return _current


def instrument(**overrides: Any) -> Telemetry:
    """Install b2b_otel: see ``b2b_otel.instrument``."""
    global _current
    with _install_lock:
        if _current is not None:
            return _current
        settings = resolve(overrides)
        if settings.sdk_disabled:
            _current = Telemetry(settings, None)
            return _current
        instrumentations.opt_in_stable_semconv()
        try:
            telemetry = _build(settings)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                [Problem("instrument()", "-", f"could not build the exporters: {exc!r}")]
            ) from exc
        _install(telemetry)
        _current = telemetry
        _register_atexit()
        return telemetry


def _build(settings: Settings) -> Telemetry:
    """Create every provider piece without touching global state."""
    resource = build_resource(settings)
    telemetry = Telemetry(settings, resource)
    built: list[Any] = []
    _build_derivation(telemetry)
    # The judging processor comes first, so a flush judges everything before the exporters flush.
    telemetry._span_processors.append(telemetry.derivation)
    try:
        _build_traces(telemetry, built)
        _build_metrics(telemetry, built)
        _build_logs(telemetry, built)
    except BaseException:
        built.insert(0, telemetry.derivation)
        for piece in reversed(built):
            try:
                piece.shutdown()
            except Exception:
                pass
        raise
    return telemetry


def _build_derivation(telemetry: Telemetry) -> None:
    """The processor layer: rules, scrubbing and sinks (needs the rules file validated first)."""
    from ..pipeline.processor import DerivationProcessor
    from ..pipeline.scrub import Scrubber
    from ..rules.loader import load_rules

    settings = telemetry.settings
    telemetry.rules = load_rules(settings.rules_file, os.environ)  # ConfigError on a bad file
    telemetry.scrubber = Scrubber(settings.redact_allow_keys, enabled=settings.redact)
    telemetry.sinks = _Sinks(settings, telemetry)
    telemetry.derivation = DerivationProcessor(
        telemetry.rules,
        telemetry.scrubber,
        telemetry.sinks,
        max_groups=settings.rules_max_groups,
        gauge_interval_s=max(1.0, settings.metric_export_interval),
        on_drop=lambda reason, count: telemetry._count_drop("rules", reason, count),
    )


class _Sinks:
    """Where derived records go: local files, the audit trail, Alertmanager (each optional)."""

    def __init__(self, settings: Settings, telemetry: Telemetry) -> None:
        self.files: Any = None
        self.audit: Any = None
        self.alertmanager: Any = None
        path = settings.log_path
        if path is not None:
            from ..sinks.audit import AuditLog
            from ..sinks.files import LocalFiles

            self.files = LocalFiles(path, settings.log_format)
            key = settings.audit_key.encode("utf-8") if settings.audit_key else None
            self.audit = AuditLog(path / "audit.log", key=key)
        if settings.alertmanager_url:
            from ..sinks.alertmanager import AlertmanagerSink

            service = telemetry.resource.attributes.get("service.name") if telemetry.resource else None
            self.alertmanager = AlertmanagerSink(
                settings.alertmanager_url,
                service=str(service or "unknown_service"),
                trace_link=settings.trace_link,
                on_drop=lambda count: telemetry._count_drop("alerts", "export_failed", count),
            )


def _scrubbed(telemetry: Telemetry, exporter: Any, kind: str) -> Any:
    from ..pipeline.export import ScrubbingLogExporter, ScrubbingSpanExporter

    if telemetry.scrubber is None or not telemetry.settings.redact:
        return exporter
    on_finding = telemetry.derivation.finding if telemetry.derivation is not None else None
    if kind == "traces":
        return ScrubbingSpanExporter(exporter, telemetry.scrubber, on_finding)
    return ScrubbingLogExporter(exporter, telemetry.scrubber, on_finding)


def _build_traces(telemetry: Telemetry, built: list[Any]) -> None:
    from ..pipeline.export import FanOutSpanExporter

    settings = telemetry.settings
    health = telemetry.health_by_signal["traces"]
    pairs = exp.span_exporters(settings)
    health.exporters = tuple(name for name, _ in pairs)
    if not pairs:
        return
    observed = [exp.ObservedSpanExporter(inner, name, health, telemetry._count_drop) for name, inner in pairs]
    # One batch processor: scrub once (one finding per secret), then fan out to every exporter.
    exporter = _scrubbed(telemetry, FanOutSpanExporter(observed), "traces")
    processor = _WatchedBatchSpanProcessor(
        exporter,
        lambda p: _QueueWatch(p, health, telemetry._count_drop),
        max_queue_size=settings.bsp_max_queue_size,
        max_export_batch_size=settings.bsp_max_export_batch_size,
        schedule_delay_millis=settings.bsp_schedule_delay * 1000,
        export_timeout_millis=settings.bsp_export_timeout * 1000,
    )
    built.append(processor)
    telemetry._span_processors.append(processor)


def _build_metrics(telemetry: Telemetry, built: list[Any]) -> None:
    settings = telemetry.settings
    health = telemetry.health_by_signal["metrics"]
    pairs = exp.metric_exporters(settings)
    health.exporters = tuple(name for name, _ in pairs)
    for name, inner in pairs:
        observed = exp.ObservedMetricExporter(inner, name, health, telemetry._count_drop)
        reader = PeriodicExportingMetricReader(
            observed,
            export_interval_millis=settings.metric_export_interval * 1000,
            export_timeout_millis=settings.metric_export_timeout * 1000,
        )
        built.append(reader)
        telemetry._metric_readers.append(reader)


def _build_logs(telemetry: Telemetry, built: list[Any]) -> None:
    from ..pipeline.export import FanOutLogExporter

    settings = telemetry.settings
    health = telemetry.health_by_signal["logs"]
    pairs = exp.log_exporters(settings)
    health.exporters = tuple(name for name, _ in pairs)
    if not pairs:
        return
    observed = [exp.ObservedLogExporter(inner, name, health, telemetry._count_drop) for name, inner in pairs]
    processor = _WatchedBatchLogRecordProcessor(
        _scrubbed(telemetry, FanOutLogExporter(observed), "logs"),
        lambda p: _QueueWatch(p, health, telemetry._count_drop),
        max_queue_size=settings.blrp_max_queue_size,
        max_export_batch_size=settings.blrp_max_export_batch_size,
        schedule_delay_millis=settings.blrp_schedule_delay * 1000,
        export_timeout_millis=settings.blrp_export_timeout * 1000,
    )
    built.append(processor)
    telemetry._log_processors.append(processor)


def _install(telemetry: Telemetry) -> None:
    """Attach to the application's SDK providers, or create and set ours; then instrument libraries."""
    settings = telemetry.settings
    assert telemetry.resource is not None

    existing_tp = trace.get_tracer_provider()
    if isinstance(existing_tp, TracerProvider):
        telemetry.tracer_provider = existing_tp
    else:
        telemetry.tracer_provider = TracerProvider(
            resource=telemetry.resource,
            sampler=RecordAllSampler(build_sampler(settings)),
            shutdown_on_exit=False,
        )
        telemetry._owns["traces"] = True
    for processor in telemetry._span_processors:
        telemetry.tracer_provider.add_span_processor(processor)
    telemetry.derivation.tracer_provider = telemetry.tracer_provider

    existing_mp = metrics.get_meter_provider()
    if isinstance(existing_mp, MeterProvider):
        telemetry.meter_provider = existing_mp
        for reader in telemetry._metric_readers:
            existing_mp.add_metric_reader(reader)
    else:
        telemetry.meter_provider = MeterProvider(
            resource=telemetry.resource,
            metric_readers=list(telemetry._metric_readers),
            views=histogram_views(),
            shutdown_on_exit=False,
        )
        telemetry._owns["metrics"] = True

    existing_lp = _logs.get_logger_provider()
    if isinstance(existing_lp, LoggerProvider):
        telemetry.logger_provider = existing_lp
    else:
        telemetry.logger_provider = LoggerProvider(resource=telemetry.resource, shutdown_on_exit=False)
        telemetry._owns["logs"] = True
    for log_processor in telemetry._log_processors:
        telemetry.logger_provider.add_log_record_processor(log_processor)
    telemetry.derivation.logger_provider = telemetry.logger_provider

    if telemetry._owns["traces"]:
        trace.set_tracer_provider(telemetry.tracer_provider)
    if telemetry._owns["metrics"]:
        metrics.set_meter_provider(telemetry.meter_provider)
    if telemetry._owns["logs"]:
        _logs.set_logger_provider(telemetry.logger_provider)

    telemetry._installed = True
    set_gauge_listener(telemetry.derivation.gauge)
    telemetry.derivation.start()
    telemetry.instrumented = instrumentations.install(
        settings.enabled_instrumentations(), telemetry.tracer_provider, telemetry.meter_provider
    )


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_at_exit)
        _atexit_registered = True


def _at_exit() -> None:
    telemetry = _current
    if telemetry is not None and not telemetry.disabled:
        telemetry.shutdown(telemetry.settings.shutdown_timeout)


def shutdown(timeout_s: float | None = None) -> bool:
    """Shut down the installed handle (if any) and forget it; never raises."""
    global _current
    with _install_lock:
        telemetry = _current
        _current = None
    if telemetry is None or telemetry.disabled:
        return True
    return telemetry.shutdown(telemetry.settings.shutdown_timeout if timeout_s is None else timeout_s)

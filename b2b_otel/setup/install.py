"""``instrument()``: build the providers, processors and exporters from settings, then install them.

Order matters for "nothing half-installed": everything is validated and built first; only when all
of it exists are the global providers set and the libraries instrumented.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from typing_extensions import Unpack

from .. import semconv as sc
from .._internal import sdk_private, selflog
from .._internal.errors import ConfigError, Problem
from ..api import context as context_api
from ..api.metrics import histogram_views, set_gauge_listener
from ..audit_trail import record as audit_record
from ..audit_trail.chain import DEFAULT_LOG_NAME
from ..audit_trail.record import AuditRecorder
from ..audit_trail.writer import AuditLog
from ..derive.processor import DerivationProcessor, queue_capacity
from ..derive.sink import Sink
from ..export.fanout import FanOutLogExporter, FanOutSpanExporter
from ..export.health import ObservedLogExporter, ObservedMetricExporter, ObservedSpanExporter
from ..export.scrubbing import (
    ScrubbingLogExporter,
    ScrubbingMetricExporter,
    ScrubbingSpanExporter,
    scrubbed_metrics,
)
from ..llm.prices import load_prices
from ..llm.usage import LLMCallProcessor
from ..rules.loader import load_rules
from ..scrub import Scrubber
from ..sinks.alertmanager import AlertmanagerSink
from ..sinks.files import LocalFiles
from . import exporters as exp
from . import libraries
from .batching import QueueWatch, WatchedBatchLogRecordProcessor, WatchedBatchSpanProcessor
from .options import InstrumentOptions
from .resource import build_resource
from .sampling import RecordAllSampler, build_sampler
from .settings import Settings, resolve, table
from .signals import SignalFlush
from .telemetry import Telemetry

_current: Telemetry | None = None
_install_lock = threading.RLock()
_atexit_registered = False


def current() -> Telemetry | None:
    """The installed handle, if ``instrument()`` ran."""
    return _current


def instrument(**overrides: Unpack[InstrumentOptions]) -> Telemetry:
    """Install b2b_otel: see ``b2b_otel.instrument``."""
    global _current
    with _install_lock:
        if _current is not None:
            return _current
        disabled = _disabled_settings(overrides)
        if disabled is not None:
            _current = _disabled_handle(disabled)
            return _current
        settings = resolve(overrides)
        try:
            telemetry = _build(settings)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                [Problem("instrument()", "-", f"could not build the exporters: {exc!r}")]
            ) from exc
        # Only now, with everything built: a failed instrument() leaves the environment as it was.
        semconv_before = libraries.opt_in_stable_semconv()
        try:
            _install(telemetry)
        except BaseException:
            libraries.restore_semconv_opt_in(semconv_before)
            raise
        _current = telemetry
        _register_atexit()
        _install_signal_handlers(telemetry)
        return telemetry


# OTEL_SDK_DISABLED turns telemetry off, not the audit trail: then only these are read and validated.
_AUDIT_FIELDS = ("log_dir", "audit_key", "audit_signing_key", "audit_checkpoint_interval")


def _only(fields: tuple[str, ...], overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The keyword overrides and environment variables of ``fields`` alone."""
    names = {row.var.env for row in table() if row.field in fields}
    return (
        {k: v for k, v in overrides.items() if k in fields},
        {k: v for k, v in os.environ.items() if k in names},
    )


def _disabled_settings(overrides: Mapping[str, Any]) -> Settings | None:
    """Settings of a disabled b2b_otel (the audit trail's variables validated), or None when enabled.

    An invalid ``OTEL_SDK_DISABLED`` is left to the full resolution, which reports it with the rest.
    """
    if "sdk_disabled" not in overrides and "OTEL_SDK_DISABLED" not in os.environ:
        return None  # the common case, without resolving the settings twice
    try:
        switch = resolve(*_only(("sdk_disabled",), overrides))
    except ConfigError:
        return None
    if not switch.sdk_disabled:
        return None
    audit_only = resolve(*_only(_AUDIT_FIELDS, overrides))  # ConfigError names only these variables
    return audit_only.model_copy(update={"sdk_disabled": True})


def _disabled_handle(settings: Settings) -> Telemetry:
    """A no-op handle whose ``audit()`` still writes the audit trail."""
    telemetry = Telemetry(settings, None)
    telemetry.audit = _build_audit(settings, Scrubber(settings.redact_allow_keys, enabled=settings.redact))
    if telemetry.audit is not None:
        telemetry._on_shutdown.append(telemetry.audit.close)
    audit_record.bind(telemetry.audit)
    return telemetry


def _build_audit(settings: Settings, scrubber: Scrubber) -> AuditRecorder | None:
    path = settings.log_path
    if path is None:
        return None
    key = settings.audit_key.encode("utf-8") if settings.audit_key else None
    signing_key = None
    if settings.audit_signing_key is not None:
        from ..audit_trail.signing import load_private_key

        try:
            signing_key = load_private_key(settings.audit_signing_key)
        except ValueError as exc:  # validated by resolve(); the file changed since
            raise ConfigError(
                [Problem("B2B_OTEL_AUDIT_SIGNING_KEY", repr(settings.audit_signing_key), str(exc))]
            ) from None
    log = AuditLog(
        path / DEFAULT_LOG_NAME,
        key=key,
        signing_key=signing_key,
        checkpoint_interval=settings.audit_checkpoint_interval,
    )
    return AuditRecorder(log, scrubber)


def _install_signal_handlers(telemetry: Telemetry) -> None:
    """Flush on SIGTERM/SIGINT before the application's own handling (see setup/signals.py)."""

    def flush(final: bool) -> object:
        return telemetry.shutdown() if final else telemetry.force_flush()

    handlers = SignalFlush(flush, telemetry.settings.shutdown_timeout)
    handlers.install()
    telemetry._on_shutdown.append(handlers.uninstall)


def _build(settings: Settings) -> Telemetry:
    """Create every provider piece without touching global state."""
    resource = build_resource(settings)
    telemetry = Telemetry(settings, resource)
    built: list[Any] = []
    llm_calls = LLMCallProcessor(load_prices(settings.llm_prices_file))  # ConfigError on a bad file
    derivation = _build_derivation(telemetry)
    # The judging processor comes first, so a flush judges everything before the exporters flush.
    telemetry._span_processors.append(derivation)
    telemetry._span_processors.append(llm_calls)
    try:
        _build_traces(telemetry, built)
        _build_metrics(telemetry, built)
        _build_logs(telemetry, built)
    except BaseException:
        built.insert(0, derivation)
        for piece in reversed(built):
            try:
                piece.shutdown()
            except Exception:
                pass
        raise
    return telemetry


def _build_derivation(telemetry: Telemetry) -> DerivationProcessor:
    """The processor layer: rules, scrubbing, sinks and the audit trail (the rules file validated first)."""
    settings = telemetry.settings
    telemetry.rules = load_rules(settings.rules_file, os.environ)  # ConfigError on a bad file
    scrubber = telemetry.scrubber = Scrubber(settings.redact_allow_keys, enabled=settings.redact)
    sinks: list[Sink] = []
    path = settings.log_path
    if path is not None:
        telemetry.files = LocalFiles(path, settings.log_format)
        sinks.append(telemetry.files)
        telemetry.audit = _build_audit(settings, scrubber)
    if settings.alertmanager_url:
        service = telemetry.resource.attributes.get(SERVICE_NAME) if telemetry.resource else None
        telemetry.alertmanager = AlertmanagerSink(
            settings.alertmanager_url,
            service=str(service or sc.UNKNOWN_SERVICE),
            trace_link=settings.trace_link,
            on_drop=lambda count: telemetry._count_drop(
                sc.SignalValues.ALERTS, sc.ReasonValues.EXPORT_FAILED, count
            ),
        )
        sinks.append(telemetry.alertmanager)
    telemetry.derivation = DerivationProcessor(
        telemetry.rules,
        scrubber,
        sinks,
        audit=telemetry.audit,
        max_groups=settings.rules_max_groups,
        max_queue=queue_capacity(settings.bsp_max_queue_size),
        gauge_interval_s=max(1.0, settings.metric_export_interval),
        on_drop=lambda reason, count: telemetry._count_drop(sc.SignalValues.RULES, reason, count),
    )
    return telemetry.derivation


def _scrubbed_spans(telemetry: Telemetry, exporter: SpanExporter) -> SpanExporter:
    if telemetry.scrubber is None or not telemetry.settings.redact or telemetry.derivation is None:
        return exporter
    return ScrubbingSpanExporter(exporter, telemetry.scrubber, telemetry.derivation.finding)


def _scrubbed_logs(telemetry: Telemetry, exporter: LogRecordExporter) -> LogRecordExporter:
    if telemetry.scrubber is None or not telemetry.settings.redact or telemetry.derivation is None:
        return exporter
    return ScrubbingLogExporter(exporter, telemetry.scrubber, telemetry.derivation.finding)


def _observed(telemetry: Telemetry, signal: str, pairs: list[tuple[str, Any]]) -> list[Any]:
    """Each span or log exporter of ``pairs`` observed (health, drop counts), with the disk buffer
    for OTLP when ``B2B_OTEL_EXPORT_BUFFER_DIR`` is set; the buffer's module is imported only then."""
    settings = telemetry.settings
    health = telemetry.health_by_signal[signal]
    traces = signal == sc.SignalValues.TRACES
    if settings.export_buffer_dir is None:
        observe = ObservedSpanExporter if traces else ObservedLogExporter
        return [observe(inner, name, health, telemetry._count_drop) for name, inner in pairs]
    from ..export import disk_buffer

    buffer = disk_buffer.BufferConfig.of(settings.export_buffer_dir, settings.export_buffer_max_size)
    buffered = disk_buffer.span_exporter if traces else disk_buffer.log_exporter
    return [buffered(inner, name, health, telemetry._count_drop, buffer) for name, inner in pairs]


def _build_traces(telemetry: Telemetry, built: list[Any]) -> None:
    settings = telemetry.settings
    health = telemetry.health_by_signal[sc.SignalValues.TRACES]
    pairs = exp.span_exporters(settings)
    health.exporters = tuple(name for name, _ in pairs)
    if not pairs:
        return
    # Each OTLP exporter keeps what its backend did not take on disk (B2B_OTEL_EXPORT_BUFFER_DIR),
    # after scrubbing: the bytes on disk are the scrubbed request. The wrapper records health itself.
    observed: list[SpanExporter] = _observed(telemetry, sc.SignalValues.TRACES, pairs)
    # One batch processor: scrub once (one finding per secret), then fan out to every exporter.
    exporter = _scrubbed_spans(telemetry, FanOutSpanExporter(observed))
    processor = WatchedBatchSpanProcessor(
        exporter,
        lambda p: QueueWatch(p, health, telemetry._count_drop),
        max_queue_size=settings.bsp_max_queue_size,
        max_export_batch_size=settings.bsp_max_export_batch_size,
        schedule_delay_millis=settings.bsp_schedule_delay * 1000,
        export_timeout_millis=settings.bsp_export_timeout * 1000,
    )
    built.append(processor)
    telemetry._span_processors.append(processor)


def _build_metrics(telemetry: Telemetry, built: list[Any]) -> None:
    settings = telemetry.settings
    health = telemetry.health_by_signal[sc.SignalValues.METRICS]
    pairs = exp.metric_exporters(settings)
    health.exporters = tuple(name for name, _ in pairs)
    for name, inner in pairs:
        observed = scrubbed_metrics(
            ObservedMetricExporter(inner, name, health, telemetry._count_drop),
            telemetry.scrubber,
            telemetry.derivation.finding if telemetry.derivation is not None else None,
        )
        reader = PeriodicExportingMetricReader(
            observed,
            export_interval_millis=settings.metric_export_interval * 1000,
            export_timeout_millis=settings.metric_export_timeout * 1000,
        )
        built.append(reader)
        telemetry._metric_readers.append(reader)


def _build_logs(telemetry: Telemetry, built: list[Any]) -> None:
    settings = telemetry.settings
    health = telemetry.health_by_signal[sc.SignalValues.LOGS]
    pairs = exp.log_exporters(settings)
    health.exporters = tuple(name for name, _ in pairs)
    if not pairs:
        return
    observed: list[LogRecordExporter] = _observed(telemetry, sc.SignalValues.LOGS, pairs)
    processor = WatchedBatchLogRecordProcessor(
        _scrubbed_logs(telemetry, FanOutLogExporter(observed)),
        lambda p: QueueWatch(p, health, telemetry._count_drop),
        max_queue_size=settings.blrp_max_queue_size,
        max_export_batch_size=settings.blrp_max_export_batch_size,
        schedule_delay_millis=settings.blrp_schedule_delay * 1000,
        export_timeout_millis=settings.blrp_export_timeout * 1000,
    )
    built.append(processor)
    telemetry._log_processors.append(processor)


# Keys b2b_otel always sets itself, whatever the application's resource says: the collector connector
# skips judging spans with b2b.derived=true (this process judged them), and the distro names who did.
_OWN_KEYS = (sc.B2B_DERIVED, sc.TELEMETRY_DISTRO_NAME, sc.TELEMETRY_DISTRO_VERSION)
# Never exported, from any resource: the command line can carry credentials (as in resource.py).
_NEVER_KEYS = (sc.PROCESS_COMMAND_ARGS, sc.PROCESS_COMMAND_LINE, sc.PROCESS_COMMAND)


def _one_resource(ours: Resource, app: Resource) -> Resource:
    """The one resource of every signal: the application's attributes win over b2b_otel's.

    The application's spans already go out under its identity, and its provider's resource cannot be
    changed; taking its values keeps traces, metrics and logs of one process under one service. Two
    exceptions: the SDK's default ``unknown_service...`` name loses to a configured one, and the keys
    b2b_otel owns (``b2b.derived``, the distro) are always b2b_otel's.
    """
    attributes: dict[str, Any] = dict(ours.attributes)
    for key, value in app.attributes.items():
        if key in _OWN_KEYS or key in _NEVER_KEYS:
            continue
        if key == SERVICE_NAME and str(value).startswith(sc.UNKNOWN_SERVICE) and key in attributes:
            continue
        attributes[key] = value
    return Resource(attributes, app.schema_url or ours.schema_url)


def _app_exporter_wrapper(
    telemetry: Telemetry, signal: str, resource: Resource
) -> Callable[[Any], Any] | None:
    """A function wrapping one of the application's exporters in b2b_otel's scrubbing exporter."""
    scrubber = telemetry.scrubber
    if scrubber is None or telemetry.derivation is None:
        return None
    findings = telemetry.derivation.finding
    kinds: dict[str, type[Any]] = {
        sc.SignalValues.TRACES: ScrubbingSpanExporter,
        sc.SignalValues.LOGS: ScrubbingLogExporter,
        sc.SignalValues.METRICS: ScrubbingMetricExporter,
    }
    kind = kinds[signal]

    def wrap(exporter: Any) -> Any:
        if isinstance(exporter, kind):  # instrument() again after a shutdown: wrap the original once
            exporter = exporter.inner
        # A disabled scrubber changes nothing but the resource: one resource even with B2B_OTEL_REDACT=false.
        wrapped = kind(exporter, scrubber, findings)
        wrapped.resource = resource
        return wrapped

    return wrap


def _adopt_application_providers(
    telemetry: Telemetry, providers: Mapping[str, TracerProvider | MeterProvider | LoggerProvider]
) -> None:
    """The application installed SDK providers: scrub its export paths, one resource, no double export.

    (1) each exporter of the application's processors and readers is wrapped in b2b_otel's scrubbing
    exporter (findings go to the rules as b2b_otel's own); (2) every signal carries one resource,
    the application's merged over b2b_otel's (``_one_resource``): b2b_otel's own providers are created
    with it, and the wrappers export with it; (3) where the application already exports a signal,
    b2b_otel's own exporter for it is dropped unless ``OTEL_<SIGNAL>_EXPORTER`` (or the keyword) was set
    explicitly; (4) one warning line says what was decided.
    """
    if not providers:
        return
    settings = telemetry.settings
    assert telemetry.resource is not None
    app_resource = next(
        (
            r
            for r in (sdk_private.provider_resource(providers[s]) for s in _SIGNAL_ORDER if s in providers)
            if r is not None
        ),
        None,
    )
    resource = telemetry.resource if app_resource is None else _one_resource(telemetry.resource, app_resource)
    telemetry.resource = resource
    if telemetry.alertmanager is not None:
        telemetry.alertmanager.service = str(resource.attributes.get(SERVICE_NAME) or sc.UNKNOWN_SERVICE)

    wrapped = 0
    unreachable = 0
    skipped: list[str] = []
    for signal in _SIGNAL_ORDER:
        provider = providers.get(signal)
        if provider is None:
            continue
        items = (
            sdk_private.provider_metric_readers(provider)
            if signal == sc.SignalValues.METRICS
            else sdk_private.provider_processors(provider)
        )
        wrap = _app_exporter_wrapper(telemetry, signal, resource)
        exporting = 0
        for item in items or ():
            if sdk_private.exporter_of(item) is None:
                unreachable += 1  # a processor without an exporter, or one we cannot see inside
                continue
            exporting += 1
            if wrap is not None and _replace_safely(item, wrap):
                wrapped += 1
        if items is None:
            unreachable += 1
        field = _EXPORTER_FIELD[signal]
        if exporting and field not in settings.model_fields_set and _drop_own_exporters(telemetry, signal):
            skipped.append(signal)
        elif signal != sc.SignalValues.METRICS:
            _own_exports_with(telemetry, signal, resource)

    service = resource.attributes.get(SERVICE_NAME)
    selflog.warn_once_a_minute(
        "application-providers",
        "b2b_otel: the application installed its own %s provider(s): wrapped %d of its exporter(s) with "
        "b2b_otel's scrubbing; resource merged (service.name=%r, b2b.derived=true on every signal; "
        "the application's provider keeps its own resource object, replaced on the export path); "
        "b2b_otel's own exporter skipped for %s%s%s",
        "/".join(s for s in _SIGNAL_ORDER if s in providers),
        wrapped,
        service,
        ", ".join(skipped) or "no signal",
        " (set OTEL_<SIGNAL>_EXPORTER to export there too)" if skipped else "",
        f"; {unreachable} processor(s)/reader(s) without a reachable exporter are not changed"
        if unreachable
        else "",
    )


_SIGNAL_ORDER = (sc.SignalValues.TRACES, sc.SignalValues.METRICS, sc.SignalValues.LOGS)
_EXPORTER_FIELD = {
    sc.SignalValues.TRACES: "traces_exporter",
    sc.SignalValues.METRICS: "metrics_exporter",
    sc.SignalValues.LOGS: "logs_exporter",
}


def _replace_safely(item: Any, wrap: Callable[[Any], Any]) -> bool:
    try:
        return sdk_private.replace_exporter(item, wrap)
    except Exception:  # e.g. a custom metric exporter without the SDK's preference fields
        return False


def _own_pieces(telemetry: Telemetry, signal: str) -> list[Any]:
    if signal == sc.SignalValues.TRACES:
        # The judging and the LLM call processors are not exporters: they stay with any provider.
        return [
            p
            for p in telemetry._span_processors
            if p is not telemetry.derivation and not isinstance(p, LLMCallProcessor)
        ]
    if signal == sc.SignalValues.LOGS:
        return list(telemetry._log_processors)
    return list(telemetry._metric_readers)


def _drop_own_exporters(telemetry: Telemetry, signal: str) -> bool:
    """Stop and forget b2b_otel's own exporting processor/reader of ``signal``; True when there was one."""
    pieces = _own_pieces(telemetry, signal)
    if not pieces:
        return False
    for piece in pieces:
        for collection in (telemetry._span_processors, telemetry._log_processors, telemetry._metric_readers):
            if piece in collection:
                collection.remove(piece)
        try:
            piece.shutdown()
        except Exception:
            pass
    telemetry.health_by_signal[signal].exporters = ()
    return True


def _own_exports_with(telemetry: Telemetry, signal: str, resource: Resource) -> None:
    """b2b_otel's own exporter kept beside the application's: it exports with the one resource too."""
    for piece in _own_pieces(telemetry, signal):
        exporter = sdk_private.exporter_of(piece)
        if isinstance(exporter, (ScrubbingSpanExporter, ScrubbingLogExporter)):
            exporter.resource = resource


def _install(telemetry: Telemetry) -> None:
    """Attach to the application's SDK providers, or create and set ours; then instrument libraries."""
    settings = telemetry.settings
    derivation = telemetry.derivation
    assert telemetry.resource is not None and derivation is not None

    found: dict[str, Any] = {
        sc.SignalValues.TRACES: trace.get_tracer_provider(),
        sc.SignalValues.METRICS: metrics.get_meter_provider(),
        sc.SignalValues.LOGS: _logs.get_logger_provider(),
    }
    kinds = {
        sc.SignalValues.TRACES: TracerProvider,
        sc.SignalValues.METRICS: MeterProvider,
        sc.SignalValues.LOGS: LoggerProvider,
    }
    _adopt_application_providers(telemetry, {s: p for s, p in found.items() if isinstance(p, kinds[s])})

    existing_tp = trace.get_tracer_provider()
    if isinstance(existing_tp, TracerProvider):
        telemetry.tracer_provider = existing_tp
    else:
        telemetry.tracer_provider = TracerProvider(
            resource=telemetry.resource,
            sampler=RecordAllSampler(build_sampler(settings)),
            shutdown_on_exit=False,
        )
        telemetry._owns[sc.SignalValues.TRACES] = True
    for processor in telemetry._span_processors:
        if isinstance(processor, LLMCallProcessor) and telemetry._owns[sc.SignalValues.TRACES]:
            # First of all in our own provider: it adds b2b.llm.cost to an ended call span before
            # anything reads it. An application's provider keeps its own processors first (no cost
            # on the call spans there; the cost metric and the agent/workflow sums are the same).
            sdk_private.add_first(telemetry.tracer_provider, processor)
            first = sdk_private.provider_processors(telemetry.tracer_provider)
            processor.annotate = first is not None and first[:1] == (processor,)
        else:
            telemetry.tracer_provider.add_span_processor(processor)
    derivation.tracer_provider = telemetry.tracer_provider

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
        telemetry._owns[sc.SignalValues.METRICS] = True

    existing_lp = _logs.get_logger_provider()
    if isinstance(existing_lp, LoggerProvider):
        telemetry.logger_provider = existing_lp
    else:
        telemetry.logger_provider = LoggerProvider(resource=telemetry.resource, shutdown_on_exit=False)
        telemetry._owns[sc.SignalValues.LOGS] = True
    for log_processor in telemetry._log_processors:
        telemetry.logger_provider.add_log_record_processor(log_processor)
    derivation.logger_provider = telemetry.logger_provider
    if telemetry.audit is not None:
        telemetry.audit.logger_provider = telemetry.logger_provider
        # The last signed checkpoint is written (and emitted) before the log records stop.
        telemetry._on_shutdown.append(telemetry.audit.close)
    _add_context_processors(telemetry.tracer_provider, telemetry.logger_provider)

    if telemetry._owns[sc.SignalValues.TRACES]:
        trace.set_tracer_provider(telemetry.tracer_provider)
    if telemetry._owns[sc.SignalValues.METRICS]:
        metrics.set_meter_provider(telemetry.meter_provider)
    if telemetry._owns[sc.SignalValues.LOGS]:
        _logs.set_logger_provider(telemetry.logger_provider)
    from . import threads
    from .propagation import install as install_propagators  # OTEL_PROPAGATORS, loaded by resolve()

    install_propagators(settings.propagators, settings.trust_incoming_context)
    undo_threads = threads.install()  # the context into threads and thread pools
    if undo_threads is not None:
        telemetry._on_shutdown.append(undo_threads)

    telemetry._installed = True
    audit_record.bind(telemetry.audit)
    set_gauge_listener(derivation.gauge)
    derivation.start()
    for processor in telemetry._span_processors:
        if isinstance(processor, LLMCallProcessor):
            processor.bind(telemetry.meter_provider)
    telemetry.instrumented = libraries.install(
        settings.enabled_instrumentations(),
        telemetry.tracer_provider,
        telemetry.meter_provider,
        logger_provider=telemetry.logger_provider,
        capture_content=settings.capture_content,
    )


def _add_context_processors(tracer_provider: TracerProvider, logger_provider: LoggerProvider) -> None:
    """``b2b_otel.context()``'s tenant, user and session on every span and log record.

    Also on the application's own providers; once per provider (instrument() again after a shutdown).
    The span processor works in ``on_start``, before any exporter sees the span, so it is appended;
    the log processor must run before the application's exporting log processors, so it goes first.
    """
    spans = sdk_private.provider_processors(tracer_provider) or ()
    if not any(isinstance(p, context_api.ContextSpanProcessor) for p in spans):
        tracer_provider.add_span_processor(context_api.ContextSpanProcessor())
    logs = sdk_private.provider_processors(logger_provider) or ()
    if not any(isinstance(p, context_api.ContextLogProcessor) for p in logs):
        sdk_private.add_first(logger_provider, context_api.ContextLogProcessor())


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
        if telemetry is not None and audit_record.bound() is telemetry.audit:
            audit_record.bind(None, audit_record.SHUT_DOWN)
    if telemetry is None or telemetry.disabled:
        return True
    return telemetry.shutdown(telemetry.settings.shutdown_timeout if timeout_s is None else timeout_s)

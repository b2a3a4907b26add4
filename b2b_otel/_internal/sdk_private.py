"""The one place that reads OpenTelemetry SDK internals (private names that may change between releases).

Each use says why the public API does not do; when an SDK upgrade breaks one, this is the only file to
change. Every function degrades to the public (slower or less complete) path when the internal is gone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource, ResourceDetector
from opentelemetry.sdk.util import BoundedList

from .. import semconv as sc


def finished_attributes(attributes: Any) -> Mapping[str, Any]:
    """A finished span's attributes as a plain dict: many lookups follow, and the SDK's mapping is slow.

    A finished span's BoundedAttributes no longer change, so its inner dict is read without a copy.
    """
    if not attributes:
        return {}
    inner = getattr(attributes, "_dict", None)
    return inner if isinstance(inner, dict) else dict(attributes)


def span_attributes(span: Any) -> Mapping[str, Any]:
    """A finished span's attributes as a plain dict, read without a copy (the caller must not change it).

    ``ReadableSpan.attributes`` wraps the span's BoundedAttributes in a ``MappingProxyType``: its inner
    dict cannot be reached through the proxy, and iterating the proxy runs the SDK mapping's Python
    ``__iter__`` and ``__getitem__`` for every key. The span's own ``_attributes`` field holds it.
    """
    inner = getattr(span, "_attributes", None)
    if isinstance(inner, dict):
        return inner
    return finished_attributes(inner if inner is not None else span.attributes)


def span_contents(span: Any) -> tuple[Mapping[str, Any], int, Sequence[Any], int, Sequence[Any], int]:
    """A finished span's attributes, events and links, each with its dropped count, without copies.

    The public properties copy on every read: ``events`` and ``links`` make a tuple of the span's
    BoundedList through its Python ``__iter__``, ``attributes`` wraps a MappingProxyType, and each
    ``dropped_*`` checks the type again. A finished span's lists no longer change, so their inner
    deques are read. The counts are those of the public ``dropped_*`` (0 unless bounded).
    """
    events = getattr(span, "_events", None)
    links = getattr(span, "_links", None)
    if events is None or links is None:
        return (
            span_attributes(span),
            span.dropped_attributes,
            span.events,
            span.dropped_events,
            span.links,
            span.dropped_links,
        )
    attributes = getattr(span, "_attributes", None)
    dropped_attributes = attributes.dropped if isinstance(attributes, BoundedAttributes) else 0
    events, dropped_events = _bounded_items(events)
    links, dropped_links = _bounded_items(links)
    return span_attributes(span), dropped_attributes, events, dropped_events, links, dropped_links


def _bounded_items(items: Any) -> tuple[Sequence[Any], int]:
    """A BoundedList's inner deque (the items, in order) and its dropped count; others as they are."""
    if isinstance(items, BoundedList):
        inner = getattr(items, "_dq", None)
        return (inner if inner is not None else items), items.dropped
    return items, 0


def batch_queue(processor: Any) -> tuple[Any, int | None]:
    """The bounded queue of a Batch{Span,LogRecord}Processor and its capacity, or ``(None, None)``.

    The SDK drops silently when that queue is full; reading its length is how the drop is counted.
    """
    batch = getattr(processor, "_batch_processor", None)
    return getattr(batch, "_queue", None), getattr(batch, "_max_queue_size", None)


def default_resource() -> Resource:
    """The SDK's default resource (telemetry.sdk.*), which ``Resource.create`` would also merge in."""
    try:
        from opentelemetry.sdk.resources import _DEFAULT_RESOURCE

        return _DEFAULT_RESOURCE
    except ImportError:  # pragma: no cover - kept for SDKs that rename it
        return Resource.create({})


def host_detector() -> ResourceDetector | None:
    """The SDK's host detector (``host.name``, ``host.arch``), not yet public."""
    try:
        from opentelemetry.sdk.resources import _HostResourceDetector

        return _HostResourceDetector()
    except ImportError:  # pragma: no cover - older SDKs had no host detector
        return None


def exporter_preferences(exporter: Any) -> tuple[Any, Any]:
    """A metric exporter's preferred temporality and aggregation, to build a wrapper that keeps them."""
    return exporter._preferred_temporality, exporter._preferred_aggregation


def always_sampled_tracer(provider: Any, name: str, version: str) -> Any:
    """A tracer of ``provider`` whose spans are always sampled, whatever the provider's sampler says.

    Alert marker spans must reach the trace backend even when their trace was not kept. The SDK's
    Tracer keeps its sampler in ``sampler``; a tracer of another provider is returned unchanged.
    """
    tracer = provider.get_tracer(name, version)
    if hasattr(tracer, "sampler"):
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        tracer.sampler = ALWAYS_ON
    return tracer


# (ok, retryable, error): what one send of a serialized export request came to.
SendOutcome = tuple[bool, bool, str | None]
_HTTP_RETRYABLE = frozenset({429, 502, 503, 504})
_GRPC_METHODS = {
    sc.SignalValues.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    sc.SignalValues.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    sc.SignalValues.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}


def otlp_byte_sender(exporter: Any, signal: str) -> Callable[[bytes], SendOutcome] | None:
    """A function sending one serialized OTLP export request through ``exporter``'s own connection.

    The disk buffer keeps the request bytes the exporter would send and replays them later; the public
    exporters only take SDK objects. The HTTP exporter's client (headers, TLS, compression, its
    retries within the timeout) takes bytes; for gRPC the exporter's channel is called with the bytes
    as they are (no serializer), with its metadata and timeout. None when neither internal is there:
    the caller then exports without a disk buffer.
    """
    client = getattr(exporter, "_client", None)
    if client is not None and callable(getattr(client, "export", None)) and hasattr(client, "_endpoint"):
        return lambda data: _http_send(client, data)
    if hasattr(exporter, "_channel") and hasattr(exporter, "_initialize_channel_and_stub"):
        method = _GRPC_METHODS.get(signal)
        if method is not None:
            return lambda data: _grpc_send(exporter, method, data)
    return None


def _http_send(client: Any, data: bytes) -> SendOutcome:
    result = client.export(data)
    if result.success:
        return True, False, None
    status = result.status_code
    if status is not None:
        return False, status in _HTTP_RETRYABLE, f"HTTP {status}"
    error = result.error
    return False, True, type(error).__name__ if error is not None else "no response"


def _grpc_send(exporter: Any, method: str, data: bytes) -> SendOutcome:
    import grpc  # type: ignore[import-untyped]

    channel = exporter._channel
    if channel is None:
        return False, True, "no channel"
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        call(data, metadata=exporter._headers, timeout=exporter._timeout)
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            # As the exporter does: a fresh channel, instead of the old one's reconnect backoff.
            try:
                exporter._initialize_channel_and_stub()
                channel.close()
            except Exception:
                pass
        retryable = code in getattr(exporter, "_retryable_error_codes", ()) or code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        return False, retryable, f"gRPC {code.name}" if code is not None else type(error).__name__
    return True, False, None


# The names the stock OTLP/HTTP span exporter's ``export`` uses, pinned: the fast path below does the
# same steps with another encoder, so a release that changes that method (a new step, a split batch)
# makes it fall back to the stock ``export`` instead of silently diverging from it.
_HTTP_SPAN_EXPORT_NAMES = frozenset(
    {
        "Exception", "FAILURE", "HTTP_RESPONSE_STATUS_CODE", "RequestPayloadTooLargeError", "SUCCESS",
        "SerializePartialToString", "SpanExportResult", "_client", "_is_request_too_large", "_logger",
        "_max_request_size", "_metrics", "_shutdown", "encode_spans", "error", "error_attrs", "export",
        "export_operation", "len", "status_code", "success", "warning",
    }
)  # fmt: skip


def otlp_http_span_export(
    exporter: Any, encode: Callable[[Sequence[Any]], bytes]
) -> Callable[[Sequence[Any]], Any] | None:
    """The stock OTLP/HTTP span exporter's ``export`` for ``exporter``, encoding with ``encode``.

    The SDK's exporter encodes with the stock encoder inside ``export`` and offers no way to give it
    another one. This function does what that ``export`` does, step by step, with the exporter's
    own parts: the shut-down check, its self-metrics operation (``_metrics``, which
    :func:`export_error_observer` may have replaced: it is read on every call), the request-size
    limit, and its client (``_client``: headers, TLS, compression, retries within the timeout), with
    the same FAILURE/SUCCESS results and errors. ``encode`` returns the request's bytes (what
    ``encode_spans(spans).SerializePartialToString()`` returns). None when the exporter or the stock
    method is not the shape this was written for: the caller then uses the stock ``export``.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http import _common
        from opentelemetry.exporter.otlp.proto.http import trace_exporter as stock
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

        too_large = _common._is_request_too_large
        too_large_error = _common.RequestPayloadTooLargeError
        logger = stock._logger
        code = stock.OTLPSpanExporter.export.__code__
    except (ImportError, AttributeError):
        return None
    if frozenset(code.co_names) != _HTTP_SPAN_EXPORT_NAMES or not isinstance(
        exporter, stock.OTLPSpanExporter
    ):
        return None
    client = getattr(exporter, "_client", None)
    if (
        not callable(getattr(client, "export", None))
        or not callable(getattr(getattr(exporter, "_metrics", None), "export_operation", None))
        or not isinstance(getattr(exporter, "_max_request_size", None), int)
        or not isinstance(getattr(exporter, "_shutdown", None), bool)
    ):
        return None

    def export(spans: Sequence[Any]) -> Any:
        if exporter._shutdown:
            logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with exporter._metrics.export_operation(len(spans)) as result:
            try:
                data = encode(spans)
            except Exception as error:
                logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            limit = exporter._max_request_size
            if too_large(data, limit):
                logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(data),
                    limit,
                )
                result.error = too_large_error(
                    f"Serialized span request size {len(data)} bytes exceeds max_request_size {limit} bytes."
                )
                return SpanExportResult.FAILURE
            outcome = exporter._client.export(data)
            if not outcome.success:
                result.error = outcome.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: outcome.status_code}
                    if outcome.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    return export


# The names the stock OTLP/gRPC exporters' ``_export`` and ``_initialize_channel_and_stub`` use,
# pinned: the raw stub below relies on them calling ``self._client.Export(request=self._translate_data(
# data), ...)`` with a client made by ``self._stub(self._channel)``.
_GRPC_EXPORT_NAMES = frozenset(
    {
        "Exception", "Export", "FAILURE", "ParseFromString", "RPC_RESPONSE_STATUS_CODE", "RetryInfo",
        "RpcError", "SUCCESS", "StatusCode", "UNAVAILABLE", "UNKNOWN", "_MAX_RETRYS", "_channel",
        "_client", "_count_data", "_endpoint", "_exporting", "_headers", "_initialize_channel_and_stub",
        "_metrics", "_result", "_retryable_error_codes", "_shutdown", "_shutdown_in_progress", "_timeout",
        "_translate_data", "close", "code", "debug", "details", "dict", "error", "error_attrs",
        "export_operation", "get", "logger", "name", "nanos", "random", "range", "retry_delay", "seconds",
        "str", "time", "trailing_metadata", "uniform", "wait", "warning",
    }
)  # fmt: skip
_GRPC_CHANNEL_NAMES = frozenset(
    {
        "_channel", "_channel_options", "_client", "_compression", "_credentials", "_endpoint", "_insecure",
        "_stub", "insecure_channel", "secure_channel",
    }
)  # fmt: skip


class _RawTraceServiceStub:
    """``TraceServiceStub`` whose ``Export`` takes the request as serialized bytes (no serializer)."""

    def __init__(self, channel: Any) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        self.Export = channel.unary_unary(
            _GRPC_METHODS[sc.SignalValues.TRACES],
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
            _registered_method=True,
        )


def otlp_grpc_raw_span_stub(exporter: Any) -> Callable[[Any], Any] | None:
    """A stub class for the stock OTLP/gRPC span exporter whose ``Export`` sends request bytes as they are.

    The SDK's exporter serializes the message ``_translate_data`` returns through its stub
    (``TraceServiceStub``, ``SerializeToString``); there is no public way to give it bytes. With this
    stub in ``exporter._stub`` and as ``exporter._client``, ``_translate_data`` may return the request
    bytes: everything else — channel, TLS, compression, metadata, deadline, retries, the channel
    re-made on UNAVAILABLE (through ``_stub`` again), self-metrics, results — stays the exporter's.
    None when the exporter or the stock methods are not the shape this was written for.
    """
    try:
        from opentelemetry.exporter.otlp.proto.grpc import exporter as mixin
        from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as stock
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

        export_names = frozenset(mixin.OTLPExporterMixin._export.__code__.co_names)
        channel_names = frozenset(mixin.OTLPExporterMixin._initialize_channel_and_stub.__code__.co_names)
    except (ImportError, AttributeError):
        return None
    if (
        export_names != _GRPC_EXPORT_NAMES
        or channel_names != _GRPC_CHANNEL_NAMES
        or not isinstance(exporter, stock.OTLPSpanExporter)
        or getattr(exporter, "_stub", None) is not TraceServiceStub
        or getattr(exporter, "_channel", None) is None
    ):
        return None
    return _RawTraceServiceStub


class _ErrorObserver:
    """Stands in for an OTLP exporter's ``_metrics``: runs each export operation, keeps its error."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: str | None = None

    @contextlib.contextmanager
    def export_operation(self, num_items: int) -> Iterator[Any]:
        with self.inner.export_operation(num_items) as result:
            try:
                yield result
            finally:
                self.last = _describe_failure(result)


def _describe_failure(result: Any) -> str | None:
    error = getattr(result, "error", None)
    attributes = getattr(result, "error_attrs", None) or {}
    status = next((v for k, v in attributes.items() if k.endswith("status_code")), None)
    if error is None:
        return None if status is None else f"HTTP {status}" if isinstance(status, int) else f"gRPC {status}"
    name = type(error).__qualname__
    return name if status is None else f"{name} ({status})"


def export_error_observer(exporter: Any) -> Callable[[], str | None] | None:
    """A function telling the error class of ``exporter``'s last failed export, or None when unknown.

    The OTLP exporters catch their errors and return FAILURE; what failed (``ConnectionError``, an HTTP
    status, a gRPC code) is only kept in the ``ExportResult`` of their internal ``_metrics``, whose
    ``export_operation`` every export runs in. Observing that object is how ``health()`` can say the
    error class. None for an exporter without it (console, a future SDK): the caller then names the
    exporter's class.
    """
    metrics = getattr(exporter, "_metrics", None)
    if isinstance(metrics, _ErrorObserver):
        observer = metrics
    elif metrics is not None and callable(getattr(metrics, "export_operation", None)):
        observer = _ErrorObserver(metrics)
        try:
            exporter._metrics = observer
        except Exception:
            return None
    else:
        return None
    return lambda: observer.last


# --- the application's own providers (SPEC section 1: its export paths are scrubbed too)

# Where Simple/Batch span and log processors and periodic metric readers keep their exporter, across
# releases: SimpleSpanProcessor.span_exporter, SimpleLogRecordProcessor._exporter, the Batch*
# processors' inner ``_batch_processor._exporter`` (older releases: ``span_exporter`` on the processor
# itself), PeriodicExportingMetricReader._exporter. The public API has no way to reach them.
_EXPORTER_FIELDS = ("span_exporter", "_exporter")


def provider_processors(provider: Any) -> tuple[Any, ...] | None:
    """The span or log record processors already on an SDK provider, or None when unreadable."""
    for outer, inner in (
        ("_active_span_processor", "_span_processors"),
        ("_multi_log_record_processor", "_log_record_processors"),
    ):
        processors = getattr(getattr(provider, outer, None), inner, None)
        if isinstance(processors, (tuple, list)):
            return tuple(processors)
    return None


def provider_metric_readers(provider: Any) -> tuple[Any, ...] | None:
    """The metric readers of an SDK MeterProvider, or None when unreadable."""
    readers = getattr(provider, "_metric_readers", None)
    if readers is None:
        readers = getattr(getattr(provider, "_sdk_config", None), "metric_readers", None)
    return tuple(readers) if isinstance(readers, (tuple, list)) else None


def provider_resource(provider: Any) -> Resource | None:
    """An SDK provider's resource (public on tracer and logger providers, private on the meter provider)."""
    resource = getattr(provider, "resource", None)
    if not isinstance(resource, Resource):
        resource = getattr(getattr(provider, "_sdk_config", None), "resource", None)
    return resource if isinstance(resource, Resource) else None


def _exporter_slot(item: Any) -> tuple[Any, str] | None:
    for holder in (getattr(item, "_batch_processor", None), item):
        if holder is None:
            continue
        for name in _EXPORTER_FIELDS:
            if getattr(holder, name, None) is not None:
                return holder, name
    return None


def exporter_of(item: Any) -> Any | None:
    """The exporter of a span/log processor or metric reader, or None when it has none we can reach."""
    slot = _exporter_slot(item)
    return None if slot is None else getattr(slot[0], slot[1], None)


def replace_exporter(item: Any, wrap: Callable[[Any], Any]) -> bool:
    """Put ``wrap(exporter)`` in place of the exporter of ``item``; False when it cannot be reached.

    The processor's worker reads the field on each export, so the next batch goes through the wrapper.
    """
    slot = _exporter_slot(item)
    if slot is None:
        return False
    holder, name = slot
    try:
        setattr(holder, name, wrap(getattr(holder, name)))
    except Exception:
        return False
    return True


def add_first(provider: Any, processor: Any) -> bool:
    """Add ``processor`` to an SDK tracer or logger provider so that it runs before the others.

    A processor that adds attributes must run before the application's exporting processors: a
    Simple processor exports in its own ``on_emit``, a Batch one may export before a later processor
    has run. The SDK only appends; the multi-processor's tuple is replaced under its lock (it is read
    without one on the hot path, so a tuple swap is safe). Falls back to the public append.
    """
    for outer, inner in (
        ("_active_span_processor", "_span_processors"),
        ("_multi_log_record_processor", "_log_record_processors"),
    ):
        multi = getattr(provider, outer, None)
        if multi is None:
            continue
        lock = getattr(multi, "_lock", None)
        processors = getattr(multi, inner, None)
        if lock is not None and isinstance(processors, tuple):
            with lock:
                setattr(multi, inner, (processor, *getattr(multi, inner)))
            return True
    add = getattr(provider, "add_span_processor", None) or getattr(provider, "add_log_record_processor", None)
    if add is None:
        return False
    add(processor)
    return True


def add_checked_text(attributes: Any, values: Mapping[str, str]) -> bool:
    """Add already-checked text ``values`` to a span's or log record's SDK ``BoundedAttributes``.

    The public path (``set_attribute``, item assignment) cleans and validates every value under a
    lock: about a microsecond each, three per span for the context's tenant, user and session. These
    values are short printable ``str`` checked by b2b_otel, so they go straight into the inner dict
    (under the same lock) when they fit the limits (attribute count, value length). False when the
    internal is not there or a limit would bite: the caller then takes the public path.
    """
    from opentelemetry.attributes import BoundedAttributes

    if type(attributes) is not BoundedAttributes or getattr(attributes, "_immutable", True):
        return False
    inner = getattr(attributes, "_dict", None)
    lock = getattr(attributes, "_lock", None)
    if not isinstance(inner, dict) or lock is None:
        return False
    maxlen, max_value_len = attributes.maxlen, attributes.max_value_len
    if max_value_len is not None and any(len(v) > max_value_len for v in values.values()):
        return False
    with lock:
        if maxlen is not None and len(inner) + len(values) > maxlen:
            return False
        inner.update(values)
    return True


def add_to_ended_span(span: Any, values: Mapping[str, Any]) -> bool:
    """Add ``values`` to the attributes of a span that has just ended, from a span processor's ``on_end``.

    The SDK makes a span's attributes immutable when it ends, before the processors' ``on_end``; a
    value known only then (the cost of an LLM call, from the usage the instrumentation set last) can
    only go in through the inner dict. Safe only in a processor that runs before every other one of
    the provider (nothing has read or queued the span yet); within the attribute count limit, under
    the attributes' lock. False when the internal is not there or the limit would bite.
    """
    from opentelemetry.attributes import BoundedAttributes

    attributes = getattr(span, "_attributes", None)
    if type(attributes) is not BoundedAttributes:
        return False
    inner = getattr(attributes, "_dict", None)
    lock = getattr(attributes, "_lock", None)
    if not isinstance(inner, dict) or lock is None:
        return False
    with lock:
        new = sum(1 for key in values if key not in inner)
        if attributes.maxlen is not None and len(inner) + new > attributes.maxlen:
            return False
        inner.update(values)
    return True

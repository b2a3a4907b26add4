"""OTLP trace export requests written as protobuf bytes directly, with what repeats serialized once.

The SDK's encoder (``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``) builds a
protobuf object for every span, attribute and value, then serializes the tree; it groups spans by
``Resource``, whose hash runs ``json.dumps`` of the resource's attributes for every span. Telemetry
repeats itself: the same attribute entries (``gen_ai.agent.name: roi_calculator_agent``), span
names, scopes and one resource in every batch. :class:`SpanEncoder` writes the wire format of the
same ``ExportTraceServiceRequest`` itself and keeps the serialized bytes of what repeats:

- each attribute entry (key, value type, value) -> its ``KeyValue`` field, for scalar values and
  text up to :data:`MAX_TEXT` characters; bounded (:data:`MAX_ENTRIES` entries and
  :data:`MAX_CACHE_BYTES` bytes per field, cleared when full);
- span names and event names -> their field;
- resources and scopes -> their message, by object (an ``is`` check guards against a reused id).

It keeps the stock encoder's semantics exactly: the same grouping (resources and scopes merge by
their own ``==``, so content-equal objects share one ``ResourceSpans``/``ScopeSpans``, in order of
first appearance), the same fields (span kind, the has-is-remote / is-remote ``flags`` of spans
and links, parent span id, trace state as ``k=v,...``, status, events, links, dropped counts,
schema URLs, scope attributes), the same value mapping (``bool`` before ``int``, sequences as
``ArrayValue``, mappings as ``KeyValueList`` with ``str`` keys, ``bytes``, negative ints as
ten-byte varints, doubles little-endian), and fields in field-number order with proto3 defaults
left out, so the bytes are those ``SerializePartialToString`` gives for the stock message. An
attribute the stock encoder cannot encode (an int outside int64, a lone surrogate, an unknown
type) is left out of its span, as the stock encoder does, and reported once a minute. A batch the
fast path does not cover (an attribute key that is not ``str``) or that fails in it for any reason
is encoded by the stock encoder instead; :meth:`SpanEncoder.encode` never raises what the stock
encoder would not.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._internal import selflog
from .._internal.sdk_private import finished_attributes, span_contents

MAX_ENTRIES = 8192  # remembered attribute entries (and, apart, names) per encoder
MAX_CACHE_BYTES = 2 * 1024 * 1024  # and at most this many serialized bytes of entries per field
MAX_TEXT = 512  # longer text values are encoded each time, not remembered
_MAX_OBJECTS = 256  # remembered resources and scopes (an application has a few)

_U64 = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_U32 = (1 << 32) - 1

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_times = struct.Struct("<BQBQ").pack  # Span fields 7 and 8 (fixed64), both present

# Varints of one byte are looked up; those of two (lengths of most spans) are remembered as they come
# (at most 16,256 of them), rather than made at import: start-up pays nothing for them.
_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))
_TWO_BYTES: dict[int, bytes] = {}


def _varint(value: int) -> bytes:
    """The unsigned varint of ``value`` (0 <= value < 2**64)."""
    if value < 0x80:
        return _ONE_BYTE[value]
    hit = _TWO_BYTES.get(value)
    if hit is not None:
        return hit
    out = bytearray()
    rest = value
    while rest > 0x7F:
        out.append((rest & 0x7F) | 0x80)
        rest >>= 7
    out.append(rest)
    encoded = bytes(out)
    if value < 0x4000:
        _TWO_BYTES[value] = encoded
    return encoded


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag, the body's length, the body."""
    return tag + _varint(len(body)) + body


_NOTHING = object()


class _Unsupported(Exception):
    """Input the fast path leaves to the stock encoder (not an error: counted, not logged)."""


# --- values ------------------------------------------------------------------------------------------

# AnyValue's oneof: string_value 1, bool_value 2, int_value 3, double_value 4, array_value 5,
# kvlist_value 6, bytes_value 7 (a oneof member is written even when it holds its default).
_TRUE, _FALSE = b"\x10\x01", b"\x10\x00"


def _any_value(value: Any) -> bytes:
    """The body of the ``AnyValue`` message of ``value``, checked in the stock encoder's order."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, str):
        return _field(b"\x0a", value.encode("utf-8"))
    if isinstance(value, int):
        if value < _INT64_MIN or value > _INT64_MAX:
            raise ValueError(f"Value out of range: {int(value)}")
        return b"\x18" + _varint(value & _U64)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        # ArrayValue.values 1
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(item)) for item in value]))
    if isinstance(value, Mapping):
        # KeyValueList.values 1
        entries = [_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()]
        return _field(b"\x32", b"".join(entries))
    raise TypeError(f"Invalid type {type(value).__name__} of an attribute value")


def _key_value(key: str, value: Any) -> bytes:
    """The body of the ``KeyValue`` message: key 1 (left out when empty), value 2 (always present)."""
    if type(key) is not str:
        raise _Unsupported("attribute key of type " + type(key).__name__)
    encoded_key = key.encode("utf-8")
    head = _field(b"\x0a", encoded_key) if encoded_key else b""
    return head + _field(b"\x12", _any_value(value))


# Exact types whose (key, type, value) is a safe cache key (equal values of one type encode the same;
# floats apart from 0.0 / -0.0 and NaN, which are never stored).
_REMEMBERED = frozenset((str, int, bool, float))


class _Entries:
    """Serialized attribute fields of one repeated-``KeyValue`` field (its tag), remembered."""

    def __init__(self, tag: bytes, encoder: SpanEncoder) -> None:
        self.tag = tag
        self.encoder = encoder
        self.cache: dict[tuple[str, type, Any], bytes] = {}
        self.size = 0  # serialized bytes in the cache

    def entry(self, key: str, value: Any) -> bytes:
        """The field of one attribute, or ``b""`` when the stock encoder would leave it out."""
        kind = type(value)
        remember = kind in _REMEMBERED and (
            (kind is not str or len(value) <= MAX_TEXT)
            and (kind is not float or (value == value and value != 0.0))
        )
        if remember:
            hit = self.cache.get((key, kind, value))
            if hit is not None:
                return hit
        try:
            encoded = _field(self.tag, _key_value(key, value))
        except _Unsupported:
            raise
        except Exception as error:
            self.encoder.skipped_attributes += 1
            selflog.warn_once_a_minute(
                "otlp_encode.attribute",
                "b2b_otel: OTLP span export: attribute %r left out, its value cannot be encoded (%s)",
                key,
                type(error).__name__,
            )
            return b""
        if remember:
            cache = self.cache
            if len(cache) >= MAX_ENTRIES or self.size >= MAX_CACHE_BYTES:
                cache.clear()
                self.size = 0
            cache[(key, kind, value)] = encoded
            self.size += len(encoded)
        return encoded

    def fields(self, attributes: Mapping[str, Any] | None) -> list[bytes]:
        """The fields of all ``attributes``, in their order (uncached misses go through ``entry``)."""
        if not attributes:
            return []
        get = self.cache.get
        out = []
        for key, value in attributes.items():
            kind = type(value)
            # 0.0, -0.0 and NaN are never stored, so a lookup cannot confuse them.
            hit = get((key, kind, value)) if kind in _REMEMBERED else None
            if hit is None:
                hit = self.entry(key, value)
            out.append(hit)
        return out


# --- spans -------------------------------------------------------------------------------------------


def _kind_fields() -> dict[Any, bytes]:
    from opentelemetry.trace import SpanKind

    # Span.kind 6: SPAN_KIND_INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5
    order = (SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER)
    return {kind: b"\x30" + bytes((number,)) for number, kind in enumerate(order, start=1)}


# Span.flags 16 / Link.flags 6 (fixed32): SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK 0x100, and
# SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK 0x200 when the parent (for a link: the linked context) is remote.
_SPAN_LOCAL, _SPAN_REMOTE = b"\x85\x01\x00\x01\x00\x00", b"\x85\x01\x00\x03\x00\x00"
_LINK_LOCAL, _LINK_REMOTE = b"\x35\x00\x01\x00\x00", b"\x35\x00\x03\x00\x00"
_STATUS_UNSET = b"\x7a\x00"  # Span.status 15, always present


def _uint32(tag: bytes, count: int) -> bytes:
    if count > _U32 or count < 0:
        raise _Unsupported("a dropped count outside uint32")
    return tag + _varint(count)


class SpanEncoder:
    """Writes ``ExportTraceServiceRequest`` bytes for SDK spans; see the module's docstring.

    One per exporter; the export thread is its only user (a concurrent use only costs cache misses).
    ``fallbacks`` counts the batches the stock encoder encoded instead, ``skipped_attributes`` the
    attributes left out as the stock encoder leaves them out.
    """

    def __init__(self) -> None:
        self._span_attributes = _Entries(b"\x4a", self)  # Span.attributes 9
        self._event_attributes = _Entries(b"\x1a", self)  # Event.attributes 3
        self._link_attributes = _Entries(b"\x22", self)  # Link.attributes 4
        self._object_attributes = _Entries(b"\x0a", self)  # Resource.attributes 1 (scopes: see _scope)
        self._scope_attributes = _Entries(b"\x1a", self)  # InstrumentationScope.attributes 3
        self._names: dict[str, bytes] = {}  # Span.name 5
        self._event_names: dict[str, bytes] = {}  # Event.name 2
        # id -> (the object, kept so that its id is not reused; its ResourceSpans.resource /
        # ScopeSpans.scope field; its schema_url field)
        self._resources: dict[int, tuple[Any, bytes, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes, bytes]] = {}
        self._kinds = _kind_fields()
        # The last status seen (kept, so that it cannot be another object's) and its field, one tuple
        # so that a concurrent use cannot pair one status with another's field.
        self._last_status: tuple[Any, bytes] = (_NOTHING, b"")
        self.fallbacks = 0
        self.skipped_attributes = 0

    # --- the request

    def encode(self, spans: Sequence[Any]) -> bytes:
        """The serialized ``ExportTraceServiceRequest`` of ``spans``, as the stock encoder's message
        would serialize; a batch the fast path cannot take is encoded by the stock encoder."""
        try:
            return self.encode_fast(spans)
        except Exception as error:
            self.fallbacks += 1
            if not isinstance(error, _Unsupported):
                selflog.warn_once_a_minute(
                    "otlp_encode.fallback",
                    "b2b_otel: OTLP span export: the fast encoder failed on a batch (%s); the SDK's encoder "
                    "encoded it (%d batches so far)",
                    type(error).__name__,
                    self.fallbacks,
                )
            return _stock_encode(spans)

    def encode_fast(self, spans: Sequence[Any]) -> bytes:
        """The fast path alone: raises where :meth:`encode` falls back."""
        # resource group: [resource field, schema field, {id(scope): scope group}, {scope: scope group}]
        # scope group: [scope field, schema field, [span chunks]]
        by_id: dict[int, list[Any]] = {}
        by_value: dict[Any, list[Any]] = {}
        last_resource: Any = _NOTHING
        last_scope: Any = _NOTHING
        chunks: list[bytes] = []
        encode_span = self._span
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope or None
            if resource is not last_resource or scope is not last_scope:
                group = by_id.get(id(resource))
                if group is None:
                    group = by_value.get(resource)
                    if group is None:
                        field, schema = self._resource(resource)
                        group = [field, schema, {}, {}]
                        by_value[resource] = group
                    by_id[id(resource)] = group
                scope_group = group[2].get(id(scope))
                if scope_group is None:
                    scope_group = group[3].get(scope)
                    if scope_group is None:
                        field, schema = self._scope(scope)
                        scope_group = [field, schema, []]
                        group[3][scope] = scope_group
                    group[2][id(scope)] = scope_group
                chunks = scope_group[2]
                last_resource, last_scope = resource, scope
            body = encode_span(span)
            chunks.append(b"\x12")  # ScopeSpans.spans 2
            chunks.append(_varint(len(body)))
            chunks.append(body)
        out: list[bytes] = []
        for field, schema, _, scopes in by_value.values():
            parts: list[bytes] = [field]
            for scope_field, scope_schema, span_chunks in scopes.values():
                size = len(scope_field) + len(scope_schema) + sum(map(len, span_chunks))
                parts.append(b"\x12")  # ResourceSpans.scope_spans 2
                parts.append(_varint(size))
                parts.append(scope_field)
                parts.extend(span_chunks)
                if scope_schema:
                    parts.append(scope_schema)
            if schema:
                parts.append(schema)
            out.append(b"\x0a")  # ExportTraceServiceRequest.resource_spans 1
            out.append(_varint(sum(map(len, parts))))
            out.extend(parts)
        return b"".join(out)

    # --- resources and scopes, once per object

    def _resource(self, resource: Any) -> tuple[bytes, bytes]:
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1], cached[2]
        entries = self._object_attributes
        body = b"".join([entries.entry(k, v) for k, v in finished_attributes(resource.attributes).items()])
        field = _field(b"\x0a", body)  # ResourceSpans.resource 1, always present
        schema_url = resource.schema_url
        # ResourceSpans.schema_url 3
        schema = _field(b"\x1a", schema_url.encode("utf-8")) if schema_url else b""
        self._remember(self._resources, resource, field, schema)
        return field, schema

    def _scope(self, scope: Any) -> tuple[bytes, bytes]:
        if scope is None:
            return b"\x0a\x00", b""  # an empty InstrumentationScope, no schema_url
        cached = self._scopes.get(id(scope))
        if cached is not None and cached[0] is scope:
            return cached[1], cached[2]
        # InstrumentationScope: name 1, version 2, attributes 3
        name = scope.name.encode("utf-8") if scope.name is not None else b""
        version = scope.version.encode("utf-8") if scope.version is not None else b""
        entries = self._scope_attributes
        body = b"".join(
            [
                _field(b"\x0a", name) if name else b"",
                _field(b"\x12", version) if version else b"",
                *[entries.entry(k, v) for k, v in finished_attributes(scope.attributes).items()],
            ]
        )
        field = _field(b"\x0a", body)  # ScopeSpans.scope 1
        schema_url = scope.schema_url
        # ScopeSpans.schema_url 3
        schema = _field(b"\x1a", schema_url.encode("utf-8")) if schema_url else b""
        self._remember(self._scopes, scope, field, schema)
        return field, schema

    @staticmethod
    def _remember(cache: dict[int, tuple[Any, bytes, bytes]], item: Any, field: bytes, schema: bytes) -> None:
        if len(cache) >= _MAX_OBJECTS:
            cache.clear()
        cache[id(item)] = (item, field, schema)

    # --- one span

    def _span(self, span: Any) -> bytes:
        context = span.get_span_context()
        parent = span.parent
        parts = [
            b"\x0a\x10",  # trace_id 1
            context.trace_id.to_bytes(16, "big"),
            b"\x12\x08",  # span_id 2
            context.span_id.to_bytes(8, "big"),
        ]
        trace_state = context.trace_state
        if trace_state is not None and len(trace_state):
            state = ",".join([f"{key}={value}" for key, value in trace_state.items()])
            if state:
                parts.append(_field(b"\x1a", state.encode("utf-8")))  # trace_state 3
        if parent:
            parts.append(b"\x22\x08")  # parent_span_id 4
            parts.append(parent.span_id.to_bytes(8, "big"))
        name = span.name
        if name:
            field = self._names.get(name)
            if field is None:
                field = _field(b"\x2a", name.encode("utf-8"))  # name 5
                if len(name) <= MAX_TEXT:
                    if len(self._names) >= MAX_ENTRIES:
                        self._names.clear()
                    self._names[name] = field
            parts.append(field)
        parts.append(self._kinds[span.kind])  # kind 6
        start, end = span.start_time, span.end_time
        if start and end:
            parts.append(_pack_times(0x39, start, 0x41, end))  # start 7, end 8 (fixed64)
        elif start:
            parts.append(b"\x39" + _pack_fixed64(start))
        elif end:
            parts.append(b"\x41" + _pack_fixed64(end))
        attributes, dropped_attributes, events, dropped_events, links, dropped_links = span_contents(span)
        if attributes:  # attributes 9; the hit path of _Entries.fields inline (nearly every entry)
            entries = self._span_attributes
            get = entries.cache.get
            for key, value in attributes.items():
                kind = type(value)
                hit = get((key, kind, value)) if kind in _REMEMBERED else None
                parts.append(hit if hit is not None else entries.entry(key, value))
        if dropped_attributes:
            parts.append(_uint32(b"\x50", dropped_attributes))  # dropped_attributes_count 10
        if events:
            for event in events:
                parts.append(_field(b"\x5a", self._event(event)))  # events 11
        if dropped_events:
            parts.append(_uint32(b"\x60", dropped_events))  # dropped_events_count 12
        if links:
            for link in links:
                parts.append(_field(b"\x6a", self._link(link)))  # links 13
        if dropped_links:
            parts.append(_uint32(b"\x70", dropped_links))  # dropped_links_count 14
        status = span.status
        if status is not None:  # status 15
            last = self._last_status  # spans share their status object (the SDK's default)
            if status is not last[0]:
                last = self._last_status = (status, _status(status))
            parts.append(last[1])
        parts.append(_SPAN_REMOTE if parent and parent.is_remote else _SPAN_LOCAL)  # flags 16
        return b"".join(parts)

    def _event(self, event: Any) -> bytes:
        # Event: time_unix_nano 1 (fixed64), name 2, attributes 3, dropped_attributes_count 4
        parts = []
        timestamp = event.timestamp
        if timestamp:
            parts.append(b"\x09" + _pack_fixed64(timestamp))
        name = event.name
        if name:
            field = self._event_names.get(name)
            if field is None:
                field = _field(b"\x12", name.encode("utf-8"))
                if len(name) <= MAX_TEXT:
                    if len(self._event_names) >= MAX_ENTRIES:
                        self._event_names.clear()
                    self._event_names[name] = field
            parts.append(field)
        attributes = event.attributes
        if attributes:
            parts.extend(self._event_attributes.fields(finished_attributes(attributes)))
        dropped = event.dropped_attributes
        if dropped:
            parts.append(_uint32(b"\x20", dropped))
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        # Link: trace_id 1, span_id 2, attributes 4, dropped_attributes_count 5, flags 6 (fixed32)
        context = link.context
        parts = [
            b"\x0a\x10",
            context.trace_id.to_bytes(16, "big"),
            b"\x12\x08",
            context.span_id.to_bytes(8, "big"),
        ]
        attributes = link.attributes
        if attributes:
            parts.extend(self._link_attributes.fields(finished_attributes(attributes)))
        dropped = link.dropped_attributes
        if dropped:
            parts.append(_uint32(b"\x28", dropped))
        parts.append(_LINK_REMOTE if context.is_remote else _LINK_LOCAL)
        return b"".join(parts)


def _status(status: Any) -> bytes:
    # Status: message 2, code 3 (STATUS_CODE_UNSET 0 left out)
    code = status.status_code.value
    description = status.description
    if not code and not description:
        return _STATUS_UNSET
    body = _field(b"\x12", description.encode("utf-8")) if description else b""
    if code:
        body += b"\x18" + _varint(code)
    return _field(b"\x7a", body)


def _stock_encode(spans: Sequence[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock

    data: bytes = stock(spans).SerializePartialToString()
    return data


_DEFAULT = SpanEncoder()


def encode_spans(spans: Sequence[Any]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` of ``spans`` (a process-wide :class:`SpanEncoder`)."""
    return _DEFAULT.encode(spans)


# What an exporter is given to encode a batch with.
Encode = Callable[[Sequence[Any]], bytes]

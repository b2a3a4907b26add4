"""b2b_otel's OTLP span encoder (issue 11, export/otlp_encode.py) writes the request the SDK's encoder writes.

For random batches — many resources and scopes (content-equal different objects too), every attribute
value type (sequences, nested mappings, bytes, bools, big and negative ints, NaN and infinities,
unicode, lone surrogates, values the stock encoder rejects), events, links, status, trace state,
remote parents, dropped counts — the bytes equal ``encode_spans(spans).SerializePartialToString()``
of the stock encoder, and the parsed message equals the stock message. Where the stock encoder
raises (a span name with a lone surrogate), the fast path raises too and ``encode`` gives the stock
encoder's answer. The caches stay bounded under 100,000 distinct values.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from b2b_otel._internal import selflog
from b2b_otel.export import otlp_encode
from b2b_otel.export.otlp_encode import MAX_CACHE_BYTES, MAX_ENTRIES, SpanEncoder, encode_spans


class Opaque:
    """A value of a type the stock encoder rejects."""

    def __repr__(self) -> str:
        return "Opaque()"


# --- what a batch is made of ----------------------------------------------------------------------

LONE_SURROGATE = "caf\ud800e"
TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "roi_calculator_agent", "gpt-4o-mini", "ÅngströM 🚀", LONE_SURROGATE, "x" * 600]),
)
KEYS = st.one_of(st.sampled_from(["gen_ai.agent.name", "n", "", "k\ud801", "ключ"]), st.text(max_size=8))
SCALARS = st.one_of(
    TEXT,
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),  # beyond int64 both ways: left out, as stock does
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**31, True, False, 1.0, 0.0, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=16),
    st.none(),
    st.just(Opaque()),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(KEYS, st.integers(0, 3)), inner, max_size=3),
    ),
    max_leaves=8,
)
ATTRIBUTE_MAPS = st.dictionaries(KEYS, VALUES, max_size=8)


@st.composite
def attributes(draw: st.DrawFn) -> Any:
    """A plain dict, None, or a BoundedAttributes that dropped some (its dropped count is exported)."""
    values = draw(ATTRIBUTE_MAPS)
    shape = draw(st.sampled_from(["dict", "none", "bounded"]))
    if shape == "none":
        return None
    if shape == "bounded":
        bounded = BoundedAttributes(maxlen=draw(st.integers(0, 4)), immutable=False)
        for key, value in values.items():
            bounded._dict[key] = value  # unchecked values: what a hand-made ReadableSpan may carry
            if len(bounded._dict) > (bounded.maxlen or 0):
                bounded._dict.popitem()
                bounded.dropped += 1
        return bounded
    return values


def resources() -> list[Resource]:
    """Resources, several content-equal but distinct objects among them (they merge in one group)."""
    return [
        Resource({"service.name": "b2bvalue", "deployment.environment.name": "test"}),
        Resource({"service.name": "b2bvalue", "deployment.environment.name": "test"}),
        Resource({"deployment.environment.name": "test", "service.name": "b2bvalue"}),  # other order
        Resource({"service.name": "b2bvalue"}, "https://opentelemetry.io/schemas/1.30.0"),
        Resource({"n": 1}),
        Resource({"n": True}),
        Resource({"n": 1.0}),
        Resource({}),
        Resource({"tags": ("a", "b"), "weight": -0.5, "raw": "ü"}),
    ]


def scopes() -> list[InstrumentationScope | None]:
    return [
        None,
        InstrumentationScope("b2b_otel", "1.0"),
        InstrumentationScope("b2b_otel", "1.0"),  # content-equal, another object
        InstrumentationScope("b2b_otel", None),
        InstrumentationScope("opentelemetry.instrumentation.httpx", "0.66b1", "https://schema/1.2.0"),
        InstrumentationScope("db", "1", None, {"pool": "main", "size": 4}),
        InstrumentationScope("db", "1", None, {"pool": "main", "size": 4}),
        InstrumentationScope("db", "1", None, {"pool": "other"}),
        InstrumentationScope("", ""),
    ]


TRACE_STATES = [None, TraceState(), TraceState([("vendor", "v1"), ("b2b", "x-y")])]


@st.composite
def contexts(draw: st.DrawFn) -> SpanContext:
    return SpanContext(
        trace_id=draw(st.one_of(st.integers(0, 2**128 - 1), st.just(0x5B8AA5A2D2C872E8321CF37308D69DF2))),
        span_id=draw(st.integers(0, 2**64 - 1)),
        is_remote=draw(st.booleans()),
        trace_flags=TraceFlags(draw(st.sampled_from([0, 1]))),
        trace_state=draw(st.sampled_from(TRACE_STATES)),
    )


@st.composite
def events(draw: st.DrawFn) -> Any:
    made = [
        Event(draw(NAMES), draw(attributes()), draw(st.one_of(st.none(), st.integers(0, 2**64 - 1))))
        for _ in range(draw(st.integers(0, 3)))
    ]
    if draw(st.booleans()):
        bounded = BoundedList(maxlen=draw(st.integers(0, 3)))
        bounded.extend(made)
        return bounded
    return made


@st.composite
def links(draw: st.DrawFn) -> Any:
    made = [Link(draw(contexts()), draw(attributes())) for _ in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        bounded = BoundedList(maxlen=draw(st.integers(0, 2)))
        bounded.extend(made)
        return bounded
    return made


# Span-level text (span, event and status names) is mostly encodable: one lone surrogate there fails the
# whole batch in the stock encoder (tested apart below), and the property should mostly compare bytes.
NAMES = st.one_of(st.sampled_from(["invoke_agent roi", "GET", "", "exception"]), st.text(max_size=10))
STATUSES = st.one_of(
    st.just(Status(StatusCode.UNSET)),
    st.just(Status(StatusCode.OK)),
    st.builds(lambda d: Status(StatusCode.ERROR, d), st.one_of(st.none(), NAMES)),
)


@st.composite
def spans(draw: st.DrawFn, pool: tuple[list[Resource], list[InstrumentationScope | None]]) -> ReadableSpan:
    return ReadableSpan(
        name=draw(NAMES),
        context=draw(contexts()),
        parent=draw(st.one_of(st.none(), contexts())),
        resource=draw(st.sampled_from(pool[0])),
        attributes=draw(attributes()),
        events=draw(events()),
        links=draw(links()),
        kind=draw(st.sampled_from(list(SpanKind))),
        status=draw(STATUSES),
        start_time=draw(st.one_of(st.none(), st.integers(0, 2**64 - 1))),
        end_time=draw(st.one_of(st.none(), st.integers(0, 2**64 - 1))),
        instrumentation_scope=draw(st.sampled_from(pool[1])),
    )


POOL = (resources(), scopes())


def assert_same_request(spans_: list[Any], encoder: SpanEncoder | None = None) -> bytes:
    """The fast path's bytes are the stock message's bytes (and parse to an equal message)."""
    encoder = encoder or SpanEncoder()
    expected = stock_encode(spans_)
    got = encoder.encode_fast(spans_)
    assert got == expected.SerializePartialToString()
    parsed = ExportTraceServiceRequest.FromString(got)
    # NaN != NaN, so equal messages are compared in their deterministic serialization as well.
    assert parsed.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    if "nan" not in str(parsed):
        assert parsed == expected
    return got


# --- properties ------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(spans(POOL), max_size=12))
def test_random_batches_encode_to_the_stock_request(batch: list[ReadableSpan]) -> None:
    logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal").disabled = True
    try:
        stock_encode(batch).SerializePartialToString()
    except Exception as error:
        event("the stock encoder fails on the batch")
        # Only a span-level field the stock encoder cannot take (a lone surrogate in a span or event
        # name, a status message, a scope name): the fast path fails too, and encode() answers as stock.
        with pytest.raises(Exception):  # noqa: B017 - the same failure, whichever class protobuf uses
            SpanEncoder().encode_fast(batch)
        with pytest.raises(type(error)):
            SpanEncoder().encode(batch)
        return
    encoder = SpanEncoder()
    first = assert_same_request(batch, encoder)
    assert assert_same_request(batch, encoder) == first  # again, from the caches
    assert encoder.fallbacks == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=ATTRIBUTE_MAPS, event_values=ATTRIBUTE_MAPS)
def test_random_attribute_values_encode_as_stock(
    values: dict[str, Any], event_values: dict[str, Any]
) -> None:
    logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal").disabled = True
    span = ReadableSpan(
        "s",
        SpanContext(1, 2, False),
        resource=POOL[0][0],
        attributes=values,
        events=[Event("e", event_values, 5)],
        links=[Link(SpanContext(3, 4, True), values)],
    )
    encoder = SpanEncoder()
    first = assert_same_request([span], encoder)
    assert assert_same_request([span], encoder) == first
    assert encoder.fallbacks == 0


def test_the_empty_batch_is_the_empty_request() -> None:
    assert encode_spans([]) == b"" == stock_encode([]).SerializePartialToString()


def test_a_real_sdk_batch_is_byte_identical() -> None:
    from benchmarks.export_path import realistic_batch

    batch = realistic_batch(256)
    encoder = SpanEncoder()
    assert_same_request(batch, encoder)
    assert_same_request(realistic_batch(256, first_case=900), encoder)  # other values, warm caches


def test_content_equal_resources_and_scopes_share_one_group_as_stock() -> None:
    first, second = Resource({"service.name": "a"}), Resource({"service.name": "a"})
    scope_a, scope_b = InstrumentationScope("lib", "1"), InstrumentationScope("lib", "1")
    other = Resource({"service.name": "b"})
    context = SpanContext(1, 2, False)
    batch = [
        ReadableSpan("x", context, resource=first, instrumentation_scope=scope_a),
        ReadableSpan("y", context, resource=other, instrumentation_scope=scope_a),
        ReadableSpan("z", context, resource=second, instrumentation_scope=scope_b),
    ]
    request = ExportTraceServiceRequest.FromString(assert_same_request(batch))
    assert [len(group.scope_spans) for group in request.resource_spans] == [1, 1]
    assert [span.name for span in request.resource_spans[0].scope_spans[0].spans] == ["x", "z"]


def test_values_the_stock_encoder_rejects_are_left_out_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    selflog.reset()
    attributes = {
        "ok": "kept",
        "huge": 2**64,
        "surrogate": LONE_SURROGATE,
        "opaque": Opaque(),
        "nested": {"deep": [1, 2**70]},
        "after": 7,
    }
    span = ReadableSpan("s", SpanContext(1, 2, False), attributes=attributes)
    logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal").disabled = True
    encoder = SpanEncoder()
    with caplog.at_level(logging.WARNING):
        request = ExportTraceServiceRequest.FromString(assert_same_request([span], encoder))
    kept = [kv.key for kv in request.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert kept == ["ok", "after"]
    assert encoder.skipped_attributes == 4
    assert any("left out" in record.getMessage() for record in caplog.records)
    assert encoder.fallbacks == 0


def test_special_numbers_and_unicode_are_written_as_stock() -> None:
    attributes = {
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "-0": -0.0,
        "0": 0.0,
        "min": -(2**63),
        "max": 2**63 - 1,
        "neg": -1,
        "bool": True,
        "int": 1,
        "float": 1.0,
        "bytes": b"\x00\xff",
        "empty": "",
        "emoji 🚀": "Grüße 🚀",
        "seq": ("a", 1, 2.5, True, None, b"b"),
        "map": {"a": {"b": [1, {"c": None}]}, 7: "int key"},
        "none": None,
    }
    span = ReadableSpan("ünïcødé", SpanContext(2**128 - 1, 2**64 - 1, True), attributes=attributes)
    encoder = SpanEncoder()
    for _ in range(2):  # a miss, then hits
        assert_same_request([span], encoder)


def test_a_lone_surrogate_in_a_span_name_fails_both_and_encode_answers_as_stock() -> None:
    span = ReadableSpan(LONE_SURROGATE, SpanContext(1, 2, False))
    with pytest.raises(UnicodeEncodeError):
        stock_encode([span])
    encoder = SpanEncoder()
    with pytest.raises(UnicodeEncodeError):
        encoder.encode_fast([span])
    with pytest.raises(UnicodeEncodeError):
        encoder.encode([span])
    assert encoder.fallbacks == 1


def test_a_key_the_fast_path_does_not_take_is_encoded_by_stock_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    selflog.reset()
    span = ReadableSpan("s", SpanContext(1, 2, False), attributes={b"bytes-key": "v", "k": 1})  # type: ignore[dict-item]
    encoder = SpanEncoder()
    with caplog.at_level(logging.WARNING):
        assert encoder.encode([span]) == stock_encode([span]).SerializePartialToString()
    assert encoder.fallbacks == 1
    assert not [r for r in caplog.records if "fast encoder" in r.getMessage()]


def test_any_failure_inside_the_fast_path_falls_back_to_stock_and_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.export_path import realistic_batch

    selflog.reset()
    batch = realistic_batch(16)
    encoder = SpanEncoder()

    def broken(span: Any) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr(encoder, "_span", broken)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert encoder.encode(batch) == stock_encode(batch).SerializePartialToString()
    assert encoder.fallbacks == 3
    warnings = [r for r in caplog.records if "fast encoder failed" in r.getMessage()]
    assert len(warnings) == 1 and "RuntimeError" in warnings[0].getMessage()  # once a minute


def test_the_caches_stay_bounded_under_100000_distinct_values() -> None:
    encoder = SpanEncoder()
    resource = Resource({"service.name": "b2bvalue"})
    scope = InstrumentationScope("b2b_otel", "1")
    sizes, byte_sizes = [], []
    for batch_number in range(200):
        batch = []
        for index in range(500):
            n = batch_number * 500 + index
            batch.append(
                ReadableSpan(
                    f"op-{n}",
                    SpanContext(n + 1, n + 1, False),
                    resource=resource,
                    instrumentation_scope=scope,
                    attributes={
                        "client.address": f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}",
                        "n": n,
                        "same": "x",
                        "note": f"{n:0500d}",  # long distinct text: the byte bound clears first
                    },
                    events=[Event(f"e-{n}", {"v": float(n) + 0.5}, n)],
                )
            )
        data = encoder.encode_fast(batch)
        if batch_number % 50 == 0:
            assert data == stock_encode(batch).SerializePartialToString()
        sizes.append(
            max(len(encoder._span_attributes.cache), len(encoder._names), len(encoder._event_names),
                len(encoder._event_attributes.cache))
        )  # fmt: skip
        byte_sizes.append(encoder._span_attributes.size)
    assert max(sizes) <= MAX_ENTRIES
    assert MAX_CACHE_BYTES // 2 < max(byte_sizes) <= MAX_CACHE_BYTES + 1024  # reached, and held
    assert min(sizes[20:]) > 0  # still remembering (cleared when full, not switched off)


def test_the_module_encoder_is_one_per_process() -> None:
    assert otlp_encode.encode_spans([]) == b""
    assert isinstance(otlp_encode._DEFAULT, SpanEncoder)

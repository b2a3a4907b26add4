"""The OTLP/gRPC span exporter, encoding with :mod:`b2b_otel.export.otlp_encode`.

The SDK's exporter in every other respect (channel, TLS, compression, metadata, deadline, retries and
the channel re-made on UNAVAILABLE, self-metrics, FAILURE/SUCCESS): its stub sends the request bytes
b2b_otel's encoder wrote (the stock message's bytes) instead of serializing the stock encoder's
message. When the installed SDK's exporter is not the shape this was written for, it runs as stock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as _StockExporter
from opentelemetry.sdk.trace import ReadableSpan

from .._internal.sdk_private import otlp_grpc_raw_span_stub
from .otlp_encode import SpanEncoder


class OTLPSpanExporter(_StockExporter):
    """``opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter`` with b2b_otel's
    encoder (named like it: health snapshots name an exporter by its class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.encoder = SpanEncoder()
        self._raw_stub: Any = None  # the stock path until the channel is there
        super().__init__(*args, **kwargs)
        raw = otlp_grpc_raw_span_stub(self)
        if raw is not None:
            self._stub = raw  # a channel made again on UNAVAILABLE gets the raw stub too
            self._client = raw(self._channel)
            self._raw_stub = raw

    @property
    def fast_path(self) -> bool:
        """Whether batches are encoded by b2b_otel's encoder (False: the stock encoder and stub)."""
        return self._raw_stub is not None

    def _translate_data(self, data: Sequence[ReadableSpan]) -> Any:
        if self._raw_stub is None:
            return super()._translate_data(data)
        return self.encoder.encode(data)

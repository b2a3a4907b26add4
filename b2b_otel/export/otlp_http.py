"""The OTLP/HTTP span exporter, encoding with :mod:`b2b_otel.export.otlp_encode`.

The SDK's exporter in every other respect (endpoint, headers, TLS, compression, timeout and retries,
the request-size limit, its self-metrics, FAILURE/SUCCESS): only the encoding of a batch is
b2b_otel's, a few times cheaper than the stock encoder, into the same request bytes. When the
installed SDK's exporter is not the shape this was written for, the stock ``export`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as _StockExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from .._internal.sdk_private import otlp_http_span_export
from .otlp_encode import SpanEncoder


class OTLPSpanExporter(_StockExporter):
    """``opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter`` with b2b_otel's
    encoder (named like it: health snapshots name an exporter by its class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.encoder = SpanEncoder()
        self._fast_export = otlp_http_span_export(self, self.encoder.encode)

    @property
    def fast_path(self) -> bool:
        """Whether batches are encoded by b2b_otel's encoder (False: the stock ``export`` runs)."""
        return self._fast_export is not None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        fast = self._fast_export
        if fast is None:
            return super().export(spans)
        result: SpanExportResult = fast(spans)
        return result

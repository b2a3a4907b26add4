"""The one place that reads OpenTelemetry SDK internals (private names that may change between releases).

Each use says why the public API does not do; when an SDK upgrade breaks one, this is the only file to
change. Every function degrades to the public (slower or less complete) path when the internal is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource, ResourceDetector


def finished_attributes(attributes: Any) -> Mapping[str, Any]:
    """A finished span's attributes as a plain dict: many lookups follow, and the SDK's mapping is slow.

    A finished span's BoundedAttributes no longer change, so its inner dict is read without a copy.
    """
    if not attributes:
        return {}
    inner = getattr(attributes, "_dict", None)
    return inner if isinstance(inner, dict) else dict(attributes)


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

"""The resource every signal carries: service, environment, host, process and the distro itself."""

from __future__ import annotations

import uuid
from typing import Any

from opentelemetry.sdk.resources import (
    OsResourceDetector,
    ProcessResourceDetector,
    Resource,
    ResourceDetector,
)

from .. import semconv as sc
from .._internal.sdk_private import default_resource, host_detector
from .._version import __version__
from .settings import Settings

# The command line can carry credentials (``--db-password=...``); it never leaves the process.
_DROPPED = (sc.PROCESS_COMMAND_ARGS, sc.PROCESS_COMMAND_LINE, sc.PROCESS_COMMAND)


def _detectors() -> list[ResourceDetector]:
    detectors: list[ResourceDetector] = [ProcessResourceDetector(), OsResourceDetector()]
    host = host_detector()
    if host is not None:
        detectors.append(host)
    return detectors


def build_resource(settings: Settings) -> Resource:
    """Detected host/process facts, then OTEL_RESOURCE_ATTRIBUTES, then the explicit service settings."""
    resource = default_resource()
    for detector in _detectors():
        try:
            resource = resource.merge(detector.detect())
        except Exception:
            continue
    attributes: dict[str, Any] = {k: v for k, v in resource.attributes.items() if k not in _DROPPED}
    attributes.update(settings.resource_attributes)
    attributes[sc.SERVICE_NAME] = (
        settings.service_name or settings.resource_attributes.get(sc.SERVICE_NAME) or sc.UNKNOWN_SERVICE
    )
    # One id per process, so that two processes of one service are two series in every backend.
    attributes.setdefault(sc.SERVICE_INSTANCE_ID, str(uuid.uuid4()))
    if settings.service_version:
        attributes[sc.SERVICE_VERSION] = settings.service_version
    if settings.environment:
        attributes[sc.DEPLOYMENT_ENVIRONMENT_NAME] = settings.environment
    # Tells the collector connector that this process already judged its spans (SPEC section 7).
    attributes[sc.B2B_DERIVED] = True
    attributes[sc.TELEMETRY_DISTRO_NAME] = sc.DISTRO_NAME
    attributes[sc.TELEMETRY_DISTRO_VERSION] = __version__
    return Resource(attributes, resource.schema_url)

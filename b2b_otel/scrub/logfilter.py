"""A logging filter that scrubs the messages of OpenTelemetry's and b2b_otel's own loggers before any
handler sees them.

The SDK quotes configuration in some warnings: a malformed ``OTEL_RESOURCE_ATTRIBUTES`` entry
(``api.token:abc``) is logged whole when ``opentelemetry.sdk`` is first imported, to stderr or any
handler, before ``instrument()`` runs; b2b_otel's own diagnostics quote exceptions (``%r``), whose
text may hold what the application passed. The logging bridge scrubs what it exports, but stderr and
the application's own handlers would get them in clear: these records are scrubbed at the source.
"""

from __future__ import annotations

import logging

from .. import semconv as sc
from .scrubber import Scrubber

# Loggers whose records can quote a configured value or an application's data.
QUOTING_LOGGERS = ("opentelemetry.sdk.resources", sc.INSTRUMENTATION_SCOPE)


class ScrubbingFilter(logging.Filter):
    """Replaces the message of each record by its scrubbed form; never drops a record, never raises."""

    def __init__(self) -> None:
        super().__init__()
        self._scrubber = Scrubber()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = self._scrubber.text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = ScrubbingFilter()


def scrub_sdk_warnings() -> None:
    """Attach the filter to :data:`QUOTING_LOGGERS` (once; before the SDK is imported)."""
    for name in QUOTING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# Importing this module attaches the filter: ``b2b_otel/__init__.py`` imports it first.
scrub_sdk_warnings()

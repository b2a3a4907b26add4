"""Zero-code start: ``opentelemetry-instrument`` entry points.

``OTEL_PYTHON_DISTRO=b2b_otel OTEL_PYTHON_CONFIGURATOR=b2b_otel opentelemetry-instrument python app.py``
gives the same telemetry as calling ``b2b_otel.instrument()`` at the top of ``app.py``.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

from .setup import libraries

# Libraries whose instrumentation b2b_otel installs itself, as B2B_OTEL_INSTRUMENTATIONS says;
# the generic auto-instrumentation loop must not install them behind that setting's back. `httpx2`
# is the second entry point of the httpx instrumentation's distribution: loading it imports httpx
# in the middle of that instrumentation's own import, and b2b-otel's `httpx` setting governs the
# family. `threading` is installed by b2b_otel.context()'s thread propagation.
_MANAGED = frozenset(libraries.FACTORIES) | {"httpx2", "threading"}


class B2BOtelDistro(BaseDistro):  # type: ignore[misc]
    """Prepares the environment before any instrumentor is loaded."""

    def _configure(self, **kwargs: Any) -> None:
        libraries.opt_in_stable_semconv()
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", "b2b_otel")

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name in _MANAGED:
            return
        super().load_instrumentor(entry_point, **kwargs)


class B2BOtelConfigurator(_BaseConfigurator):
    """Runs ``b2b_otel.instrument()`` from the environment."""

    def _configure(self, **kwargs: Any) -> None:
        from . import instrument

        instrument()

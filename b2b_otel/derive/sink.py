"""What the pipeline writes to: the :class:`Sink` protocol that local files and Alertmanager implement.

The pipeline declares what it needs; the sinks (one layer up) implement it, so no import goes from
the pipeline to a concrete sink. The audit trail is not a sink: its records take the one path of
:mod:`b2b_otel.audit_trail.record`, which raises when a record cannot be made durable.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from .records import DerivedRecord


class AgentExecution(NamedTuple):
    """One finished agent span, as the seed's ``AGENT_EXECUTION`` / ``AGENT_FAILURE`` lines need it.

    Immutable; a named tuple because one is made for every agent run, in a third of a frozen
    dataclass's time.
    """

    agent: str
    """The agent's name, already scrubbed."""
    duration_s: float
    error_type: str | None
    """The qualified exception class when the agent failed, else None."""
    end_s: float
    trace_id: int
    span_id: int
    tenant: str | None = None
    """The span's ``b2b.tenant.id`` (b2b_otel.context), already scrubbed; None without one."""


class LinesNotWritten(Exception):
    """A sink's collected lines (``count`` of them) could not be written; ``__cause__`` says why."""

    def __init__(self, count: int, cause: BaseException) -> None:
        super().__init__(f"{count} line(s) not written: {cause!r}")
        self.count = count


@runtime_checkable
class Sink(Protocol):
    """A destination of derived records. Called from the pipeline's worker thread only.

    A method may raise: the pipeline catches, logs (rate-limited) and counts it as
    ``b2b.telemetry.dropped{reason=write_failed}``. Subclass it to inherit the no-op defaults.
    """

    name: str
    """Short name used in self-log lines and counters, e.g. ``files``."""

    def write(self, record: DerivedRecord) -> None:
        """Take one firing's record."""
        return None

    def agent_execution(self, execution: AgentExecution) -> None:
        """Take one finished agent span (most sinks ignore it)."""
        return None

    def flush(self, timeout_s: float) -> bool:
        """Deliver what is buffered within ``timeout_s``; False when it could not."""
        return True

    def close(self, timeout_s: float) -> None:
        """Deliver what is buffered within ``timeout_s``, then release files and threads."""
        return None

"""The local log files of the seed: critical.log, security.log, performance.log.

Lines are JSON objects (``B2B_OTEL_LOG_FORMAT=json``) or the seed's text format, so that its runbook
commands work (``grep AGENT_EXECUTION logs/performance.log | awk '{print $NF}' | sort -n``). Files
rotate by size. Only the processor's worker thread writes; the application thread never does.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import stat
from pathlib import Path
from typing import Any

from .. import semconv as sc
from .._internal.formats import fmt_seconds, hex_ids, iso, json_safe, seed_time
from ..derive.records import DerivedRecord
from ..derive.sink import AgentExecution, Sink

CRITICAL = "critical.log"
SECURITY = "security.log"
PERFORMANCE = "performance.log"
MAX_BYTES = 10 * 1024 * 1024  # a file rotates when a line would take it past this
BACKUPS = 5  # rotated files kept per log


class LocalFiles(Sink):
    """Writes derived records and agent execution lines to the local files."""

    name = "files"

    def __init__(self, directory: Path, fmt: str = "json") -> None:
        self.directory = directory
        self.fmt = fmt
        self._handlers: dict[str, logging.Handler] = {}

    def _handler(self, name: str) -> logging.Handler:
        handler = self._handlers.get(name)
        if handler is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                self.directory / name, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
            )
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._handlers[name] = handler
        return handler

    def _write(self, name: str, line: str) -> None:
        handler = self._handler(name)
        # emit() swallows errors through handleError; write directly so a full disk is seen and counted.
        handler.acquire()
        try:
            stream = handler.stream  # type: ignore[attr-defined]
            if stream is None:
                stream = handler._open()  # type: ignore[attr-defined]
                handler.stream = stream  # type: ignore[attr-defined]
            # Rotation as RotatingFileHandler.shouldRollover decides it (a regular file that this line
            # would take to maxBytes or past), from one fstat instead of its per-line LogRecord,
            # format, seek, tell and two stats: one line per agent execution makes this a hot loop.
            max_bytes = handler.maxBytes  # type: ignore[attr-defined]
            if max_bytes > 0:
                status = os.fstat(stream.fileno())
                if (
                    status.st_size
                    and stat.S_ISREG(status.st_mode)
                    and status.st_size + len(line) + 1 >= max_bytes
                ):
                    handler.doRollover()  # type: ignore[attr-defined]
                    stream = handler.stream  # type: ignore[attr-defined]
                    if stream is None:
                        stream = handler._open()  # type: ignore[attr-defined]
                        handler.stream = stream  # type: ignore[attr-defined]
            stream.write(line + "\n")
            stream.flush()
        finally:
            handler.release()

    def _line(self, obj: dict[str, Any], text: str) -> str:
        return (
            json.dumps(json_safe(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            if self.fmt == "json"
            else text
        )

    def write(self, record: DerivedRecord) -> None:
        """Write a derived record to the files it belongs in."""
        self.write_record(record)

    def write_record(self, record: DerivedRecord) -> list[str]:
        """Write a derived record to the files it belongs in; returns their names."""
        targets = []
        if record.severity == sc.B2bAlertSeverityValues.CRITICAL:
            targets.append(CRITICAL)
        targets.append(SECURITY if record.is_security else PERFORMANCE)
        line = self._line(record.json_line(), record.text_line())
        for name in targets:
            self._write(name, line)
        return targets

    def agent_execution(self, execution: AgentExecution) -> None:
        """One ``AGENT_EXECUTION`` line per agent run, and ``AGENT_FAILURE`` when it failed."""
        agent, seconds, error_type = execution.agent, execution.duration_s, execution.error_type
        at_s, trace_id, span_id = execution.end_s, execution.trace_id, execution.span_id
        ids = dict(zip(("trace_id", "span_id"), hex_ids(trace_id, span_id), strict=True))
        # The duration stays the last field either way: the runbook's awk '{print $NF}' reads it.
        verb = "failed in" if error_type else "completed in"
        message = f"{agent} {verb} {fmt_seconds(seconds)}"
        # One line per agent execution: only the format in use is built.
        if self.fmt != "json":
            line = f"{seed_time(at_s)} INFO AGENT_EXECUTION: {message}"
        else:
            obj = {
                "ts": iso(at_s),
                "level": "INFO",
                "event": "AGENT_EXECUTION",
                "message": message,
                "agent": agent,
                "duration_s": round(seconds, 6),
                **ids,
            }
            if execution.tenant is not None:
                obj["tenant"] = execution.tenant
            line = self._line(obj, "")
        self._write(PERFORMANCE, line)
        if error_type:
            message = f"{agent} failed: {error_type}"
            obj = {
                "ts": iso(at_s),
                "level": "ERROR",
                "event": "AGENT_FAILURE",
                "message": message,
                "agent": agent,
                "error_type": error_type,
                **ids,
            }
            self._write(PERFORMANCE, self._line(obj, f"{seed_time(at_s)} ERROR AGENT_FAILURE: {message}"))

    def close(self, timeout_s: float = 0.0) -> None:
        """Close every open file."""
        for handler in self._handlers.values():
            try:
                handler.close()
            except Exception:
                pass
        self._handlers.clear()

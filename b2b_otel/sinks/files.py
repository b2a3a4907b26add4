"""The local log files of the seed: critical.log, security.log, performance.log.

Lines are JSON objects (``B2B_OTEL_LOG_FORMAT=json``) or the seed's text format, so that its runbook
commands work (``grep AGENT_EXECUTION logs/performance.log | awk '{print $NF}' | sort -n``). Files
rotate by size. Only the processor's worker thread writes; the application thread never does.

``AGENT_EXECUTION`` / ``AGENT_FAILURE`` lines (one per agent run: the hot loop) are collected and
written with one write, one flush and one size check per batch: when the worker's drain ends
(:meth:`LocalFiles.write_pending`, called by the processor), at :data:`PENDING_LINES` lines, before
any other line of the same file, and at flush/close. Every line is written whole; a batch that would
take the file past its size rotates it between lines, as line-by-line writing would.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import math
import os
import stat
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from .. import semconv as sc
from .._internal.formats import fmt_seconds, hex_ids, iso, json_safe, seed_time
from ..derive.records import DerivedRecord
from ..derive.sink import AgentExecution, LinesNotWritten, Sink

CRITICAL = "critical.log"
SECURITY = "security.log"
PERFORMANCE = "performance.log"
MAX_BYTES = 10 * 1024 * 1024  # a file rotates when a line would take it past this
BACKUPS = 5  # rotated files kept per log
PENDING_LINES = 256  # agent execution lines collected at most before they are written
_NAMES_CACHED = 1024  # agent/tenant names whose JSON form is remembered

_live: weakref.WeakSet[LocalFiles] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for files in list(_live):
        files._after_fork()


# A forked child drops the parent's collected lines at once, so collecting a line needs no getpid().
_NO_FORK_HOOK = not hasattr(os, "register_at_fork")
if not _NO_FORK_HOOK:
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LocalFiles(Sink):
    """Writes derived records and agent execution lines to the local files."""

    name = "files"

    def __init__(self, directory: Path, fmt: str = "json") -> None:
        self.directory = directory
        self.fmt = fmt
        self._handlers: dict[str, logging.Handler] = {}
        self._pending: list[str] = []  # agent execution lines of performance.log not yet written
        self._pending_lock = threading.Lock()
        self._pid = os.getpid()
        self._json_names: dict[str, str] = {}  # agent/tenant name -> its JSON string form
        # (agent, verb, tenant) -> the fixed text of its AGENT_EXECUTION JSON lines
        self._line_parts: dict[tuple[str, str, str | None], tuple[str, str, str]] = {}
        self._iso_second = -1
        self._iso_head = ""
        _live.add(self)

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
        if name == PERFORMANCE and self._pending:
            self.write_pending()  # the file's lines stay in the order they were made
        self._write_lines(name, [line])

    def _write_lines(self, name: str, lines: list[str]) -> None:
        handler = self._handler(name)
        # emit() swallows errors through handleError; write directly so a full disk is seen and counted.
        handler.acquire()
        try:
            stream = handler.stream  # type: ignore[attr-defined]
            if stream is None:
                stream = handler._open()  # type: ignore[attr-defined]
                handler.stream = stream  # type: ignore[attr-defined]
            # Rotation as RotatingFileHandler.shouldRollover decides it (a regular file that a line
            # would take to maxBytes or past), from one fstat a batch instead of its per-line
            # LogRecord, format, seek, tell and two stats: one line per agent execution is a hot loop.
            max_bytes = handler.maxBytes  # type: ignore[attr-defined]
            if max_bytes <= 0:
                stream.write("\n".join(lines) + "\n")
            else:
                status = os.fstat(stream.fileno())
                regular = stat.S_ISREG(status.st_mode)
                size = status.st_size
                chunk: list[str] = []
                if not regular or size + sum(map(len, lines)) + len(lines) < max_bytes:
                    lines, chunk = [], lines  # the whole batch fits: no line rotates the file
                for line in lines:
                    if regular and size and size + len(line) + 1 >= max_bytes:
                        if chunk:
                            stream.write("\n".join(chunk) + "\n")
                            chunk = []
                        handler.doRollover()  # type: ignore[attr-defined]
                        stream = handler.stream  # type: ignore[attr-defined]
                        if stream is None:
                            stream = handler._open()  # type: ignore[attr-defined]
                            handler.stream = stream  # type: ignore[attr-defined]
                        size = 0
                    chunk.append(line)
                    size += len(line) + 1
                if chunk:
                    stream.write("\n".join(chunk) + "\n")
            stream.flush()
        finally:
            handler.release()

    def _add_pending(self, line: str) -> None:
        if _NO_FORK_HOOK and os.getpid() != self._pid:
            self._after_fork()
        with self._pending_lock:
            self._pending.append(line)
            full = len(self._pending) >= PENDING_LINES
        if full:
            self.write_pending()

    def _after_fork(self) -> None:
        # A forked child inherits the parent's collected lines, which the parent writes itself, and
        # perhaps a lock a parent thread held: it starts with neither.
        self._pid = os.getpid()
        self._pending_lock = threading.Lock()
        self._pending = []

    def write_pending(self) -> None:
        """Write the collected agent execution lines (the processor calls it when its drain ends)."""
        if os.getpid() != self._pid:
            self._after_fork()
        with self._pending_lock:
            lines, self._pending = self._pending, []
        if lines:
            try:
                self._write_lines(PERFORMANCE, lines)
            except Exception as exc:
                raise LinesNotWritten(len(lines), exc) from exc

    def flush(self, timeout_s: float = 0.0) -> bool:
        """Write what is collected."""
        self.write_pending()
        return True

    def _iso(self, seconds: float) -> str:
        """``iso(seconds)``, the formatted second remembered: consecutive lines share it."""
        whole = int(seconds)
        if seconds < 0 or whole != self._iso_second:
            if seconds < 0:
                return iso(seconds)
            self._iso_second = whole
            self._iso_head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        return f"{self._iso_head}.{int(seconds % 1 * 1000):03d}Z"

    def _agent_line_parts(self, agent: str, verb: str, tenant: str | None) -> tuple[str, str, str]:
        """The fixed text of an AGENT_EXECUTION JSON line around its time, duration and ids; remembered."""
        encoded = self._json_name(agent)
        parts = (
            f'","level":"INFO","event":"AGENT_EXECUTION","message":{encoded[:-1]} {verb} ',
            f'","agent":{encoded},"duration_s":',
            "}" if tenant is None else f',"tenant":{self._json_name(tenant)}}}',
        )
        if len(self._line_parts) >= _NAMES_CACHED:
            self._line_parts.clear()
        self._line_parts[(agent, verb, tenant)] = parts
        return parts

    def _json_name(self, name: str) -> str:
        """``name`` as a JSON string, as ``_line`` writes it; remembered (bounded)."""
        encoded = self._json_names.get(name)
        if encoded is None:
            encoded = json.dumps(json_safe(name), ensure_ascii=False)
            if len(self._json_names) >= _NAMES_CACHED:
                self._json_names.clear()
            self._json_names[name] = encoded
        return encoded

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
        agent, seconds, error_type, at_s, trace_id, span_id, tenant = execution
        trace_hex, span_hex = hex_ids(trace_id, span_id)
        # The duration stays the last field either way: the runbook's awk '{print $NF}' reads it.
        verb = "failed in" if error_type else "completed in"
        formatted = fmt_seconds(seconds)
        # One line per agent execution: only the format in use is built.
        if self.fmt != "json":
            line = f"{seed_time(at_s)} INFO AGENT_EXECUTION: {agent} {verb} {formatted}"
        elif (
            type(seconds) is float
            and math.isfinite(seconds)
            and type(agent) is str
            and (tenant is None or type(tenant) is str)
        ):
            # The line json.dumps(json_safe(obj)) writes, from remembered pieces: the text around the
            # agent's JSON form (per agent, verb and tenant) and the formatted second; the duration
            # (a finite float's repr, as json writes it), the hex ids and the verb need no escaping.
            parts = self._line_parts.get((agent, verb, tenant))
            if parts is None:
                parts = self._agent_line_parts(agent, verb, tenant)
            line = (
                f'{{"ts":"{self._iso(at_s)}{parts[0]}{formatted}{parts[1]}{round(seconds, 6)!r}'
                f',"trace_id":"{trace_hex}","span_id":"{span_hex}"{parts[2]}'
            )
        else:
            message = f"{agent} {verb} {formatted}"
            obj = {
                "ts": iso(at_s),
                "level": "INFO",
                "event": "AGENT_EXECUTION",
                "message": message,
                "agent": agent,
                "duration_s": round(seconds, 6),
                "trace_id": trace_hex,
                "span_id": span_hex,
            }
            if tenant is not None:
                obj["tenant"] = tenant
            line = self._line(obj, "")
        self._add_pending(line)
        if error_type:
            message = f"{agent} failed: {error_type}"
            obj = {
                "ts": iso(at_s),
                "level": "ERROR",
                "event": "AGENT_FAILURE",
                "message": message,
                "agent": agent,
                "error_type": error_type,
                "trace_id": trace_hex,
                "span_id": span_hex,
            }
            self._add_pending(self._line(obj, f"{seed_time(at_s)} ERROR AGENT_FAILURE: {message}"))

    def close(self, timeout_s: float = 0.0) -> None:
        """Write what is collected, then close every open file."""
        try:
            self.write_pending()
        except Exception:
            pass
        for handler in self._handlers.values():
            try:
                handler.close()
            except Exception:
                pass
        self._handlers.clear()

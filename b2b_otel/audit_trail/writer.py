"""The audit trail's writer: ``audit.log``, one hash-chained JSON record a line, durable on return.

The chain's format (hashes, head and anchor records, file names) is in :mod:`.chain`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._internal.errors import AuditError
from .._internal.formats import iso, json_safe
from .chain import (
    ANCHOR_SUFFIX,
    GENESIS_HASH,
    HEAD_SUFFIX,
    LOCK_SUFFIX,
    ChainTip,
    normalise_key,
    read_tip,
    record_hash,
    rotated,
    sidecar,
    temp_name,
)

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_TAIL_CHUNK = 64 * 1024


def _utc_now() -> str:
    return iso(time.time())


def _check_id(name: str, value: str, pattern: re.Pattern[str]) -> str:
    value = value.lower()
    if value and not pattern.fullmatch(value):
        raise ValueError(f"{name} must be lowercase hex ({pattern.pattern}) or empty, got {value!r}")
    return value


# --- files -------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = temp_name(path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class _Tail:
    """The end of a log file: its last record's (seq, hash), or why it has none usable."""

    tip: ChainTip | None
    ends_with_newline: bool
    problem: str | None = None


def read_tail(path: Path) -> _Tail:
    """The last record of ``path``, reading only the end of the file.

    Raises FileNotFoundError when the file is absent.
    """
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return _Tail(None, True)
        chunk = b""
        pos = size
        while True:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + chunk
            body = chunk.rstrip(b"\n")
            cut = body.rfind(b"\n")
            if cut >= 0 or pos == 0:
                break
        ends = chunk.endswith(b"\n")
        last = body[cut + 1 :]
    try:
        obj = json.loads(last.decode("utf-8"))
        seq, hash_ = obj["seq"], obj["hash"]
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(hash_, str):
            raise TypeError
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        return _Tail(None, ends, f"the last line of {path} is not an audit record")
    return _Tail(ChainTip(seq, hash_), ends)


@dataclass(frozen=True)
class _Cached:
    tip: ChainTip
    size: int
    inode: int


class AuditLog:
    """Append-only, hash-chained, fsync'ed audit log shared by the processes of one service.

    ``append`` returns only once the line is on disk; otherwise it raises :class:`AuditError`
    and leaves no partial line. Files grow to ``max_bytes`` and then rotate to ``audit.log.1`` ..
    ``audit.log.{backups}``; the chain continues across files.

    Example::

        log = AuditLog(Path("logs/audit.log"), key=b"secret")
        record = log.append("invoice.approve", "u-7", "invoice-42", "success", "", "", {"amount": 120})
        record["seq"], record["hash"]
    """

    def __init__(
        self,
        path: Path,
        key: bytes | None = None,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 10,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if backups < 0:
            raise ValueError("backups must be >= 0")
        self.path = Path(path)
        self._key = normalise_key(key)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock_path = sidecar(self.path, LOCK_SUFFIX)
        self._head_path = sidecar(self.path, HEAD_SUFFIX)
        self._anchor_path = sidecar(self.path, ANCHOR_SUFFIX)
        self._pid = os.getpid()
        self._thread_lock = threading.Lock()
        self._cached: _Cached | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"AuditLog({str(self.path)!r}, hmac={self._key is not None})"

    def append(
        self,
        action: str,
        actor_id: str,
        target: str,
        outcome: str,
        trace_id: str,
        span_id: str,
        details: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Write one record, fsync it, and return it (with ``seq``, ``prev_hash`` and ``hash``).

        Raises:
            AuditError: the record could not be made durable; the file is left without a partial line.
            ValueError: ``trace_id``/``span_id`` are not 32/16 hex digits (or empty).
        """
        fields: dict[str, Any] = {
            "action": json_safe(str(action)),
            "actor_id": json_safe(str(actor_id)),
            "target": json_safe(str(target)),
            "outcome": json_safe(str(outcome)),
            "trace_id": _check_id("trace_id", trace_id, _TRACE_ID),
            "span_id": _check_id("span_id", span_id, _SPAN_ID),
            "details": json_safe(dict(details)),
        }
        if os.getpid() != self._pid:
            # A forked child: the parent's cache and (possibly held) thread lock are not ours.
            self._pid = os.getpid()
            self._thread_lock = threading.Lock()
            self._cached = None
        with self._thread_lock:
            try:
                return self._append_locked(fields)
            except AuditError:
                self._cached = None
                raise
            except OSError as exc:
                self._cached = None
                raise AuditError(f"audit record not written to {self.path}: {exc.strerror or exc}") from exc

    # Everything below runs under the thread lock.

    def _append_locked(self, fields: dict[str, Any]) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise AuditError(f"cannot lock {self._lock_path}: {exc.strerror or exc}") from exc
            return self._append_flocked(fields)
        finally:
            os.close(lock_fd)  # also releases the flock

    def _append_flocked(self, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            st: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            st = None
        cached = self._cached
        if cached is not None and st is not None and (st.st_size, st.st_ino) == (cached.size, cached.inode):
            tip, size, newline_first = cached.tip, st.st_size, False
        else:
            tip, newline_first = self._tip_from_disk(st)
            size = st.st_size if st is not None else 0

        record: dict[str, Any] = {"seq": tip.seq + 1, "ts": _utc_now(), **fields, "prev_hash": tip.hash}
        record["hash"] = record_hash(record, self._key)
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n"
        data = (b"\n" if newline_first else b"") + line.encode("utf-8")

        if size > 0 and size + len(data) > self.max_bytes:
            self._rotate()
            size, data = 0, line.encode("utf-8")
        inode = self._write_durably(data, size)
        new_tip = ChainTip(record["seq"], record["hash"])
        self._cached = _Cached(new_tip, size + len(data), inode)
        self._write_head(new_tip)
        return record

    def _tip_from_disk(self, st: os.stat_result | None) -> tuple[ChainTip, bool]:
        """Where the chain ends: the live file's last record, else the newest rotated file's, else the
        anchor; a signed head further ahead wins (lines were cut off: keep the gap visible)."""
        tip: ChainTip | None = None
        problem: str | None = None
        newline_first = False
        if st is not None and st.st_size > 0:
            tail = read_tail(self.path)
            tip, problem, newline_first = tail.tip, tail.problem, not tail.ends_with_newline
        else:
            try:
                tip = read_tail(rotated(self.path, 1)).tip
            except FileNotFoundError:
                tip, _ = read_tip(self._anchor_path, "anchor", self._key)
        head, _ = read_tip(self._head_path, "head", self._key)
        if head is not None and (tip is None or head.seq > tip.seq):
            tip = head
        if tip is None:
            if problem is not None:
                raise AuditError(f"cannot continue the audit chain in {self.path}: {problem}")
            # A new chain: a head at seq 0 first, so that a missing head is always suspicious.
            tip = ChainTip(0, GENESIS_HASH)
            self._write_head(tip)
        return tip, newline_first

    def _write_durably(self, data: bytes, size_before: int) -> int:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            try:
                # One write on an O_APPEND fd: the line lands whole, after every other writer's.
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"short write ({written} of {len(data)} bytes)")
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size_before)
                    os.fsync(fd)
                raise AuditError(
                    f"audit record not written to {self.path}: {exc.strerror or exc}; "
                    "the file was truncated back to its last complete record"
                ) from exc
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        return inode

    def _rotate(self) -> None:
        oldest = rotated(self.path, self.backups) if self.backups > 0 else self.path
        if oldest.exists():
            # Deleting the oldest file: keep a signed note of where the remaining chain starts.
            tail = read_tail(oldest)
            if tail.tip is not None:
                _atomic_write(self._anchor_path, tail.tip.to_json("anchor", self._key))
            oldest.unlink()
        for n in range(self.backups - 1, 0, -1):
            if rotated(self.path, n).exists():
                os.replace(rotated(self.path, n), rotated(self.path, n + 1))
        if self.backups > 0 and self.path.exists():
            os.replace(self.path, rotated(self.path, 1))
        _fsync_dir(self.path.parent)
        self._cached = None

    def _write_head(self, tip: ChainTip) -> None:
        try:
            _atomic_write(self._head_path, tip.to_json("head", self._key))
        except OSError as exc:
            # The record itself is durable; a lagging head only weakens truncation detection.
            from .._internal import selflog

            selflog.warn_once_a_minute(
                "audit-head", "b2b_otel: could not update %s: %s", self._head_path, exc
            )

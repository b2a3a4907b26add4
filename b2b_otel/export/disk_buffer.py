"""The export disk buffer: batches the backend did not take wait on disk, bounded, and are replayed.

Opt-in with ``B2B_OTEL_EXPORT_BUFFER_DIR``; ``docs/export-buffer.md`` explains the design. In short:

- the unit is the OTLP export request exactly as the exporter sends it (the scrubbed batch, encoded by
  ``opentelemetry-exporter-otlp-proto-common``), so a replay is byte for byte the request that failed;
- one file per batch, ``<dir>/<signal>/<owner>/<time>-<pid>-<seq>.otlp``: a 24-byte header (magic,
  version, length, item count, CRC-32 of the payload, CRC-32 of the header), then the payload. A torn
  write fails the check and is skipped and counted (``reason=buffer_corrupt``), never fatal;
- every process writes in its own owner folder, held with ``flock`` while it lives; a process adopts the
  folders of dead ones (the lock is free) at start and while idle, so nothing waits for its old owner;
- a forked child shares nothing of its parent's buffer (``os.register_at_fork``): it lets go of its copy
  of the parent's lock file, forgets the parent's batches (the parent still owns and replays them),
  gets fresh thread locks (one held by another thread at the fork would never be released in the
  child) and claims a folder of its own when it first has a batch to keep;
- the bytes on disk of one signal and process stay under ``max_bytes``: the oldest batches go first,
  counted as ``b2b.telemetry.dropped{reason=buffer_full}``;
- replay runs in a background thread with exponential backoff; while the backend is down new batches go
  straight to disk, so the export thread does not wait for a dead backend once per batch. At shutdown
  the thread stops at once; what is on disk stays and the next process start replays it.
"""

from __future__ import annotations

import fcntl
import os
import random
import secrets
import struct
import threading
import time
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import semconv as sc
from .._internal import selflog
from .._internal.sdk_private import SendOutcome, otlp_byte_sender
from .health import DropCounter, ObservedLogExporter, ObservedSpanExporter, SignalHealth, record_loss
from .otlp_encode import SpanEncoder

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
SUFFIX = ".otlp"
LOCK_NAME = ".lock"
_DIR_MODE = 0o700  # the files hold telemetry: owner only
_FILE_MODE = 0o600

# --- one record: header + payload --------------------------------------------------------------------

MAGIC = b"B2BQ"
VERSION = 1
# magic, version, 3 reserved bytes, payload length, item count, CRC-32 of the payload; then CRC-32 of those.
_FIELDS = struct.Struct(">4sB3xIII")
_HEADER = struct.Struct(">4sB3xIIII")
HEADER_SIZE = _HEADER.size


class CorruptRecord(ValueError):
    """A record that fails its checks; ``items`` is its item count when the header itself is intact."""

    def __init__(self, reason: str, items: int = 0) -> None:
        super().__init__(reason)
        self.items = items


def encode_record(payload: bytes, items: int) -> bytes:
    """The bytes of one record: the checked header, then ``payload``."""
    fields = _FIELDS.pack(MAGIC, VERSION, len(payload), items, zlib.crc32(payload))
    return fields + struct.pack(">I", zlib.crc32(fields)) + payload


def read_header(header: bytes) -> tuple[int, int, int]:
    """(payload length, item count, payload CRC-32) of an intact header; CorruptRecord otherwise."""
    if len(header) < HEADER_SIZE:
        raise CorruptRecord("short header")
    magic, version, length, items, crc, header_crc = _HEADER.unpack_from(header)
    if magic != MAGIC or zlib.crc32(header[: _FIELDS.size]) != header_crc:
        raise CorruptRecord("bad header")
    if version != VERSION:
        raise CorruptRecord(f"unknown version {version}")
    return length, items, crc


def decode_record(data: bytes) -> tuple[bytes, int]:
    """(payload, item count) of a whole record; CorruptRecord when its length or checksum is off."""
    length, items, crc = read_header(data[:HEADER_SIZE])
    payload = data[HEADER_SIZE:]
    if len(payload) != length:
        raise CorruptRecord(f"length {len(payload)} instead of {length}", items)
    if zlib.crc32(payload) != crc:
        raise CorruptRecord("checksum mismatch", items)
    return payload, items


# --- the files of one signal -------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One batch on disk."""

    path: Path
    size: int  # bytes of the file, header included
    items: int  # spans or log records in it


@dataclass
class _Counts:
    stored: int = 0  # items written to disk
    replayed: int = 0  # items the backend took from disk
    adopted: int = 0  # batches taken over from dead processes
    corrupt_batches: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


DropHook = Callable[[str, int], None]


class BatchStore:
    """The batches of one signal on disk: append, take the oldest, bounded by ``max_bytes``.

    Thread-safe. Files are written and deleted only by the process that owns their folder; a folder
    whose owner died is adopted whole (its files renamed into the adopter's folder, names kept, so the
    oldest still sort first).
    """

    def __init__(self, root: Path, signal: str, max_bytes: int, on_drop: DropHook) -> None:
        self.signal_dir = Path(root) / signal
        self.max_bytes = max_bytes
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._entries: deque[Entry] = deque()
        self._inflight: Entry | None = None
        self._bytes = 0
        self._seq = 0
        self._counts = _Counts()
        self._closed = False
        self._lock_fd = -1
        self._pid = os.getpid()
        self._unclaimed = False  # a forked child claims its own folder when it first keeps a batch
        _make_dir(Path(root))
        _make_dir(self.signal_dir)
        self.own_dir = self._claim_own_dir()
        _STORES.add(self)
        self.adopt_orphans()

    # --- ownership

    def _claim_own_dir(self) -> Path:
        """A new folder, locked before it gets its final name, so no one adopts it half-made."""
        token = secrets.token_hex(4)
        staging = self.signal_dir / f".new-{os.getpid()}-{token}"
        _make_dir(staging)
        fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        final = self.signal_dir / f"{os.getpid()}-{token}"
        os.rename(staging, final)
        self._lock_fd = fd
        return final

    def _after_fork_in_child(self) -> None:
        """In a forked child, right after the fork (``os.register_at_fork``): share nothing of the parent's.

        The lock may have been held by another thread of the parent at the fork: a fresh one. The
        parent's batches stay the parent's; the child's folder is claimed when it first keeps one.
        """
        self._lock = threading.Lock()
        self._forget_parent()

    def _forget_parent(self) -> None:
        self._pid = os.getpid()
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            try:
                os.close(fd)  # the child's copy only; the parent's flock stays held by its own
            except OSError:
                pass
        self._entries.clear()
        self._inflight = None
        self._bytes = 0
        self._seq = 0
        self._counts = _Counts()
        self._unclaimed = not self._closed

    def _check_fork(self) -> None:
        """Under the lock: a fork the at-fork hook did not see (a fork outside ``os.fork``), and the
        folder of a forked child, claimed on first use."""
        if os.getpid() != self._pid:
            self._forget_parent()
        if self._unclaimed:
            self.own_dir = self._claim_own_dir()
            self._unclaimed = False

    def adopt_orphans(self) -> int:
        """Take over the batches of dead processes' folders; returns how many. Never raises."""
        adopted: list[Entry] = []
        corrupt: list[int] = []
        if self._unclaimed or os.getpid() != self._pid:
            return 0  # a forked child adopts once it has a folder of its own to adopt into
        try:
            candidates = sorted(self.signal_dir.iterdir())
        except OSError:
            return 0
        for folder in candidates:
            if folder == self.own_dir or folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                adopted += self._adopt(folder, corrupt)
            except OSError:
                continue
        with self._lock:
            if self._closed:
                return 0
            merged = sorted([*self._entries, *adopted], key=lambda e: e.path.name)
            self._entries = deque(merged)
            self._bytes += sum(e.size for e in adopted)
            self._counts.adopted += len(adopted)
            self._counts.corrupt_batches += len(corrupt)
            evicted = self._evict_for(0)
        for items in corrupt:
            self._drop(sc.ReasonValues.BUFFER_CORRUPT, items)
        self._discard(evicted)
        return len(adopted)

    def _adopt(self, folder: Path, corrupt: list[int]) -> list[Entry]:
        lock_path = folder / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            fd = -1  # an owner always creates its lock first: a folder without one is dead
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return []  # its owner lives
            entries: list[Entry] = []
            for path in sorted(folder.glob(f"*{SUFFIX}")):
                target = self.own_dir / path.name
                try:
                    with open(path, "rb") as handle:
                        header = handle.read(HEADER_SIZE)
                    _, items, _ = read_header(header)
                except CorruptRecord:
                    corrupt.append(0)
                    _unlink(path)
                    continue
                os.rename(path, target)
                entries.append(Entry(target, target.stat().st_size, items))
            _unlink(lock_path)
            for leftover in folder.iterdir():
                _unlink(leftover)
            folder.rmdir()
            return entries
        finally:
            if fd >= 0:
                os.close(fd)

    # --- writing

    def append(self, payload: bytes, items: int) -> bool:
        """Keep one batch; the oldest go first when the cap needs room. False when it was not kept."""
        record = encode_record(payload, items)
        size = len(record)
        with self._lock:
            if self._closed:
                return False
            self._check_fork()
            if size > self.max_bytes:
                evicted, fits = [], False
            else:
                evicted = self._evict_for(size)
                fits = self._bytes + size <= self.max_bytes
            if fits:
                self._bytes += size  # reserved before the write, so two writers cannot both fit
                self._seq += 1
                path = self.own_dir / f"{time.time_ns():020d}-{os.getpid()}-{self._seq:08d}{SUFFIX}"
        self._discard(evicted)
        if not fits:
            self._drop(sc.ReasonValues.BUFFER_FULL, items)
            return False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            try:
                view = memoryview(record)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            _unlink(path)
            with self._lock:
                self._bytes -= size
            selflog.warn_once_a_minute(
                f"disk-buffer-write-{self.signal_dir.name}",
                "b2b_otel: could not write to the export buffer %s (%s)",
                self.own_dir,
                exc.strerror or type(exc).__name__,
            )
            return False
        with self._lock:
            if self._closed:
                return True  # on disk: the next process replays it
            self._entries.append(Entry(path, size, items))
            self._counts.stored += items
        return True

    def _evict_for(self, size: int) -> list[Entry]:
        """Under the lock: take the oldest entries off until ``size`` more bytes fit."""
        evicted: list[Entry] = []
        while self._entries and self._bytes + size > self.max_bytes:
            entry = self._entries.popleft()
            self._bytes -= entry.size
            evicted.append(entry)
        return evicted

    def _discard(self, evicted: Sequence[Entry]) -> None:
        for entry in evicted:
            _unlink(entry.path)
            self._drop(sc.ReasonValues.BUFFER_FULL, entry.items)

    def _drop(self, reason: str, items: int) -> None:
        with self._lock:
            self._counts.dropped[reason] = self._counts.dropped.get(reason, 0) + items
        try:
            self._on_drop(reason, items)
        except Exception:
            pass

    # --- replaying

    def take(self) -> tuple[Entry, bytes] | None:
        """The oldest intact batch and its payload, held until ``done`` or ``give_back``; None if empty.

        Corrupt batches met on the way are deleted and counted.
        """
        while True:
            with self._lock:
                if self._closed or self._inflight is not None:
                    return None
                self._check_fork()
                if not self._entries:
                    return None
                entry = self._entries.popleft()
                self._inflight = entry
            try:
                payload, _ = decode_record(entry.path.read_bytes())
                return entry, payload
            except (CorruptRecord, OSError) as exc:
                items = exc.items if isinstance(exc, CorruptRecord) else 0
                missing = isinstance(exc, FileNotFoundError)
                self._forget(entry)
                if not missing:
                    with self._lock:
                        self._counts.corrupt_batches += 1
                    self._drop(sc.ReasonValues.BUFFER_CORRUPT, items)
                    selflog.warn_once_a_minute(
                        f"disk-buffer-corrupt-{self.signal_dir.name}",
                        "b2b_otel: skipped a damaged batch in the export buffer (%s)",
                        exc,
                    )

    def done(self, entry: Entry, replayed: bool) -> None:
        """The held batch is finished (sent, or refused for good): delete it."""
        self._forget(entry)
        if replayed:
            with self._lock:
                self._counts.replayed += entry.items

    def give_back(self, entry: Entry) -> None:
        """The held batch could not be sent: it stays the oldest."""
        with self._lock:
            if self._inflight is entry:
                self._inflight = None
                if not self._closed:
                    self._entries.appendleft(entry)

    def _forget(self, entry: Entry) -> None:
        _unlink(entry.path)
        with self._lock:
            if self._inflight is entry:
                self._inflight = None
                self._bytes -= entry.size

    # --- state

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries) + (self._inflight is not None)

    def stats(self) -> dict[str, Any]:
        """What ``health()`` shows: bytes, batches and items on disk, stored, replayed, dropped."""
        with self._lock:
            held = [*self._entries, *([self._inflight] if self._inflight else [])]
            return {
                "dir": str(self.own_dir),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "batches": len(held),
                "items": sum(e.items for e in held),
                "stored": self._counts.stored,
                "replayed": self._counts.replayed,
                "adopted_batches": self._counts.adopted,
                "corrupt_batches": self._counts.corrupt_batches,
                "dropped": dict(self._counts.dropped),
            }

    def close(self) -> None:
        """Stop using the folder and release its lock: what is left is adopted by the next process."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0 and os.getpid() == self._pid:
            os.close(fd)


# Every store and replayer of this process, for the at-fork hook (weakly: a closed one goes away).
_STORES: weakref.WeakSet[BatchStore] = weakref.WeakSet()
_REPLAYERS: weakref.WeakSet[_Replaying] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork_in_child()
    for replayer in list(_REPLAYERS):
        replayer._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _make_dir(path: Path) -> None:
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, _DIR_MODE)
    except OSError:
        pass


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


# --- sending live, keeping, replaying ----------------------------------------------------------------


class _Replaying:
    """What the span and log wrappers share: send a batch, keep it on disk when that fails, replay it.

    The export thread sends while the backend answers; after a retryable failure it only writes to
    disk, and the replay thread probes the backend with the oldest batch, backing off exponentially.
    The first success there sends the export thread back to the backend.
    """

    IDLE_S = 30.0  # how often an idle replay thread looks for dead processes' batches

    def __init__(
        self,
        store: BatchStore,
        send: Callable[[bytes], SendOutcome],
        name: str,
        health: SignalHealth,
        on_drop: DropCounter | None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.store = store
        self._send_bytes = send
        self._name = name
        self._health = health
        self._on_drop = on_drop
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._backend_down = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._thread_lock = threading.Lock()
        _REPLAYERS.add(self)
        if len(store):
            self._ensure_thread()

    def _after_fork_in_child(self) -> None:
        """Fresh locks and events (another thread may have held one at the fork); no replay thread."""
        stopped = self._stop.is_set()
        self._stop = threading.Event()
        if stopped:
            self._stop.set()
        self._wake = threading.Event()
        self._thread_lock = threading.Lock()
        self._thread = None
        self._thread_pid = 0
        self._backend_down = False  # the child finds out for itself

    def _send(self, payload: bytes) -> SendOutcome:
        try:
            return self._send_bytes(payload)
        except Exception as exc:
            return False, True, type(exc).__name__

    def export(self, encode: Callable[[], bytes], count: int) -> bool:
        """Send or keep one batch; False when it is lost (counted). Never raises."""
        try:
            payload = encode()
        except Exception as exc:
            self._lost(type(exc).__name__, count)
            return False
        if not self._backend_down and not self._stop.is_set():
            ok, retryable, error = self._send(payload)
            if ok:
                self._health.success(count)
                return True
            if not retryable:
                self._lost(error or "refused", count)
                return False
            self._backend_down = True
            self._health.failed_attempt(f"{error}; kept on disk")
            self._warn_down(error)
        kept = self.store.append(payload, count)
        if not kept and len(payload) + HEADER_SIZE <= self.store.max_bytes:
            # Not the cap (that drop is counted by the store as buffer_full): the disk failed.
            self._health.drop(sc.ReasonValues.EXPORT_FAILED, count, self._on_drop)
        self._ensure_thread()
        self._wake.set()
        return kept

    def _lost(self, error: str, count: int) -> None:
        record_loss(self._health, self._name, error, count, self._on_drop)

    def _warn_down(self, error: str | None) -> None:
        selflog.warn_once_a_minute(
            f"export-buffer-{self._health.signal}-{self._name}",
            "b2b_otel: %s export of %s failed (%s); batches are kept in %s and replayed",
            self._name,
            self._health.signal,
            error,
            self.store.own_dir,
        )

    def _ensure_thread(self) -> None:
        with self._thread_lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._stop.is_set() or (alive and self._thread_pid == os.getpid()):
                return
            self._thread_pid = os.getpid()  # after a fork the parent's thread is gone
            self._thread = threading.Thread(
                target=self._replay, name=f"b2b-otel-replay-{self._health.signal}", daemon=True
            )
            self._thread.start()

    def _replay(self) -> None:
        delay = self._backoff_s
        last_adopt = time.monotonic()
        while not self._stop.is_set():
            try:
                self._wake.clear()  # before looking, so a batch kept meanwhile wakes the wait below
                taken = self.store.take()
                if taken is None:
                    self._wake.wait(self.IDLE_S)
                    if time.monotonic() - last_adopt >= self.IDLE_S:
                        last_adopt = time.monotonic()
                        self.store.adopt_orphans()
                    continue
                entry, payload = taken
                ok, retryable, error = self._send(payload)
                if ok:
                    self.store.done(entry, replayed=True)
                    self._health.success(entry.items)
                    self._backend_down = False
                    delay = self._backoff_s
                    continue
                if not retryable:
                    self.store.done(entry, replayed=False)
                    self._lost(error or "refused", entry.items)
                    continue
                self.store.give_back(entry)
                self._backend_down = True
                self._health.failed_attempt(f"{error}; kept on disk")
                self._stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._max_backoff_s)
            except Exception as exc:  # the thread must outlive any surprise
                selflog.warn_once_a_minute(
                    f"export-buffer-replay-{self._health.signal}", "b2b_otel: export buffer replay: %r", exc
                )
                self._stop.wait(self._max_backoff_s)

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop replaying; what is on disk stays for the next process."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        self.store.close()


class BufferedSpanExporter(SpanExporter):
    """Wraps an OTLP span exporter: records health like ``ObservedSpanExporter``, never raises, and
    keeps what the backend did not take on disk for replay."""

    def __init__(self, inner: SpanExporter, core: _Replaying) -> None:
        self.inner = inner
        self.core = core
        self.encoder = SpanEncoder()  # the stock encoder's request bytes, cheaper (otlp_encode.py)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        kept = self.core.export(lambda: self.encoder.encode(spans), len(spans))
        return SpanExportResult.SUCCESS if kept else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.core.stop()
        try:
            self.inner.shutdown()
        except Exception:
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing waits in memory here; the disk backlog is replayed in the background


class BufferedLogExporter(LogRecordExporter):
    """Wraps an OTLP log record exporter like ``BufferedSpanExporter``."""

    def __init__(self, inner: LogRecordExporter, core: _Replaying) -> None:
        self.inner = inner
        self.core = core

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        kept = self.core.export(lambda: encode_logs(batch).SerializePartialToString(), len(batch))
        return LogRecordExportResult.SUCCESS if kept else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self.core.stop()
        try:
            self.inner.shutdown()  # type: ignore[no-untyped-call]
        except Exception:
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --- composition -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BufferConfig:
    """Where and how much: ``B2B_OTEL_EXPORT_BUFFER_DIR`` and ``B2B_OTEL_EXPORT_BUFFER_MAX_SIZE``."""

    directory: Path
    max_bytes: int = DEFAULT_MAX_BYTES
    # The replay thread's backoff while the backend is down: doubled from the first to the most.
    first_backoff_s: float = 1.0
    max_backoff_s: float = 10.0

    @classmethod
    def of(cls, directory: str | None, max_bytes: int) -> BufferConfig | None:
        """The configuration, or None when buffering is off (no folder)."""
        return None if directory is None else cls(Path(directory), max_bytes)


def _core(
    inner: Any,
    signal: str,
    name: str,
    health: SignalHealth,
    on_drop: DropCounter | None,
    config: BufferConfig,
) -> _Replaying | None:
    if not name.startswith("otlp"):
        return None  # console output has nothing to wait for
    send = otlp_byte_sender(inner, signal)
    if send is None:
        selflog.warn_once_a_minute(
            f"export-buffer-unsupported-{signal}",
            "b2b_otel: this OpenTelemetry exporter cannot send stored bytes; %s go without a disk buffer",
            signal,
        )
        return None

    def count(reason: str, items: int) -> None:
        health.drop(reason, items, on_drop)

    store = BatchStore(config.directory, signal, config.max_bytes, count)
    health.buffer = store.stats
    return _Replaying(store, send, name, health, on_drop, config.first_backoff_s, config.max_backoff_s)


def span_exporter(
    inner: SpanExporter,
    name: str,
    health: SignalHealth,
    on_drop: DropCounter | None,
    config: BufferConfig | None,
) -> SpanExporter:
    """The observed span exporter: with a disk buffer for OTLP when ``config`` is given."""
    core = None if config is None else _core(inner, sc.SignalValues.TRACES, name, health, on_drop, config)
    if core is None:
        return ObservedSpanExporter(inner, name, health, on_drop)
    return BufferedSpanExporter(inner, core)


def log_exporter(
    inner: LogRecordExporter,
    name: str,
    health: SignalHealth,
    on_drop: DropCounter | None,
    config: BufferConfig | None,
) -> LogRecordExporter:
    """The observed log record exporter: with a disk buffer for OTLP when ``config`` is given."""
    core = None if config is None else _core(inner, sc.SignalValues.LOGS, name, health, on_drop, config)
    if core is None:
        return ObservedLogExporter(inner, name, health, on_drop)
    return BufferedLogExporter(inner, core)

"""The audit trail's writer: ``audit.log``, one hash-chained JSON record a line, durable on return.

The chain's format (hashes, head and anchor records, file names) is in :mod:`.chain`. With a signing
key the writer also keeps the RFC 6962 tree over the records (its frontier lives in the head file,
rewritten after every append anyway, so the tree costs no extra fsync), stores ``details`` values as
salted commitments and appends signed checkpoint lines every ``checkpoint_interval`` seconds (from a
background thread) and at :meth:`AuditLog.close`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._internal.errors import AuditError
from .._internal.formats import iso, json_safe
from . import merkle
from .chain import (
    ANCHOR_SUFFIX,
    END_SUFFIX,
    GENESIS_HASH,
    HEAD_SUFFIX,
    LOCK_SUFFIX,
    MARK_HMAC_KEY_ID,
    MARK_KEY_ID,
    MARK_LOG_ID,
    MARK_MODE,
    MARKS,
    MODE_HMAC,
    MODE_SHA256,
    MODE_SIGNED,
    SALT_BYTES,
    STATE_FIELDS,
    ChainTip,
    checkpoint_hash,
    committed_record,
    hmac_key_id,
    leaf_data,
    normalise_key,
    read_state,
    record_hash,
    rotated,
    sidecar,
    state_json,
    temp_name,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_T = TypeVar("_T")
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


def dumps_line(obj: Mapping[str, Any]) -> bytes:
    """One line of ``audit.log``: compact JSON in the object's own field order, UTF-8, newline."""
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n").encode(
        "utf-8"
    )


# --- files -------------------------------------------------------------------------------------------


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Write ``data`` to a temporary file, fsync it, rename it over ``path``, fsync the folder."""
    tmp = temp_name(path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def lines_backwards(path: Path) -> Iterator[bytes]:
    """The lines of ``path`` from the last to the first (without newlines), reading from the end."""
    with path.open("rb") as f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            f.seek(pos)
            rest = f.read(step) + rest
            parts = rest.split(b"\n")
            rest = parts[0]
            yield from reversed(parts[1:])
        yield rest


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """A line as a JSON object, or None."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def is_checkpoint(obj: Mapping[str, Any]) -> bool:
    """Whether a parsed line is a checkpoint line (not an audit record)."""
    return "checkpoint" in obj and "seq" not in obj


@dataclass(frozen=True)
class _Tail:
    """The end of a log file: its last record's (seq, hash), or why it has none usable."""

    tip: ChainTip | None
    ends_with_newline: bool
    problem: str | None = None


def read_tail(path: Path) -> _Tail:
    """The last record of ``path`` (checkpoint lines skipped), reading only the end of the file.

    Raises FileNotFoundError when the file is absent.
    """
    if path.stat().st_size == 0:
        return _Tail(None, True)
    ends: bool | None = None
    for raw in lines_backwards(path):
        if ends is None:
            ends = raw == b""
            if ends:
                continue
        if not raw.strip():
            continue
        obj = parse_line(raw)
        if obj is not None and is_checkpoint(obj):
            continue
        try:
            assert obj is not None
            seq, hash_ = obj["seq"], obj["hash"]
            if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(hash_, str):
                raise TypeError
        except (AssertionError, TypeError, KeyError):
            return _Tail(None, bool(ends), f"the last line of {path} is not an audit record")
        return _Tail(ChainTip(seq, hash_), bool(ends))
    return _Tail(None, bool(ends))


# --- the log's state ----------------------------------------------------------------------------------


@dataclass
class _State:
    """Where the log stands: the chain's tip, how it is written, the tree and the last checkpoint."""

    tip: ChainTip
    mode: str | None  # None: a log written before modes were recorded
    key_id: str | None = None
    log_id: str | None = None
    hmac_key_id: str | None = None
    tree: merkle.Frontier | None = None
    checkpoint: dict[str, Any] = field(default_factory=dict)  # number, hash, tree_size, at

    def to_state(self) -> dict[str, Any]:
        if self.mode is None:
            return {}
        state: dict[str, Any] = {"mode": self.mode}
        for name in ("key_id", "log_id", "hmac_key_id"):
            if getattr(self, name) is not None:
                state[name] = getattr(self, name)
        if self.tree is not None:
            state["tree"] = self.tree.to_json()
        if self.checkpoint:
            state["checkpoint"] = dict(self.checkpoint)
        return state

    def copy(self) -> _State:
        return replace(self, tree=self.tree.copy() if self.tree else None, checkpoint=dict(self.checkpoint))


def _state_of(tip: ChainTip, state: Mapping[str, Any]) -> _State:
    """A ``_State`` from a head's or anchor's state fields (bad tree state: None, rebuilt later)."""
    tree: merkle.Frontier | None = None
    if "tree" in state:
        try:
            tree = merkle.Frontier.from_json(state["tree"])
        except ValueError:
            tree = None
    checkpoint = state.get("checkpoint")
    return _State(
        tip,
        state.get("mode") if isinstance(state.get("mode"), str) else None,
        state.get("key_id"),
        state.get("log_id"),
        state.get("hmac_key_id"),
        tree,
        dict(checkpoint) if isinstance(checkpoint, dict) else {},
    )


@dataclass(frozen=True)
class _Cached:
    state: _State
    size: int
    inode: int


class AuditLog:
    """Append-only, hash-chained, fsync'ed audit log shared by the processes of one service.

    ``append`` returns only once the line is on disk; otherwise it raises :class:`AuditError`
    and leaves no partial line. Files grow to ``max_bytes`` and then rotate to ``audit.log.1`` ..
    ``audit.log.{backups}``; the chain continues across files. With ``signing_key`` the records are
    leaves of a Merkle tree and signed checkpoints are appended (see the module docstring).

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
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_interval: float = 10.0,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if backups < 0:
            raise ValueError("backups must be >= 0")
        if not checkpoint_interval > 0:
            raise ValueError("checkpoint_interval must be positive")
        self.path = Path(path)
        self._key = normalise_key(key)
        self.max_bytes = max_bytes
        self.backups = backups
        self._signing = signing_key
        self.checkpoint_interval = float(checkpoint_interval)
        self._key_id: str | None = None
        if signing_key is not None:
            from .signing import key_id

            self._key_id = key_id(signing_key.public_key())
        self._hmac_key_id = hmac_key_id(self._key) if self._key is not None else None
        self.mode = MODE_SIGNED if signing_key else MODE_HMAC if self._key else MODE_SHA256
        self._lock_path = sidecar(self.path, LOCK_SUFFIX)
        self._head_path = sidecar(self.path, HEAD_SUFFIX)
        self._anchor_path = sidecar(self.path, ANCHOR_SUFFIX)
        self._pid = os.getpid()
        self._thread_lock = threading.Lock()
        self._cached: _Cached | None = None
        # Called with each checkpoint this process wrote (outside the locks); never raises into append.
        self.on_checkpoint: Callable[[dict[str, Any]], None] | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._newline_first = False  # the file does not end with a newline (a crash mid-line)
        self._inode = 0
        self._size_after = 0
        # Checkpoints this process failed to write (health()): how many, and the last error.
        self.checkpoint_failures = 0
        self.checkpoint_error: str | None = None
        # The last checkpoint and tree size this process saw (kept when the cache is dropped on an error).
        self._known: tuple[dict[str, Any], int | None] = ({}, None)

    def __repr__(self) -> str:  # never shows the key
        return f"AuditLog({str(self.path)!r}, mode={self.mode})"

    @property
    def signed(self) -> bool:
        return self._signing is not None

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
        self._after_fork()
        with self._thread_lock:
            record = self._locked(lambda state: self._append_record(state, fields))
        if self.signed and not self._closed:
            self._start_ticker()
        return record

    def checkpoint(self, force: bool = True) -> dict[str, Any] | None:
        """Append a signed checkpoint of the tree now (``force``) or when the interval has passed.

        Returns the checkpoint, or None when the log is not signed or the tree did not grow since the
        last checkpoint. Raises AuditError when the line could not be written.
        """
        if not self.signed or not self.path.exists():
            return None  # nothing to sign (and a log moved away is not re-created by a checkpoint)
        self._after_fork()
        with self._thread_lock:
            try:
                written = self._locked(lambda state: self._append_checkpoint(state, force))
            except BaseException as exc:
                self.checkpoint_failures += 1
                self.checkpoint_error = f"{type(exc).__name__}: {exc}"[:200]
                raise
            self.checkpoint_error = None
        if written is not None and self.on_checkpoint is not None:
            try:
                self.on_checkpoint(written)
            except Exception:
                pass
        return written

    def checkpoint_status(self) -> dict[str, Any] | None:
        """The checkpoints as ``health()`` reports them, from what this process last saw (no I/O).

        None for a log that is not signed. ``last`` is the log's newest checkpoint this process knows
        of (written by any process), ``unsigned_records`` the records after it, ``failures`` the
        checkpoints this process could not write and ``error`` the last one's error (None once one
        succeeds again).
        """
        if not self.signed:
            return None
        known, size = self._known
        last: dict[str, Any] | None = None
        if known:
            at = known.get("at")
            last = {
                "number": known.get("number"),
                "tree_size": known.get("tree_size"),
                "time": iso(at) if isinstance(at, (int, float)) else None,
            }
        unsigned = None if size is None else max(0, size - int(known.get("tree_size", 0) or 0))
        return {
            "interval_seconds": self.checkpoint_interval,
            "last": last,
            "unsigned_records": unsigned,
            "failures": self.checkpoint_failures,
            "error": self.checkpoint_error,
        }

    def close(self) -> None:
        """Stop the checkpoint thread and write the last checkpoint (at shutdown). Never raises."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(5.0)
        if self.signed and self._cached_or_unknown_growth():
            try:
                self.checkpoint(force=True)
            except Exception as exc:
                _warn("audit-checkpoint", "b2b_otel: the last audit checkpoint was not written: %s", exc)

    # --- the checkpoint thread ---------------------------------------------------------------------------

    def _cached_or_unknown_growth(self) -> bool:
        cached = self._cached
        if cached is None or cached.state.tree is None:
            return True
        return bool(cached.state.tree.size != cached.state.checkpoint.get("tree_size", 0))

    def _start_ticker(self) -> None:
        if self._ticker is not None and self._ticker.is_alive():
            return
        self._stop = threading.Event()
        ticker = threading.Thread(target=self._tick_loop, name="b2b-otel-audit-checkpoint", daemon=True)
        self._ticker = ticker
        ticker.start()
        atexit.register(self.close)

    def _tick_loop(self) -> None:
        stop = self._stop
        while not stop.wait(self.checkpoint_interval):
            try:
                self.checkpoint(force=False)
            except Exception as exc:
                _warn("audit-checkpoint", "b2b_otel: audit checkpoint not written: %s", exc)

    def _after_fork(self) -> None:
        if os.getpid() != self._pid:
            # A forked child: the parent's cache, (possibly held) thread lock and thread are not ours.
            self._pid = os.getpid()
            self._thread_lock = threading.Lock()
            self._cached = None
            self._ticker = None

    # --- under the locks ---------------------------------------------------------------------------------

    def _locked(self, action: Callable[[_State], _T]) -> _T:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o640)
            try:
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX)
                except OSError as exc:
                    raise AuditError(f"cannot lock {self._lock_path}: {exc.strerror or exc}") from exc
                return self._with_state(action)
            finally:
                os.close(lock_fd)  # also releases the flock
        except AuditError:
            self._cached = None
            raise
        except OSError as exc:
            self._cached = None
            # Name the file that failed when it is not the log itself (its lock, head or a rotated file).
            other = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(self.path) else ""
            problem = exc.strerror or exc
            raise AuditError(f"audit record not written to {self.path}{other}: {problem}") from exc

    def _with_state(self, action: Callable[[_State], _T]) -> _T:
        try:
            st: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            st = None
        cached = self._cached
        self._newline_first = False
        if cached is not None and st is not None and (st.st_size, st.st_ino) == (cached.size, cached.inode):
            state = cached.state.copy()
        else:
            state = self._state_from_disk(st)
        self._check_mode(state)
        return action(state)

    def _append_record(self, state: _State, fields: dict[str, Any]) -> dict[str, Any]:
        tip = state.tip
        details: dict[str, Any] = fields["details"]
        signed = self.signed
        if any(k in MARKS for k in details):
            # The marker keys are b2b-otel's: an application's own key of that name is kept beside them.
            details = {(f"app.{k}" if k in MARKS else k): v for k, v in details.items()}
        if signed:
            details = {k: {"salt": secrets.token_hex(SALT_BYTES), "value": v} for k, v in details.items()}
        if tip.seq == 0 and state.mode in (MODE_HMAC, MODE_SIGNED):
            # The first record says how the log is written, so a verifier without the key fails.
            marker = {
                MARK_MODE: self.mode,
                MARK_KEY_ID: self._key_id or self._hmac_key_id,
                MARK_LOG_ID: state.log_id,
            }
            if signed and self._hmac_key_id is not None:
                marker[MARK_HMAC_KEY_ID] = self._hmac_key_id
            details = {**marker, **details}
        record: dict[str, Any] = {"seq": tip.seq + 1, "ts": _utc_now(), **fields, "details": details}
        record["prev_hash"] = tip.hash
        committed = committed_record(record, signed)
        record["hash"] = record_hash(committed, self._key)
        line = dumps_line(record)
        self._write(line, rotate_ok=True, state=state)
        state.tip = ChainTip(record["seq"], record["hash"])
        if signed:
            assert state.tree is not None
            state.tree.append(merkle.leaf_hash(leaf_data({**committed, "hash": record["hash"]})))
        self._finish(state)
        return record

    def _append_checkpoint(self, state: _State, force: bool) -> dict[str, Any] | None:
        assert self._signing is not None and state.tree is not None
        last = state.checkpoint
        if state.tree.size == 0 or state.tree.size == last.get("tree_size", 0):
            return None
        at = last.get("at")
        elapsed = time.time() - at if isinstance(at, (int, float)) else None
        if not force and elapsed is not None and 0 <= elapsed < self.checkpoint_interval * 0.9:
            return None  # another process wrote one within this interval (a clock set back: due now)
        from .signing import sign

        now = time.time()
        checkpoint: dict[str, Any] = {
            "checkpoint": int(last.get("number", 0)) + 1,
            "log_id": state.log_id,
            "tree_size": state.tree.size,
            "root_hash": state.tree.root().hex(),
            "ts": iso(now),
            "prev_checkpoint_hash": last.get("hash", GENESIS_HASH),
            "key_id": self._key_id,
        }
        checkpoint["signature"] = sign(self._signing, checkpoint)
        self._write(dumps_line(checkpoint), rotate_ok=False, state=state)
        state.checkpoint = {
            "number": checkpoint["checkpoint"],
            "hash": checkpoint_hash(checkpoint),
            "tree_size": checkpoint["tree_size"],
            "at": now,
        }
        self._finish(state)
        return checkpoint

    def _write(self, line: bytes, rotate_ok: bool, state: _State) -> None:
        st_size = self._size()
        data = (b"\n" if self._newline_first else b"") + line
        if rotate_ok and st_size > 0 and st_size + len(data) > self.max_bytes:
            self._rotate(state)
            st_size, data = 0, line
        self._inode = self._write_durably(data, st_size)
        self._size_after = st_size + len(data)
        self._newline_first = False

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def _finish(self, state: _State) -> None:
        self._cached = _Cached(state.copy(), self._size_after, self._inode)
        self._known = (dict(state.checkpoint), state.tree.size if state.tree is not None else None)
        self._write_head(state)

    def _check_mode(self, state: _State) -> None:
        """The log must be written as it was started: the same mode and keys (docs/audit.md)."""
        problem = mode_mismatch(
            state.mode,
            state.key_id,
            state.hmac_key_id,
            self.mode,
            self._key_id,
            self._hmac_key_id,
            state.tip.seq,
        )
        if problem is not None:
            raise AuditError(f"audit record not written to {self.path}: {problem}")

    def _state_from_disk(self, st: os.stat_result | None) -> _State:
        """Where the log stands: the live file's last record, else the newest rotated file's, else the
        anchor; a signed head further ahead wins (lines were cut off: keep the gap visible). The mode
        and the tree come from the head, completed from the file's tail when the head lags."""
        tip: ChainTip | None = None
        problem: str | None = None
        if st is not None and st.st_size > 0:
            tail = read_tail(self.path)
            tip, problem, self._newline_first = tail.tip, tail.problem, not tail.ends_with_newline
        else:
            try:
                tip = read_tail(rotated(self.path, 1)).tip
            except FileNotFoundError:
                tip, _, _ = read_state(self._anchor_path, "anchor", self._key)
        head_tip, head_state, _ = read_state(self._head_path, "head", self._key)
        if head_tip is not None and (tip is None or head_tip.seq > tip.seq):
            tip = head_tip
        if tip is None:
            if problem is not None:
                raise AuditError(f"cannot continue the audit chain in {self.path}: {problem}")
            # A new chain: a head at seq 0 first, so that a missing head is always suspicious.
            state = self._new_state()
            self._write_head(state)
            return state
        if head_tip is not None and head_state:
            state = _state_of(tip, head_state)
        elif head_tip is not None:
            state = _State(tip, None)  # a log begun before modes were recorded
        else:
            state = self._state_from_files(tip)
        if self.signed and state.mode == MODE_SIGNED:
            self._complete_tree(state, head_tip)
        return state

    def _new_state(self) -> _State:
        return _State(
            ChainTip(0, GENESIS_HASH),
            self.mode,
            self._key_id or self._hmac_key_id,
            secrets.token_hex(16),
            self._hmac_key_id if self.signed else None,
            merkle.Frontier() if self.signed else None,
        )

    def _state_from_files(self, tip: ChainTip) -> _State:
        """The head is gone: the mode from the first record's marker (or the anchor); the tree rebuilt."""
        files = [rotated(self.path, n) for n in range(self.backups, 0, -1)] + [self.path]
        files = [f for f in files if f.exists()]
        _, anchor_state, _ = read_state(self._anchor_path, "anchor", self._key)
        state = _State(tip, None)
        for path in files:
            for raw in path.open("rb"):
                obj = parse_line(raw)
                if obj is not None and not is_checkpoint(obj) and isinstance(obj.get("details"), dict):
                    if obj.get("seq") == 1:
                        marks = obj["details"]
                        mode = marks.get(MARK_MODE)
                        if not isinstance(mode, str):
                            # No marker: a plain log (its hash is plain SHA-256), or one begun before modes.
                            plain = record_hash(obj, None) == obj.get("hash")
                            mode = MODE_SHA256 if plain else None
                        state.mode = mode
                        state.key_id = marks.get(MARK_KEY_ID)
                        state.log_id = marks.get(MARK_LOG_ID)
                        state.hmac_key_id = marks.get(MARK_HMAC_KEY_ID)
                    elif anchor_state:
                        anchored = _state_of(tip, anchor_state)
                        state.mode, state.key_id, state.log_id = (
                            anchored.mode,
                            anchored.key_id,
                            anchored.log_id,
                        )
                        state.hmac_key_id = anchored.hmac_key_id
                    break
            break
        if state.mode == MODE_SIGNED:
            state.tree = None  # rebuilt from the files by _complete_tree
        return state

    def _complete_tree(self, state: _State, head_tip: ChainTip | None) -> None:
        """Bring the tree (and the last checkpoint) up to the chain's tip: from the live file's tail when
        the head lags a few records (a crash after the fsync of a line), else from all the files."""
        tree = state.tree
        if (
            tree is not None
            and tree.size == state.tip.seq
            and head_tip is not None
            and head_tip.seq == state.tip.seq
        ):
            return
        if tree is not None and tree.size <= state.tip.seq and self._catch_up_from_tail(state):
            return
        self._rebuild(state)

    def _catch_up_from_tail(self, state: _State) -> bool:
        assert state.tree is not None
        size = state.tree.size
        number = int(state.checkpoint.get("number", 0))
        later: list[dict[str, Any]] = []
        try:
            for raw in lines_backwards(self.path):
                obj = parse_line(raw) if raw.strip() else None
                if obj is None:
                    continue
                if is_checkpoint(obj):
                    if isinstance(obj.get("checkpoint"), int) and obj["checkpoint"] > number:
                        later.append(obj)
                    continue
                seq = obj.get("seq")
                if not isinstance(seq, int):
                    return False
                if seq <= size:
                    break
                later.append(obj)
            else:
                return False
        except FileNotFoundError:
            return False
        later.reverse()
        try:
            self._apply(state, later)
        except ValueError:
            return False
        return True

    def _apply(self, state: _State, lines: list[dict[str, Any]]) -> None:
        """Records into the tree, checkpoints into the state, in file order; ValueError: they do not fit."""
        assert state.tree is not None
        for obj in lines:
            if is_checkpoint(obj):
                state.checkpoint = {
                    "number": obj["checkpoint"],
                    "hash": checkpoint_hash(obj),
                    "tree_size": obj.get("tree_size"),
                    "at": time.time(),
                }
                continue
            if obj.get("seq") != state.tree.size + 1:
                raise ValueError("the records do not continue the tree")
            committed = committed_record(obj, True)
            state.tree.append(merkle.leaf_hash(leaf_data(committed)))

    def _rebuild(self, state: _State) -> None:
        """The tree from every file (and the anchor when the oldest files were rotated away)."""
        files = [rotated(self.path, n) for n in range(self.backups, 0, -1)] + [self.path]
        _, anchor_state, _ = read_state(self._anchor_path, "anchor", self._key)
        state.tree, state.checkpoint = None, {}
        for path in files:
            if not path.exists():
                continue
            objs = [o for o in (parse_line(raw) for raw in path.open("rb") if raw.strip()) if o is not None]
            if state.tree is None:
                first = next((o for o in objs if not is_checkpoint(o)), None)
                if first is None:
                    continue
                if first.get("seq") == 1:
                    state.tree = merkle.Frontier()
                else:
                    anchored = _state_of(state.tip, anchor_state) if anchor_state else None
                    if anchored is None or anchored.tree is None:
                        raise AuditError(
                            f"cannot continue the audit tree in {self.path}: the oldest records are gone "
                            "and the anchor holds no tree state"
                        )
                    state.tree, state.checkpoint = anchored.tree, anchored.checkpoint
            try:
                self._apply(state, objs)
            except (ValueError, KeyError, TypeError) as exc:
                raise AuditError(f"cannot continue the audit tree in {self.path}: {exc}") from exc
        if state.tree is None:
            state.tree = merkle.Frontier()
        if state.tree.size != state.tip.seq:
            raise AuditError(
                f"cannot continue the audit tree in {self.path}: the files hold {state.tree.size} records, "
                f"the chain is at seq {state.tip.seq} (run b2b-otel audit verify)"
            )

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
            fsync_dir(self.path.parent)
        return inode

    def _rotate(self, state: _State) -> None:
        oldest = rotated(self.path, self.backups) if self.backups > 0 else self.path
        if oldest.exists():
            # Deleting the oldest file: keep a signed note of where the remaining chain starts (and, in
            # a signed log, the tree and the last checkpoint at that point).
            end = sidecar(oldest, END_SUFFIX) if self.backups > 0 else None
            anchor: bytes | None = None
            if end is not None and end.exists():
                end_tip, end_state, _ = read_state(end, "anchor", self._key)
                if end_tip is not None:
                    anchor = state_json("anchor", end_tip, end_state, self._key)
            elif end is None:
                anchor = state_json("anchor", state.tip, state.to_state(), self._key)
            if anchor is None:
                tail = read_tail(oldest)
                if tail.tip is not None:
                    # The log's mode (not its tree: that needs the .end file of a signed log).
                    modes = {k: v for k, v in state.to_state().items() if k not in ("tree", "checkpoint")}
                    anchor = state_json("anchor", tail.tip, modes, self._key)
            if anchor is not None:
                atomic_write(self._anchor_path, anchor)
            oldest.unlink()
            if end is not None:
                end.unlink(missing_ok=True)
        for n in range(self.backups - 1, 0, -1):
            if rotated(self.path, n).exists():
                os.replace(rotated(self.path, n), rotated(self.path, n + 1))
                with contextlib.suppress(FileNotFoundError):
                    os.replace(
                        sidecar(rotated(self.path, n), END_SUFFIX),
                        sidecar(rotated(self.path, n + 1), END_SUFFIX),
                    )
        if self.backups > 0 and self.path.exists():
            first = rotated(self.path, 1)
            os.replace(self.path, first)
            if state.mode == MODE_SIGNED:
                atomic_write(
                    sidecar(first, END_SUFFIX), state_json("anchor", state.tip, state.to_state(), self._key)
                )
        fsync_dir(self.path.parent)
        self._cached = None

    def _write_head(self, state: _State) -> None:
        try:
            atomic_write(self._head_path, state_json("head", state.tip, state.to_state(), self._key))
        except OSError as exc:
            # The record itself is durable; a lagging head only weakens truncation detection.
            _warn("audit-head", "b2b_otel: could not update %s: %s", self._head_path, exc)


def mode_mismatch(
    log_mode: str | None,
    log_key_id: str | None,
    log_hmac_key_id: str | None,
    mode: str,
    key_id: str | None,
    hmac_id: str | None,
    seq: int,
) -> str | None:
    """Why a writer in ``mode`` with these key ids must not continue a log, or None."""
    if seq == 0:
        return None
    if log_mode is None:
        if mode == MODE_SIGNED:
            return (
                f"the log was started without a signing key ({seq} records); move audit.log* to an archive "
                "to start a signed log"
            )
        return None
    if log_mode != mode and mode == MODE_SIGNED:
        return (
            f"the log was started without a signing key ({log_mode} mode, {seq} records); move audit.log* "
            "to an archive to start a signed log"
        )
    if log_mode != mode and log_mode == MODE_SIGNED:
        return f"the log is signed (key id {log_key_id}): set B2B_OTEL_AUDIT_SIGNING_KEY to its key"
    if log_mode != mode:
        return f"the log is written in {log_mode} mode, this process is configured for {mode} mode"
    if mode == MODE_SIGNED:
        if log_key_id != key_id:
            return f"the log is signed with key id {log_key_id}, the configured signing key has id {key_id}"
        if log_hmac_key_id != hmac_id:
            return "the log's HMAC key (B2B_OTEL_AUDIT_KEY) is not the configured one"
    elif mode == MODE_HMAC and log_key_id != hmac_id:
        return f"the log is chained with HMAC key id {log_key_id}, B2B_OTEL_AUDIT_KEY has id {hmac_id}"
    return None


def existing_log_problem(
    path: Path, key: bytes | None, signing_key: Ed25519PrivateKey | None
) -> tuple[str, str] | None:
    """Why a writer with these keys cannot continue the log at ``path`` (read from its head), or None.

    Returns ``(problem, setting)``: the settings field to name, ``audit_key`` or ``audit_signing_key``.
    """
    log = AuditLog(path, key=key, signing_key=signing_key)
    try:
        # Read without checking its sig: a head signed with another HMAC key is the case to report.
        head = json.loads(log._head_path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int):
        return None
    tip = ChainTip(head["seq"], str(head.get("hash")))
    state = {k: v for k, v in head.items() if k in STATE_FIELDS}
    existing = _state_of(tip, state) if state else _State(tip, None)
    problem = mode_mismatch(
        existing.mode, existing.key_id, existing.hmac_key_id, log.mode, log._key_id, log._hmac_key_id, tip.seq
    )
    if problem is None:
        return None
    signing = MODE_SIGNED in (existing.mode, log.mode) and "HMAC" not in problem
    return problem, "audit_signing_key" if signing else "audit_key"


def _warn(key: str, message: str, *args: object) -> None:
    from .._internal import selflog

    selflog.warn_once_a_minute(key, message, *args)

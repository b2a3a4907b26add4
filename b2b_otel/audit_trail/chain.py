"""The audit chain's format, shared by the writer and the verifier.

Each record's ``hash`` is HMAC-SHA256 (with ``B2B_OTEL_AUDIT_KEY``) or SHA-256 (without) of the
record's canonical JSON without ``hash``; ``prev_hash`` is the previous record's ``hash`` (64 zeros
for seq 1). Sidecar files beside the log:

- ``audit.log.lock``: ``flock`` held around read-tip + append, so several processes write one chain;
- ``audit.log.head``: the signed tip ``{seq, hash, sig}``, rewritten atomically after every append, so
  that cutting lines off the end is detected;
- ``audit.log.anchor``: the signed last record of the newest rotated-out file that was deleted, so that
  a chain whose oldest files were rotated away still verifies.

The format and what ``b2b-otel audit verify`` detects are documented in ``docs/audit.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the record with seq 1."""

RECORD_FIELDS: tuple[str, ...] = (
    "seq",
    "ts",
    "action",
    "actor_id",
    "target",
    "outcome",
    "trace_id",
    "span_id",
    "details",
    "prev_hash",
    "hash",
)
"""The fields of one audit line, in the order they are written."""

LOCK_SUFFIX = ".lock"
HEAD_SUFFIX = ".head"
ANCHOR_SUFFIX = ".anchor"
SIDECAR_SUFFIXES = (HEAD_SUFFIX, LOCK_SUFFIX, ANCHOR_SUFFIX)
TMP_MARK = ".tmp."
STRING_FIELDS: tuple[str, ...] = ("ts", "action", "actor_id", "target", "outcome", "trace_id", "span_id")
"""The fields of a record whose values are strings."""
HASH_HEX = re.compile(r"[0-9a-f]{64}")
_ROTATED = re.compile(r"(?P<base>.+)\.(?P<n>[0-9]+)")

DEFAULT_LOG_NAME = "audit.log"
"""The audit file's name in ``B2B_OTEL_LOG_DIR``."""


# --- the chain's arithmetic, shared with the verifier ---------------------------------------------


def normalise_key(key: bytes | str | None) -> bytes | None:
    """The HMAC key, or None for plain SHA-256; an empty key counts as no key."""
    if key is None or key in (b"", ""):
        return None
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """Canonical form that is hashed: sorted keys, no spaces, UTF-8 (not ASCII-escaped)."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _digest(key: bytes | None, data: bytes) -> str:
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def record_hash(record: Mapping[str, Any], key: bytes | None) -> str:
    """``hash`` of a record: HMAC-SHA256 or SHA-256 of its canonical JSON without ``hash``."""
    return _digest(key, canonical_json({k: v for k, v in record.items() if k != "hash"}))


def tip_signature(kind: str, seq: int, hash_: str, key: bytes | None) -> str:
    """``sig`` of a head (``kind="head"``) or anchor record: digest of ``"{kind}:{seq}:{hash}"``."""
    return _digest(key, f"{kind}:{seq}:{hash_}".encode())


@dataclass(frozen=True)
class ChainTip:
    """A signed position in the chain (the head or the anchor): its seq and the hash of that record."""

    seq: int
    hash: str

    def to_json(self, kind: str, key: bytes | None) -> bytes:
        return canonical_json(
            {"seq": self.seq, "hash": self.hash, "sig": tip_signature(kind, self.seq, self.hash, key)}
        )


def read_tip(path: Path, kind: str, key: bytes | None) -> tuple[ChainTip | None, str | None]:
    """Read a head or anchor file: ``(tip, None)``, ``(None, None)`` when absent, ``(None, problem)``.

    Raises OSError for I/O failures other than a missing file.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, f"{path.name} is not JSON"
    if not isinstance(obj, dict) or set(obj) != {"seq", "hash", "sig"}:
        return None, f"{path.name} does not have exactly seq, hash, sig"
    seq, hash_, sig = obj["seq"], obj["hash"], obj["sig"]
    if not (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0):
        return None, f"{path.name}: seq is not a non-negative integer"
    if not (isinstance(hash_, str) and isinstance(sig, str)):
        return None, f"{path.name}: hash and sig must be strings"
    if not hmac.compare_digest(sig, tip_signature(kind, seq, hash_, key)):
        return None, f"{path.name}: signature does not verify with this key"
    return ChainTip(seq, hash_), None


def sidecar(path: Path, suffix: str) -> Path:
    """``audit.log`` + ``.head`` etc."""
    return path.with_name(path.name + suffix)


def rotated(path: Path, n: int) -> Path:
    """The n-th rotated file: ``audit.log.1`` is the newest."""
    return path.with_name(f"{path.name}.{n}")


def rotation_of(name: str) -> tuple[str, int] | None:
    """``("audit.log", 3)`` for ``audit.log.3``; None for a name that is no rotated file."""
    m = _ROTATED.fullmatch(name)
    return (m["base"], int(m["n"])) if m else None


def is_sidecar(name: str) -> bool:
    """True for the lock, head and anchor files and for a head being rewritten (``.tmp.<pid>``)."""
    return name.endswith(SIDECAR_SUFFIXES) or TMP_MARK in name


def temp_name(path: Path, pid: int) -> Path:
    """Where a sidecar is written before it atomically replaces ``path``."""
    return path.with_name(f"{path.name}{TMP_MARK}{pid}")

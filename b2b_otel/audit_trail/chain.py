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

from .. import semconv as sc

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
END_SUFFIX = ".end"
"""``audit.log.N.end``: the state (tree, last checkpoint) at the end of a rotated file, for the anchor."""
SIDECAR_SUFFIXES = (HEAD_SUFFIX, LOCK_SUFFIX, ANCHOR_SUFFIX, END_SUFFIX)
TMP_MARK = ".tmp."
STRING_FIELDS: tuple[str, ...] = ("ts", "action", "actor_id", "target", "outcome", "trace_id", "span_id")
"""The fields of a record whose values are strings."""
HASH_HEX = re.compile(r"[0-9a-f]{64}")
SALT_HEX = re.compile(r"[0-9a-f]{32}")
_ROTATED = re.compile(r"(?P<base>.+)\.(?P<n>[0-9]+)")

DEFAULT_LOG_NAME = "audit.log"
"""The audit file's name in ``B2B_OTEL_LOG_DIR``."""


# --- the chain's arithmetic, shared with the verifier ---------------------------------------------


def normalise_key(key: bytes | str | None) -> bytes | None:
    """The HMAC key, or None for plain SHA-256; an empty key counts as no key."""
    if key is None or key in (b"", ""):
        return None
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def canonical_json(record: Mapping[str, Any] | list[Any]) -> bytes:
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


def state_signature(kind: str, obj: Mapping[str, Any], key: bytes | None) -> str:
    """``sig`` of a head or anchor that carries state (mode, tree): digest of ``"{kind}:" + canonical``."""
    return _digest(key, f"{kind}:".encode() + canonical_json({k: v for k, v in obj.items() if k != "sig"}))


# --- modes, commitments and checkpoints (docs/audit.md) -------------------------------------------

MODE_SHA256 = sc.B2bAuditModeValues.SHA256
MODE_HMAC = sc.B2bAuditModeValues.HMAC
MODE_SIGNED = sc.B2bAuditModeValues.SIGNED
MARK_MODE = sc.B2B_AUDIT_MODE
MARK_KEY_ID = sc.B2B_AUDIT_KEY_ID
MARK_LOG_ID = sc.B2B_AUDIT_LOG_ID
MARK_HMAC_KEY_ID = sc.B2B_AUDIT_HMAC_KEY_ID
MARKS: tuple[str, ...] = (MARK_MODE, MARK_KEY_ID, MARK_LOG_ID, MARK_HMAC_KEY_ID)
"""``details`` keys of the first record that say how the log is written; never committed or erased."""

SALT_BYTES = 16
_COMMITMENT_TAG = b"b2b-otel audit commitment v1\x00"
_CHECKPOINT_TAG = b"b2b-otel audit checkpoint v1\n"
CHECKPOINT_FIELDS: tuple[str, ...] = (
    "checkpoint",
    "log_id",
    "tree_size",
    "root_hash",
    "ts",
    "prev_checkpoint_hash",
    "key_id",
    "signature",
)
"""The fields of a checkpoint line, in the order they are written."""


def hmac_key_id(key: bytes) -> str:
    """A public name of an HMAC key: the first 16 hex digits of HMAC(key, a fixed label)."""
    return hmac.new(key, b"b2b-otel audit key id", hashlib.sha256).hexdigest()[:16]


def commitment(name: str, salt_hex: str, value: Any) -> str:
    """The salted commitment of one ``details`` value: SHA-256(tag || salt || canonical([name, value]))."""
    return hashlib.sha256(
        _COMMITMENT_TAG + bytes.fromhex(salt_hex) + canonical_json([name, value])
    ).hexdigest()


def committed_details(details: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """A signed record's ``details`` as hashed: every value replaced by its commitment.

    Returns ``(committed, erased field names, problems)``. Stored values are ``{"salt", "value"}``;
    erased ones ``{"erased": commitment, "erased_at": ts}``; the marker keys stay plain.
    """
    committed: dict[str, Any] = {}
    erased: list[str] = []
    problems: list[str] = []
    for name, stored in details.items():
        if name in MARKS:
            committed[name] = stored
            continue
        if isinstance(stored, dict) and set(stored) == {"salt", "value"}:
            salt = stored["salt"]
            if isinstance(salt, str) and SALT_HEX.fullmatch(salt):
                committed[name] = commitment(name, salt, stored["value"])
                continue
        elif _is_erasure(stored):
            committed[name] = stored["erased"]
            erased.append(name)
            continue
        problems.append(f"details.{name} is neither a committed value (salt, value) nor an erasure")
    return committed, erased, problems


def _is_erasure(stored: Any) -> bool:
    return (
        isinstance(stored, dict)
        and set(stored) == {"erased", "erased_at"}
        and isinstance(stored["erased"], str)
        and HASH_HEX.fullmatch(stored["erased"]) is not None
    )


def committed_record(record: Mapping[str, Any], signed: bool) -> dict[str, Any]:
    """The record as hashed and as a leaf of the tree: in a signed log, details as commitments.

    Raises ValueError when a signed record's details are not commitments.
    """
    if not signed:
        return dict(record)
    details = record.get("details")
    if not isinstance(details, dict):
        raise ValueError("details is not an object")
    committed, _, problems = committed_details(details)
    if problems:
        raise ValueError(problems[0])
    return {**record, "details": committed}


def leaf_data(committed: Mapping[str, Any]) -> bytes:
    """The bytes a record contributes to the tree: the canonical JSON of its committed form."""
    return canonical_json(committed)


def checkpoint_message(checkpoint: Mapping[str, Any]) -> bytes:
    """What the Ed25519 signature covers: a tag and the canonical JSON of every field but the signature."""
    return _CHECKPOINT_TAG + canonical_json({k: v for k, v in checkpoint.items() if k != "signature"})


def checkpoint_hash(checkpoint: Mapping[str, Any]) -> str:
    """``prev_checkpoint_hash`` of the next checkpoint: SHA-256 of the whole checkpoint's canonical JSON."""
    return hashlib.sha256(canonical_json(checkpoint)).hexdigest()


def checkpoint_problem(obj: Mapping[str, Any]) -> str | None:
    """Why ``obj`` is not a well-formed checkpoint, or None."""
    if set(obj) != set(CHECKPOINT_FIELDS):
        missing = [f for f in CHECKPOINT_FIELDS if f not in obj]
        extra = sorted(set(obj) - set(CHECKPOINT_FIELDS))
        return "checkpoint fields: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else [])
            + ([f"unknown {', '.join(extra)}"] if extra else [])
        )
    for name in ("checkpoint", "tree_size"):
        value = obj[name]
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < (1 if name == "checkpoint" else 0)
        ):
            return f"checkpoint {name} is not a positive integer"
    for name in ("root_hash", "prev_checkpoint_hash"):
        if not (isinstance(obj[name], str) and HASH_HEX.fullmatch(obj[name])):
            return f"checkpoint {name} is not 64 hex digits"
    for name in ("log_id", "ts", "key_id", "signature"):
        if not isinstance(obj[name], str):
            return f"checkpoint {name} is not a string"
    return None


@dataclass(frozen=True)
class ChainTip:
    """A signed position in the chain (the head or the anchor): its seq and the hash of that record."""

    seq: int
    hash: str

    def to_json(self, kind: str, key: bytes | None) -> bytes:
        return canonical_json(
            {"seq": self.seq, "hash": self.hash, "sig": tip_signature(kind, self.seq, self.hash, key)}
        )


STATE_FIELDS = frozenset({"mode", "key_id", "log_id", "hmac_key_id", "tree", "checkpoint"})
"""What a head or anchor may carry beside ``seq, hash, sig``: the log's mode and the tree's state."""


def state_json(kind: str, tip: ChainTip, state: Mapping[str, Any], key: bytes | None) -> bytes:
    """A head or anchor with state; without state, the original ``{seq, hash, sig}`` form."""
    if not state:
        return tip.to_json(kind, key)
    obj: dict[str, Any] = {"seq": tip.seq, "hash": tip.hash, **state}
    obj["sig"] = state_signature(kind, obj, key)
    return canonical_json(obj)


def read_state(
    path: Path, kind: str, key: bytes | None
) -> tuple[ChainTip | None, dict[str, Any], str | None]:
    """Read a head or anchor file: ``(tip, state, None)``, ``(None, {}, None)`` when absent, or a problem.

    Raises OSError for I/O failures other than a missing file.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, {}, None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, {}, f"{path.name} is not JSON"
    if (
        not isinstance(obj, dict)
        or not {"seq", "hash", "sig"} <= set(obj)
        or set(obj)
        - STATE_FIELDS
        - {
            "seq",
            "hash",
            "sig",
        }
    ):
        return None, {}, f"{path.name} does not have exactly seq, hash, sig (and the log's state)"
    seq, hash_, sig = obj["seq"], obj["hash"], obj["sig"]
    if not (isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0):
        return None, {}, f"{path.name}: seq is not a non-negative integer"
    if not (isinstance(hash_, str) and isinstance(sig, str)):
        return None, {}, f"{path.name}: hash and sig must be strings"
    state = {k: v for k, v in obj.items() if k in STATE_FIELDS}
    expected = state_signature(kind, obj, key) if state else tip_signature(kind, seq, hash_, key)
    if not hmac.compare_digest(sig, expected):
        return None, {}, f"{path.name}: signature does not verify with this key"
    return ChainTip(seq, hash_), state, None


def read_tip(path: Path, kind: str, key: bytes | None) -> tuple[ChainTip | None, str | None]:
    """Read a head or anchor file: ``(tip, None)``, ``(None, None)`` when absent, ``(None, problem)``.

    Raises OSError for I/O failures other than a missing file.
    """
    tip, _, problem = read_state(path, kind, key)
    return tip, problem


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

"""Inclusion proofs: ``b2b-otel audit prove`` makes one, ``b2b-otel audit verify-proof`` checks it.

A proof is one JSON object: the record as stored (``leaf``), its ``leaf_hash``, ``index`` (seq - 1),
``tree_size``, the ``audit_path`` (RFC 6962, bottom-up, hex) and the signed ``checkpoint`` whose root
it leads to. Checking it needs the public key only: not the log, not the other records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import merkle
from .chain import (
    HASH_HEX,
    MARK_MODE,
    MODE_SIGNED,
    checkpoint_problem,
    committed_details,
    committed_record,
    leaf_data,
)
from .verify import chain_files, first_record
from .writer import is_checkpoint, parse_line

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PROOF_FORMAT = "b2b-otel-audit-inclusion-proof/1"


class ProofError(ValueError):
    """No proof can be made (the log is not signed, the seq is not there or not yet checkpointed)."""


def prove(paths: Sequence[Path], seq: int) -> dict[str, Any]:
    """The inclusion proof of record ``seq`` against the latest checkpoint that covers it.

    Raises ProofError saying why there is none, OSError when a file cannot be read.
    """
    files, _ = chain_files(paths)
    first = first_record(files)
    if first is None or first.get("seq") != 1:
        raise ProofError(
            "the records from seq 1 are not all in the files (rotated away?): a proof needs each"
        )
    details = first.get("details")
    if not isinstance(details, dict) or details.get(MARK_MODE) != MODE_SIGNED:
        raise ProofError(
            "the log is not signed (B2B_OTEL_AUDIT_SIGNING_KEY): it has no tree to prove against"
        )
    leaves: list[bytes] = []
    record: dict[str, Any] | None = None
    checkpoints: list[dict[str, Any]] = []
    for path in files:
        with path.open("rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                obj = parse_line(raw)
                if obj is None:
                    raise ProofError(f"{path} line {number} is not JSON: run b2b-otel audit verify")
                if is_checkpoint(obj):
                    checkpoints.append(obj)
                    continue
                if obj.get("seq") != len(leaves) + 1:
                    raise ProofError(f"{path} line {number} is out of sequence: run b2b-otel audit verify")
                try:
                    leaves.append(merkle.leaf_hash(leaf_data(committed_record(obj, True))))
                except ValueError as exc:
                    raise ProofError(f"{path} line {number}: {exc}") from None
                if obj["seq"] == seq:
                    record = obj
    if record is None:
        raise ProofError(f"seq {seq} is not in the files (they hold seq 1..{len(leaves)})")
    covering = [c for c in checkpoints if isinstance(c.get("tree_size"), int) and c["tree_size"] >= seq]
    if not covering:
        last = max((c.get("tree_size", 0) for c in checkpoints), default=0)
        raise ProofError(
            f"seq {seq} is not covered by a checkpoint yet (the latest covers seq 1..{last}); the next "
            "checkpoint (B2B_OTEL_AUDIT_CHECKPOINT_INTERVAL, and at shutdown) will"
        )
    checkpoint = covering[-1]
    size = int(checkpoint["tree_size"])
    if merkle.root_of(leaves[:size]).hex() != checkpoint.get("root_hash"):
        raise ProofError(
            f"the records do not match checkpoint {checkpoint.get('checkpoint')}: run b2b-otel audit verify"
        )
    return {
        "format": PROOF_FORMAT,
        "seq": seq,
        "index": seq - 1,
        "tree_size": size,
        "leaf_hash": leaves[seq - 1].hex(),
        "audit_path": [h.hex() for h in merkle.inclusion_proof(leaves, seq - 1, size)],
        "leaf": record,
        "checkpoint": checkpoint,
    }


@dataclass(frozen=True)
class ProofReport:
    """What :func:`verify_proof` found: ``ok``, a one-line ``summary`` and the erased fields."""

    ok: bool
    summary: str
    erased: tuple[str, ...] = ()


def verify_proof(proof: Mapping[str, Any], public_key: Ed25519PublicKey) -> ProofReport:
    """Check an inclusion proof with only the public key: the record, the path, the checkpoint's signature.

    Example::

        report = verify_proof(json.loads(Path("proof.json").read_text()), load_public_key("audit.pub"))
        print(report.summary)  # OK: seq 4812 is record 4812 of the 5000 signed by key id ...
    """
    from .signing import key_id, signature_ok

    def bad(problem: str) -> ProofReport:
        return ProofReport(False, f"FAIL: {problem}")

    if not isinstance(proof, Mapping) or proof.get("format") != PROOF_FORMAT:
        return bad(f"not a b2b-otel inclusion proof (format {PROOF_FORMAT})")
    record, checkpoint, path = proof.get("leaf"), proof.get("checkpoint"), proof.get("audit_path")
    index, size = proof.get("index"), proof.get("tree_size")
    if not isinstance(record, dict) or not isinstance(checkpoint, dict) or not isinstance(path, list):
        return bad("leaf, checkpoint and audit_path must be an object, an object and a list")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, size)):
        return bad("index and tree_size must be integers")
    assert isinstance(index, int) and isinstance(size, int)
    if not all(isinstance(h, str) and HASH_HEX.fullmatch(h) for h in path):
        return bad("audit_path must be a list of 64-hex-digit hashes")
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        return bad(problem)
    if record.get("seq") != index + 1:
        return bad(f"the record is seq {record.get('seq')}, the proof is for index {index} (seq {index + 1})")
    details = record.get("details")
    if not isinstance(details, dict):
        return bad("the record's details are not an object")
    try:
        committed = committed_record(record, True)
    except ValueError as exc:
        return bad(f"the record is not as a signed log stores it: {exc}")
    _, erased, _ = committed_details(details)
    leaf = merkle.leaf_hash(leaf_data(committed))
    if proof.get("leaf_hash") is not None and proof.get("leaf_hash") != leaf.hex():
        return bad(f"seq {index + 1}: the record does not hash to the proof's leaf_hash (modified)")
    if checkpoint["tree_size"] != size:
        return bad(f"the proof is for a tree of {size}, the checkpoint covers {checkpoint['tree_size']}")
    if key_id(public_key) != checkpoint["key_id"]:
        return bad(
            f"the checkpoint says key id {checkpoint['key_id']}; "
            f"the public key given has id {key_id(public_key)}"
        )
    if not signature_ok(public_key, checkpoint):
        return bad(f"checkpoint {checkpoint['checkpoint']} is not signed by the given public key")
    root = merkle.root_from_inclusion(leaf, index, size, [bytes.fromhex(h) for h in path])
    if root is None or root.hex() != checkpoint["root_hash"]:
        return bad(
            f"seq {index + 1}: the record and audit path do not lead to the root of checkpoint "
            f"{checkpoint['checkpoint']}  (the record was modified, or the proof is not of this checkpoint)"
        )
    erased_note = f"; erased: {', '.join(f'details.{n}' for n in erased)}" if erased else ""
    return ProofReport(
        True,
        f"OK: seq {index + 1} is in the log of {size} records signed in checkpoint "
        f"{checkpoint['checkpoint']} "
        f"({checkpoint['ts']}, key id {checkpoint['key_id']}, log id {checkpoint['log_id']}){erased_note}",
        tuple(erased),
    )


def load_proof(path: Path) -> Any:
    """The JSON of a proof file (``-`` is not special). Raises OSError, ValueError."""
    return json.loads(path.read_text("utf-8"))

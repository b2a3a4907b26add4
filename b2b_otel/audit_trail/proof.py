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
CONSISTENCY_FORMAT = "b2b-otel-audit-consistency-proof/1"


class ProofError(ValueError):
    """No proof can be made (the log is not signed, the seq is not there or not yet checkpointed)."""


def _read_tree(
    paths: Sequence[Path], seq: int | None
) -> tuple[list[bytes], list[dict[str, Any]], dict[str, Any] | None]:
    """The leaf hashes of a signed log from seq 1, its checkpoint lines, and record ``seq`` (or None)."""
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
    return leaves, checkpoints, record


def prove(paths: Sequence[Path], seq: int) -> dict[str, Any]:
    """The inclusion proof of record ``seq`` against the latest checkpoint that covers it.

    Raises ProofError saying why there is none, OSError when a file cannot be read.
    """
    leaves, checkpoints, record = _read_tree(paths, seq)
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


def prove_consistency(paths: Sequence[Path], old: int, new: int | None = None) -> dict[str, Any]:
    """The consistency proof between the log's checkpoints number ``old`` and ``new`` (default: the
    latest): that the newer tree only appended records to the older one (RFC 6962 section 2.1.2).

    An auditor holding a witness copy of checkpoint ``old`` checks it with :func:`verify_proof` and the
    public key, without the log. Raises ProofError, OSError.
    """
    leaves, checkpoints, _ = _read_tree(paths, None)
    by_number = {c.get("checkpoint"): c for c in checkpoints}
    if not checkpoints:
        raise ProofError("the log has no checkpoint yet")
    newest = checkpoints[-1]
    new_cp = newest if new is None else by_number.get(new)
    old_cp = by_number.get(old)
    for number, cp in ((old, old_cp), (new, new_cp)):
        if cp is None:
            raise ProofError(
                f"checkpoint {number} is not in the files (they hold 1..{newest.get('checkpoint')})"
            )
    assert old_cp is not None and new_cp is not None
    m, n = int(old_cp["tree_size"]), int(new_cp["tree_size"])
    if m > n:
        raise ProofError(
            f"checkpoint {old} covers more records ({m}) than checkpoint {new_cp['checkpoint']} ({n})"
        )
    for cp in (old_cp, new_cp):
        if merkle.root_of(leaves[: int(cp["tree_size"])]).hex() != cp.get("root_hash"):
            raise ProofError(
                f"the records do not match checkpoint {cp['checkpoint']}: run b2b-otel audit verify"
            )
    return {
        "format": CONSISTENCY_FORMAT,
        "old_size": m,
        "new_size": n,
        "proof": [h.hex() for h in merkle.consistency_proof(leaves, m, n)],
        "old_checkpoint": old_cp,
        "new_checkpoint": new_cp,
    }


def _verify_consistency_proof(proof: Mapping[str, Any], public_key: Ed25519PublicKey) -> ProofReport:
    from .signing import key_id, signature_ok

    def bad(problem: str) -> ProofReport:
        return ProofReport(False, f"FAIL: {problem}")

    old_cp, new_cp, path = proof.get("old_checkpoint"), proof.get("new_checkpoint"), proof.get("proof")
    if not isinstance(old_cp, dict) or not isinstance(new_cp, dict) or not isinstance(path, list):
        return bad("old_checkpoint, new_checkpoint and proof must be an object, an object and a list")
    if not all(isinstance(h, str) and HASH_HEX.fullmatch(h) for h in path):
        return bad("proof must be a list of 64-hex-digit hashes")
    for cp in (old_cp, new_cp):
        problem = checkpoint_problem(cp)
        if problem is not None:
            return bad(problem)
        if key_id(public_key) != cp["key_id"]:
            return bad(
                f"checkpoint {cp['checkpoint']} says key id {cp['key_id']}; the public key given has id "
                f"{key_id(public_key)}"
            )
        if not signature_ok(public_key, cp):
            return bad(f"checkpoint {cp['checkpoint']} is not signed by the given public key")
    if old_cp["log_id"] != new_cp["log_id"]:
        return bad(f"the checkpoints are of two logs ({old_cp['log_id']}, {new_cp['log_id']})")
    m, n = old_cp["tree_size"], new_cp["tree_size"]
    if (proof.get("old_size"), proof.get("new_size")) != (m, n):
        sizes = f"{proof.get('old_size')}..{proof.get('new_size')}"
        return bad(f"the proof is for sizes {sizes}, the checkpoints sign {m}..{n}")
    if m > n or old_cp["checkpoint"] > new_cp["checkpoint"]:
        return bad(f"checkpoint {old_cp['checkpoint']} is not older than checkpoint {new_cp['checkpoint']}")
    ok = merkle.verify_consistency(
        m,
        n,
        bytes.fromhex(old_cp["root_hash"]),
        bytes.fromhex(new_cp["root_hash"]),
        [bytes.fromhex(h) for h in path],
    )
    if not ok:
        return bad(
            f"checkpoint {new_cp['checkpoint']} does not extend checkpoint {old_cp['checkpoint']}: the first "
            f"{m} records were changed in between (a forked log), or the proof is not of these checkpoints"
        )
    return ProofReport(
        True,
        f"OK: checkpoint {new_cp['checkpoint']} ({n} records) extends checkpoint {old_cp['checkpoint']} "
        f"({m} records): only records were appended (key id {new_cp['key_id']}, log id {new_cp['log_id']})",
    )


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

    if isinstance(proof, Mapping) and proof.get("format") == CONSISTENCY_FORMAT:
        return _verify_consistency_proof(proof, public_key)
    if not isinstance(proof, Mapping) or proof.get("format") != PROOF_FORMAT:
        return bad(
            f"not a b2b-otel inclusion proof (format {PROOF_FORMAT}) or consistency proof "
            f"({CONSISTENCY_FORMAT})"
        )
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

"""The signed audit trail (issue 14): RFC 6962 tree, Ed25519 checkpoints, proofs, witness, erasure, modes.

Real files, real keys (``cryptography``), real processes for concurrency and kill -9; the CLI is run as
a subprocess like a user runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from b2b_otel import semconv as sc
from b2b_otel.audit_trail import merkle
from b2b_otel.audit_trail.chain import RECORD_FIELDS, committed_record, leaf_data
from b2b_otel.audit_trail.erase import EraseError, erase
from b2b_otel.audit_trail.proof import ProofError, prove, verify_proof
from b2b_otel.audit_trail.signing import keygen, load_private_key, load_public_key
from b2b_otel.audit_trail.verify import verify
from b2b_otel.audit_trail.witness import ATTRIBUTES, attributes_of, read_witness
from b2b_otel.audit_trail.writer import AuditLog

ROOT = Path(__file__).resolve().parents[1]
HMAC_KEY = b"k3y-for-tests-only"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Ed25519PrivateKey, Ed25519PublicKey]:
    private, public, _ = keygen(tmp_path_factory.mktemp("keys") / "audit")
    return private, public, load_private_key(private), load_public_key(public)


@pytest.fixture(scope="module")
def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _append(log: AuditLog, i: int, **details: Any) -> dict[str, Any]:
    return log.append("invoice.approve", f"u-{i}", f"invoice-{i}", "success", "", "", {"i": i, **details})


class Signed:
    """A signed log in a temporary folder, and every checkpoint it wrote (what the witness saw)."""

    def __init__(self, folder: Path, key: Ed25519PrivateKey, hmac_key: bytes | None = None) -> None:
        self.folder = folder
        self.path = folder / "audit.log"
        self.key = key
        self.log = AuditLog(self.path, key=hmac_key, signing_key=key, checkpoint_interval=3600)
        self.witnessed: list[dict[str, Any]] = []
        self.log.on_checkpoint = self.witnessed.append

    def add(self, n: int, start: int = 0, **details: Any) -> None:
        for i in range(start, start + n):
            _append(self.log, i, email=f"person{i}@example.com", **details)

    def checkpoint(self) -> dict[str, Any]:
        written = self.log.checkpoint()
        assert written is not None
        return written

    def lines(self) -> list[str]:
        return self.path.read_text("utf-8").splitlines(keepends=True)

    def write(self, lines: list[str]) -> None:
        self.path.write_text("".join(lines), "utf-8")

    def index_of(self, seq: int) -> int:
        return next(i for i, line in enumerate(self.lines()) if json.loads(line).get("seq") == seq)


def _signed_log(tmp_path: Path, keys: Any, batches: tuple[int, ...] = (4, 3, 2)) -> Signed:
    log = Signed(tmp_path, keys[2])
    start = 0
    for n in batches:
        log.add(n, start)
        start += n
        log.checkpoint()
    return log


def _fails(log: Signed, public_key: Ed25519PublicKey, witness: Any = None) -> tuple[int | None, str | None]:
    report = verify([log.folder], None, public_key, witness)
    assert not report.ok, report
    return report.bad_seq, report.kind


def _rehash(line: str, **changes: Any) -> str:
    """Change a signed record and give it a valid SHA-256 hash again (anyone with write access can)."""
    from b2b_otel.audit_trail.chain import record_hash

    record = json.loads(line)
    record.update(changes)
    record["hash"] = record_hash(committed_record(record, True), None)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"


# --- the tree ------------------------------------------------------------------------------------------


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, written straight from its definition (the reference for Frontier)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33])
def test_the_incremental_root_is_rfc6962_mth(n: int) -> None:
    data = [f"record {i}".encode() for i in range(n)]
    frontier = merkle.Frontier()
    for i, d in enumerate(data):
        frontier.append(merkle.leaf_hash(d))
        assert frontier.root() == _mth(data[: i + 1])
        assert len(frontier.hashes) == bin(i + 1).count("1")  # O(log n) state
    assert merkle.Frontier.from_json(json.loads(json.dumps(frontier.to_json()))).root() == frontier.root()


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9, 1024, 1025, 100_000])
def test_inclusion_proofs_verify_for_every_tree_shape(n: int) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    root = merkle.root_of(leaves)
    indices = sorted({0, n // 2, n - 1, max(0, n - 2), min(n - 1, 1)})
    if n == 100_000:
        indices += [4811, 65535, 65536]
    for index in indices:
        path = merkle.inclusion_proof(leaves, index)
        assert len(path) <= (n - 1).bit_length()
        assert merkle.verify_inclusion(leaves[index], index, n, path, root)
        # A modified leaf, another index or a shortened path does not verify.
        assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), index, n, path, root)
        if n > 1:
            assert not merkle.verify_inclusion(leaves[index], (index + 1) % n, n, path, root)
            assert not merkle.verify_inclusion(leaves[index], index, n, path[:-1], root)


def test_a_proof_against_an_older_tree_size() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(20)]
    path = merkle.inclusion_proof(leaves, 5, 13)
    assert merkle.verify_inclusion(leaves[5], 5, 13, path, merkle.root_of(leaves[:13]))
    assert not merkle.verify_inclusion(leaves[5], 5, 13, path, merkle.root_of(leaves))


def _subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """RFC 6962 section 2.1.2 SUBPROOF over leaf hashes, written straight from its definition."""
    n = len(leaves)
    if m == n:
        return [] if whole else [merkle.root_of(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), merkle.root_of(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), merkle.root_of(leaves[:k])]


CONSISTENCY_SIZES = [1, 2, 3, 4, 5, 8, 9, 16, 17, 1024, 1025]


@pytest.mark.parametrize("n", [*CONSISTENCY_SIZES, 100_000])
def test_consistency_proofs_verify_between_every_pair_of_tree_shapes(n: int) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    new_root = merkle.root_of(leaves)
    olds = [m for m in CONSISTENCY_SIZES if m <= n] + ([4812, 65536, 65537, 99_999] if n == 100_000 else [])
    for m in olds:
        old_root = merkle.root_of(leaves[:m])
        proof = merkle.consistency_proof(leaves, m)
        if n <= 1025:
            assert proof == _subproof(m, leaves, True)
        assert len(proof) <= 2 * n.bit_length()
        assert merkle.verify_consistency(m, n, old_root, new_root, proof), (m, n)
        if m == n:
            assert proof == []
            continue
        # Another old or new root, a changed, shortened or lengthened proof: not consistent.
        assert not merkle.verify_consistency(m, n, merkle.leaf_hash(b"x"), new_root, proof)
        assert not merkle.verify_consistency(m, n, old_root, merkle.leaf_hash(b"x"), proof)
        assert not merkle.verify_consistency(m, n, old_root, new_root, [bytes(32), *proof[1:]])
        assert not merkle.verify_consistency(m, n, old_root, new_root, proof[:-1])
        assert not merkle.verify_consistency(m, n, old_root, new_root, [*proof, bytes(32)])
        assert not merkle.verify_consistency(n, m, old_root, new_root, proof)


@pytest.mark.parametrize("n", [2, 3, 8, 9, 1025])
def test_a_forked_tree_is_not_consistent_with_the_old_one(n: int) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    for m in sorted({1, n // 2, n - 1}):
        old_root = merkle.root_of(leaves[:m])
        for changed in sorted({0, m - 1}):  # a record before the old size rewritten
            fork = list(leaves)
            fork[changed] = merkle.leaf_hash(b"rewritten")
            proof = merkle.consistency_proof(fork, m)
            assert not merkle.verify_consistency(m, n, old_root, merkle.root_of(fork), proof), (m, n, changed)
        # Changing a record after the old size is an extension, which is consistent.
        grown = [*leaves[:m], *(merkle.leaf_hash(b"later %d" % i) for i in range(n - m))]
        assert merkle.verify_consistency(
            m, n, old_root, merkle.root_of(grown), merkle.consistency_proof(grown, m)
        )


def test_consistency_from_the_empty_tree_and_bad_sizes() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    assert merkle.consistency_proof(leaves, 0) == []
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, merkle.root_of(leaves), [])
    assert not merkle.verify_consistency(0, 5, merkle.leaf_hash(b"x"), merkle.root_of(leaves), [])
    with pytest.raises(ValueError, match="consistency"):
        merkle.consistency_proof(leaves, 6)
    with pytest.raises(ValueError, match="consistency"):
        merkle.consistency_proof(leaves, 3, 2)


# --- the signed log: format --------------------------------------------------------------------------


def test_a_signed_log_keeps_the_spec_fields_and_says_its_mode_first(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys, (3,))
    lines = [json.loads(line) for line in log.lines()]
    records = [r for r in lines if "seq" in r]
    checkpoints = [c for c in lines if "checkpoint" in c]
    assert [list(r) for r in records] == [list(RECORD_FIELDS)] * 3
    first = records[0]["details"]
    assert first[sc.B2B_AUDIT_MODE] == sc.B2bAuditModeValues.SIGNED
    assert first[sc.B2B_AUDIT_KEY_ID] == checkpoints[0]["key_id"]
    assert len(first[sc.B2B_AUDIT_LOG_ID]) == 32
    for record in records:
        assert set(record["details"]["email"]) == {"salt", "value"}  # a salted commitment
        assert len(record["details"]["email"]["salt"]) == 32
    assert sc.B2B_AUDIT_MODE not in records[1]["details"]
    (checkpoint,) = checkpoints
    assert list(checkpoint) == [
        "checkpoint",
        "log_id",
        "tree_size",
        "root_hash",
        "ts",
        "prev_checkpoint_hash",
        "key_id",
        "signature",
    ]
    assert (checkpoint["checkpoint"], checkpoint["tree_size"]) == (1, 3)
    assert checkpoint["prev_checkpoint_hash"] == "0" * 64
    leaves = [merkle.leaf_hash(leaf_data(committed_record(r, True))) for r in records]
    assert checkpoint["root_hash"] == merkle.root_of(leaves).hex()
    report = verify([tmp_path], None, keys[3])
    assert report.ok, report
    assert (
        report.summary() == "OK: 3 records, chain intact (seq 1..3); tree and 1 signed checkpoint(s) verified"
    )


def test_an_application_key_named_like_a_marker_is_kept_beside_it(tmp_path: Path, keys: Any) -> None:
    log = Signed(tmp_path, keys[2])
    written = log.log.append("a", "u", "t", "success", "", "", {sc.B2B_AUDIT_MODE: "mine"})
    assert written["details"][sc.B2B_AUDIT_MODE] == sc.B2bAuditModeValues.SIGNED
    assert written["details"][f"app.{sc.B2B_AUDIT_MODE}"]["value"] == "mine"
    log.checkpoint()
    assert verify([tmp_path], None, keys[3]).ok


def test_checkpoints_only_when_the_tree_grew(tmp_path: Path, keys: Any) -> None:
    log = Signed(tmp_path, keys[2])
    assert log.log.checkpoint() is None  # empty tree
    log.add(2)
    assert log.log.checkpoint() is not None
    assert log.log.checkpoint() is None  # nothing new
    log.add(1, 2)
    log.log.close()  # the last checkpoint at shutdown
    assert [c["tree_size"] for c in log.witnessed] == [2, 3]
    assert verify([tmp_path], None, keys[3]).checkpoints == 2


def test_the_background_thread_writes_checkpoints_every_interval(tmp_path: Path, keys: Any) -> None:
    log = AuditLog(tmp_path / "audit.log", signing_key=keys[2], checkpoint_interval=0.2)
    seen: list[dict[str, Any]] = []
    log.on_checkpoint = seen.append
    _append(log, 1)
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen and seen[0]["tree_size"] == 1
    log.close()
    assert verify([tmp_path], None, keys[3]).ok


def test_the_tree_state_lives_in_the_head_and_survives_a_new_writer(tmp_path: Path, keys: Any) -> None:
    _signed_log(tmp_path, keys, (5,))
    head = json.loads((tmp_path / "audit.log.head").read_text())
    assert head["tree"]["size"] == 5 and len(head["tree"]["frontier"]) == 2  # 5 = 4 + 1
    again = Signed(tmp_path, keys[2])
    again.add(3, 5)
    again.checkpoint()
    assert json.loads(again.lines()[-1])["checkpoint"] == 2
    assert verify([tmp_path], None, keys[3]).ok


def test_a_signed_log_chained_with_an_hmac_key_too(tmp_path: Path, keys: Any) -> None:
    log = Signed(tmp_path, keys[2], hmac_key=HMAC_KEY)
    log.add(3)
    log.checkpoint()
    assert verify([tmp_path], HMAC_KEY, keys[3]).ok
    assert _fails(log, keys[3]) == (1, "mode")  # the HMAC key is missing


def test_rotation_keeps_one_tree_across_files_and_after_deletion(tmp_path: Path, keys: Any) -> None:
    log = AuditLog(
        tmp_path / "audit.log", signing_key=keys[2], max_bytes=2500, backups=2, checkpoint_interval=3600
    )
    for i in range(30):
        _append(log, i, note="x" * 40)
        if i % 4 == 3:
            log.checkpoint()
    log.checkpoint()
    assert (tmp_path / "audit.log.anchor").exists()  # the oldest files were deleted
    report = verify([tmp_path], None, keys[3])
    assert report.ok and report.last_seq == 30 and (report.first_seq or 0) > 1, report
    assert verify([*tmp_path.glob("audit.log*")], None, keys[3]).ok  # a shell glob: .end files skipped
    # A new writer continues the same tree from the files and the head.
    more = AuditLog(tmp_path / "audit.log", signing_key=keys[2], max_bytes=2500, backups=2)
    _append(more, 30)
    more.checkpoint()
    assert verify([tmp_path], None, keys[3]).ok


def test_a_witness_of_a_log_whose_oldest_files_were_deleted(tmp_path: Path, keys: Any) -> None:
    log = AuditLog(
        tmp_path / "audit.log", signing_key=keys[2], max_bytes=2500, backups=2, checkpoint_interval=3600
    )
    witnessed: list[dict[str, Any]] = []
    log.on_checkpoint = witnessed.append
    for i in range(30):
        _append(log, i, note="x" * 40)
        if i % 4 == 3:
            log.checkpoint()
    log.checkpoint()
    report = verify([tmp_path], None, keys[3], witnessed)
    first = report.first_seq or 0
    assert report.ok and first > 1, report
    # Checkpoints of deleted records only: a note, not a fork; the anchor's own one and later ones agree.
    before = [c for c in witnessed if c["tree_size"] < first - 1]
    assert before and report.witnessed == len(witnessed) - len(before)
    assert any(
        f"{len(before)} witnessed checkpoint(s) cover only records of deleted files" in n
        for n in report.notes
    )
    # The witness's copy of the anchor's checkpoint differs: the log was rewritten before it.
    at_anchor = next(i for i, c in enumerate(witnessed) if c["tree_size"] == first - 1)
    forged = [dict(c) for c in witnessed]
    forged[at_anchor]["root_hash"] = "ab" * 32
    bad = verify([tmp_path], None, keys[3], forged)
    assert (bad.ok, bad.kind) == (False, "forked"), bad
    # A record after the anchor rewritten is caught by the later witnessed checkpoints as before.
    lines = (tmp_path / "audit.log").read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if "seq" in json.loads(line))
    lines[index] = _rehash(lines[index], actor_id="someone-else")
    (tmp_path / "audit.log").write_text("".join(lines))
    assert not verify([tmp_path], None, keys[3], witnessed).ok


# --- tampering: each kind caught and named -------------------------------------------------------------


def test_edit(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    lines = log.lines()
    i = log.index_of(3)
    lines[i] = lines[i].replace('"actor_id":"u-2"', '"actor_id":"mallory"')
    log.write(lines)
    assert _fails(log, keys[3]) == (3, "edited")


def test_edit_with_a_recomputed_hash(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    lines = log.lines()
    i = log.index_of(6)
    lines[i] = _rehash(lines[i], outcome="failure")
    log.write(lines)
    assert _fails(log, keys[3]) == (6, "edited")


def test_edit_of_a_committed_value(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    lines = log.lines()
    i = log.index_of(2)
    record = json.loads(lines[i])
    record["details"]["email"]["value"] = "someone-else@example.com"
    lines[i] = json.dumps(record, separators=(",", ":")) + "\n"
    log.write(lines)
    assert _fails(log, keys[3]) == (2, "edited")


def test_delete(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    lines = log.lines()
    del lines[log.index_of(2)]
    log.write(lines)
    assert _fails(log, keys[3]) == (2, "missing")


def test_insert(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    lines = log.lines()
    i = log.index_of(3)
    lines.insert(i, _rehash(lines[i], actor_id="mallory"))  # claims seq 3, links to seq 2
    log.write(lines)
    assert _fails(log, keys[3]) == (3, "inserted")


def test_reorder(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    lines = log.lines()
    a, b = log.index_of(2), log.index_of(3)
    lines[a], lines[b] = lines[b], lines[a]
    log.write(lines)
    assert _fails(log, keys[3]) == (3, "reordered")


def test_truncate(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    log.write(log.lines()[:5])  # seq 1..4 and checkpoint 1
    report = verify([tmp_path], None, keys[3])
    assert (report.ok, report.bad_seq, report.kind) == (False, 5, "truncated")


def test_a_deleted_checkpoint_line(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    lines = log.lines()
    second = next(i for i, line in enumerate(lines) if json.loads(line).get("checkpoint") == 2)
    del lines[second]
    log.write(lines)
    assert _fails(log, keys[3]) == (5, "checkpoint")  # checkpoint 3 follows 1: seq 5.. unvouched


def test_a_checkpoint_with_another_root(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    lines = log.lines()
    first = next(i for i, line in enumerate(lines) if json.loads(line).get("checkpoint") == 1)
    checkpoint = json.loads(lines[first])
    checkpoint["root_hash"] = "ab" * 32
    lines[first] = json.dumps(checkpoint, separators=(",", ":")) + "\n"
    log.write(lines)
    assert _fails(log, keys[3]) == (1, "checkpoint")


def test_rewrite_and_resign_with_another_key(tmp_path: Path, keys: Any, other_key: Ed25519PrivateKey) -> None:
    real = _signed_log(tmp_path / "real", keys)
    forged = _signed_log(tmp_path / "forged", (None, None, other_key, other_key.public_key()))
    for name in ("audit.log", "audit.log.head"):
        (real.folder / name).write_bytes((forged.folder / name).read_bytes())
    report = verify([real.folder], None, keys[3])
    assert (report.ok, report.bad_seq, report.kind) == (False, 1, "signature")
    assert "key id" in report.problem
    # Even keeping the log's key id in the marker and checkpoints, the signatures give it away.
    lines = forged.lines()
    real_id, forged_id = real.witnessed[0]["key_id"], forged.witnessed[0]["key_id"]
    lines = [line.replace(forged_id, real_id) for line in lines]
    lines[0] = _rehash(lines[0])
    fixed: list[str] = []
    for line in lines:  # relink the chain after the changed first record
        obj = json.loads(line)
        if "seq" in obj and fixed:
            prev = next(json.loads(p) for p in reversed(fixed) if "seq" in json.loads(p))
            line = _rehash(line, prev_hash=prev["hash"])
        fixed.append(line)
    real.write(fixed)
    (real.folder / "audit.log.head").unlink()
    seq, kind = _fails(real, keys[3])
    assert kind in ("signature", "checkpoint") and seq == 1


def test_rewritten_from_an_old_checkpoint_with_the_right_key_is_caught_by_the_witness(
    tmp_path: Path, keys: Any
) -> None:
    log = _signed_log(tmp_path, keys)  # checkpoints 1 (4), 2 (7), 3 (9): all witnessed
    witnessed = list(log.witnessed)
    # The host is taken: cut back to checkpoint 1, drop the head, write other records, re-sign.
    lines = log.lines()
    first = next(i for i, line in enumerate(lines) if json.loads(line).get("checkpoint") == 1)
    log.write(lines[: first + 1])
    (tmp_path / "audit.log.head").unlink()
    attacker = Signed(tmp_path, keys[2])
    attacker.add(3, 100)
    attacker.checkpoint()
    attacker.add(2, 150)
    attacker.checkpoint()
    attacker.add(1, 200)
    attacker.checkpoint()
    alone = verify([tmp_path], None, keys[3])
    assert alone.ok, alone  # the log alone is consistent: it was signed with the right key
    report = verify([tmp_path], None, keys[3], witnessed)
    assert (report.ok, report.bad_seq, report.kind) == (False, 5, "forked"), report
    assert "after seq 4" in report.problem
    # The witness alone (no public key at hand) catches it too.
    report = verify([tmp_path], None, None, witnessed)
    assert (report.ok, report.bad_seq, report.kind) == (False, 5, "forked"), report


def test_the_witness_alone_can_vouch_for_a_signed_log(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    report = verify([tmp_path], None, None, log.witnessed)
    assert report.ok and report.witnessed == 3 and not report.signatures_checked, report
    assert "(signatures not checked)" in report.summary()
    assert any("vouched for by the witness only" in note for note in report.notes)


def test_truncation_with_the_head_removed_is_caught_by_the_witness(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    witnessed = list(log.witnessed)
    lines = log.lines()
    second = next(i for i, line in enumerate(lines) if json.loads(line).get("checkpoint") == 2)
    log.write(lines[: second + 1])  # seq 1..7, checkpoints 1, 2
    (tmp_path / "audit.log.head").unlink()
    report = verify([tmp_path], None, keys[3], witnessed)
    assert (report.ok, report.bad_seq, report.kind) == (False, 8, "truncated"), report
    assert "the witness saw checkpoint 3 covering seq 1..9" in report.problem
    # A new head written by the next writer hides the cut from the log alone, not from the witness.
    Signed(tmp_path, keys[2]).add(3, 7)
    report = verify([tmp_path], None, keys[3], witnessed)
    assert (report.ok, report.bad_seq, report.kind) == (False, 8, "forked"), report


def test_a_log_replaced_wholesale_has_no_witnessed_checkpoint(tmp_path: Path, keys: Any) -> None:
    real = _signed_log(tmp_path / "real", keys)
    replaced = _signed_log(tmp_path / "replaced", keys)  # same key, a new log id
    report = verify([replaced.folder], None, keys[3], real.witnessed)
    assert (report.ok, report.bad_seq, report.kind) == (False, 1, "forked")
    assert "no checkpoint of this log" in report.problem


def test_the_witness_lagging_behind_is_a_note_not_a_failure(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    report = verify([tmp_path], None, keys[3], log.witnessed[:2] + log.witnessed[:1])  # one kept twice
    assert report.ok and report.witnessed == 2
    assert any("checkpoint 3 is not in the witness file yet" in note for note in report.notes)
    log.add(2, 50)
    report = verify([tmp_path], None, keys[3], log.witnessed)
    assert report.ok and any("not yet covered by a signed checkpoint" in n for n in report.notes)


# --- modes: a stronger log cannot be verified as a weaker one ---------------------------------------


def test_a_signed_log_without_the_public_key_fails(tmp_path: Path, keys: Any) -> None:
    _signed_log(tmp_path, keys)
    report = verify([tmp_path], None)
    assert (report.ok, report.bad_seq, report.kind) == (False, 1, "mode")
    assert "--public-key" in report.problem


def _hmac_log(folder: Path, n: int = 3) -> Path:
    log = AuditLog(folder / "audit.log", key=HMAC_KEY)
    for i in range(1, n + 1):
        _append(log, i)
    return folder


def _rehash_plain(folder: Path, drop_marker: bool) -> None:
    """What someone without the key does: rehash every line as plain SHA-256 (and fake a plain head)."""
    from b2b_otel.audit_trail.chain import GENESIS_HASH, MARKS, record_hash, tip_signature

    path = folder / "audit.log"
    prev, out, record = GENESIS_HASH, [], None
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if drop_marker:
            record["details"] = {k: v for k, v in record["details"].items() if k not in MARKS}
        record["prev_hash"] = prev
        record["hash"] = prev = record_hash(record, None)
        out.append(json.dumps(record))
    path.write_text("\n".join(out) + "\n")
    assert record is not None
    head = {"seq": record["seq"], "hash": prev, "sig": tip_signature("head", record["seq"], prev, None)}
    (folder / "audit.log.head").write_text(json.dumps(head))


def test_an_hmac_log_says_its_mode_first_with_a_key_id_that_reveals_nothing(tmp_path: Path) -> None:
    import hmac as hmac_

    folder = _hmac_log(tmp_path)
    details = json.loads((folder / "audit.log").read_text().splitlines()[0])["details"]
    key_id = hmac_.new(HMAC_KEY, b"b2b-otel audit key id", hashlib.sha256).hexdigest()[:16]
    assert details[sc.B2B_AUDIT_MODE] == "hmac"
    assert details[sc.B2B_AUDIT_KEY_ID] == key_id
    assert len(details[sc.B2B_AUDIT_LOG_ID]) == 32 and sc.B2B_AUDIT_HMAC_KEY_ID not in details
    assert details["i"] == 1
    assert HMAC_KEY.hex() not in json.dumps(details) and HMAC_KEY.decode() not in json.dumps(details)
    # Only the first record carries it.
    assert json.loads((folder / "audit.log").read_text().splitlines()[1])["details"] == {"i": 2}


def test_an_hmac_log_verifies_with_its_key_and_fails_without_it_or_with_another(tmp_path: Path) -> None:
    folder = _hmac_log(tmp_path)
    ok = verify([folder], HMAC_KEY)
    assert (ok.ok, ok.records, ok.mode) == (True, 3, "hmac")
    without = verify([folder], None)
    assert (without.ok, without.bad_seq, without.kind) == (False, 1, "mode")
    assert "--key-env" in without.problem and "B2B_OTEL_AUDIT_KEY" in without.problem
    wrong = verify([folder], b"another key")
    assert (wrong.ok, wrong.bad_seq, wrong.kind) == (False, 1, "mode")
    assert "wrong key" in wrong.problem
    assert verify([folder], HMAC_KEY, expect_mode="hmac").ok


def test_an_hmac_log_rehashed_as_plain_with_its_marker_fails_without_the_key(tmp_path: Path) -> None:
    folder = _hmac_log(tmp_path)
    _rehash_plain(folder, drop_marker=False)
    report = verify([folder], None)
    assert (report.ok, report.bad_seq, report.kind) == (False, 1, "mode")


def test_a_log_rewritten_without_any_marker_is_caught_only_when_a_keyed_log_is_expected(
    tmp_path: Path, keys: Any
) -> None:
    folder = _hmac_log(tmp_path)
    _rehash_plain(folder, drop_marker=True)
    # What the marker cannot catch: to a verifier who expects nothing, this is an intact plain log.
    assert verify([folder], None).ok
    expected = verify([folder], None, expect_mode="hmac")
    assert (expected.ok, expected.bad_seq, expected.kind) == (False, 1, "mode")
    assert "--expect-mode hmac" in expected.problem and "no mode marker" in expected.problem
    keyed = verify([folder], HMAC_KEY)  # the key given implies a keyed log
    assert (keyed.ok, keyed.bad_seq, keyed.kind) == (False, 1, "mode")
    assert "plain SHA-256" in keyed.problem
    signed = verify([folder], None, expect_mode="signed")
    assert (signed.ok, signed.kind) == (False, "mode")
    with_public_key = verify([folder], None, keys[3])  # the public key implies a signed log
    assert (with_public_key.ok, with_public_key.kind) == (False, "mode")


def test_expect_mode_hmac_and_signed_against_each_mode(tmp_path: Path, keys: Any) -> None:
    plain = AuditLog(tmp_path / "p" / "audit.log")
    _append(plain, 1)
    assert verify([tmp_path / "p"], None).ok
    assert json.loads((tmp_path / "p" / "audit.log").read_text())["details"] == {"i": 1}  # no marker
    assert verify([tmp_path / "p"], None, expect_mode="hmac").kind == "mode"
    assert verify([tmp_path / "p"], None, keys[3]).kind == "mode"
    hmac_folder = _hmac_log(tmp_path / "h")
    assert verify([hmac_folder], HMAC_KEY, expect_mode="signed").kind == "mode"
    both = Signed(tmp_path / "b", keys[2], hmac_key=HMAC_KEY)
    _append(both.log, 1)
    both.checkpoint()
    assert verify([tmp_path / "b"], HMAC_KEY, keys[3], expect_mode="hmac").ok
    assert verify([tmp_path / "b"], HMAC_KEY, keys[3], expect_mode="signed").ok
    only_signed = _signed_log(tmp_path / "s", keys, (2,))
    assert verify([only_signed.folder], None, keys[3], expect_mode="signed").ok
    assert verify([only_signed.folder], None, keys[3], expect_mode="hmac").kind == "mode"
    with pytest.raises(ValueError, match="expect_mode"):
        verify([only_signed.folder], None, keys[3], expect_mode="sha256")
    # An empty log has no first record to say its mode: what fails there is the missing head.
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "audit.log").touch()
    assert verify([tmp_path / "e"], None, expect_mode="hmac").kind == "head"


def test_an_hmac_log_begun_before_the_marker_still_verifies_with_its_key(tmp_path: Path) -> None:
    from b2b_otel.audit_trail.chain import GENESIS_HASH, MARKS, record_hash, tip_signature

    folder = _hmac_log(tmp_path)
    path, prev, out, record = folder / "audit.log", GENESIS_HASH, [], None
    for line in path.read_text().splitlines():  # as written before modes: no marker, the original head
        record = json.loads(line)
        record["details"] = {k: v for k, v in record["details"].items() if k not in MARKS}
        record["prev_hash"] = prev
        record["hash"] = prev = record_hash(record, HMAC_KEY)
        out.append(json.dumps(record))
    path.write_text("\n".join(out) + "\n")
    assert record is not None
    head = {"seq": record["seq"], "hash": prev, "sig": tip_signature("head", record["seq"], prev, HMAC_KEY)}
    (folder / "audit.log.head").write_text(json.dumps(head))
    assert verify([folder], HMAC_KEY).ok
    assert verify([folder], HMAC_KEY, expect_mode="hmac").ok
    assert verify([folder], None).kind == "edited"  # no record verifies without the key


def test_a_writer_refuses_to_continue_a_log_in_another_mode(tmp_path: Path, keys: Any) -> None:
    from b2b_otel import AuditError

    plain = AuditLog(tmp_path / "audit.log")
    _append(plain, 1)
    with pytest.raises(AuditError, match="without a signing key"):
        _append(AuditLog(tmp_path / "audit.log", signing_key=keys[2]), 2)
    with pytest.raises(AuditError, match="sha256 mode"):
        _append(AuditLog(tmp_path / "audit.log", key=HMAC_KEY), 2)
    assert verify([tmp_path], None).records == 1


# --- proofs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9])
def test_proofs_of_every_record_verify_with_the_public_key_alone(tmp_path: Path, keys: Any, n: int) -> None:
    log = Signed(tmp_path, keys[2])
    log.add(n)
    log.checkpoint()
    for seq in range(1, n + 1):
        proof = json.loads(json.dumps(prove([tmp_path], seq)))  # as printed and read back
        assert (proof["index"], proof["tree_size"]) == (seq - 1, n)
        assert verify_proof(proof, keys[3]).ok, verify_proof(proof, keys[3])


def test_a_proof_for_a_modified_record_fails(tmp_path: Path, keys: Any, other_key: Ed25519PrivateKey) -> None:
    _signed_log(tmp_path, keys)
    proof = prove([tmp_path], 5)
    assert proof["checkpoint"]["checkpoint"] == 3  # the latest checkpoint
    changed = json.loads(json.dumps(proof))
    changed["leaf"]["actor_id"] = "mallory"
    del changed["leaf_hash"]
    report = verify_proof(changed, keys[3])
    assert not report.ok and "seq 5" in report.summary
    changed = json.loads(json.dumps(proof))
    changed["leaf"]["details"]["email"]["value"] = "x@example.com"
    assert not verify_proof(changed, keys[3]).ok
    changed = json.loads(json.dumps(proof))
    changed["audit_path"][0] = "00" * 32
    assert not verify_proof(changed, keys[3]).ok
    changed = json.loads(json.dumps(proof))
    changed["checkpoint"]["tree_size"] = 8
    changed["tree_size"] = 8
    assert not verify_proof(changed, keys[3]).ok
    assert not verify_proof(proof, other_key.public_key()).ok  # another key


def test_a_proof_in_a_log_of_100000_records(
    tmp_path: Path, keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100,000 durable appends would take minutes of fsync and head renames: the lines are the same
    # without them (the writer keeps its state in memory; the last checkpoint writes the head).
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    real_head = AuditLog._write_head
    monkeypatch.setattr(AuditLog, "_write_head", lambda self, state: None)
    log = AuditLog(tmp_path / "audit.log", signing_key=keys[2], checkpoint_interval=3600)
    for i in range(100_000):
        log.append("a", "u", f"t{i}", "success", "", "", {"i": i})
        if i == 65_535:
            log.checkpoint()
    monkeypatch.setattr(AuditLog, "_write_head", real_head)
    log.checkpoint()
    for seq in (1, 4812, 65_536, 65_537, 100_000):
        proof = prove([tmp_path], seq)
        assert proof["tree_size"] == 100_000 and 1 <= len(proof["audit_path"]) <= 17
        assert verify_proof(proof, keys[3]).ok
    assert verify([tmp_path], None, keys[3]).ok


def test_no_proof_for_a_record_after_the_latest_checkpoint_or_in_a_plain_log(
    tmp_path: Path, keys: Any
) -> None:
    log = _signed_log(tmp_path / "s", keys, (2,))
    log.add(1, 2)
    with pytest.raises(ProofError, match="not covered by a checkpoint yet"):
        prove([log.folder], 3)
    with pytest.raises(ProofError, match="not in the files"):
        prove([log.folder], 99)
    _append(AuditLog(tmp_path / "p" / "audit.log"), 1)
    with pytest.raises(ProofError, match="not signed"):
        prove([tmp_path / "p"], 1)


# --- erasure -------------------------------------------------------------------------------------------


def test_erasure_keeps_chain_tree_and_proofs(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys)
    before = prove([tmp_path], 3)
    done = erase([tmp_path / "audit.log"], 3, "email")
    assert not done.already
    text = log.path.read_text("utf-8")
    assert "person2@example.com" not in text
    record = json.loads(log.lines()[log.index_of(3)])
    assert set(record["details"]["email"]) == {"erased", "erased_at"}
    report = verify([tmp_path], None, keys[3])
    assert report.ok, report
    assert report.erased == ((3, "email"),)
    assert "seq 3: details.email erased" in report.notes
    assert verify_proof(before, keys[3]).ok  # a proof made before the erasure
    after = verify_proof(prove([tmp_path], 3), keys[3])
    assert after.ok and after.erased == ("email",)
    assert erase([tmp_path], 3, "email").already
    # Writers go on appending after the file was replaced.
    log.add(1, 10)
    log.checkpoint()
    assert verify([tmp_path], None, keys[3]).ok


def test_erase_refuses_what_would_break_the_log(tmp_path: Path, keys: Any) -> None:
    _signed_log(tmp_path / "s", keys, (2,))
    with pytest.raises(EraseError, match="no details field 'phone'"):
        erase([tmp_path / "s"], 1, "phone")
    with pytest.raises(EraseError, match="cannot be erased"):
        erase([tmp_path / "s"], 1, sc.B2B_AUDIT_MODE)
    with pytest.raises(EraseError, match="not in the files"):
        erase([tmp_path / "s"], 50, "email")
    _append(AuditLog(tmp_path / "p" / "audit.log"), 1)
    with pytest.raises(EraseError, match="not signed"):
        erase([tmp_path / "p"], 1, "i")


def test_erase_is_safe_against_concurrent_appenders(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys, (20,))
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from b2b_otel.audit_trail.signing import load_private_key
        from b2b_otel.audit_trail.writer import AuditLog
        log = AuditLog(Path({str(log.path)!r}), signing_key=load_private_key({str(keys[0])!r}))
        for i in range(60):
            log.append("a", "writer", "t", "success", "", "", {{"email": f"w{{i}}@example.com"}})
        log.checkpoint()
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    for seq in range(1, 21):
        erase([tmp_path], seq, "email")
    assert writer.wait(60) == 0
    report = verify([tmp_path], None, keys[3])
    assert report.ok and report.records == 80, report
    assert {seq for seq, _ in report.erased} == set(range(1, 21))


# --- processes: one tree, one checkpoint sequence, crashes ------------------------------------------


def test_four_processes_keep_one_tree_and_one_checkpoint_sequence(tmp_path: Path, keys: Any) -> None:
    path = tmp_path / "audit.log"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from b2b_otel.audit_trail.signing import load_private_key
        from b2b_otel.audit_trail.writer import AuditLog
        log = AuditLog(Path({str(path)!r}), signing_key=load_private_key({str(keys[0])!r}),
                       checkpoint_interval=0.1, max_bytes=20000)
        for i in range(50):
            log.append("a", sys.argv[1], "t", "success", "", "", {{"i": i}})
            time.sleep(0.005)
        log.close()
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, f"p{n}"], cwd=ROOT) for n in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    report = verify([tmp_path], None, keys[3])
    assert report.ok and report.records == 200, report
    assert report.checkpoints >= 2
    numbers = [
        json.loads(line)["checkpoint"]
        for f in sorted(tmp_path.glob("audit.log*"))
        if f.name == "audit.log" or f.name[len("audit.log.") :].isdigit()
        for line in f.read_text().splitlines()
        if '"checkpoint"' in line
    ]
    assert sorted(numbers) == list(range(1, len(numbers) + 1))  # one sequence, no duplicates
    assert not any("not yet covered" in n for n in report.notes)  # each close() signed its last records


def test_kill_9_between_a_record_and_its_checkpoint(tmp_path: Path, keys: Any) -> None:
    path = tmp_path / "audit.log"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from b2b_otel.audit_trail.signing import load_private_key
        from b2b_otel.audit_trail.writer import AuditLog
        log = AuditLog(Path({str(path)!r}), signing_key=load_private_key({str(keys[0])!r}),
                       checkpoint_interval=3600)
        for i in range(5):
            log.append("a", "u", "t", "success", "", "", {{"i": i}})
        log.checkpoint()
        for i in range(5, 8):
            log.append("a", "u", "t", "success", "", "", {{"i": i}})
        print("done", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "done\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    report = verify([tmp_path], None, keys[3])
    assert report.ok and report.records == 8 and report.checkpoints == 1, report
    assert "seq 6..8 not yet covered by a signed checkpoint (the next one covers them)" in report.notes
    # The next run continues the tree and signs what the killed one left unsigned.
    nxt = Signed(tmp_path, keys[2])
    nxt.add(2, 8)
    assert nxt.checkpoint()["tree_size"] == 10
    report = verify([tmp_path], None, keys[3])
    assert report.ok and report.checkpoints == 2 and not report.notes, report


def test_a_head_left_behind_by_a_crash_is_caught_up_from_the_tail(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path, keys, (3,))
    stale_head = (tmp_path / "audit.log.head").read_bytes()
    log.add(2, 3)
    log.checkpoint()
    (tmp_path / "audit.log.head").write_bytes(stale_head)  # as if the process died before each head update
    nxt = Signed(tmp_path, keys[2])
    nxt.add(1, 5)
    assert nxt.checkpoint()["checkpoint"] == 3
    assert verify([tmp_path], None, keys[3]).ok


# --- the witness file: OTLP JSON lines as the collector's file exporter writes them ------------------


def test_checkpoints_are_emitted_as_log_records_and_read_back_from_otlp_json(
    tmp_path: Path, keys: Any, otlp_receiver: Any
) -> None:
    from google.protobuf.json_format import MessageToJson

    import b2b_otel
    from tests.support.otel_globals import reset_otel_globals

    reset_otel_globals()
    try:
        b2b_otel.instrument(
            service_name="audit-witness-test",
            otlp_endpoint=otlp_receiver.http_endpoint,
            log_dir=str(tmp_path),
            instrumentations="none",
            metric_export_interval="1h",
            audit_signing_key=str(keys[0]),
            audit_checkpoint_interval="1h",
        )
        for i in range(3):
            b2b_otel.audit("invoice.approve", actor_id="u-7", target=f"invoice-{i}", amount=i)
        b2b_otel.shutdown()  # the last checkpoint, emitted before the log records stop
    finally:
        reset_otel_globals()
    records = otlp_receiver.wait_for_logs(
        lambda items: any(r["event_name"] == sc.EVENT_B2B_AUDIT_CHECKPOINT for r in items)
    )
    (record,) = [r for r in records if r["event_name"] == sc.EVENT_B2B_AUDIT_CHECKPOINT]
    assert set(ATTRIBUTES.values()) <= set(record["attributes"])
    assert record["attributes"][sc.B2B_AUDIT_TREE_SIZE] == 3
    witness = tmp_path / "audit-checkpoints.jsonl"
    with witness.open("w") as f:
        for entry in otlp_receiver.requests("logs"):  # one JSON line a request, as the file exporter writes
            f.write(MessageToJson(entry.request, indent=None) + "\n")
    checkpoints, notes = read_witness(witness)
    assert notes == [] and [c["tree_size"] for c in checkpoints] == [3]
    result = _cli("verify", str(tmp_path), "--public-key", str(keys[1]), "--witness", str(witness))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 agree with the witness" in result.stdout
    lines = (tmp_path / "audit.log").read_text().splitlines(keepends=True)
    (tmp_path / "audit.log").write_text("".join(lines[:2]))
    (tmp_path / "audit.log.head").unlink()
    result = _cli("verify", str(tmp_path), "--public-key", str(keys[1]), "--witness", str(witness))
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL: seq 3: ")


# --- keys and settings -----------------------------------------------------------------------------------


def test_keygen_writes_safe_modes_and_never_overwrites(tmp_path: Path) -> None:
    result = _cli("keygen", str(tmp_path / "k"))
    assert result.returncode == 0, result.stderr
    private, public = tmp_path / "k" / "audit-signing.key", tmp_path / "k" / "audit-signing.pub"
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    assert isinstance(load_private_key(private), Ed25519PrivateKey)
    assert isinstance(load_public_key(public), Ed25519PublicKey)
    before = private.read_bytes()
    again = _cli("keygen", str(tmp_path / "k"))
    assert again.returncode == 1 and "never overwrites" in again.stderr
    assert private.read_bytes() == before
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    assert _cli("keygen", str(shared)).returncode == 0
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755  # an existing folder is not changed
    assert stat.S_IMODE(os.stat(shared / "audit-signing.key").st_mode) == 0o600


def _config_problem(env: dict[str, str], tmp_path: Path) -> str:
    from b2b_otel import ConfigError
    from b2b_otel.setup.settings import resolve

    with pytest.raises(ConfigError) as caught:
        resolve({}, environ={"B2B_OTEL_LOG_DIR": str(tmp_path / "logs"), **env})
    return str(caught.value)


def test_a_bad_signing_key_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    rsa_like = ec.generate_private_key(ec.SECP256R1())
    pem = rsa_like.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec.pem").write_bytes(pem)
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    (tmp_path / "plain.txt").write_text("hello")
    secret = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    (tmp_path / "encrypted.pem").write_bytes(secret)
    unreadable = tmp_path / "unreadable.pem"
    unreadable.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    unreadable.chmod(0)
    cases = {
        "ec.pem": "not an Ed25519 key",
        "junk.pem": "not a PEM private key",
        "plain.txt": "not a PEM file",
        "encrypted.pem": "encrypted",
        "missing.pem": "file not found",
        "unreadable.pem": "not readable" if os.geteuid() != 0 else "not a PEM private key",
    }
    for name, reason in cases.items():
        message = _config_problem({"B2B_OTEL_AUDIT_SIGNING_KEY": str(tmp_path / name)}, tmp_path)
        assert "B2B_OTEL_AUDIT_SIGNING_KEY" in message and reason in message, message
        assert "MII" not in message and "BEGIN" not in message  # never key material
    bad_interval = _config_problem({"B2B_OTEL_AUDIT_CHECKPOINT_INTERVAL": "0s"}, tmp_path)
    assert "B2B_OTEL_AUDIT_CHECKPOINT_INTERVAL" in bad_interval


def test_instrument_refuses_a_signing_key_for_a_log_started_without_one(tmp_path: Path, keys: Any) -> None:
    _append(AuditLog(tmp_path / "logs" / "audit.log"), 1)
    message = _config_problem({"B2B_OTEL_AUDIT_SIGNING_KEY": str(keys[0])}, tmp_path)
    assert "B2B_OTEL_AUDIT_SIGNING_KEY" in message and "started without a signing key" in message
    _append(AuditLog(tmp_path / "h" / "logs" / "audit.log", key=HMAC_KEY), 1)
    message = _config_problem({"B2B_OTEL_AUDIT_KEY": "another key"}, tmp_path / "h")
    assert "B2B_OTEL_AUDIT_KEY=***" in message and "another key" not in message


# --- the command line ------------------------------------------------------------------------------------


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("B2B_OTEL_AUDIT")}
    return subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "audit", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prove_verify_proof_erase_and_verify(tmp_path: Path, keys: Any) -> None:
    _signed_log(tmp_path, keys)
    private, public = keys[0], keys[1]
    proved = _cli("prove", str(tmp_path / "audit.log"), "4")
    assert proved.returncode == 0, proved.stderr
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(proved.stdout)
    assert set(json.loads(proved.stdout)) >= {"leaf", "index", "tree_size", "audit_path", "checkpoint"}
    ok = _cli("verify-proof", str(proof_file), "--public-key", str(public))
    assert ok.returncode == 0 and ok.stdout.startswith("OK: seq 4 is in the log of 9 records"), ok
    from_stdin = _cli("verify-proof", "-", "--public-key", str(private), stdin=proved.stdout)
    assert from_stdin.returncode == 0, from_stdin  # the private key file is accepted for its public half
    tampered = json.loads(proved.stdout)
    tampered["leaf"]["target"] = "invoice-999"
    proof_file.write_text(json.dumps(tampered))
    bad = _cli("verify-proof", str(proof_file), "--public-key", str(public))
    assert bad.returncode == 1 and bad.stdout.startswith("FAIL: seq 4"), bad
    erased = _cli("erase", str(tmp_path / "audit.log"), "4", "--field", "email")
    assert erased.returncode == 0 and "erased" in erased.stdout, erased
    verified = _cli("verify", str(tmp_path), "--public-key", str(public))
    assert verified.returncode == 0, verified
    assert verified.stdout.startswith(
        "OK: 9 records, chain intact (seq 1..9); tree and 3 signed checkpoint(s)"
    )
    assert "note: seq 4: details.email erased" in verified.stdout
    without = _cli("verify", str(tmp_path))
    assert without.returncode == 1 and without.stdout.startswith("FAIL: seq 1: mode"), without
    assert _cli("prove", str(tmp_path), "0").returncode == 2  # argparse: seq starts at 1
    assert _cli("verify", str(tmp_path), "--public-key", str(tmp_path / "nope.pub")).returncode == 2
    for result in (proved, ok, bad, erased, verified, without):
        assert "PRIVATE KEY" not in result.stdout + result.stderr


def _otlp_json_witness(path: Path, checkpoints: list[dict[str, Any]]) -> None:
    """A gateway's witness file: one OTLP JSON request a line, as the file exporter writes them."""
    with path.open("w") as f:
        for checkpoint in checkpoints:
            attributes = [
                {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                for k, v in attributes_of(checkpoint).items()
            ]
            record = {"eventName": sc.EVENT_B2B_AUDIT_CHECKPOINT, "attributes": attributes}
            f.write(json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}) + "\n")


def test_cli_witness_files_of_several_replicas_are_read_together(tmp_path: Path, keys: Any) -> None:
    log = _signed_log(tmp_path / "log", keys)  # checkpoints 1, 2, 3
    # The hash ring moved the service between replicas: each one saw a part of its checkpoints.
    _otlp_json_witness(tmp_path / "gateway-1.jsonl", log.witnessed[:2])
    _otlp_json_witness(tmp_path / "gateway-2.jsonl", log.witnessed[2:])
    args = ["verify", str(log.folder), "--public-key", str(keys[1])]
    both = _cli(
        *args, "--witness", str(tmp_path / "gateway-1.jsonl"), "--witness", str(tmp_path / "gateway-2.jsonl")
    )
    assert both.returncode == 0 and "3 agree with the witness" in both.stdout, both.stdout + both.stderr
    one = _cli(*args, "--witness", str(tmp_path / "gateway-1.jsonl"))
    assert one.returncode == 0 and "2 agree with the witness" in one.stdout
    assert "checkpoint 3 is not in the witness file yet" in one.stdout
    # A cut log disagrees with the replica that saw its last checkpoint.
    lines = log.lines()
    second = next(i for i, line in enumerate(lines) if json.loads(line).get("checkpoint") == 2)
    log.write(lines[: second + 1])
    (log.folder / "audit.log.head").unlink()
    cut = _cli(
        *args, "--witness", str(tmp_path / "gateway-1.jsonl"), "--witness", str(tmp_path / "gateway-2.jsonl")
    )
    assert cut.returncode == 1 and cut.stdout.startswith("FAIL: seq 8: truncated"), cut.stdout


def test_cli_consistency_proof_between_checkpoints_and_a_forked_log(tmp_path: Path, keys: Any) -> None:
    from b2b_otel.audit_trail.proof import prove_consistency

    log = _signed_log(tmp_path / "honest", keys)  # checkpoints 1 (4), 2 (7), 3 (9)
    proved = _cli("prove-consistency", str(log.folder), "1")
    assert proved.returncode == 0, proved.stderr
    proof = json.loads(proved.stdout)
    assert (proof["format"], proof["old_size"], proof["new_size"]) == (
        "b2b-otel-audit-consistency-proof/1",
        4,
        9,
    )
    assert proof["old_checkpoint"] == log.witnessed[0] and proof["new_checkpoint"] == log.witnessed[2]
    (tmp_path / "c.json").write_text(proved.stdout)
    checked = _cli("verify-proof", str(tmp_path / "c.json"), "--public-key", str(keys[1]))
    assert checked.returncode == 0 and checked.stdout.startswith(
        "OK: checkpoint 3 (9 records) extends checkpoint 1"
    )
    assert _cli("prove-consistency", str(log.folder), "2", "3").returncode == 0
    assert _cli("prove-consistency", str(log.folder), "3", "1").returncode == 1  # not older
    assert _cli("prove-consistency", str(log.folder), "7").returncode == 1  # no such checkpoint
    # A fork: the same key, rewritten after checkpoint 1 (what a taken host can do).
    fork = Signed(tmp_path / "fork", keys[2])
    lines = log.lines()
    first = next(i for i, line in enumerate(lines) if json.loads(line).get("checkpoint") == 1)
    (tmp_path / "fork").mkdir(exist_ok=True)
    fork.write(lines[: first + 1])
    fork.log = AuditLog(fork.path, signing_key=keys[2], checkpoint_interval=3600)
    fork.log.on_checkpoint = fork.witnessed.append
    fork.add(3, 100)
    fork.checkpoint()
    fork.add(2, 150)
    fork.checkpoint()
    forked = prove_consistency([fork.folder], 2, 3)
    # The fork's proof against the witness's copy of checkpoint 2 (the honest one) does not verify,
    assert forked["old_checkpoint"] != log.witnessed[1]
    spliced = {**forked, "old_checkpoint": log.witnessed[1], "old_size": 7}
    (tmp_path / "f.json").write_text(json.dumps(spliced))
    failed = _cli("verify-proof", str(tmp_path / "f.json"), "--public-key", str(keys[1]))
    assert failed.returncode == 1 and "does not extend checkpoint 2" in failed.stdout, failed.stdout
    # nor does the honest proof with the fork's newer checkpoint put in.
    honest = prove_consistency([log.folder], 2, 3)
    (tmp_path / "g.json").write_text(
        json.dumps({**honest, "new_checkpoint": fork.witnessed[-1], "new_size": 9})
    )
    failed = _cli("verify-proof", str(tmp_path / "g.json"), "--public-key", str(keys[1]))
    assert failed.returncode == 1 and failed.stdout.startswith("FAIL: "), failed.stdout
    # Another key's signature, or a changed hash in the proof, fails too.
    changed = {**proof, "proof": ["00" * 32, *proof["proof"][1:]]}
    (tmp_path / "h.json").write_text(json.dumps(changed))
    assert _cli("verify-proof", str(tmp_path / "h.json"), "--public-key", str(keys[1])).returncode == 1
    other = tmp_path / "other.pub"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert _cli("verify-proof", str(tmp_path / "c.json"), "--public-key", str(other)).returncode == 1

"""``b2b-otel audit verify``: check an audit chain and name the first record that breaks it.

Problems found, by kind (see ``docs/audit.md``):

- ``malformed``: a line that is not JSON, or not exactly the record's fields with their types;
- ``edited``: a record whose content does not match its hash (or was re-hashed: the next record
  links to its original hash);
- ``missing``: records absent from the files (a seq gap whose records appear nowhere later);
- ``inserted``: a record that is not part of the chain (the next record links past it, or it repeats
  an earlier seq);
- ``reordered``: a record of the chain found out of its place;
- ``truncated``: the signed head record says the chain goes on beyond the last line;
- ``head``: the head record is missing, unreadable, or not signed with this key;
- ``mode``: the log says it is written in a mode (HMAC, signed) the verifier was not given the key for,
  or the verifier was given a key the log does not use;
- ``checkpoint``: a checkpoint line that does not fit the log (its number, previous hash, tree size or
  root hash);
- ``signature``: a checkpoint not signed by the given public key;
- ``forked``: the log disagrees with a checkpoint the witness saw (rewritten from an older point).

Erased ``details`` values (``b2b-otel audit erase``) are reported as erased, never as a failure.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import merkle
from .chain import (
    ANCHOR_SUFFIX,
    DEFAULT_LOG_NAME,
    GENESIS_HASH,
    HASH_HEX,
    HEAD_SUFFIX,
    MARK_HMAC_KEY_ID,
    MARK_KEY_ID,
    MARK_LOG_ID,
    MARK_MODE,
    MODE_HMAC,
    MODE_SHA256,
    MODE_SIGNED,
    RECORD_FIELDS,
    STRING_FIELDS,
    ChainTip,
    checkpoint_hash,
    checkpoint_problem,
    committed_details,
    hmac_key_id,
    is_sidecar,
    leaf_data,
    normalise_key,
    read_state,
    record_hash,
    rotation_of,
    sidecar,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found. ``ok`` is True when the chain is intact.

    On failure ``bad_seq`` is the first bad seq, ``kind`` one of ``malformed``, ``edited``,
    ``missing``, ``inserted``, ``reordered``, ``truncated``, ``head``, ``problem`` says what is wrong
    and ``where`` names the file and line.
    """

    ok: bool
    records: int
    first_seq: int | None = None
    last_seq: int | None = None
    bad_seq: int | None = None
    kind: str | None = None
    problem: str = ""
    where: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    # What a signed log adds; not compared, so that reports of plain logs compare as before.
    mode: str = field(default="", compare=False)
    checkpoints: int = field(default=0, compare=False)
    witnessed: int = field(default=0, compare=False)
    erased: tuple[tuple[int, str], ...] = field(default=(), compare=False)
    signatures_checked: bool = field(default=True, compare=False)

    def summary(self) -> str:
        """One line: ``OK: 3 records, chain intact (seq 1..3)`` or ``FAIL: seq 2: edited (...)``."""
        if self.ok:
            span = f" (seq {self.first_seq}..{self.last_seq})" if self.records else " (no records)"
            extra = ""
            if self.mode == MODE_SIGNED:
                extra = f"; tree and {self.checkpoints} signed checkpoint(s) verified"
                if not self.signatures_checked:
                    extra = f"; tree and {self.checkpoints} checkpoint(s) verified (signatures not checked)"
                if self.witnessed:
                    extra += f", {self.witnessed} agree with the witness"
            if self.erased:
                extra += f"; {len(self.erased)} erased value(s)"
            return f"OK: {self.records} records, chain intact{span}{extra}"
        return f"FAIL: seq {self.bad_seq}: {self.kind} ({self.problem})"


@dataclass
class _Entry:
    index: int
    file: Path
    line: int
    seq: int | None = None
    prev_hash: str = ""
    hash: str = ""
    hash_ok: bool = False
    malformed: str | None = None
    leaf: bytes = b""
    erased: tuple[str, ...] = ()
    checkpoint: dict[str, Any] | None = None  # a checkpoint line (not a record)

    @property
    def where(self) -> str:
        return f"{self.file} line {self.line}"

    def links_to(self, seq: int, hash_: str) -> bool:
        """Whether this record is the well-formed successor of record (seq, hash)."""
        return self.malformed is None and self.seq == seq + 1 and self.prev_hash == hash_


class _Fail(Exception):
    def __init__(self, seq: int | None, kind: str, problem: str, where: str) -> None:
        super().__init__(problem)
        self.seq, self.kind, self.problem, self.where = seq, kind, problem, where


def chain_files(paths: Sequence[Path]) -> tuple[list[Path], Path | None]:
    """The log files in chain order (``.N`` .. ``.1``, live) and the live path whose head to check.

    A directory stands for its ``audit.log`` and rotated files; sidecar files (``.head``, ``.lock``,
    ``.anchor``) given by a shell glob are skipped. Raises ValueError for files of different logs
    and FileNotFoundError for a path that does not exist.
    """
    found: dict[Path, int] = {}  # path -> rotation number, 0 = live
    bases: set[Path] = set()
    live: Path | None = None
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            base = path / DEFAULT_LOG_NAME
            bases.add(base)
            live = base
            if base.exists():
                found[base] = 0
            for child in path.iterdir():
                rotation = rotation_of(child.name)
                if rotation is not None and rotation[0] == DEFAULT_LOG_NAME:
                    found[child] = rotation[1]
            continue
        if is_sidecar(path.name):
            continue
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        rotation = rotation_of(path.name)
        if rotation is not None:
            bases.add(path.with_name(rotation[0]))
            found[path] = rotation[1]
        else:
            bases.add(path)
            found[path] = 0
            live = path
    if len(bases) > 1:
        raise ValueError("the paths belong to different logs: " + ", ".join(sorted(map(str, bases))))
    if not bases:
        raise ValueError("no audit log among the paths")
    order = sorted(found, key=lambda p: (found[p] == 0, -found[p]))
    return order, live


def _parse(entry: _Entry, raw: bytes, key: bytes | None, signed: bool = False) -> None:
    def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise ValueError("duplicate key")
        return obj

    if not raw.strip():
        entry.malformed = "empty line"
        return

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")  # json.loads accepts NaN and Infinity; JSON does not

    try:
        obj = json.loads(
            raw.decode("utf-8"), object_pairs_hook=reject_duplicates, parse_constant=reject_constant
        )
    except (UnicodeDecodeError, ValueError) as exc:
        entry.malformed = f"not valid JSON: {exc}"
        return
    except RecursionError:
        entry.malformed = "not valid JSON: nested too deeply"
        return
    if not isinstance(obj, dict):
        entry.malformed = "not a JSON object"
        return
    if "checkpoint" in obj and "seq" not in obj:
        entry.checkpoint = obj
        return
    seq = obj.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1:
        entry.seq = seq
    missing = [f for f in RECORD_FIELDS if f not in obj]
    extra = sorted(set(obj) - set(RECORD_FIELDS))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(extra)}"] if extra else []
        )
        entry.malformed = "fields: " + "; ".join(parts)
        return
    bad = [f for f in STRING_FIELDS if not isinstance(obj[f], str)]
    if entry.seq is None:
        bad.insert(0, "seq")
    if not isinstance(obj["details"], dict):
        bad.append("details")
    bad += [f for f in ("prev_hash", "hash") if not (isinstance(obj[f], str) and HASH_HEX.fullmatch(obj[f]))]
    if bad:
        entry.malformed = f"bad value of {', '.join(bad)}"
        return
    entry.prev_hash, entry.hash = obj["prev_hash"], obj["hash"]
    if signed:
        committed, erased, problems = committed_details(obj["details"])
        if problems:
            entry.malformed = problems[0]
            return
        obj = {**obj, "details": committed}
        entry.erased = tuple(erased)
        entry.leaf = merkle.leaf_hash(leaf_data(obj))
    entry.hash_ok = hmac.compare_digest(record_hash(obj, key), entry.hash)


def _entries(
    files: Sequence[Path],
    key: bytes | None,
    signed: bool = False,
    checkpoints: list[_Entry] | None = None,
) -> Iterator[_Entry]:
    """The records of ``files`` in order; checkpoint lines go to ``checkpoints`` (index: records before)."""
    index = 0
    for path in files:
        with path.open("rb") as f:
            for number, raw in enumerate(f, 1):
                entry = _Entry(index, path, number)
                _parse(entry, raw.rstrip(b"\n"), key, signed)
                if entry.checkpoint is not None:
                    if checkpoints is not None:
                        checkpoints.append(entry)
                    continue
                index += 1
                yield entry


class _Tree:
    """The Merkle tree and the checkpoints of a signed log, checked as the walk goes."""

    def __init__(
        self,
        public_key: Ed25519PublicKey | None,
        marks: dict[str, Any],
        start: merkle.Frontier,
        last: dict[str, Any],
        wanted: set[int],
    ) -> None:
        self.public_key = public_key
        self.log_id, self.key_id = marks.get(MARK_LOG_ID), marks.get(MARK_KEY_ID)
        self.frontier = start
        self.last_number = int(last.get("number", 0))
        self.last_hash = str(last.get("hash", GENESIS_HASH))
        self.last_size = int(last.get("tree_size", 0) or 0)
        # Where the files start (the anchor, once the oldest files were deleted): the records before
        # are gone, so a witnessed checkpoint of no more records can only be compared by its hash.
        self.start_size = start.size
        self.start_number, self.start_hash = self.last_number, self.last_hash
        self.wanted = wanted
        self.roots: dict[int, bytes] = {}
        self.seen: dict[int, dict[str, Any]] = {}  # checkpoint number -> checkpoint
        self.count = 0
        self.erased: list[tuple[int, str]] = []

    def add(self, entry: _Entry) -> None:
        self.frontier.append(entry.leaf)
        if self.frontier.size in self.wanted:
            self.roots[self.frontier.size] = self.frontier.root()
        self.erased.extend((entry.seq or 0, name) for name in entry.erased)

    def check(self, entry: _Entry, first_seq: int) -> None:
        cp = entry.checkpoint
        assert cp is not None
        seq = max(self.last_size + 1, first_seq)
        if seq > self.frontier.size and self.frontier.size >= first_seq:
            seq = self.frontier.size
        problem = checkpoint_problem(cp)
        if problem is not None:
            raise _Fail(seq, "malformed", problem, entry.where)
        number, size = cp["checkpoint"], cp["tree_size"]
        if number != self.last_number + 1:
            what = "missing" if number > self.last_number + 1 else "repeated or out of order"
            raise _Fail(
                seq,
                "checkpoint",
                f"checkpoint {number} follows checkpoint {self.last_number}: a checkpoint is {what}",
                entry.where,
            )
        if cp["prev_checkpoint_hash"] != self.last_hash:
            raise _Fail(
                seq,
                "checkpoint",
                f"checkpoint {number} does not link to checkpoint {self.last_number}",
                entry.where,
            )
        if cp["log_id"] != self.log_id or cp["key_id"] != self.key_id:
            raise _Fail(seq, "checkpoint", f"checkpoint {number} is of another log or key", entry.where)
        if size != self.frontier.size:
            raise _Fail(
                seq,
                "checkpoint",
                f"checkpoint {number} claims {size} records where the log has {self.frontier.size}",
                entry.where,
            )
        if cp["root_hash"] != self.frontier.root().hex():
            raise _Fail(
                seq,
                "checkpoint",
                f"checkpoint {number}'s root hash is not the root of seq 1..{size} as the files hold them",
                entry.where,
            )
        from .signing import signature_ok

        if self.public_key is not None and not signature_ok(self.public_key, cp):
            raise _Fail(
                seq,
                "signature",
                f"checkpoint {number} is not signed by the given public key (key id {self.key_id})",
                entry.where,
            )
        self.last_number, self.last_hash, self.last_size = number, checkpoint_hash(cp), size
        self.seen[number] = cp
        self.count += 1


class _Walk:
    """One pass over the chain with one record of lookahead; rescans only to classify a failure."""

    def __init__(
        self,
        files: Sequence[Path],
        key: bytes | None,
        anchor: ChainTip | None,
        tree: _Tree | None = None,
    ) -> None:
        self.files, self.key, self.anchor, self.tree = files, key, anchor, tree
        self.count = 0
        self.first_seq: int | None = None
        self.prev: _Entry | None = None

    def later(self, after: int) -> Iterator[_Entry]:
        return (e for e in _entries(self.files, self.key, self.tree is not None) if e.index > after)

    def run(self, watch_seq: int | None) -> str | None:
        """Walk the chain; returns the hash of record ``watch_seq`` (for the head check) if seen."""
        watched: str | None = None
        pending: list[_Entry] = []
        tree = self.tree
        it = _entries(self.files, self.key, tree is not None, pending)
        current = next(it, None)
        while current is not None:
            following = next(it, None)
            self.checkpoints(pending, current.index)
            self.check(current, following)
            self.count += 1
            if current.seq == watch_seq:
                watched = current.hash
            if tree is not None:
                tree.add(current)
            self.prev = current
            current = following
        self.checkpoints(pending, None)
        return watched

    def checkpoints(self, pending: list[_Entry], before: int | None) -> None:
        """Check the checkpoint lines found before record ``before`` (None: all that are left)."""
        while pending and (before is None or pending[0].index <= before):
            entry = pending.pop(0)
            if self.tree is None:
                seq = (self.prev.seq or 0) + 1 if self.prev is not None else 1
                raise _Fail(seq, "checkpoint", "a checkpoint line in a log that is not signed", entry.where)
            self.tree.check(entry, self.first_seq or 1)

    def expected(self) -> tuple[int, str]:
        """(seq, prev_hash) the next record must have."""
        if self.prev is not None:
            return (self.prev.seq or 0) + 1, self.prev.hash
        return 1, GENESIS_HASH

    def check(self, r: _Entry, n: _Entry | None) -> None:
        exp_seq, exp_prev = self.expected()
        if self.prev is None and r.seq is not None and r.seq > 1 and r.malformed is None:
            # The oldest files were rotated away: the anchor must vouch for where the chain starts.
            a = self.anchor
            if a is not None and a.seq == r.seq - 1 and a.hash == r.prev_hash:
                exp_seq, exp_prev = r.seq, r.prev_hash
            else:
                raise _Fail(
                    1,
                    "missing",
                    f"the files start at seq {r.seq}; seq 1..{r.seq - 1} are not there and no "
                    "anchor record says they were rotated away",
                    r.where,
                )
        if self.first_seq is None:
            self.first_seq = exp_seq
        if r.malformed is not None:
            raise _Fail(exp_seq, "malformed", r.malformed, r.where)
        assert r.seq is not None
        link_ok = r.prev_hash == exp_prev
        seq_ok = r.seq == exp_seq
        if r.hash_ok and link_ok and seq_ok:
            return
        if not r.hash_ok:
            self.bad_hash(r, n, exp_seq, exp_prev)
        next_is_expected = n is not None and n.links_to(exp_seq - 1, exp_prev)
        if seq_ok:
            if next_is_expected:
                raise _Fail(
                    r.seq, "inserted", "not part of the chain: the next record links past it", r.where
                )
            if self.prev is None:
                raise _Fail(r.seq, "edited", "the first record does not link to the genesis hash", r.where)
            # Valid hash but the successor links to another: the previous record was changed and re-hashed.
            raise _Fail(
                self.prev.seq,
                "edited",
                f"content changed and hash recomputed: seq {r.seq} links to a different hash",
                self.prev.where,
            )
        if r.seq < exp_seq:
            if self.prev is not None and r.seq == self.prev.seq and r.prev_hash == self.prev.prev_hash:
                # Two records claim one place; the chain goes on from the genuine one.
                if n is not None and n.links_to(r.seq, r.hash):
                    fake, why = self.prev, f"seq {r.seq} at {r.where} takes its place in the chain"
                else:
                    fake, why = (
                        r,
                        f"a second record for seq {r.seq}; the chain goes on from {self.prev.where}",
                    )
                raise _Fail(fake.seq, "inserted", why, fake.where)
            raise _Fail(
                r.seq, "inserted", f"repeats seq {r.seq} after seq {exp_seq - 1} (a replayed record)", r.where
            )
        # r.seq > exp_seq: a gap.
        if link_ok:
            raise _Fail(
                exp_seq, "edited", f"seq changed to {r.seq}: it follows seq {exp_seq - 1} directly", r.where
            )
        if next_is_expected:
            if self.fits_later(r):
                raise _Fail(
                    r.seq, "reordered", f"found before seq {exp_seq}, after seq {exp_seq - 1}", r.where
                )
            raise _Fail(r.seq, "inserted", "not part of the chain: the next record links past it", r.where)
        for e in self.later(r.index):
            if e.links_to(exp_seq - 1, exp_prev) and e.hash_ok:
                raise _Fail(
                    exp_seq,
                    "reordered",
                    f"found at {e.where}, after seq {r.seq}; expected at {r.where}",
                    e.where,
                )
        last = r.seq - 1
        span = f"seq {exp_seq}" if last == exp_seq else f"seq {exp_seq}..{last}"
        raise _Fail(
            exp_seq, "missing", f"{span} not in the files: seq {r.seq} follows seq {exp_seq - 1}", r.where
        )

    def fits_later(self, r: _Entry) -> bool:
        """Whether ``r`` belongs further on (it was moved up): its predecessor or successor is there."""
        assert r.seq is not None
        return any(
            e.links_to(r.seq, r.hash) or (e.seq == r.seq - 1 and e.hash == r.prev_hash and e.hash_ok)
            for e in self.later(r.index)
        )

    def bad_hash(self, r: _Entry, n: _Entry | None, exp_seq: int, exp_prev: str) -> None:
        if n is not None and n.links_to(exp_seq - 1, exp_prev):
            raise _Fail(r.seq, "inserted", "not part of the chain: the next record links past it", r.where)
        problem = "hash does not match content"
        if self.count == 0 and n is not None and not n.hash_ok and n.malformed is None:
            problem += "; no record verifies: wrong key, or a key missing/given where the log has none?"
        raise _Fail(exp_seq if r.prev_hash == exp_prev else r.seq, "edited", problem, r.where)


def first_record(files: Sequence[Path]) -> dict[str, Any] | None:
    """The first record of the oldest file (checkpoint lines skipped), parsed, or None."""
    for path in files:
        with path.open("rb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    return None
                if isinstance(obj, dict) and "checkpoint" in obj and "seq" not in obj:
                    continue
                return obj if isinstance(obj, dict) else None
    return None


def _marks(files: Sequence[Path], anchor_state: dict[str, Any]) -> dict[str, Any]:
    """How the log says it is written: the first record's marker, or the anchor's when seq 1 is gone."""
    first = first_record(files)
    if first is not None and first.get("seq") == 1:
        details = first.get("details")
        if isinstance(details, dict) and isinstance(details.get(MARK_MODE), str):
            return {k: details.get(k) for k in (MARK_MODE, MARK_KEY_ID, MARK_LOG_ID, MARK_HMAC_KEY_ID)}
        return {}
    if anchor_state.get("mode") in (MODE_HMAC, MODE_SIGNED):
        return {
            MARK_MODE: anchor_state["mode"],
            MARK_KEY_ID: anchor_state.get("key_id"),
            MARK_LOG_ID: anchor_state.get("log_id"),
            MARK_HMAC_KEY_ID: anchor_state.get("hmac_key_id"),
        }
    return {}


EXPECT_MODES = (MODE_HMAC, MODE_SIGNED)
"""What an auditor can tell :func:`verify` to expect (``--expect-mode``): a keyed chain, or a signed log."""


def _expectation_problem(
    marks: dict[str, Any], expect: str | None, key: bytes | None, first: dict[str, Any] | None
) -> tuple[str, str] | None:
    """(kind, problem) when the log is not in the mode the auditor expects, else None.

    ``expect`` is ``hmac`` (the chain must be keyed: an HMAC log, or a signed log chained with an HMAC
    key too) or ``signed``. A key given implies ``hmac``; a public key given implies ``signed`` (checked
    by :func:`_mode_problem`). A log without a marker is accepted as keyed only when a key was given and
    its first record's hash is an HMAC under it (a log begun before modes were recorded).
    """
    mode = marks.get(MARK_MODE)
    if first is None:
        return None  # no record yet: nothing to vouch for (the summary says "no records")
    if expect == MODE_SIGNED and mode != MODE_SIGNED:
        said = f"says it is in {mode} mode" if isinstance(mode, str) else "carries no mode marker"
        return "mode", f"a signed log was expected (--expect-mode signed); its first record {said}"
    keyed = mode == MODE_HMAC or (mode == MODE_SIGNED and bool(marks.get(MARK_HMAC_KEY_ID)))
    if (expect == MODE_HMAC or (key is not None and mode is None)) and not keyed:
        if isinstance(mode, str):
            return "mode", (
                f"an HMAC-keyed log was expected (--expect-mode hmac); its first record says it is in {mode} "
                "mode without an HMAC key"
            )
        stored = first.get("hash")
        if key is not None and isinstance(stored, str) and record_hash(first, key) == stored:
            return None  # an HMAC log begun before the marker existed: its hashes need the key
        why = "--expect-mode hmac" if expect == MODE_HMAC else "a key was given"
        plain = isinstance(stored, str) and record_hash(first, None) == stored
        return "mode", (
            f"an HMAC-keyed log was expected ({why}); its first record carries no mode marker"
            + (" and hashes as plain SHA-256: written, or rewritten, without the key" if plain else "")
        )
    return None


def _mode_problem(
    marks: dict[str, Any], key: bytes | None, public_key: Ed25519PublicKey | None, witness: bool = False
) -> tuple[str, str] | None:
    """(kind, problem) when the verifier's keys do not fit the log's mode, else None.

    A signed log needs the public key, or a witness to compare its checkpoints with.
    """
    mode = marks.get(MARK_MODE)
    if mode == MODE_SIGNED:
        if public_key is None and not witness:
            return "mode", (
                f"the log is signed (key id {marks.get(MARK_KEY_ID)}); verify it with --public-key (or "
                "--witness): without either a rewritten log cannot be told from the original"
            )
        from .signing import key_id

        # Without a public key the witness's copies of the checkpoints are compared instead.
        public_key_id = marks.get(MARK_KEY_ID) if public_key is None else key_id(public_key)
        if public_key_id != marks.get(MARK_KEY_ID):
            return "signature", (
                f"the log says it is signed by key id {marks.get(MARK_KEY_ID)}; the public key given has "
                f"id {public_key_id}"
            )
        wanted = marks.get(MARK_HMAC_KEY_ID)
        if wanted and key is None:
            return "mode", f"the log is also chained with an HMAC key (key id {wanted}): give it (--key-env)"
        if wanted and hmac_key_id(key or b"") != wanted:
            return "mode", f"the log is chained with HMAC key id {wanted}, the key given has another id"
        if not wanted and key is not None:
            return "mode", "the log is not chained with an HMAC key, but one was given"
        return None
    if public_key is not None:
        return "mode", (
            "the log is not signed (its first record does not say so): it was written without a signing "
            "key, or rewritten without one"
        )
    if mode == MODE_HMAC and key is None:
        return "mode", (
            f"the log is chained with an HMAC key (key id {marks.get(MARK_KEY_ID)}); give it "
            "(B2B_OTEL_AUDIT_KEY or --key-env): without it a rewritten log cannot be told apart"
        )
    if mode == MODE_HMAC and key is not None and hmac_key_id(key) != marks.get(MARK_KEY_ID):
        return "mode", (
            f"the log is chained with HMAC key id {marks.get(MARK_KEY_ID)}, the key given has id "
            f"{hmac_key_id(key)} (a wrong key?)"
        )
    return None


def verify(
    paths: Sequence[Path],
    key: bytes | None,
    public_key: Ed25519PublicKey | None = None,
    witness: Sequence[dict[str, Any]] | None = None,
    expect_mode: str | None = None,
) -> VerifyReport:
    """Check the chain in ``paths`` (a log's files, or its directory) with ``key`` (None = SHA-256).

    A signed log needs ``public_key``: then the tree and every checkpoint are checked too, and, with
    ``witness`` (checkpoints read by :func:`.witness.read_witness`), that the log agrees with each
    checkpoint the witness saw. ``expect_mode`` (``hmac`` or ``signed``) is the mode the auditor knows
    the log must have: a log in a weaker one (one rewritten from scratch without any marker included)
    fails with ``mode``; a ``key`` given implies ``hmac``, a ``public_key`` ``signed``. Raises OSError
    when a file cannot be read and ValueError when the paths are not one log or ``expect_mode`` is
    not one of :data:`EXPECT_MODES`.

    Example::

        report = verify([Path("logs")], key=b"secret")
        print(report.summary())  # OK: 120 records, chain intact (seq 1..120)
    """
    key = normalise_key(key)
    if expect_mode is not None and expect_mode not in EXPECT_MODES:
        raise ValueError(f"expect_mode: {expect_mode!r} is not one of {', '.join(EXPECT_MODES)}")
    files, live = chain_files(paths)
    base = live
    if base is None:
        rotation = rotation_of(files[0].name)
        assert rotation is not None
        base = files[0].with_name(rotation[0])
    anchor, anchor_state, _ = read_state(sidecar(base, ANCHOR_SUFFIX), "anchor", key)
    head: ChainTip | None = None
    head_state: dict[str, Any] = {}
    head_problem: str | None = None
    if live is not None:
        head_path = sidecar(live, HEAD_SUFFIX)
        head, head_state, head_problem = read_state(head_path, "head", key)
        if head is None and head_problem is None:
            head_problem = f"{head_path.name} is missing"
    marks = _marks(files, anchor_state)
    mode = str(marks.get(MARK_MODE) or (MODE_HMAC if key else MODE_SHA256))
    mismatch = _expectation_problem(marks, expect_mode, key, first_record(files)) or _mode_problem(
        marks, key, public_key, witness is not None
    )
    if mismatch is not None:
        return VerifyReport(False, 0, None, None, 1, mismatch[0], mismatch[1], str(files[0]), mode=mode)
    tree: _Tree | None = None
    # The collector may keep one checkpoint twice (an export retried): each counts once.
    unique = {checkpoint_hash(w): dict(w) for w in witness or () if w.get("log_id") == marks.get(MARK_LOG_ID)}
    witnessed = list(unique.values())
    if mode == MODE_SIGNED:
        start, last = merkle.Frontier(), {}
        first = first_record(files)
        if first is not None and first.get("seq") != 1 and anchor_state.get("tree") is not None:
            try:
                start = merkle.Frontier.from_json(anchor_state["tree"])
            except ValueError:
                start = merkle.Frontier()
            last = dict(anchor_state.get("checkpoint") or {})
        tree = _Tree(public_key, marks, start, last, {int(w["tree_size"]) for w in witnessed})
    walk = _Walk(files, key, anchor, tree)
    try:
        watched = walk.run(head.seq if head is not None else None)
    except _Fail as fail:
        return VerifyReport(
            False, walk.count, walk.first_seq, None, fail.seq, fail.kind, fail.problem, fail.where, mode=mode
        )
    last_seq = walk.prev.seq if walk.prev is not None else None
    end = last_seq if last_seq is not None else 0
    notes: list[str] = []

    def failed(seq: int, kind: str, problem: str, where: str) -> VerifyReport:
        return VerifyReport(False, walk.count, walk.first_seq, last_seq, seq, kind, problem, where, mode=mode)

    checkpoints, agreed = 0, 0
    erased: tuple[tuple[int, str], ...] = ()
    if tree is not None:
        checkpoints, erased = tree.count, tuple(tree.erased)
        if tree.last_size < end:
            span = (
                f"seq {tree.last_size + 1}"
                if tree.last_size + 1 == end
                else f"seq {tree.last_size + 1}..{end}"
            )
            notes.append(f"{span} not yet covered by a signed checkpoint (the next one covers them)")
        if witness is not None:
            outcome = _against_witness(tree, witnessed, len(witness), end, str(files[-1]), notes)
            if isinstance(outcome, tuple):
                return failed(*outcome)
            agreed = outcome
            latest = max((int(w["checkpoint"]) for w in witnessed), default=0)
            if tree.last_number > latest:
                notes.append(
                    f"checkpoints {latest + 1}..{tree.last_number} are not in the witness file yet"
                    if tree.last_number > latest + 1
                    else f"checkpoint {tree.last_number} is not in the witness file yet"
                )
    if witness is not None and tree is None:
        notes.append("the witness was not used: the log is not signed, it has no checkpoints")
    if tree is not None and public_key is None:
        notes.append(
            "signatures not checked (no --public-key): the checkpoints are vouched for by the witness only"
        )
    if live is not None:
        where = str(sidecar(live, HEAD_SUFFIX))
        if head is None:
            return failed(end + 1, "head", f"{head_problem}; a cut-off tail cannot be ruled out", where)
        if head.seq > end:
            span = f"seq {end + 1}" if head.seq == end + 1 else f"seq {end + 1}..{head.seq}"
            return failed(
                end + 1,
                "truncated",
                f"the head record says the chain ends at seq {head.seq}; {span} cut off",
                where,
            )
        genesis = head.seq == 0 and head.hash == GENESIS_HASH
        first_seq = walk.first_seq or 1
        if not genesis and head.seq >= first_seq and watched is not None and watched != head.hash:
            return failed(head.seq, "edited", "the record does not match the head record's hash", where)
        if head.seq < end:
            notes.append(f"head record lags at seq {head.seq} (a writer stopped before updating it)")
        head_cp = head_state.get("checkpoint")
        if tree is not None and isinstance(head_cp, dict) and isinstance(head_cp.get("number"), int):
            if head_cp["number"] > tree.last_number:
                return failed(
                    tree.last_size + 1,
                    "truncated",
                    f"the head record says checkpoint {head_cp['number']} was written; the files end at "
                    f"checkpoint {tree.last_number}",
                    where,
                )
            seen = tree.seen.get(head_cp["number"])
            if seen is not None and checkpoint_hash(seen) != head_cp.get("hash"):
                return failed(
                    int(head_cp.get("tree_size") or end),
                    "checkpoint",
                    f"checkpoint {head_cp['number']} is not the one the head record names",
                    where,
                )
    for seq, name in erased[:20]:
        notes.append(f"seq {seq}: details.{name} erased")
    if len(erased) > 20:
        notes.append(f"... and {len(erased) - 20} more erased values")
    return VerifyReport(
        True,
        walk.count,
        walk.first_seq,
        last_seq,
        notes=tuple(notes),
        mode=mode,
        checkpoints=checkpoints,
        witnessed=agreed,
        erased=erased,
        signatures_checked=public_key is not None,
    )


def _against_witness(
    tree: _Tree, witnessed: list[dict[str, Any]], total: int, end: int, where: str, notes: list[str]
) -> int | tuple[int, str, str, str]:
    """How many witnessed checkpoints the log agrees with, or the failure (seq, kind, problem, where).

    A witnessed checkpoint that covers only records of files rotation deleted cannot be recomputed:
    it agrees when it is the anchor's checkpoint or one the files hold, and is a note otherwise.
    """
    from .signing import signature_ok

    if not witnessed:
        if tree.count == 0 and end == 0:
            return 0
        return (
            1,
            "forked",
            f"the witness holds no checkpoint of this log (log id {tree.log_id}; {total} checkpoint(s) of "
            "other logs): the log was replaced, or its checkpoints never reached the witness",
            where,
        )
    agreed_size, rotated_away = 0, 0
    for w in sorted(witnessed, key=lambda c: (int(c["checkpoint"]), int(c["tree_size"]))):
        number, size = int(w["checkpoint"]), int(w["tree_size"])
        bad_signature = tree.public_key is not None and not signature_ok(tree.public_key, w)
        if w.get("key_id") != tree.key_id or bad_signature:
            return (
                agreed_size + 1,
                "forked",
                f"the witness holds checkpoint {number} of this log signed by another key (key id "
                f"{w.get('key_id')}): the log was re-signed",
                where,
            )
        if size > tree.frontier.size:
            return (
                tree.frontier.size + 1,
                "truncated",
                f"the witness saw checkpoint {number} covering seq 1..{size}; the log ends at seq {end}",
                where,
            )
        if 0 < size <= tree.start_size and number not in tree.seen:
            if number == tree.start_number and checkpoint_hash(w) != tree.start_hash:
                return (
                    tree.start_size + 1,
                    "forked",
                    f"the witness saw checkpoint {number} other than the one the anchor names: the log "
                    "was rewritten before its oldest file left",
                    where,
                )
            if number != tree.start_number:
                rotated_away += 1
                continue
            agreed_size = max(agreed_size, size)
            continue
        root = tree.roots.get(size)
        if root is None or root.hex() != w["root_hash"]:
            return (
                agreed_size + 1,
                "forked",
                f"the witness saw checkpoint {number} with another root for seq 1..{size}: the log was "
                f"rewritten after seq {agreed_size}",
                where,
            )
        mine = tree.seen.get(number)
        if mine is None:
            return (
                agreed_size + 1 if agreed_size < size else size,
                "checkpoint",
                f"checkpoint {number}, which the witness saw, is missing from the log",
                where,
            )
        if checkpoint_hash(mine) != checkpoint_hash(w):
            return (
                agreed_size + 1,
                "forked",
                f"the log's checkpoint {number} is not the one the witness saw (re-signed)",
                where,
            )
        agreed_size = max(agreed_size, size)
    if rotated_away:
        notes.append(
            f"{rotated_away} witnessed checkpoint(s) cover only records of deleted files (seq 1.."
            f"{tree.start_size}): not checked against the records"
        )
    return len(witnessed) - rotated_away

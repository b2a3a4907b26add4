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
- ``head``: the head record is missing, unreadable, or not signed with this key.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chain import (
    ANCHOR_SUFFIX,
    DEFAULT_LOG_NAME,
    GENESIS_HASH,
    HASH_HEX,
    HEAD_SUFFIX,
    RECORD_FIELDS,
    STRING_FIELDS,
    ChainTip,
    is_sidecar,
    normalise_key,
    read_tip,
    record_hash,
    rotation_of,
    sidecar,
)


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

    def summary(self) -> str:
        """One line: ``OK: 3 records, chain intact (seq 1..3)`` or ``FAIL: seq 2: edited (...)``."""
        if self.ok:
            span = f" (seq {self.first_seq}..{self.last_seq})" if self.records else " (no records)"
            return f"OK: {self.records} records, chain intact{span}"
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


def _parse(entry: _Entry, raw: bytes, key: bytes | None) -> None:
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
    entry.hash_ok = hmac.compare_digest(record_hash(obj, key), entry.hash)


def _entries(files: Sequence[Path], key: bytes | None) -> Iterator[_Entry]:
    index = 0
    for path in files:
        with path.open("rb") as f:
            for number, raw in enumerate(f, 1):
                entry = _Entry(index, path, number)
                _parse(entry, raw.rstrip(b"\n"), key)
                index += 1
                yield entry


class _Walk:
    """One pass over the chain with one record of lookahead; rescans only to classify a failure."""

    def __init__(self, files: Sequence[Path], key: bytes | None, anchor: ChainTip | None) -> None:
        self.files, self.key, self.anchor = files, key, anchor
        self.count = 0
        self.first_seq: int | None = None
        self.prev: _Entry | None = None

    def later(self, after: int) -> Iterator[_Entry]:
        return (e for e in _entries(self.files, self.key) if e.index > after)

    def run(self, watch_seq: int | None) -> str | None:
        """Walk the chain; returns the hash of record ``watch_seq`` (for the head check) if seen."""
        watched: str | None = None
        it = _entries(self.files, self.key)
        current = next(it, None)
        while current is not None:
            following = next(it, None)
            self.check(current, following)
            self.count += 1
            if current.seq == watch_seq:
                watched = current.hash
            self.prev = current
            current = following
        return watched

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


def verify(paths: Sequence[Path], key: bytes | None) -> VerifyReport:
    """Check the chain in ``paths`` (a log's files, or its directory) with ``key`` (None = SHA-256).

    Raises OSError when a file cannot be read and ValueError when the paths are not one log.

    Example::

        report = verify([Path("logs")], key=b"secret")
        print(report.summary())  # OK: 120 records, chain intact (seq 1..120)
    """
    key = normalise_key(key)
    files, live = chain_files(paths)
    base = live
    if base is None:
        rotation = rotation_of(files[0].name)
        assert rotation is not None
        base = files[0].with_name(rotation[0])
    anchor, _ = read_tip(sidecar(base, ANCHOR_SUFFIX), "anchor", key)
    head: ChainTip | None = None
    head_problem: str | None = None
    if live is not None:
        head_path = sidecar(live, HEAD_SUFFIX)
        head, head_problem = read_tip(head_path, "head", key)
        if head is None and head_problem is None:
            head_problem = f"{head_path.name} is missing"
    walk = _Walk(files, key, anchor)
    try:
        watched = walk.run(head.seq if head is not None else None)
    except _Fail as fail:
        return VerifyReport(
            False, walk.count, walk.first_seq, None, fail.seq, fail.kind, fail.problem, fail.where
        )
    last_seq = walk.prev.seq if walk.prev is not None else None
    end = last_seq if last_seq is not None else 0
    notes: list[str] = []
    if live is not None:
        where = str(sidecar(live, HEAD_SUFFIX))
        if head is None:
            return VerifyReport(
                False,
                walk.count,
                walk.first_seq,
                last_seq,
                end + 1,
                "head",
                f"{head_problem}; a cut-off tail cannot be ruled out",
                where,
            )
        if head.seq > end:
            span = f"seq {end + 1}" if head.seq == end + 1 else f"seq {end + 1}..{head.seq}"
            return VerifyReport(
                False,
                walk.count,
                walk.first_seq,
                last_seq,
                end + 1,
                "truncated",
                f"the head record says the chain ends at seq {head.seq}; {span} cut off",
                where,
            )
        genesis = head.seq == 0 and head.hash == GENESIS_HASH
        first = walk.first_seq or 1
        if not genesis and head.seq >= first and watched is not None and watched != head.hash:
            return VerifyReport(
                False,
                walk.count,
                walk.first_seq,
                last_seq,
                head.seq,
                "edited",
                "the record does not match the head record's hash",
                where,
            )
        if head.seq < end:
            notes.append(f"head record lags at seq {head.seq} (a writer stopped before updating it)")
    return VerifyReport(True, walk.count, walk.first_seq, last_seq, notes=tuple(notes))

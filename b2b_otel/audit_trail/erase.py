"""``b2b-otel audit erase``: remove one ``details`` value of a signed log, keeping chain, tree and proofs.

A signed log stores each value beside its salt; the record's hash and its leaf cover only the salted
commitment. Erasing replaces ``{"salt", "value"}`` by ``{"erased": commitment, "erased_at": time}``:
the value and the salt are gone (the commitment alone reveals nothing of a value with 128 random bits
of salt), and every hash still verifies. The file is rewritten under the writers' lock, to a temporary
file that is fsynced and renamed over the original: a crash leaves the old file or the new, never half.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._internal.formats import iso
from .chain import LOCK_SUFFIX, MARK_MODE, MARKS, MODE_SIGNED, commitment, rotation_of, sidecar
from .verify import chain_files, first_record
from .writer import atomic_write, dumps_line, is_checkpoint, parse_line


class EraseError(ValueError):
    """The value cannot be erased (not a signed log, no such record or field)."""


@dataclass(frozen=True)
class Erased:
    """What :func:`erase` did: the file changed, and whether the value was already erased."""

    file: Path
    line: int
    already: bool


def erase(paths: Sequence[Path], seq: int, field_name: str) -> Erased:
    """Erase ``details[field_name]`` of record ``seq``. Raises EraseError, OSError.

    Example::

        erase([Path("logs/audit.log")], 4812, "email")
    """
    files, live = chain_files(paths)
    base = live
    if base is None:
        rotation = rotation_of(files[0].name)
        assert rotation is not None
        base = files[0].with_name(rotation[0])
    first = first_record(files)
    signed = False
    if first is not None:
        details = first.get("details")
        signed = isinstance(details, dict) and details.get(MARK_MODE) == MODE_SIGNED
    if first is not None and first.get("seq") != 1:
        # The first record is rotated away: the records themselves say whether they are committed.
        signed = True
    if not signed:
        raise EraseError(
            "the log is not signed (B2B_OTEL_AUDIT_SIGNING_KEY): its details are not salted commitments, "
            "so erasing a value would break the chain"
        )
    if field_name in MARKS:
        raise EraseError(f"{field_name} says how the log is written; it cannot be erased")
    lock_fd = os.open(sidecar(base, LOCK_SUFFIX), os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # no writer appends while the file is rewritten
        return _erase_locked(files, seq, field_name)
    finally:
        os.close(lock_fd)


def _erase_locked(files: Sequence[Path], seq: int, field_name: str) -> Erased:
    for path in reversed(files):  # recent records are the likely ones
        lines = path.read_bytes().split(b"\n")
        for number, raw in enumerate(lines):
            if f'"seq":{seq},'.encode() not in raw:
                continue
            obj = parse_line(raw)
            if obj is None or is_checkpoint(obj) or obj.get("seq") != seq:
                continue
            details = obj.get("details")
            if not isinstance(details, dict) or field_name not in details:
                names = ", ".join(k for k in (details or {}) if k not in MARKS) or "none"
                raise EraseError(f"seq {seq} has no details field {field_name!r} (its fields: {names})")
            stored = details[field_name]
            if isinstance(stored, dict) and set(stored) == {"erased", "erased_at"}:
                return Erased(path, number + 1, already=True)
            if not (isinstance(stored, dict) and set(stored) == {"salt", "value"}):
                raise EraseError(f"seq {seq}: details.{field_name} is not a salted commitment")
            details[field_name] = {
                "erased": commitment(field_name, str(stored["salt"]), stored["value"]),
                "erased_at": iso(time.time()),
            }
            lines[number] = dumps_line(obj).rstrip(b"\n")
            mode = os.stat(path).st_mode & 0o777
            atomic_write(path, b"\n".join(lines), mode)
            return Erased(path, number + 1, already=False)
    raise EraseError(f"seq {seq} is not in the files")


__all__ = ["EraseError", "Erased", "erase"]

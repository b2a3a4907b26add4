"""The outside witness: the checkpoints the gateway kept, read from its file exporter's OTLP JSON lines.

The collector's ``file`` exporter (``format: json``) writes one ``{"resourceLogs": [...]}`` object a line;
each ``b2b.audit.checkpoint`` log record carries a checkpoint in its attributes (registry names in
``docs/semconv``). :func:`read_witness` turns them back into checkpoint objects, exactly as signed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import semconv as sc

# Checkpoint field -> the attribute that carries it in the b2b.audit.checkpoint log record.
ATTRIBUTES: dict[str, str] = {
    "checkpoint": sc.B2B_AUDIT_CHECKPOINT_NUMBER,
    "log_id": sc.B2B_AUDIT_LOG_ID,
    "tree_size": sc.B2B_AUDIT_TREE_SIZE,
    "root_hash": sc.B2B_AUDIT_ROOT_HASH,
    "ts": sc.B2B_AUDIT_CHECKPOINT_TIME,
    "prev_checkpoint_hash": sc.B2B_AUDIT_CHECKPOINT_PREV_HASH,
    "key_id": sc.B2B_AUDIT_KEY_ID,
    "signature": sc.B2B_AUDIT_CHECKPOINT_SIGNATURE,
}
_INT_FIELDS = ("checkpoint", "tree_size")


def attributes_of(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The log record attributes of a checkpoint."""
    return {attribute: checkpoint[name] for name, attribute in ATTRIBUTES.items()}


def _value(any_value: Any) -> Any:
    if not isinstance(any_value, dict):
        return None
    if "stringValue" in any_value:
        return any_value["stringValue"]
    if "intValue" in any_value:  # int64 is a JSON string in OTLP JSON
        try:
            return int(any_value["intValue"])
        except (TypeError, ValueError):
            return None
    return None


def _records(obj: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(obj, dict):
        return
    for resource_logs in obj.get("resourceLogs") or ():
        for scope_logs in (resource_logs or {}).get("scopeLogs") or ():
            for record in (scope_logs or {}).get("logRecords") or ():
                if isinstance(record, dict):
                    yield record


def read_witness(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The checkpoints in a witness file, in file order, and notes on lines that could not be read.

    Raises OSError when the file cannot be read.
    """
    checkpoints: list[dict[str, Any]] = []
    notes: list[str] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                notes.append(f"{path} line {number} is not JSON (skipped)")
                continue
            for record in _records(obj):
                if record.get("eventName") != sc.EVENT_B2B_AUDIT_CHECKPOINT:
                    continue
                attributes = {
                    str(a.get("key")): _value(a.get("value"))
                    for a in record.get("attributes") or ()
                    if isinstance(a, dict)
                }
                checkpoint = {name: attributes.get(attribute) for name, attribute in ATTRIBUTES.items()}
                if any(v is None for v in checkpoint.values()) or not all(
                    isinstance(checkpoint[n], int) for n in _INT_FIELDS
                ):
                    notes.append(
                        f"{path} line {number}: a checkpoint record without all its attributes (skipped)"
                    )
                    continue
                checkpoints.append(checkpoint)
    return checkpoints, notes

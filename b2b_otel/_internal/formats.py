"""How times, ids and values are written in local files, health snapshots and derived records."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any


def iso(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-29T09:49:00.738Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def seed_time(seconds: float) -> str:
    """The seed's log timestamp: ``2025-06-20 01:52:00,123`` (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f",{int(seconds % 1 * 1000):03d}"


def fmt_seconds(value: float) -> str:
    """``4.1s``, ``300s``, ``0.0000719s``: durations as the seed writes them, never in exponent form.

    The seed's runbook sorts them with ``sort -n``, which reads ``7.19e-05s`` as 7.19.
    """
    if not math.isfinite(value):
        return f"{value}s"
    if value >= 100:
        return f"{value:.0f}s"
    if value >= 0.0001 or value == 0:
        return f"{value:.3g}s"
    # Three significant digits in fixed point: .3g would switch to an exponent below 1e-4.
    digits = 2 - math.floor(math.log10(abs(value)))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") + "s"


def hex_ids(trace_id: int, span_id: int) -> tuple[str, str]:
    """W3C hex trace and span ids, or empty strings where there is no span."""
    return (f"{trace_id:032x}" if trace_id else "", f"{span_id:016x}" if span_id else "")


_MAX_DEPTH = 32
# Ints beyond this are written as strings: CPython refuses to print ints over 4300 digits, and other
# JSON readers lose precision far earlier.
_MAX_INT_BITS = 1024


def _clean_str(value: str) -> str:
    # Lone surrogates cannot be written as UTF-8; keep them visible instead of failing the record.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def json_safe(value: Any, _depth: int = 0) -> Any:
    """``value`` with everything JSON cannot hold exactly (objects, NaN, huge ints) turned into ``str``.

    ``json.dumps(json_safe(v), allow_nan=False)`` then never fails and never writes ``NaN``/``Infinity``,
    which are not JSON.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value) if value.bit_length() <= _MAX_INT_BITS else str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clean_str(value)
    if _depth >= _MAX_DEPTH:
        return _clean_str(str(value))
    if isinstance(value, Mapping):
        return {_clean_str(str(k)): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, _depth + 1) for v in value]
    return _clean_str(str(value))

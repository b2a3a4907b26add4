"""How times and ids are written in local files, health snapshots and derived records."""

from __future__ import annotations

import time


def iso(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-29T09:49:00.738Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def seed_time(seconds: float) -> str:
    """The seed's log timestamp: ``2025-06-20 01:52:00,123`` (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f",{int(seconds % 1 * 1000):03d}"


def hex_ids(trace_id: int, span_id: int) -> tuple[str, str]:
    """W3C hex trace and span ids, or empty strings where there is no span."""
    return (f"{trace_id:032x}" if trace_id else "", f"{span_id:016x}" if span_id else "")

"""Durations as users write them: ``30`` (seconds), ``30s``, ``500ms``, ``5m``, ``1h``."""

from __future__ import annotations

import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any, bare_unit: str = "s") -> Any:
    """Seconds from ``30``, ``30s``, ``500ms``, ``5m`` or ``1h``; a bare number is in ``bare_unit``."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value) * _UNIT_SECONDS[bare_unit]
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError("not a duration")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or bare_unit]
    else:
        return value
    if seconds < 0:
        raise ValueError("negative duration")
    return seconds

"""Sizes as users write them: ``1048576`` (bytes), ``512KiB``, ``64MiB``, ``1GiB``, ``10MB``, ``64m``."""

from __future__ import annotations

import re
from typing import Any

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(value: Any) -> Any:
    """Bytes from ``1048576``, ``512KiB``, ``64MiB``, ``1GiB`` (binary) or ``10MB``, ``10kB`` (decimal).

    A bare letter (``64m``) is binary, as ``ulimit`` and most daemons read it. Anything else that is not a
    string or a number is left for the field's type to judge.

    >>> parse_size("64MiB"), parse_size("10MB"), parse_size(4096)
    (67108864, 10000000, 4096)
    """
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, (int, float)):
        number, base, power = float(value), 1024, 0
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if not match or (match.group(3) and not match.group(2)):
            raise ValueError("not a size")
        prefix, binary, byte_unit = match.group(2).lower(), match.group(3), match.group(4)
        decimal = bool(prefix) and byte_unit and not binary
        number, base, power = float(match.group(1)), 1000 if decimal else 1024, _POWER[prefix]
    else:
        return value
    if number < 0:
        raise ValueError("negative size")
    return int(number * base**power)

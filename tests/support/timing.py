"""The best of a few timed calls: what the linear-time checks of the scrubber compare."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(func: Callable[[], object], repeat: int = 5) -> float:
    """The shortest wall time of ``repeat`` calls of ``func`` (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - started)
    return best

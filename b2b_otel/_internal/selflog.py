"""b2b_otel's own diagnostics: rate-limited, so a dead backend cannot flood the application's logs."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("b2b_otel")

_INTERVAL_S = 60.0
_last: dict[str, float] = {}
_lock = threading.Lock()


def warn_once_a_minute(key: str, message: str, *args: object) -> None:
    """Log ``message`` at WARNING at most once a minute per ``key``; never raises."""
    now = time.monotonic()
    with _lock:
        last = _last.get(key)
        if last is not None and now - last < _INTERVAL_S:
            return
        _last[key] = now
    try:
        logger.warning(message, *args)
    except Exception:
        pass


def reset() -> None:
    """Forget the rate-limit state (tests, and a forked child)."""
    with _lock:
        _last.clear()

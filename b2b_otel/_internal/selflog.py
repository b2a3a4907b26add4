"""b2b_otel's own diagnostics: rate-limited, so a dead backend cannot flood the application's logs."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from .. import semconv

# Named like the helpers' instrumentation scope: the logging bridge exports these records under it.
logger = logging.getLogger(semconv.INSTRUMENTATION_SCOPE)

_INTERVAL_S = 60.0
# Keys can carry a name the application chose (a memory tier, a pool): the table is bounded, and a
# key pushed out early only means its next warning comes sooner.
_MAX_KEYS = 512
_last: OrderedDict[str, float] = OrderedDict()
_lock = threading.Lock()


def warn_once_a_minute(key: str, message: str, *args: object) -> None:
    """Log ``message`` at WARNING at most once a minute per ``key``; never raises."""
    now = time.monotonic()
    with _lock:
        last = _last.get(key)
        if last is not None and now - last < _INTERVAL_S:
            return
        _last[key] = now
        _last.move_to_end(key)
        while len(_last) > _MAX_KEYS:
            _last.popitem(last=False)
    try:
        logger.warning(message, *args)
    except Exception:
        pass


def reset() -> None:
    """Forget the rate-limit state (tests, and a forked child)."""
    with _lock:
        _last.clear()

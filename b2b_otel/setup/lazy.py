"""Run a callback when the application imports a module, not before: lazy library instrumentation.

``instrument()`` with ``B2B_OTEL_INSTRUMENTATIONS=auto`` would otherwise import httpx, psycopg,
openai and anthropic at start-up (an instrumentor imports its library), whether or not the
application ever uses them, and pay their import time. :func:`when_imported` runs the callback at
once when the module is already imported; otherwise a finder on ``sys.meta_path`` watches for the
module's first import, lets it execute completely, and then runs the callback in the importing
thread, before the application's ``import`` statement returns. Each callback runs at most once;
a failing callback is logged (rate-limited) and never breaks the application's import.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from .._internal import selflog

Callback = Callable[[ModuleType], None]

_lock = threading.RLock()
# Top-level module name -> the callbacks waiting for its first import.
_waiting: dict[str, list[Callback]] = {}
_local = threading.local()


def when_imported(module: str, callback: Callback) -> None:
    """Call ``callback(module)`` now if ``module`` is imported, else right after its first import."""
    with _lock:
        loaded = sys.modules.get(module)
        if loaded is None:
            _waiting.setdefault(module, []).append(callback)
            _install_finder()
            return
    _call(module, callback, loaded)


def cancel(module: str) -> bool:
    """Forget the callbacks still waiting for ``module``; True when there were any."""
    with _lock:
        return bool(_waiting.pop(module, None))


def waiting() -> tuple[str, ...]:
    """The modules whose first import is still awaited."""
    with _lock:
        return tuple(_waiting)


def _call(name: str, callback: Callback, module: ModuleType) -> None:
    try:
        callback(module)
    except Exception as exc:  # the application's import must succeed whatever our callback does
        selflog.warn_once_a_minute(
            f"lazy-{name}", "b2b_otel: instrumenting %s on its import failed: %r", name, exc
        )


def _fire(name: str, module: ModuleType) -> None:
    with _lock:
        callbacks = _waiting.pop(name, [])
    for callback in callbacks:
        _call(name, callback, module)


class _Finder:
    """A meta path finder that only ever answers for awaited modules, with the real spec found by
    the finders after it, its loader's ``exec_module`` wrapped to fire the callbacks afterwards."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in _waiting or getattr(_local, "busy", False):
            return None
        _local.busy = True  # the finders below may import; they must not come back here
        try:
            spec = _real_spec(self, fullname, path, target)
        finally:
            _local.busy = False
        loader: Any = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            try:
                del loader.exec_module  # back to the loader's own method, e.g. for a reload
            except AttributeError:
                pass
            _fire(fullname, module)

        try:
            loader.exec_module = exec_module
        except (AttributeError, TypeError):  # a loader that takes no attributes: left as it is
            return spec
        return spec

    def invalidate_caches(self) -> None:
        pass


def _real_spec(
    own: _Finder, fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    for finder in list(sys.meta_path):
        if finder is own:
            continue
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec = find(fullname, path, target)
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


_finder: _Finder | None = None


def _install_finder() -> None:
    global _finder
    if _finder is None:
        _finder = _Finder()
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)

"""The application's own logging configuration keeps working beside the logging bridge.

The bridge puts its handler on the root logger. ``logging.basicConfig()`` does nothing when the root
logger has a handler, so an application that calls it after ``instrument()`` (as most scripts do,
often at the top of ``main()``) would get no console output at all; ``basicConfig(force=True)``,
``logging.config.dictConfig()`` and ``fileConfig()`` would instead remove the bridge's handler, and
the application's log records would silently stop reaching the backend.

While the bridge is installed, those three functions are wrapped:

- ``basicConfig`` runs as if b2b_otel's handlers were not there (they are taken off the root logger
  for the call and put back after it), so it configures the console exactly as without b2b_otel;
- after ``dictConfig`` and ``fileConfig``, b2b_otel's handlers are put back on the root logger if the
  new configuration removed them. The configuration's own handlers, levels and formats are kept.

``uninstall()`` puts the original functions back.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

_state_lock = threading.Lock()
_ours: tuple[logging.Handler, ...] = ()
_originals: dict[str, Callable[..., Any]] = {}
_wrappers: dict[str, Callable[..., Any]] = {}


@contextlib.contextmanager
def _logging_lock() -> Iterator[None]:
    """logging's own module lock (reentrant: the wrapped functions take it again), if it has one."""
    lock: Any = getattr(logging, "_lock", None)
    if lock is None:
        yield
        return
    with lock:
        yield


def _take_ours_off(root: logging.Logger) -> list[logging.Handler]:
    present = [h for h in root.handlers if h in _ours]
    for handler in present:
        root.removeHandler(handler)
    return present


def _put_back(root: logging.Logger, handlers: Sequence[logging.Handler]) -> None:
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)


def _basic_config(**kwargs: Any) -> None:
    root = logging.getLogger()
    with _logging_lock():
        present = _take_ours_off(root)
        try:
            _originals["basicConfig"](**kwargs)
        finally:
            _put_back(root, present)


def _after(name: str) -> Callable[..., Any]:
    def configure(*args: Any, **kwargs: Any) -> Any:
        root = logging.getLogger()
        present = [h for h in root.handlers if h in _ours]
        try:
            return _originals[name](*args, **kwargs)
        finally:
            _put_back(root, present)

    configure.__name__ = name
    configure.__doc__ = _originals[name].__doc__
    return configure


def install(ours: Sequence[logging.Handler]) -> None:
    """Wrap ``basicConfig``, ``dictConfig`` and ``fileConfig`` for the handlers ``ours``. Never raises."""
    global _ours
    with _state_lock:
        _ours = tuple(ours)
        if _originals:
            return
        _originals["basicConfig"] = logging.basicConfig
        _originals["dictConfig"] = logging.config.dictConfig
        _originals["fileConfig"] = logging.config.fileConfig
        _wrappers["dictConfig"] = _after("dictConfig")
        _wrappers["fileConfig"] = _after("fileConfig")
        logging.basicConfig = _basic_config
        logging.config.dictConfig = _wrappers["dictConfig"]
        logging.config.fileConfig = _wrappers["fileConfig"]


def uninstall() -> None:
    """Put the original functions back (where nobody replaced ours since). Never raises."""
    global _ours
    with _state_lock:
        _ours = ()
        if not _originals:
            return
        if logging.basicConfig is _basic_config:
            logging.basicConfig = _originals["basicConfig"]
        for name, wrapper in _wrappers.items():
            if getattr(logging.config, name) is wrapper:
                setattr(logging.config, name, _originals[name])
        _originals.clear()
        _wrappers.clear()

"""Flush on SIGTERM and SIGINT, then let the application's own handling of the signal run.

Only ``atexit`` would otherwise flush, and a process ended by a signal's default action runs no
``atexit``: what was buffered would be lost. The rules, in the order they apply:

- Handlers are installed by ``instrument()`` in the main thread only (Python allows no other);
  from another thread nothing is installed and ``atexit`` is the only flush.
- A signal the application ignores (``SIG_IGN``) or that a C extension handles is left alone.
- Otherwise the handler found (``SIG_DFL``, Python's ``default_int_handler``, or the application's
  or a framework's own function) is remembered, and ours is installed in front of it. On the
  signal, ours flushes within ``B2B_OTEL_SHUTDOWN_TIMEOUT`` and then runs the one it replaced:

  * ``SIG_DFL``: the process is about to end without ``atexit``, so ours shuts everything down,
    restores ``SIG_DFL`` and raises the signal again (the exit status stays "killed by SIGTERM");
  * ``default_int_handler`` or a function (uvicorn's, gunicorn's worker's, the application's): ours
    only flushes (telemetry made during the graceful shutdown that follows still flows), then calls
    it; the final flush is ``atexit``'s, or ``b2b_otel.shutdown()`` in the framework's exit hook.

- A handler installed after ``instrument()`` replaces ours: that is the application's choice, and
  ``atexit`` (or an exit hook calling ``b2b_otel.shutdown()``) still flushes.
- Once a signal went on to a function (a shutdown is under way), or from the start when the handler
  ours replaced is a function, putting ``SIG_DFL`` back for a
  handled signal puts ours back in front of it instead. uvicorn does exactly that: after its graceful
  shutdown (the lifespan's shutdown half included) it restores the handlers it found and sends itself
  the signal again, and when it imported the application after taking the signals (``--workers N``,
  ``--reload``) what it found is ``SIG_DFL``, so the process would end without ``atexit`` and the
  telemetry of the graceful shutdown would be lost. With ours in front, that last signal passes
  through a final flush and then ends the process as killed, as uvicorn meant. This interposes on
  ``signal.signal`` for ``SIG_DFL`` of the handled signals only: after a signal arrived, and from the
  start when ours was installed in front of a function (the signal may have reached that function
  before ours existed: a worker told to stop while it was still importing the application).
- A second signal while ours is still flushing goes straight to the replaced handler (a second
  Ctrl-C still forces the exit).
- ``shutdown()`` puts back the handler ours replaced, if ours is still the installed one.

The flush itself runs in a thread and the handler waits for it with a bound: the signal may have
interrupted the main thread while it held a lock the flush needs, which would otherwise deadlock.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from .._internal import selflog

HANDLED: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
# The function ours call to install handlers, never the interposer below.
_SET_HANDLER: Callable[..., Any] = signal.signal
# Beyond the flush's own bound: the flush returns at its deadline, this only guards a hang before it.
_JOIN_SLACK_S = 1.0

Flush = Callable[[bool], object]
"""``flush(final)``: final=True shuts down (the process ends right after), False only flushes."""


class SignalFlush:
    """Our handlers for :data:`HANDLED`, chained in front of the ones they replaced."""

    def __init__(self, flush: Flush, bound_s: float) -> None:
        self._flush = flush
        self._bound_s = bound_s
        self._previous: dict[int, Any] = {}
        self._handling = False
        self._interposer: Callable[..., Any] | None = None
        self._real_signal: Callable[..., Any] = signal.signal

    @property
    def installed(self) -> list[str]:
        """The names of the signals ours handle, e.g. ``["SIGTERM", "SIGINT"]``."""
        return [signal.Signals(s).name for s in self._previous]

    def install(self) -> list[str]:
        """Install ours in front of the current handlers; returns the signals handled. Never raises."""
        if threading.current_thread() is not threading.main_thread():
            selflog.warn_once_a_minute(
                "signals-thread",
                "b2b_otel: instrument() ran outside the main thread: no SIGTERM/SIGINT flush, only at exit",
            )
            return []
        for sig in HANDLED:
            try:
                previous = signal.getsignal(sig)
                if previous is signal.SIG_IGN or previous is None:
                    continue  # ignored on purpose, or handled outside Python: leave it so
                _SET_HANDLER(sig, self._handle)
            except (ValueError, OSError, RuntimeError) as exc:
                selflog.warn_once_a_minute(
                    f"signals-install-{int(sig)}", "b2b_otel: could not handle %s: %r", sig.name, exc
                )
                continue
            self._previous[int(sig)] = previous
            if callable(previous) and previous is not signal.default_int_handler:
                # A framework's function is in place (uvicorn's --workers imports the application
                # inside its signal capture): the signal may already have reached it, before ours was
                # installed, so its later SIG_DFL-and-raise must find ours in front without waiting
                # for a signal to pass through ours first.
                self._arm()
        return self.installed

    def uninstall(self) -> None:
        """Put back the handlers ours replaced, where ours is still installed. Never raises."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._disarm()
        for sig, previous in list(self._previous.items()):
            try:
                if signal.getsignal(sig) == self._handle:
                    _SET_HANDLER(sig, previous)
            except (ValueError, OSError, RuntimeError):
                pass
        self._previous.clear()

    def _arm(self) -> None:
        """A shutdown is under way: from now on ``SIG_DFL`` for a handled signal puts ours in front."""
        if self._interposer is not None:
            return
        real = signal.signal

        def interposed(signalnum: Any, handler: Any) -> Any:
            if (
                handler is signal.SIG_DFL
                and signalnum in HANDLED
                and threading.current_thread() is threading.main_thread()
            ):
                replaced = real(signalnum, self._handle)
                self._previous[int(signalnum)] = signal.SIG_DFL
                return replaced
            return real(signalnum, handler)

        interposed.__doc__ = real.__doc__
        self._interposer = interposed
        self._real_signal = real
        setattr(signal, "signal", interposed)  # noqa: B010 (a module function, put back by _disarm)

    def _disarm(self) -> None:
        interposer, self._interposer = self._interposer, None
        if interposer is not None and signal.signal is interposer:
            setattr(signal, "signal", self._real_signal)  # noqa: B010

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        final = previous is signal.SIG_DFL
        if not self._handling:
            self._handling = True
            try:
                self._bounded_flush(final=final)
            finally:
                self._handling = False
        if final:
            self._disarm()
        elif previous is not signal.default_int_handler:
            self._arm()  # a framework's (or the application's) shutdown is under way
        _chain(signum, frame, previous)

    def _bounded_flush(self, final: bool) -> None:
        def run() -> None:
            try:
                self._flush(final)
            except Exception as exc:
                selflog.warn_once_a_minute("signals-flush", "b2b_otel: flush on a signal failed: %r", exc)

        thread = threading.Thread(target=run, name="b2b-otel-signal-flush", daemon=True)
        thread.start()
        thread.join(self._bound_s + _JOIN_SLACK_S)


def _chain(signum: int, frame: FrameType | None, previous: Any) -> None:
    """Do what the signal did before ours was installed."""
    if previous is signal.SIG_DFL:
        _SET_HANDLER(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    elif callable(previous):
        previous(signum, frame)  # default_int_handler raises KeyboardInterrupt, as without us

"""The OpenTelemetry context carried into threads and thread-pool work.

A new thread starts with an empty context, so without help ``b2b_otel.context()``'s tenant (W3C
baggage in the OTel context) and the current span stop at ``threading.Thread.start()``. While
installed, a ``threading.Thread`` (so also ``threading.Timer`` and every subclass, whatever its
``run()``) started inside a context runs in that context, and so does a callable submitted to a
``concurrent.futures.ThreadPoolExecutor`` (so also ``loop.run_in_executor``); a thread started or a
task submitted outside any context is left exactly as it was.

This is what ``opentelemetry-instrumentation-threading`` does, built in with the standard library
so that it works in every install: that instrumentation is an extra (its releases lag the contrib
patch releases), and without it a plain install lost the tenant at every thread pool. It also covers
what the contrib one misses, a ``Thread`` subclass that overrides ``run()``. When the contrib
instrumentation is on already, it is left to do the work alone.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

from opentelemetry import context as otel_context

from .._internal import selflog

_CONTRIB = "opentelemetry.instrumentation.threading"
# Marks a thread whose run() was wrapped, so that a second start() (which fails) wraps nothing.
_CARRIED = "_b2b_otel_carried"

_lock = threading.Lock()
# What the wrappers call: start() and submit() as they were when ours were put in (as imported until
# then), never the class attribute, which may be a wrapper over ours.
_original_start: Callable[..., Any] = threading.Thread.start
_original_submit: Callable[..., Any] = futures.ThreadPoolExecutor.submit
_patched = False  # ours are in the classes' chain (outermost, or under a later wrapper)
_active = False  # and carrying; off, they pass everything through


def _in_context(ctx: otel_context.Context, function: Callable[..., Any]) -> Callable[..., Any]:
    def run_in_context(*args: Any, **kwargs: Any) -> Any:
        token = otel_context.attach(ctx)
        try:
            return function(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run_in_context


def _run_in_context(thread: threading.Thread, ctx: otel_context.Context) -> Callable[[], Any]:
    run = _in_context(ctx, thread.run)

    def run_then_let_go() -> Any:
        try:
            return run()
        finally:
            # The thread no longer holds this wrapper (which holds the thread): no reference cycle
            # keeps a finished thread, its context and its spans alive until the next full collection.
            vars(thread).pop("run", None)

    return run_then_let_go


def _start(self: threading.Thread) -> None:
    if _active and not hasattr(self, _CARRIED):
        try:
            ctx = otel_context.get_current()
            if ctx:  # an empty context has nothing to carry: the thread is left as it is
                setattr(self, _CARRIED, True)
                # On the instance: a subclass's own run() (and Timer's) is covered too.
                self.run = _run_in_context(self, ctx)  # type: ignore[method-assign]
        except Exception:  # the application's thread starts, carried or not
            pass
    _original_start(self)


def _submit(self: futures.ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    if _active:
        try:
            ctx = otel_context.get_current()
            if ctx:
                fn = _in_context(ctx, fn)
        except Exception:
            pass
    return _original_submit(self, fn, *args, **kwargs)


def _contrib_is_on() -> bool:
    """Whether opentelemetry-instrumentation-threading is instrumenting already (never imports it)."""
    module = sys.modules.get(_CONTRIB)
    instrumentor = getattr(module, "ThreadingInstrumentor", None)
    try:
        return bool(instrumentor is not None and instrumentor().is_instrumented_by_opentelemetry)
    except Exception:
        return False


def install() -> Callable[[], None] | None:
    """Carry the context into threads and executor work; returns how to undo it.

    None when it is on already (b2b_otel's from an earlier ``instrument()``, or the contrib threading
    instrumentation): then it is not this call's to undo. Never raises.
    """
    global _original_start, _original_submit, _patched, _active
    with _lock:
        if _active or _contrib_is_on():
            return None
        try:
            if not _patched:
                _original_start = threading.Thread.start
                _original_submit = futures.ThreadPoolExecutor.submit
                threading.Thread.start = _start  # type: ignore[method-assign]
                futures.ThreadPoolExecutor.submit = _submit  # type: ignore[method-assign, assignment]
                _patched = True
            _active = True
        except Exception as exc:
            selflog.warn_once_a_minute(
                "threading-context", "b2b_otel: could not carry the context into threads: %r", exc
            )
            return None
    return uninstall


def uninstall() -> None:
    """Stop carrying the context; the originals are put back unless something wrapped them since.

    A wrapper put over ours later (another instrumentation's) is kept working: ours then stays in
    place and passes everything through untouched.
    """
    global _patched, _active
    with _lock:
        _active = False
        if threading.Thread.start is _start and futures.ThreadPoolExecutor.submit is _submit:
            threading.Thread.start = _original_start  # type: ignore[method-assign]
            futures.ThreadPoolExecutor.submit = _original_submit  # type: ignore[method-assign]
            _patched = False


def installed() -> bool:
    """Whether b2b_otel is carrying the context into threads now."""
    return _active

"""Who the work is for: ``b2b_otel.context(tenant_id=..., user_id=..., session_id=...)``.

The values live in the OpenTelemetry context as W3C baggage entries ``b2b.tenant.id``, ``user.id``
and ``session.id`` (``opentelemetry.baggage.get_baggage("b2b.tenant.id")`` reads the active tenant
anywhere). Being baggage, they travel wherever the context travels: into asyncio tasks (contextvars),
into threads (b2b_otel turns on the threading instrumentation), and to other services in the
``baggage`` header of every instrumented outgoing request. Two processors copy them onto what is
recorded: :class:`ContextSpanProcessor` onto every span when it starts (from its parent context,
which a server instrumentation fills from the incoming request), :class:`ContextLogProcessor` onto
every log record.

A bad value never raises: an ``int`` or ``uuid.UUID`` is written as its text; anything else that is
not printable text of 1 to :data:`MAX_LENGTH` characters becomes :data:`INVALID` (reported once a
minute and counted as ``b2b.telemetry.dropped{reason=invalid_argument}``). It does not fall back to
an enclosing context's value, so a broken id is never recorded as another tenant's work.

>>> from opentelemetry import baggage
>>> with context(tenant_id="acme", user_id="u-7"):
...     with context(user_id="u-8"):  # inner values win; None keeps the outer one
...         (baggage.get_baggage("b2b.tenant.id"), baggage.get_baggage("user.id"))
('acme', 'u-8')
>>> baggage.get_baggage("b2b.tenant.id") is None
True
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, TypeVar, cast

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import Span, SpanProcessor

from .. import semconv as sc
from .._internal import sdk_private
from . import arguments

F = TypeVar("F", bound=Callable[..., Any])

KEYS = (sc.B2B_TENANT_ID, sc.USER_ID, sc.SESSION_ID)
"""The baggage keys, which are also the span and log attribute keys."""

MAX_LENGTH = 256
"""The longest id accepted, in characters (W3C baggage allows 4096 bytes a member, 8192 a header)."""

INVALID = "_INVALID"
"""What a value that is not a usable id is recorded as."""

_WHAT = {
    sc.B2B_TENANT_ID: "context tenant_id",
    sc.USER_ID: "context user_id",
    sc.SESSION_ID: "context session_id",
}
_TRACES = sc.SignalValues.TRACES

# The contexts opened by ``with`` on one ContextScope, per task/thread: one instance may be entered
# concurrently from several tasks, and nested.
_TOKENS: contextvars.ContextVar[tuple[tuple[ContextScope, object], ...]] = contextvars.ContextVar(
    "b2b_otel_context_tokens", default=()
)


def valid(value: str) -> bool:
    """Whether ``value`` (a ``str``) is usable as an id: printable, 1 to MAX_LENGTH characters."""
    return 0 < len(value) <= MAX_LENGTH and value.isprintable()


def checked(value: object, key: str) -> str:
    """``value`` as the id to record under ``key``: itself, its text (int, UUID) or :data:`INVALID`.

    >>> checked("acme", "b2b.tenant.id"), checked(42, "b2b.tenant.id")
    ('acme', '42')
    """
    if type(value) is str and valid(value):
        return value
    text: str | None = None
    try:
        # (str() of a huge int raises; one of MAX_LENGTH digits or more is no usable id anyway)
        small_int = type(value) is int and -(10**MAX_LENGTH) < value < 10**MAX_LENGTH
        if small_int or type(value) is uuid.UUID:
            text = str(value)
        elif isinstance(value, str):
            text = str.__str__(value)  # a str subclass's content, whatever its __str__ does
    except Exception:
        text = None
    if text is not None and valid(text):
        return text
    arguments.report(_TRACES, _WHAT.get(key, "context value"), value, f"recorded as {INVALID}")
    return INVALID


class ContextScope:
    """Sets tenant, user and session for what runs inside it: context manager and decorator in one.

    Returned by :func:`context`; see there.
    """

    __slots__ = ("values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)

    def context(self, parent: Context | None = None) -> Context:
        """``parent`` (default: the current context) with this scope's baggage entries set."""
        ctx = otel_context.get_current() if parent is None else parent
        for key, value in self.values.items():
            ctx = baggage.set_baggage(key, value, ctx)
        return ctx

    def _attach(self) -> object | None:
        try:
            return otel_context.attach(self.context())
        except Exception:
            return None

    @staticmethod
    def _detach(token: object | None) -> None:
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:
                pass

    # --- context manager

    def __enter__(self) -> ContextScope:
        token = self._attach()
        _TOKENS.set((*_TOKENS.get(), (self, token)))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        stack = _TOKENS.get()
        index = next((i for i in range(len(stack) - 1, -1, -1) if stack[i][0] is self), None)
        if index is None:
            return
        _TOKENS.set(stack[:index] + stack[index + 1 :])
        self._detach(stack[index][1])

    async def __aenter__(self) -> ContextScope:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # --- decorator

    def __call__(self, func: F) -> F:
        if inspect.isasyncgenfunction(func):
            return cast(F, _wrap_async_generator(self, func))
        if inspect.isgeneratorfunction(func):
            return cast(F, _wrap_generator(self, func))
        if inspect.iscoroutinefunction(func):
            return cast(F, _wrap_coroutine(self, func))
        return cast(F, _wrap_function(self, func))

    def __repr__(self) -> str:
        return f"b2b_otel.context({', '.join(f'{k}={v!r}' for k, v in self.values.items())})"


def _wrap_function(scope: ContextScope, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = scope._attach()
        try:
            return func(*args, **kwargs)
        finally:
            scope._detach(token)

    return wrapper


def _wrap_coroutine(scope: ContextScope, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = scope._attach()
        try:
            return await func(*args, **kwargs)
        finally:
            scope._detach(token)

    return wrapper


def _wrap_generator(scope: ContextScope, func: Callable[..., Generator[Any, Any, Any]]) -> Callable[..., Any]:
    # The context is current only while the generator body runs: the consumer between two items
    # runs in its own context, as with the span helpers.
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        token = scope._attach()
        try:
            inner = func(*args, **kwargs)
        finally:
            scope._detach(token)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = scope._attach()
            try:
                item = inner.throw(to_throw) if to_throw is not None else inner.send(to_send)
            except StopIteration as stop:
                return stop.value
            finally:
                scope._detach(token)
            to_send, to_throw = None, None
            try:
                to_send = yield item
            except GeneratorExit:
                token = scope._attach()
                try:
                    inner.close()
                finally:
                    scope._detach(token)
                raise
            except BaseException as exc:
                to_throw = exc

    return wrapper


def _wrap_async_generator(
    scope: ContextScope, func: Callable[..., AsyncGenerator[Any, Any]]
) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        token = scope._attach()
        try:
            inner = func(*args, **kwargs)
        finally:
            scope._detach(token)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = scope._attach()
            try:
                if to_throw is not None:
                    item = await inner.athrow(to_throw)
                else:
                    item = await inner.asend(to_send)
            except StopAsyncIteration:
                return
            finally:
                scope._detach(token)
            to_send, to_throw = None, None
            try:
                to_send = yield item
            except GeneratorExit:
                token = scope._attach()
                try:
                    await inner.aclose()
                finally:
                    scope._detach(token)
                raise
            except BaseException as exc:
                to_throw = exc

    return wrapper


def context(tenant_id: Any = None, user_id: Any = None, session_id: Any = None) -> ContextScope:
    """Tenant, user and session of the work inside: on every span and log record, and to other services.

    A context manager (``with`` / ``async with``) and a decorator (sync and async functions,
    generators, async generators, methods). Nested, the inner values win and ``None`` keeps the
    outer value. A service that authenticates its caller calls it with the authenticated ids: they
    win over whatever the incoming request's baggage claimed (see ``B2B_OTEL_TRUST_BAGGAGE``).

    Example::

        with b2b_otel.context(tenant_id="acme-gmbh", user_id=user.id, session_id=request.session):
            await build_business_case(case)

        @b2b_otel.context(tenant_id="acme-gmbh")
        async def nightly_sync(): ...
    """
    given = {sc.B2B_TENANT_ID: tenant_id, sc.USER_ID: user_id, sc.SESSION_ID: session_id}
    return ContextScope({key: checked(value, key) for key, value in given.items() if value is not None})


def current() -> dict[str, str]:
    """The active tenant, user and session ids (the keys that are set), e.g. ``{"b2b.tenant.id": "acme"}``."""
    entries = baggage.get_all()
    return {key: str(entries[key]) for key in KEYS if key in entries}


def _recorded(value: object) -> str:
    # Entries set by context() are already checked; an incoming header's are not.
    return value if type(value) is str and valid(value) else INVALID


class ContextSpanProcessor(SpanProcessor):
    """Copies the context's tenant, user and session onto every span as it starts.

    Read from the span's parent context, which a server instrumentation fills from the incoming
    request's baggage. An attribute given when the span was started wins (a ``login`` span's
    ``user.id`` is the user who tried to log in, not the session's user). Without baggage this
    costs one dictionary lookup.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if parent_context is not None and not parent_context:
            return  # an empty parent context (a root span started outside any context) has no baggage
        try:
            entries = baggage.get_all(parent_context)
            if not entries:
                return
            bounded = getattr(span, "_attributes", None)
            present = span.attributes or {} if bounded is None else sdk_private.finished_attributes(bounded)
            missing = {
                key: _recorded(value)
                for key in KEYS
                if (value := entries.get(key)) is not None and key not in present
            }
            if missing and not sdk_private.add_checked_text(bounded, missing):
                span.set_attributes(missing)
        except Exception:  # a processor error would break the application's span start
            pass

    def on_end(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ContextLogProcessor(LogRecordProcessor):
    """Copies the context's tenant, user and session onto every log record (an attribute set wins).

    Must run before the processors that export: the composition root puts it first.
    """

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        try:
            record = log_record.log_record
            entries = baggage.get_all(record.context)
            if not entries:
                return
            attributes = record.attributes
            present = attributes or {}
            missing = {
                key: _recorded(value)
                for key in KEYS
                if (value := entries.get(key)) is not None and key not in present
            }
            if not missing or sdk_private.add_checked_text(attributes, missing):
                return
            if attributes is None:
                record.attributes = dict(missing)
                return
            for key, value in missing.items():
                attributes[key] = value  # type: ignore[index]
        except Exception:
            pass

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

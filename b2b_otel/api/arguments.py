"""The helpers' arguments, checked: a wrong argument is the application's bug, never a reason to raise.

Each check returns the value to record, coerced (an unknown enum value becomes :data:`OTHER`, a
name that is not ``str`` becomes its ``str()``) or ``None`` when the attribute is left out, and
reports what it did: a rate-limited warning in b2b_otel's own log under a fixed key (never a key
made of the application's data) and ``b2b.telemetry.dropped{signal, reason=invalid_argument}``.

The common case costs a type check and, for enums, one set lookup; everything else runs only
when an argument is wrong.
"""

from __future__ import annotations

from collections.abc import Collection
from itertools import islice

from .. import semconv as sc
from .._internal import selflog
from . import metrics

OTHER = "_OTHER"
"""What an unknown enum value is recorded as (the OpenTelemetry convention for enum attributes)."""

# A fixed name for a value that cannot be written as text (its __str__ raises, or it is an object
# whose text would be its memory address: one metric series per object).
UNPRINTABLE = "_UNPRINTABLE"

# Bounds for what the application hands over in bulk or as text it did not mean as a name.
MAX_ROLES = 256
MAX_COERCED_TEXT = 256
# OTLP carries integer attributes as int64; a larger Python int would fail the whole batch's encoding.
_INT64_MAX = 2**63 - 1
_MAX_REPR = 80


def safe_repr(value: object) -> str:
    """A short ``repr`` of ``value`` for b2b_otel's own log; never raises."""
    try:
        text = repr(value)
    except Exception:  # a raising __repr__, an int too large for repr, ...
        try:
            return f"<{type(value).__qualname__}>"
        except Exception:
            return UNPRINTABLE
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "..."


def report(signal: str, what: str, value: object, did: str) -> None:
    """Say once a minute per ``what`` (a fixed name chosen by b2b_otel) that ``value`` was bad; count it.

    ``did`` says what became of it, e.g. ``"recorded as _OTHER"``. Never raises.
    """
    selflog.warn_once_a_minute(
        f"invalid-argument-{what}",
        "b2b_otel: invalid %s %s; %s (a bug in the calling code; said at most once a minute)",
        what,
        safe_repr(value),
        did,
    )
    try:
        metrics.instruments().dropped.add(1, {sc.SIGNAL: signal, sc.REASON: sc.ReasonValues.INVALID_ARGUMENT})
    except Exception:
        pass


def _as_text(value: object) -> str:
    """``str(value)`` for a value that is not an exact ``str``, bounded; a fixed name when it has none."""
    try:
        if isinstance(value, str):
            coerced = str.__str__(value)  # a str subclass's content, whatever its __str__ does
        elif isinstance(value, (bytes, bytearray)):
            coerced = bytes(value[:MAX_COERCED_TEXT]).decode("utf-8", "replace")
        else:
            cls = type(value)
            if cls.__str__ is object.__str__ and cls.__repr__ is object.__repr__:
                return UNPRINTABLE  # "<Foo object at 0x...>": a new name, and series, per object
            coerced = str.__str__(str(value))
    except Exception:  # a raising __str__, an int too large to print, ...
        return UNPRINTABLE
    return coerced if len(coerced) <= MAX_COERCED_TEXT else coerced[:MAX_COERCED_TEXT]


def text(value: object, signal: str, what: str) -> str:
    """``value`` as a name: a ``str`` unchanged, anything else its bounded ``str()`` (reported)."""
    if type(value) is str:
        return value
    coerced = _as_text(value)
    report(signal, what, value, f"recorded as {coerced[:40]!r}")
    return coerced


def optional_text(value: object, signal: str, what: str) -> str | None:
    """As :func:`text`, but ``None`` stays ``None`` (the attribute is optional)."""
    if value is None or type(value) is str:
        return value
    return text(value, signal, what)


def required_text(value: object, signal: str, what: str) -> str | None:
    """As :func:`text`, but ``None`` is reported and stays ``None`` (the attribute is left out)."""
    if value is None:
        report(signal, what, value, "attribute left out")
        return None
    return text(value, signal, what)


def member(value: object, values: Collection[str], signal: str, what: str) -> str:
    """``value`` if it is one of the registry's ``values``, else :data:`OTHER` (reported).

    Only text is looked up, so an unhashable value or one whose ``__hash__`` or ``__eq__`` raises
    never reaches the set.
    """
    if type(value) is str:
        if value in values:
            return value
    elif isinstance(value, str) and str.__str__(value) in values:
        return str.__str__(value)
    report(signal, what, value, f"recorded as {OTHER}")
    return OTHER


def count(value: object, signal: str, what: str, *, minimum: int = 0) -> int | None:
    """``value`` as an int attribute of at least ``minimum``; ``None`` when it is none (reported).

    Ints within int64 pass; an integral float or a string of ASCII digits is coerced (reported);
    a bool, NaN, infinity, a huge int and anything else are left out.
    """
    if type(value) is int and minimum <= value <= _INT64_MAX:
        return value
    if value is None:
        return None
    coerced: int | None = None
    if type(value) is float:
        coerced = int(value) if value.is_integer() else None
    elif type(value) is str:
        digits = 0 < len(value) <= 18 and value.isascii() and value.isdigit()
        coerced = int(value) if digits else None
    if coerced is not None and minimum <= coerced <= _INT64_MAX:
        report(signal, what, value, f"recorded as {coerced}")
        return coerced
    report(signal, what, value, "attribute left out")
    return None


def flag(value: object, signal: str, what: str) -> bool | None:
    """``value`` if it is a bool, ``None`` if it is none or anything else (reported)."""
    if value is True or value is False or value is None:
        return value
    report(signal, what, value, "attribute left out")
    return None


def roles(value: object, signal: str, what: str) -> list[str]:
    """Role names, sorted and unique: ``None`` is none, a ``str`` is one role, else any iterable.

    At most :data:`MAX_ROLES` are taken (an endless iterator ends there); an element that is not a
    ``str`` is coerced, and a value that is not iterable is one role; both are reported.
    """
    if value is None:
        return []
    if isinstance(value, (str, bytes, bytearray)):
        return [text(value, signal, what)]
    taken: list[object] = []
    try:
        for role in islice(iter(value), MAX_ROLES + 1):  # type: ignore[call-overload]
            taken.append(role)
    except Exception:
        if not taken:  # not iterable at all: one role
            return [text(value, signal, what)]
        report(signal, what, value, f"iterating it raised; the first {len(taken)} recorded")
    if len(taken) > MAX_ROLES:
        report(signal, what, value, f"only the first {MAX_ROLES} recorded")
        taken = taken[:MAX_ROLES]
    return sorted({text(role, signal, what) for role in taken})

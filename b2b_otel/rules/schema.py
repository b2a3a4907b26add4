"""The rules file as data: the validated rules (plain records), and the checks across their fields.

A rule, condition and source as the engines read them are frozen records; the pydantic models that
validate a rules file are in ``models.py``, loaded only to validate a file (a user's rules file, or the
tests holding the built-in rules' fast path to it), so start-up imports no pydantic.

The objects stay deliberately plain (flat objects, optional fields, no unions of object shapes) because
the Go collector connector reads the same file into plain structs; every check made here is one it can
make too. The meaning of each field is documented in ``docs/rules.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .. import semconv
from .._internal.durations import parse_duration

Comparison = Literal["gt", "lt", "gte", "lte"]
SpanKind = Literal["internal", "server", "client", "producer", "consumer"]
SpanStatus = Literal["error", "ok", "unset"]
Observe = Literal["failure_rate", "success_rate"]
# Values computed from several instruments rather than read from one; the engine knows how.
Computed = Literal["pool_utilisation"]
AttributeValue = bool | int | float | str

DURATION_ACCEPTED = "a duration such as 30, 30s, 500ms, 5m or 1h"
NUMBER_ACCEPTED = "a number such as 0.95 or 10"


class RuleFieldError(ValueError):
    """A check across fields failed; ``path`` (relative to the validated object) names the bad field.

    Raised inside model validators, where pydantic would otherwise only know the whole object; the
    loader reads ``path`` to point at the right line of the file.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{'.'.join(str(p) for p in path)}: {message}" if path else message)


class RuleFieldErrors(ValueError):
    """Every cross-field check that failed for one object, raised by its model validator.

    The loader does not read these: it runs the same checks (``condition_checks``, ``source_checks``,
    ``rule_checks``) itself on the raw YAML, so that they also run when some field failed on its own.
    """

    def __init__(self, errors: list[RuleFieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))


def _present(raw: Mapping[str, Any], name: str) -> bool:
    return raw.get(name) is not None


def _raise_all(errors: list[RuleFieldError]) -> None:
    if errors:
        raise RuleFieldErrors(errors)


def _positive_duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a duration; accepted: {DURATION_ACCEPTED}")
    try:
        seconds = float(parse_duration(value))
    except ValueError:
        raise ValueError(f"not a duration; accepted: {DURATION_ACCEPTED}") from None
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration; accepted: {DURATION_ACCEPTED}")
    if seconds <= 0:
        raise ValueError(f"must be greater than zero; accepted: {DURATION_ACCEPTED}")
    return seconds


def check_threshold(kind: str, value: Any) -> float:
    """A rule's threshold in its kind's terms (seconds for latency); ``ValueError`` says what is accepted.

    >>> check_threshold("latency", "500ms")
    0.5
    >>> check_threshold("ratio", 95)
    Traceback (most recent call last):
    ...
    ValueError: a ratio threshold is a share; accepted: a number between 0 and 1, e.g. 0.95
    """
    if kind == _KIND.EVENT:
        raise ValueError(_not_used(kind))
    if kind == _KIND.LATENCY:
        return _positive_duration(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"a {kind} threshold is a number; accepted: {NUMBER_ACCEPTED}")
    if kind == _KIND.RATIO and not 0 <= value <= 1:
        raise ValueError("a ratio threshold is a share; accepted: a number between 0 and 1, e.g. 0.95")
    if kind == _KIND.COUNT and (value != int(value) or value < 1):
        raise ValueError("a count threshold is a number of spans; accepted: a whole number, at least 1")
    return float(value)


CONDITION_ACCEPTED = (
    "accepted: {attribute: KEY, equals: VALUE}, {attribute: KEY, exists: true|false}, "
    "{attribute: KEY, non_empty: true}, {span_name_prefix: TEXT}, {span_kind: KIND}, {status: STATUS}"
)
SOURCE_ACCEPTED = "accepted: {span_attribute: KEY}, {metric: NAME}, {computed: pool_utilisation}"


def condition_checks(raw: Mapping[str, Any], failed: frozenset[str]) -> list[RuleFieldError]:
    """The checks across a condition's fields: exactly one form. ``raw`` is the condition as written
    (or as validated); ``failed`` names its fields that failed on their own (present all the same)."""
    tests = [name for name in ("equals", "exists", "non_empty") if _present(raw, name)]
    spans = [name for name in ("span_name_prefix", "span_kind", "status") if _present(raw, name)]
    errors: list[RuleFieldError] = []
    if _present(raw, "attribute"):
        if len(tests) != 1 or spans:
            errors.append(
                RuleFieldError(
                    (),
                    "an attribute condition takes exactly one of equals, exists, non_empty; "
                    + CONDITION_ACCEPTED,
                )
            )
    elif tests:
        errors.append(RuleFieldError(("attribute",), f"{tests[0]} needs an attribute; {CONDITION_ACCEPTED}"))
    elif len(spans) != 1:
        errors.append(RuleFieldError((), f"a condition has exactly one form; {CONDITION_ACCEPTED}"))
    if "non_empty" not in failed and raw.get("non_empty") is False:
        errors.append(RuleFieldError(("non_empty",), "only non_empty: true is meaningful; use exists: false"))
    return errors


def source_checks(raw: Mapping[str, Any], failed: frozenset[str]) -> list[RuleFieldError]:
    """The checks across a gauge source's fields: exactly one of them."""
    given = [name for name in ("span_attribute", "metric", "computed") if _present(raw, name)]
    if len(given) != 1:
        return [RuleFieldError((), f"a source has exactly one form; {SOURCE_ACCEPTED}")]
    return []


# Which optional fields each kind requires / allows; everything else is refused for that kind.
_KIND = semconv.RuleKindValues
_REQUIRED: dict[str, tuple[str, ...]] = {
    _KIND.LATENCY: ("threshold",),
    _KIND.RATIO: ("threshold", "comparison", "window", "min_samples", "failure"),
    _KIND.COUNT: ("threshold", "comparison", "window"),
    _KIND.EVENT: (),
    _KIND.GAUGE: ("threshold", "comparison", "source"),
}
_ALLOWED: dict[str, tuple[str, ...]] = {
    _KIND.LATENCY: ("threshold", "comparison"),
    _KIND.RATIO: ("threshold", "comparison", "window", "min_samples", "failure", "observe"),
    _KIND.COUNT: ("threshold", "comparison", "window"),
    _KIND.EVENT: (),
    _KIND.GAUGE: ("threshold", "comparison", "source"),
}
_KIND_FIELDS = ("threshold", "comparison", "window", "min_samples", "failure", "observe", "source")


@dataclass(frozen=True, slots=True)
class Condition:
    """One predicate on a span; a rule's ``match`` (and a ratio's ``failure``) holds when all hold.

    Exactly one form per condition: ``{attribute, equals}``, ``{attribute, exists}``,
    ``{attribute, non_empty}``, ``{span_name_prefix}``, ``{span_kind}`` or ``{status}``. Made by the
    loader from a validated file (``models.Condition`` checks a written one).

    >>> Condition(attribute="gen_ai.operation.name", equals="invoke_agent").form
    'equals'
    """

    attribute: str | None = None
    equals: AttributeValue | None = None
    exists: bool | None = None
    non_empty: bool | None = None
    span_name_prefix: str | None = None
    span_kind: SpanKind | None = None
    status: SpanStatus | None = None

    @property
    def form(self) -> str:
        """Which predicate this condition is: ``equals``, ``exists``, ``non_empty``, ``span_name_prefix``…"""
        for name in ("equals", "exists", "non_empty", "span_name_prefix", "span_kind", "status"):
            if getattr(self, name) is not None:
                return name
        raise AssertionError("validated conditions always have a form")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a gauge rule reads its value: exactly one of ``span_attribute``, ``metric``, ``computed``."""

    span_attribute: str | None = None
    metric: str | None = None
    computed: Computed | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the rules file; which fields apply depends on ``kind`` (see ``docs/rules.md``).

    Durations (``threshold`` of a latency rule, ``window``) are held in seconds. Made by the loader
    from a validated file (``models.Rule`` checks a written one).

    >>> rule = Rule(id="x.slow", kind="latency", severity="warning", tier="operations",
    ...             description="slow", match=(Condition(span_name_prefix="invoke_agent "),),
    ...             threshold=3.0)
    >>> rule.event_name, rule.enabled
    ('b2b.sla.breach', True)
    """

    id: str
    kind: semconv.RuleKind
    severity: semconv.B2bAlertSeverity
    tier: semconv.B2bAlertTier
    description: str
    match: tuple[Condition, ...] = ()
    group_by: tuple[str, ...] = ()
    threshold: float | None = None
    comparison: Comparison | None = None
    window: float | None = None
    min_samples: int | None = None
    failure: tuple[Condition, ...] | None = None
    observe: Observe | None = None
    source: Source | None = None
    event: semconv.RuleEvent | None = None
    enabled: bool = True

    @property
    def event_name(self) -> str:
        """The event a firing emits: ``event`` if set, else by tier (security -> ``b2b.security.event``)."""
        return event_name(self.event, self.tier)

    @property
    def observed(self) -> Observe:
        """What a ratio rule compares with its threshold (``failure_rate`` unless set)."""
        return self.observe or "failure_rate"


def event_name(event: str | None, tier: str) -> str:
    """The event a rule's firing emits: its ``event`` if set, else by its tier (security ->
    ``b2b.security.event``, the others ``b2b.sla.breach``); shared with ``models.Rule``."""
    if event is not None:
        return event
    if tier == semconv.B2bAlertTierValues.SECURITY:
        return semconv.EVENT_B2B_SECURITY_EVENT
    return semconv.EVENT_B2B_SLA_BREACH


def _not_used(kind: str) -> str:
    allowed = ", ".join(_ALLOWED[kind]) or "none of threshold/window/source"
    return f"not used by a {kind} rule; it takes {allowed}"


def _attribute_of(condition: Any) -> Any:
    # A condition as written (a mapping), validated (a model) or made (a record).
    if isinstance(condition, Mapping):
        return condition.get("attribute")
    return getattr(condition, "attribute", None)


def rule_checks(raw: Mapping[str, Any], failed: frozenset[str]) -> list[RuleFieldError]:
    """The checks across a rule's fields (what its kind requires and refuses), every failing one.

    ``raw`` is the rule as written (or as validated); ``failed`` names the fields that failed on their
    own: they count as given, but their values are not judged again. Without a valid kind there is
    nothing to check against.
    """
    kind = raw.get("kind")
    if "kind" in failed or not isinstance(kind, str) or kind not in _REQUIRED:
        return []
    errors: list[RuleFieldError] = []
    for name in _REQUIRED[kind]:
        if not _present(raw, name):
            errors.append(RuleFieldError((name,), f"required for a {kind} rule"))
    for name in _KIND_FIELDS:
        if name not in _ALLOWED[kind] and _present(raw, name) and name not in failed:
            errors.append(RuleFieldError((name,), _not_used(kind)))
    match = raw.get("match")
    if kind != _KIND.GAUGE and "match" not in failed and not match:
        errors.append(RuleFieldError(("match",), f"a {kind} rule needs at least one match condition"))
    source = raw.get("source")
    metric_gauge = (
        kind == _KIND.GAUGE
        and "source" not in failed
        and "match" not in failed
        and source is not None
        and not (
            source.get("span_attribute")
            if isinstance(source, Mapping)
            else getattr(source, "span_attribute", True)  # a model or record; True: no source at all
        )
    )
    if metric_gauge and isinstance(match, (list, tuple)):
        for index, condition in enumerate(match):
            if _attribute_of(condition) is None:
                errors.append(
                    RuleFieldError(
                        ("match", index), "a metric gauge matches data point attributes only (attribute: KEY)"
                    )
                )
    failure = raw.get("failure")
    if "failure" not in failed and failure is not None and not failure and "failure" in _ALLOWED[kind]:
        errors.append(RuleFieldError(("failure",), "a ratio rule needs at least one failure condition"))
    if kind == _KIND.LATENCY and "comparison" not in failed and raw.get("comparison") in ("lt", "lte"):
        errors.append(
            RuleFieldError(("comparison",), "a latency rule fires on slow spans; accepted: gt, gte")
        )
    return errors


def duplicate_ids(ids: list[Any]) -> list[RuleFieldError]:
    """``rules[i].id`` for every rule whose id an earlier rule already has (non-strings are skipped)."""
    seen: dict[str, int] = {}
    errors: list[RuleFieldError] = []
    for index, rule_id in enumerate(ids):
        if not isinstance(rule_id, str):
            continue
        if rule_id in seen:
            errors.append(
                RuleFieldError(("rules", index, "id"), f"duplicate rule id (first at rules[{seen[rule_id]}])")
            )
        else:
            seen[rule_id] = index
    return errors


@dataclass(frozen=True)
class RuleSet:
    """The rules in force: a validated rules file with the environment's overrides applied."""

    rules: tuple[Rule, ...]
    source: str

    @property
    def ids(self) -> tuple[str, ...]:
        """Every rule id, in file order."""
        return tuple(rule.id for rule in self.rules)

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; ``KeyError`` if there is none."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def enabled(self) -> tuple[Rule, ...]:
        """The rules with ``enabled: true``."""
        return tuple(rule for rule in self.rules if rule.enabled)

    def __len__(self) -> int:
        return len(self.rules)

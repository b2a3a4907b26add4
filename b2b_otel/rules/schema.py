"""The rules file as data: pydantic models of its YAML, one flat shape per object.

The models stay deliberately plain (flat objects, optional fields, no unions of object shapes) because
the Go collector connector reads the same file into plain structs; every check made here is one it can
make too. The meaning of each field is documented in ``docs/rules.md``.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Condition(_Plain):
    """One predicate on a span; a rule's ``match`` (and a ratio's ``failure``) holds when all hold.

    Exactly one form per condition: ``{attribute, equals}``, ``{attribute, exists}``,
    ``{attribute, non_empty}``, ``{span_name_prefix}``, ``{span_kind}`` or ``{status}``.

    >>> Condition(attribute="gen_ai.operation.name", equals="invoke_agent").form
    'equals'
    """

    attribute: str | None = Field(default=None, min_length=1)
    equals: AttributeValue | None = None
    exists: bool | None = Field(default=None, strict=True)
    non_empty: bool | None = Field(default=None, strict=True)
    span_name_prefix: str | None = Field(default=None, min_length=1)
    span_kind: SpanKind | None = None
    status: SpanStatus | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        _raise_all(condition_checks(_fields_of(self), frozenset()))
        return self

    @property
    def form(self) -> str:
        """Which predicate this condition is: ``equals``, ``exists``, ``non_empty``, ``span_name_prefix``…"""
        for name in ("equals", "exists", "non_empty", "span_name_prefix", "span_kind", "status"):
            if getattr(self, name) is not None:
                return name
        raise AssertionError("validated conditions always have a form")


class Source(_Plain):
    """Where a gauge rule reads its value: exactly one of ``span_attribute``, ``metric``, ``computed``."""

    span_attribute: str | None = Field(default=None, min_length=1)
    metric: str | None = Field(default=None, min_length=1)
    computed: Computed | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        _raise_all(source_checks(_fields_of(self), frozenset()))
        return self


CONDITION_ACCEPTED = (
    "accepted: {attribute: KEY, equals: VALUE}, {attribute: KEY, exists: true|false}, "
    "{attribute: KEY, non_empty: true}, {span_name_prefix: TEXT}, {span_kind: KIND}, {status: STATUS}"
)
SOURCE_ACCEPTED = "accepted: {span_attribute: KEY}, {metric: NAME}, {computed: pool_utilisation}"


def _fields_of(model: BaseModel) -> dict[str, Any]:
    return {name: getattr(model, name) for name in type(model).model_fields}


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


class Rule(_Plain):
    """One rule of the rules file; which fields apply depends on ``kind`` (see ``docs/rules.md``).

    Durations (``threshold`` of a latency rule, ``window``) are held in seconds.

    >>> Rule(id="x.slow", kind="latency", severity="warning", tier="operations", description="slow",
    ...      match=[{"span_name_prefix": "invoke_agent "}], threshold="3s").threshold
    3.0
    """

    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    kind: semconv.RuleKind
    severity: semconv.B2bAlertSeverity
    tier: semconv.B2bAlertTier
    description: str = Field(min_length=1)
    match: tuple[Condition, ...] = ()
    group_by: tuple[str, ...] = ()
    threshold: float | None = None
    comparison: Comparison | None = None
    window: float | None = None
    min_samples: int | None = Field(default=None, ge=1, strict=True)
    failure: tuple[Condition, ...] | None = None
    observe: Observe | None = None
    source: Source | None = None
    event: semconv.RuleEvent | None = None
    enabled: bool = Field(default=True, strict=True)

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_for_kind(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if value is None or kind is None:
            # Without a valid kind the threshold cannot be judged; the kind's own error says enough.
            return None
        return check_threshold(kind, value)

    @field_validator("window", mode="before")
    @classmethod
    def _window_duration(cls, value: Any) -> Any:
        return None if value is None else _positive_duration(value)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Rule:
        _raise_all(rule_checks(_fields_of(self), frozenset()))
        return self

    @property
    def event_name(self) -> str:
        """The event a firing emits: ``event`` if set, else by tier (security -> ``b2b.security.event``)."""
        if self.event is not None:
            return self.event
        if self.tier == semconv.B2bAlertTierValues.SECURITY:
            return semconv.EVENT_B2B_SECURITY_EVENT
        return semconv.EVENT_B2B_SLA_BREACH

    @property
    def observed(self) -> Observe:
        """What a ratio rule compares with its threshold (``failure_rate`` unless set)."""
        return self.observe or "failure_rate"


def _not_used(kind: str) -> str:
    allowed = ", ".join(_ALLOWED[kind]) or "none of threshold/window/source"
    return f"not used by a {kind} rule; it takes {allowed}"


def _attribute_of(condition: Any) -> Any:
    if isinstance(condition, Condition):
        return condition.attribute
    return condition.get("attribute") if isinstance(condition, Mapping) else None


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
            source.span_attribute
            if isinstance(source, Source)
            else (source.get("span_attribute") if isinstance(source, Mapping) else True)
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


def _choices(annotation: Any) -> list[str]:
    """The values of a (possibly optional) Literal annotation."""
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    if get_origin(annotation) in (Union, types.UnionType):
        return [choice for arg in get_args(annotation) for choice in _choices(arg)]
    return []


def _one_of(model: type[BaseModel], field: str) -> str:
    return ", ".join(_choices(model.model_fields[field].annotation))


class RulesFile(_Plain):
    """The whole rules file: ``version: 1`` and the list of rules, ids unique."""

    version: Literal[1]
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> RulesFile:
        _raise_all(duplicate_ids([rule.id for rule in self.rules]))
        return self


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


_CONDITIONS = f"a list of conditions, each one of {CONDITION_ACCEPTED.removeprefix('accepted: ')}"

FIELD_ACCEPTED: dict[type[BaseModel], dict[str, str]] = {
    RulesFile: {
        "version": "1 (the only version so far)",
        "rules": "a list of rules (mappings of id, kind, ...)",
    },
    Rule: {
        "id": "lower-case words of [a-z0-9_] joined by '.', e.g. agent.execution.slow",
        "kind": _one_of(Rule, "kind"),
        "severity": _one_of(Rule, "severity"),
        "tier": _one_of(Rule, "tier"),
        "description": "a non-empty string",
        "match": _CONDITIONS,
        "group_by": "a list of attribute keys, e.g. [client.address]",
        "threshold": f"{DURATION_ACCEPTED} (latency); {NUMBER_ACCEPTED} (ratio, count, gauge)",
        "comparison": _one_of(Rule, "comparison"),
        "window": DURATION_ACCEPTED,
        "min_samples": "a whole number, at least 1",
        "failure": _CONDITIONS,
        "observe": _one_of(Rule, "observe"),
        "source": f"one of {SOURCE_ACCEPTED.removeprefix('accepted: ')}",
        "event": _one_of(Rule, "event"),
        "enabled": "true, false",
    },
    Condition: {
        "attribute": "an attribute key (a non-empty string)",
        "equals": "a string, number or boolean",
        "exists": "true, false",
        "non_empty": "true",
        "span_name_prefix": "a non-empty string",
        "span_kind": _one_of(Condition, "span_kind"),
        "status": _one_of(Condition, "status"),
    },
    Source: {
        "span_attribute": "an attribute key (a non-empty string)",
        "metric": "a metric name, e.g. b2b.agent.queue.depth",
        "computed": _one_of(Source, "computed"),
    },
}
"""What each field of each model accepts, as ``rules check`` says it (the text after "accepted: ")."""

OBJECT_ACCEPTED: dict[type[BaseModel], str] = {
    RulesFile: "a mapping with version: 1 and rules: [...]",
    Rule: "a mapping of id, kind, severity, tier, description, ...",
    Condition: f"a mapping; {CONDITION_ACCEPTED.removeprefix('accepted: ')}",
    Source: SOURCE_ACCEPTED.removeprefix("accepted: "),
}
"""What an object accepts as a whole, when it is not a mapping."""


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

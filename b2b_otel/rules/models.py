"""The pydantic models that validate a rules file, one flat shape per object.

Only validation loads this module (``loader.py``: a user's rules file, ``parse_rules()``, and the tests
that hold the built-in rules' fast path to this validated one); what the engines read are the records
of ``schema.py``, which :func:`to_rule` makes from a validated rule. Messages are the loader's own: a
pydantic error is only used for its location and kind.
"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .. import semconv
from . import schema
from .schema import (
    CONDITION_ACCEPTED,
    DURATION_ACCEPTED,
    NUMBER_ACCEPTED,
    SOURCE_ACCEPTED,
    AttributeValue,
    Comparison,
    Computed,
    Observe,
    SpanKind,
    SpanStatus,
    _positive_duration,
    _raise_all,
    check_threshold,
    condition_checks,
    duplicate_ids,
    rule_checks,
    source_checks,
)


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def _fields_of(model: BaseModel) -> dict[str, Any]:
    return {name: getattr(model, name) for name in type(model).model_fields}


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
        return schema.event_name(self.event, self.tier)

    @property
    def observed(self) -> Observe:
        """What a ratio rule compares with its threshold (``failure_rate`` unless set)."""
        return self.observe or "failure_rate"


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


def to_condition(model: Condition) -> schema.Condition:
    """The record of a validated condition."""
    return schema.Condition(
        attribute=model.attribute,
        equals=model.equals,
        exists=model.exists,
        non_empty=model.non_empty,
        span_name_prefix=model.span_name_prefix,
        span_kind=model.span_kind,
        status=model.status,
    )


def to_rule(model: Rule) -> schema.Rule:
    """The record of a validated rule: what the engines read."""
    source = model.source
    return schema.Rule(
        id=model.id,
        kind=model.kind,
        severity=model.severity,
        tier=model.tier,
        description=model.description,
        match=tuple(to_condition(c) for c in model.match),
        group_by=tuple(model.group_by),
        threshold=model.threshold,
        comparison=model.comparison,
        window=model.window,
        min_samples=model.min_samples,
        failure=None if model.failure is None else tuple(to_condition(c) for c in model.failure),
        observe=model.observe,
        source=None
        if source is None
        else schema.Source(source.span_attribute, source.metric, source.computed),
        event=model.event,
        enabled=model.enabled,
    )

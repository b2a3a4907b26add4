"""The rules file as data: pydantic models of its YAML, one flat shape per object.

The models stay deliberately plain (flat objects, optional fields, no unions of object shapes) because
the Go collector connector reads the same file into plain structs; every check made here is one it can
make too. The meaning of each field is documented in ``docs/rules.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _positive_duration(value: Any) -> Any:
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"not a duration; accepted: {DURATION_ACCEPTED}") from None
    if isinstance(seconds, float) and seconds <= 0:
        raise ValueError(f"must be greater than zero; accepted: {DURATION_ACCEPTED}")
    return seconds


class Condition(_Plain):
    """One predicate on a span; a rule's ``match`` (and a ratio's ``failure``) holds when all hold.

    Exactly one form per condition: ``{attribute, equals}``, ``{attribute, exists}``,
    ``{attribute, non_empty}``, ``{span_name_prefix}``, ``{span_kind}`` or ``{status}``.

    >>> Condition(attribute="gen_ai.operation.name", equals="invoke_agent").form
    'equals'
    """

    attribute: str | None = Field(default=None, min_length=1)
    equals: AttributeValue | None = None
    exists: bool | None = None
    non_empty: bool | None = None
    span_name_prefix: str | None = Field(default=None, min_length=1)
    span_kind: SpanKind | None = None
    status: SpanStatus | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        tests = [name for name in ("equals", "exists", "non_empty") if getattr(self, name) is not None]
        spans = [
            name for name in ("span_name_prefix", "span_kind", "status") if getattr(self, name) is not None
        ]
        accepted = (
            "accepted: {attribute: KEY, equals: VALUE}, {attribute: KEY, exists: true|false}, "
            "{attribute: KEY, non_empty: true}, {span_name_prefix: TEXT}, {span_kind: KIND}, {status: STATUS}"
        )
        if self.attribute is not None:
            if len(tests) != 1 or spans:
                raise ValueError(
                    f"an attribute condition takes exactly one of equals, exists, non_empty; {accepted}"
                )
        elif tests:
            raise RuleFieldError(("attribute",), f"{tests[0]} needs an attribute; {accepted}")
        elif len(spans) != 1:
            raise ValueError(f"a condition has exactly one form; {accepted}")
        if self.non_empty is False:
            raise RuleFieldError(("non_empty",), "only non_empty: true is meaningful; use exists: false")
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
        given = [n for n in ("span_attribute", "metric", "computed") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "a source has exactly one of span_attribute: KEY, metric: NAME, computed: pool_utilisation"
            )
        return self


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
    min_samples: int | None = Field(default=None, ge=1)
    failure: tuple[Condition, ...] | None = None
    observe: Observe | None = None
    source: Source | None = None
    event: semconv.RuleEvent | None = None
    enabled: bool = True

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_for_kind(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if value is None or kind is None:
            # Without a valid kind the threshold cannot be judged; the kind's own error says enough.
            return None if kind is None else value
        if kind == _KIND.LATENCY:
            return _positive_duration(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"a {kind} threshold is a number; accepted: {NUMBER_ACCEPTED}")
        if kind == _KIND.RATIO and not 0 <= value <= 1:
            raise ValueError("a ratio threshold is a share between 0 and 1, e.g. 0.95")
        if kind == _KIND.COUNT and (value != int(value) or value < 1):
            raise ValueError("a count threshold is a whole number of spans, at least 1")
        return float(value)

    @field_validator("window", mode="before")
    @classmethod
    def _window_duration(cls, value: Any) -> Any:
        return None if value is None else _positive_duration(value)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Rule:
        for name in _REQUIRED[self.kind]:
            if getattr(self, name) is None:
                raise RuleFieldError((name,), f"required for a {self.kind} rule")
        for name in _KIND_FIELDS:
            if name not in _ALLOWED[self.kind] and getattr(self, name) is not None:
                allowed = ", ".join(_ALLOWED[self.kind]) or "none of threshold/window/source"
                raise RuleFieldError((name,), f"not used by a {self.kind} rule; it takes {allowed}")
        reads_spans = self.kind != _KIND.GAUGE or (self.source is not None and self.source.span_attribute)
        if self.kind != _KIND.GAUGE and not self.match:
            raise RuleFieldError(("match",), f"a {self.kind} rule needs at least one match condition")
        if not reads_spans:
            for index, cond in enumerate(self.match):
                if cond.attribute is None:
                    raise RuleFieldError(
                        ("match", index), "a metric gauge matches data point attributes only (attribute: KEY)"
                    )
        if self.failure is not None and not self.failure:
            raise RuleFieldError(("failure",), "a ratio rule needs at least one failure condition")
        if self.kind == _KIND.LATENCY and self.comparison in ("lt", "lte"):
            raise RuleFieldError(("comparison",), "a latency rule fires on slow spans; accepted: gt, gte")
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


class RulesFile(_Plain):
    """The whole rules file: ``version: 1`` and the list of rules, ids unique."""

    version: Literal[1]
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> RulesFile:
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                raise RuleFieldError(
                    ("rules", index, "id"), f"duplicate rule id (first at rules[{seen[rule.id]}])"
                )
            seen[rule.id] = index
        return self


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

"""The rules engine: judges finished spans and sampled gauges against a RuleSet.

Single-threaded by design: only the processor's worker thread calls it, so it needs no locks.
Window rules (ratio, count) keep per-group counters in fixed time buckets, so memory per group is
constant whatever the traffic, and the number of groups per rule is capped: the least recently
seen group is evicted (and counted) first, so a flood of spoofed client addresses cannot grow it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import semconv
from .schema import Condition, Rule, RuleSet

# A window is split into this many buckets; the sliding window moves one bucket at a time.
BUCKETS_PER_WINDOW = 60
DEFAULT_MAX_GROUPS = 10_000


@dataclass(frozen=True)
class SpanFacts:
    """What the engine needs of a finished span (extracted once, off the application thread)."""

    name: str
    kind: str  # internal, server, client, producer, consumer
    status: str  # error, ok, unset
    duration_s: float
    attributes: Mapping[str, Any]
    trace_id: int = 0
    span_id: int = 0


@dataclass(frozen=True)
class Firing:
    """A rule fired: what was observed, against which threshold, for which group, on which span."""

    rule: Rule
    observed: float
    threshold: float
    group: Mapping[str, Any]
    trace_id: int = 0
    span_id: int = 0
    at_s: float = 0.0
    facts: SpanFacts | None = None


def matches(conditions: Sequence[Condition], facts: SpanFacts) -> bool:
    """Whether every condition holds for the span."""
    attributes = facts.attributes
    for cond in conditions:
        if cond.attribute is not None:
            present = cond.attribute in attributes
            value = attributes.get(cond.attribute)
            if cond.equals is not None:
                if not present or not _equal(value, cond.equals):
                    return False
            elif cond.exists is not None:
                if present != cond.exists:
                    return False
            elif cond.non_empty and (not present or value in (None, "", (), [])):
                return False
        elif cond.span_name_prefix is not None:
            if not facts.name.startswith(cond.span_name_prefix):
                return False
        elif cond.span_kind is not None:
            if facts.kind != cond.span_kind:
                return False
        elif cond.status is not None and facts.status != cond.status:
            return False
    return True


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return bool(value) is expected if isinstance(expected, bool) else value == expected
    if isinstance(expected, (int, float)) and isinstance(value, (int, float)):
        return float(value) == float(expected)
    return bool(value == expected) or str(value) == str(expected)


def compare(observed: float, comparison: str | None, threshold: float) -> bool:
    """``observed <comparison> threshold``; latency rules default to ``gt``."""
    if comparison == "gte":
        return observed >= threshold
    if comparison == "lt":
        return observed < threshold
    if comparison == "lte":
        return observed <= threshold
    return observed > threshold


@dataclass
class _Window:
    """Counters of one group in fixed buckets covering the rule's window."""

    totals: list[int]
    hits: list[int]
    epoch: int = -1  # absolute bucket number of the newest bucket
    suppressed_until: float = -math.inf

    @classmethod
    def new(cls) -> _Window:
        return cls([0] * BUCKETS_PER_WINDOW, [0] * BUCKETS_PER_WINDOW)

    def add(self, bucket: int, hit: bool) -> None:
        self._advance(bucket)
        slot = bucket % BUCKETS_PER_WINDOW
        self.totals[slot] += 1
        if hit:
            self.hits[slot] += 1

    def _advance(self, bucket: int) -> None:
        if self.epoch < 0:
            self.epoch = bucket
            return
        if bucket <= self.epoch:
            return
        steps = min(bucket - self.epoch, BUCKETS_PER_WINDOW)
        for offset in range(1, steps + 1):
            slot = (self.epoch + offset) % BUCKETS_PER_WINDOW
            self.totals[slot] = 0
            self.hits[slot] = 0
        self.epoch = bucket

    def sums(self) -> tuple[int, int]:
        return sum(self.totals), sum(self.hits)


@dataclass
class _RuleState:
    rule: Rule
    groups: OrderedDict[tuple[Any, ...], _Window] = field(default_factory=OrderedDict)
    gauge_breaching: dict[tuple[Any, ...], bool] = field(default_factory=dict)


class Engine:
    """Judges spans and gauges; returns the firings for the sinks.

    Example::

        engine = Engine(load_rules(None, {}), clock=time.time)
        for firing in engine.judge_span(facts): ...
    """

    def __init__(
        self,
        rules: RuleSet,
        clock: Callable[[], float],
        max_groups: int = DEFAULT_MAX_GROUPS,
        on_evict: Callable[[str, int], None] | None = None,
    ) -> None:
        self.rules = rules
        self.clock = clock
        self.max_groups = max_groups
        self.on_evict = on_evict
        enabled = rules.enabled()
        self._states = {rule.id: _RuleState(rule) for rule in enabled}
        gauge = semconv.RuleKindValues.GAUGE
        span_rules = [r for r in enabled if r.kind != gauge or (r.source and r.source.span_attribute)]
        self._gauge_rules = [
            r for r in enabled if r.kind == gauge and r.source and not r.source.span_attribute
        ]
        self._index(span_rules)

    def _index(self, span_rules: list[Rule]) -> None:
        """Index rules by an attribute each requires, so a span is only matched against candidates."""
        self._order = {rule.id: position for position, rule in enumerate(span_rules)}
        self._by_value: dict[str, dict[Any, list[Rule]]] = {}
        self._by_presence: dict[str, list[Rule]] = {}
        self._unindexed: list[Rule] = []
        self._candidate_cache: dict[tuple[Any, ...], list[Rule]] = {}
        for rule in span_rules:
            equals = next((c for c in rule.match if c.attribute and c.equals is not None), None)
            present = next((c for c in rule.match if c.attribute and (c.exists or c.non_empty)), None)
            if equals is not None and equals.attribute and isinstance(equals.equals, str):
                self._by_value.setdefault(equals.attribute, {}).setdefault(equals.equals, []).append(rule)
            elif present is not None and present.attribute:
                self._by_presence.setdefault(present.attribute, []).append(rule)
            elif rule.source is not None and rule.source.span_attribute and not rule.match:
                self._by_presence.setdefault(rule.source.span_attribute, []).append(rule)
            else:
                self._unindexed.append(rule)

    def _candidates(self, attributes: Mapping[str, Any]) -> list[Rule]:
        # The candidates depend only on a few attribute values and presences: cache them per shape.
        key = tuple(
            value if isinstance(value := attributes.get(name), str) else None for name in self._by_value
        ) + tuple(name in attributes for name in self._by_presence)
        cached = self._candidate_cache.get(key)
        if cached is not None:
            return cached
        found = list(self._unindexed)
        for name, by_value in self._by_value.items():
            value = attributes.get(name)
            if isinstance(value, str):
                found.extend(by_value.get(value, ()))
        for name, rules in self._by_presence.items():
            if name in attributes:
                found.extend(rules)
        found.sort(key=lambda rule: self._order[rule.id])
        if len(self._candidate_cache) >= 4096:  # bounded: attribute values can be anything
            self._candidate_cache.clear()
        self._candidate_cache[key] = found
        return found

    def tracked_groups(self) -> int:
        """How many window groups are held across all rules (bounded by ``max_groups`` per rule)."""
        return sum(len(state.groups) for state in self._states.values())

    # --- spans

    def judge_span(self, facts: SpanFacts) -> list[Firing]:
        """Every firing this finished span causes."""
        firings: list[Firing] = []
        for rule in self._candidates(facts.attributes):
            if not matches(rule.match, facts):
                continue
            firing = getattr(self, f"_judge_{rule.kind}")(rule, facts)
            if firing is not None:
                firings.append(firing)
        return firings

    def _group(self, rule: Rule, attributes: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        values = tuple(_hashable(attributes.get(key)) for key in rule.group_by)
        return values, {key: attributes.get(key) for key in rule.group_by if attributes.get(key) is not None}

    def _firing(self, rule: Rule, observed: float, facts: SpanFacts, group: dict[str, Any]) -> Firing:
        assert rule.threshold is not None or rule.kind == semconv.RuleKindValues.EVENT
        return Firing(
            rule=rule,
            observed=observed,
            threshold=rule.threshold if rule.threshold is not None else 0.0,
            group=group,
            trace_id=facts.trace_id,
            span_id=facts.span_id,
            at_s=self.clock(),
            facts=facts,
        )

    def _judge_latency(self, rule: Rule, facts: SpanFacts) -> Firing | None:
        assert rule.threshold is not None
        if compare(facts.duration_s, rule.comparison, rule.threshold):
            return self._firing(rule, facts.duration_s, facts, self._group(rule, facts.attributes)[1])
        return None

    def _judge_event(self, rule: Rule, facts: SpanFacts) -> Firing | None:
        return self._firing(rule, 1.0, facts, self._group(rule, facts.attributes)[1])

    def _judge_gauge(self, rule: Rule, facts: SpanFacts) -> Firing | None:
        assert (
            rule.source is not None and rule.source.span_attribute is not None and rule.threshold is not None
        )
        value = facts.attributes.get(rule.source.span_attribute)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if compare(float(value), rule.comparison, rule.threshold):
            return self._firing(rule, float(value), facts, self._group(rule, facts.attributes)[1])
        return None

    def _window(self, rule: Rule, key: tuple[Any, ...]) -> _Window:
        groups = self._states[rule.id].groups
        window = groups.get(key)
        if window is None:
            window = _Window.new()
            groups[key] = window
            if len(groups) > self.max_groups:
                groups.popitem(last=False)
                if self.on_evict is not None:
                    self.on_evict(rule.id, 1)
        else:
            groups.move_to_end(key)
        return window

    def _judge_windowed(
        self, rule: Rule, facts: SpanFacts, hit: bool
    ) -> tuple[_Window, float, dict[str, Any]]:
        assert rule.window is not None
        key, group = self._group(rule, facts.attributes)
        window = self._window(rule, key)
        now = self.clock()
        window.add(int(now // (rule.window / BUCKETS_PER_WINDOW)), hit)
        return window, now, group

    def _judge_ratio(self, rule: Rule, facts: SpanFacts) -> Firing | None:
        assert rule.failure is not None and rule.threshold is not None and rule.min_samples is not None
        failed = matches(rule.failure, facts)
        window, now, group = self._judge_windowed(rule, facts, failed)
        total, failures = window.sums()
        if total < rule.min_samples or now < window.suppressed_until:
            return None
        share = failures / total if rule.observed == "failure_rate" else (total - failures) / total
        if not compare(share, rule.comparison, rule.threshold):
            return None
        assert rule.window is not None
        window.suppressed_until = now + rule.window  # once per window and group
        return self._firing(rule, share, facts, group)

    def _judge_count(self, rule: Rule, facts: SpanFacts) -> Firing | None:
        assert rule.threshold is not None and rule.window is not None
        window, now, group = self._judge_windowed(rule, facts, True)
        count = float(window.sums()[0])
        if now < window.suppressed_until or not compare(count, rule.comparison, rule.threshold):
            return None
        window.suppressed_until = now + rule.window
        return self._firing(rule, count, facts, group)

    # --- sampled gauges

    def judge_gauge(self, source: str, value: float, attributes: Mapping[str, Any]) -> list[Firing]:
        """A sampled gauge value: ``source`` is a metric name or a computed source (``pool_utilisation``).

        A gauge fires when it enters the breaching state, not on every sample while it stays there.
        """
        firings: list[Firing] = []
        facts = SpanFacts(name="", kind="internal", status="unset", duration_s=0.0, attributes=attributes)
        for rule in self._gauge_rules:
            assert rule.source is not None and rule.threshold is not None
            if source not in (rule.source.metric, rule.source.computed):
                continue
            if not matches(rule.match, facts):
                continue
            key, group = self._group(rule, attributes)
            state = self._states[rule.id]
            breaching = compare(value, rule.comparison, rule.threshold)
            was = state.gauge_breaching.get(key, False)
            if breaching != was:
                if len(state.gauge_breaching) >= self.max_groups and key not in state.gauge_breaching:
                    state.gauge_breaching.pop(next(iter(state.gauge_breaching)))
                state.gauge_breaching[key] = breaching
            if breaching and not was:
                firings.append(
                    Firing(
                        rule=rule, observed=value, threshold=rule.threshold, group=group, at_s=self.clock()
                    )
                )
        return firings


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value

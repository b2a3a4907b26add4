"""The rules engine: judges finished spans and sampled gauges against a RuleSet.

Single-threaded by design: only the processor's worker thread calls it, so it needs no locks.
Window rules (ratio, count) keep per-group counters in fixed time buckets, so memory per group is
constant whatever the traffic, and the number of groups per rule is capped (``max_groups``). Bounded
memory must not be a blind spot, so when a rule is full the least suspicious group goes first
(:class:`_Groups`), what an evicted group had counted is remembered approximately (:class:`_Ghosts`),
and every eviction is itself judged, as a fact with ``b2b.security.action=group_eviction``, by the
rule ``security.rules.group_flood``: a flood of spoofed client addresses neither grows memory nor
hides the real attacker, and is an event of its own.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import semconv
from .schema import Condition, Rule, RuleSet

# A window is split into this many buckets; the sliding window moves one bucket at a time.
BUCKETS_PER_WINDOW = 60
DEFAULT_MAX_GROUPS = 10_000
# The memory of evicted groups: GHOST_ROWS rows of counters, GHOST_SLOTS_PER_GROUP x max_groups wide
# (a power of two, at most GHOST_MAX_WIDTH), so that collisions stay rare for floods far larger
# than max_groups; one byte a counter.
GHOST_ROWS = 4  # _Ghosts._slots spells the four rows out
GHOST_SLOTS_PER_GROUP = 64
GHOST_MAX_WIDTH = 1 << 21
_ZEROS = (0,) * BUCKETS_PER_WINDOW
_ZERO_COUNTS = array("i", _ZEROS)


class SpanFacts(NamedTuple):
    """What the engine needs of a finished span (extracted once, off the application thread).

    Immutable; a named tuple because one is made for every judged span, in half a frozen
    dataclass's time.
    """

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


@dataclass(slots=True)
class _Window:
    """Counters of one group in fixed buckets covering the rule's window.

    Up to ``max_groups`` of these live per rule: slots and 32-bit counter arrays keep one at about
    half the memory of a dict-backed object with two lists (a flood of distinct groups fills them).
    """

    totals: array[int]
    hits: array[int]
    epoch: int = -1  # absolute bucket number of the newest bucket
    suppressed_until: float = -math.inf
    score: int = 0  # hits in the window when last seen: how suspicious the group is
    prior: int = 0  # hits restored from the memory of evicted groups when it was created
    # The sums of ``totals`` and ``hits``, kept as the buckets change (read for every judged span).
    total: int = 0
    hit_total: int = 0

    @classmethod
    def new(cls) -> _Window:
        return cls(array("i", _ZEROS), array("i", _ZEROS))

    def reset(self) -> None:
        """Empty, as new (an evicted group's window is reused for the next group)."""
        self.totals[:] = _ZERO_COUNTS
        self.hits[:] = _ZERO_COUNTS
        self.epoch = -1
        self.suppressed_until = -math.inf
        self.score = self.prior = 0
        self.total = self.hit_total = 0

    def restore(self, bucket: int, prior: int) -> None:
        """Start a new (empty) window from ``prior`` hits remembered of the group, in ``bucket``."""
        slot = bucket % BUCKETS_PER_WINDOW
        self.epoch = bucket
        self.totals[slot] = prior
        self.hits[slot] = prior
        self.total = self.hit_total = self.prior = prior

    def add(self, bucket: int, hit: bool) -> None:
        if bucket > self.epoch or self.epoch < 0:
            self._advance(bucket)
        slot = bucket % BUCKETS_PER_WINDOW
        self.totals[slot] += 1
        self.total += 1
        if hit:
            self.hits[slot] += 1
            self.hit_total += 1

    def _advance(self, bucket: int) -> None:
        if self.epoch < 0:
            self.epoch = bucket
            return
        if bucket <= self.epoch:
            return
        steps = min(bucket - self.epoch, BUCKETS_PER_WINDOW)
        totals, hits = self.totals, self.hits
        for offset in range(1, steps + 1):
            slot = (self.epoch + offset) % BUCKETS_PER_WINDOW
            self.total -= totals[slot]
            self.hit_total -= hits[slot]
            totals[slot] = 0
            hits[slot] = 0
        self.epoch = bucket

    def sums(self) -> tuple[int, int]:
        return self.total, self.hit_total


class _Groups:
    """One window rule's groups; when the rule is full, the least suspicious group is evicted.

    Suspicion is what the group counted in its window when last seen (matching spans for a count
    rule, failures for a ratio rule). Evicted first: the least recently seen group if its window has
    run out (nothing is left in it); otherwise a group with the lowest count, the least recently seen
    among equals. Groups sit in insertion-ordered buckets by count, with a heap of the counts present
    (stale entries skipped when met): O(log n) per update, whatever the number of groups.
    """

    def __init__(self) -> None:
        self.windows: dict[tuple[Any, ...], _Window] = {}
        self._recent: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._by_score: dict[int, OrderedDict[tuple[Any, ...], None]] = {}
        self._scores: list[int] = []

    def __len__(self) -> int:
        return len(self.windows)

    def get(self, key: tuple[Any, ...]) -> _Window | None:
        return self.windows.get(key)

    def add(self, key: tuple[Any, ...], window: _Window) -> None:
        """A new group; :meth:`seen` must follow before the next eviction, and places it."""
        self.windows[key] = window
        self._recent[key] = None
        window.score = -1

    def seen(self, key: tuple[Any, ...], window: _Window, score: int) -> None:
        """The group was updated and now counts ``score``."""
        if window.score < 0:
            window.score = score
            self._place(key, score)
            return
        self._recent.move_to_end(key)
        if score == window.score:
            self._by_score[score].move_to_end(key)
            return
        self._unplace(key, window.score)
        window.score = score
        self._place(key, score)

    def evict(self, bucket: int) -> tuple[tuple[Any, ...], _Window]:
        """Remove and return the least suspicious group; ``bucket`` is the rule's current bucket."""
        oldest = next(iter(self._recent))
        if self.windows[oldest].epoch > bucket - BUCKETS_PER_WINDOW:
            while not self._by_score.get(self._scores[0]):
                heapq.heappop(self._scores)
            oldest = next(iter(self._by_score[self._scores[0]]))
        window = self.windows.pop(oldest)
        del self._recent[oldest]
        self._unplace(oldest, window.score)
        return oldest, window

    def _place(self, key: tuple[Any, ...], score: int) -> None:
        members = self._by_score.get(score)
        if members is None:
            members = self._by_score[score] = OrderedDict()
            heapq.heappush(self._scores, score)
            if len(self._scores) > 2 * len(self._by_score) + 64:  # drop the stale entries
                self._scores = list(self._by_score)
                heapq.heapify(self._scores)
        members[key] = None

    def _unplace(self, key: tuple[Any, ...], score: int) -> None:
        members = self._by_score[score]
        del members[key]
        if not members:
            del self._by_score[score]


class _Ghosts:
    """What evicted groups had counted, remembered approximately in fixed memory (a count-min sketch).

    A group evicted and seen again starts from the count it had (never less; more only when all
    rows collide), so an attacker whose failures are spread through a flood of spoofed addresses is
    still counted. Two generations, each covering half a window, so that old counts run out with the
    window. The hash is Python's, randomised per process: an attacker cannot aim collisions.
    """

    def __init__(self, max_groups: int) -> None:
        width = 1 << max(10, (max(1, max_groups) * GHOST_SLOTS_PER_GROUP - 1).bit_length())
        self.width = min(width, GHOST_MAX_WIDTH)
        self._generations = [bytearray(GHOST_ROWS * self.width), bytearray(GHOST_ROWS * self.width)]
        self._generation = 0  # the half-window number of the current generation

    def _slots(self, key: tuple[Any, ...]) -> tuple[int, ...]:
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        step = (h >> 32) | 1
        mask = self.width - 1
        width = self.width
        return (
            h & mask,
            width + ((h + step) & mask),
            2 * width + ((h + 2 * step) & mask),
            3 * width + ((h + 3 * step) & mask),
        )

    def _turn(self, bucket: int) -> None:
        generation = bucket // (BUCKETS_PER_WINDOW // 2)
        if generation == self._generation:
            return
        if generation - self._generation >= 2:
            self._generations = [bytearray(GHOST_ROWS * self.width), bytearray(GHOST_ROWS * self.width)]
        else:
            self._generations = [self._generations[1], bytearray(GHOST_ROWS * self.width)]
        self._generation = generation

    def add(self, key: tuple[Any, ...], count: int, bucket: int) -> None:
        if count <= 0:
            return
        self._turn(bucket)
        current = self._generations[1]
        slots = self._slots(key)
        # Conservative update: raise only the smallest counters, which keeps over-counting low.
        target = min(255, min(current[slot] for slot in slots) + count)
        for slot in slots:
            if current[slot] < target:
                current[slot] = target

    def estimate(self, key: tuple[Any, ...], bucket: int) -> int:
        self._turn(bucket)
        old, current = self._generations
        return min(old[slot] + current[slot] for slot in self._slots(key))


@dataclass
class _RuleState:
    rule: Rule
    groups: _Groups = field(default_factory=_Groups)
    ghosts: _Ghosts | None = None  # created at the rule's first eviction
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
        self.evicted = 0
        # Evictions not yet judged as facts (rule ids), and whether they are being judged now.
        self._evictions: list[str] = []
        self._judging_evictions = False
        enabled = rules.enabled()
        self._states = {rule.id: _RuleState(rule) for rule in enabled}
        gauge = semconv.RuleKindValues.GAUGE
        span_rules = [r for r in enabled if r.kind != gauge or (r.source and r.source.span_attribute)]
        self._gauge_rules = [
            r for r in enabled if r.kind == gauge and r.source and not r.source.span_attribute
        ]
        self._index(span_rules)
        # The rules that judge evictions (security.rules.group_flood), found once.
        eviction_shape = {
            semconv.B2B_SECURITY_ACTION: semconv.B2bSecurityActionValues.GROUP_EVICTION,
            semconv.B2B_FLOOD_RULE_ID: "",
        }
        self._eviction_rules = self._candidates(eviction_shape)
        self._eviction_plans: dict[str, list[tuple[Rule, tuple[Any, ...], dict[str, Any]]]] = {}
        kinds = semconv.RuleKindValues
        # How each kind of rule judges one span: a table, not a name built from the kind.
        self._judges: dict[str, Callable[[Rule, SpanFacts], Firing | None]] = {
            kinds.LATENCY: self._judge_latency,
            kinds.EVENT: self._judge_event,
            kinds.GAUGE: self._judge_gauge,
            kinds.RATIO: self._judge_ratio,
            kinds.COUNT: self._judge_count,
        }

    def _index(self, span_rules: list[Rule]) -> None:
        """Index rules by an attribute each requires, so a span is only matched against candidates."""
        self._order = {rule.id: position for position, rule in enumerate(span_rules)}
        self._by_value: dict[str, dict[Any, list[Rule]]] = {}
        self._by_presence: dict[str, list[Rule]] = {}
        self._unindexed: list[Rule] = []
        self._candidate_cache: dict[tuple[Any, ...], list[Rule]] = {}
        self._plan_cache: dict[tuple[Any, ...], list[tuple[Rule, tuple[Condition, ...], Any]]] = {}
        # Per rule, the conditions a candidate still has to meet: the one it was found by holds for
        # every candidate (an equal text value, or the attribute present), so it is not checked again.
        self._rest: dict[str, tuple[Condition, ...]] = {}
        for rule in span_rules:
            equals = next((c for c in rule.match if c.attribute and c.equals is not None), None)
            present = next((c for c in rule.match if c.attribute and (c.exists or c.non_empty)), None)
            implied: Condition | None = None
            if equals is not None and equals.attribute and isinstance(equals.equals, str):
                self._by_value.setdefault(equals.attribute, {}).setdefault(equals.equals, []).append(rule)
                implied = equals
            elif present is not None and present.attribute:
                self._by_presence.setdefault(present.attribute, []).append(rule)
                implied = present if present.exists else None
            elif rule.source is not None and rule.source.span_attribute and not rule.match:
                self._by_presence.setdefault(rule.source.span_attribute, []).append(rule)
            else:
                self._unindexed.append(rule)
            self._rest[rule.id] = tuple(c for c in rule.match if c is not implied)
        self._value_names = tuple(self._by_value)
        self._presence_names = tuple(self._by_presence)

    def _shape(self, attributes: Mapping[str, Any]) -> tuple[Any, ...]:
        """What the candidates of a span depend on: a few attribute values and presences.

        A value that is not text is not indexed: it counts as no value.
        """
        get = attributes.get
        return (
            *[value if isinstance(value := get(name), str) else None for name in self._value_names],
            *[name in attributes for name in self._presence_names],
        )

    def _plan(self, attributes: Mapping[str, Any]) -> list[tuple[Rule, tuple[Condition, ...], Any]]:
        """The candidate rules of a span, each with the conditions left to check and its judge."""
        # The values as they are, the cheap key: a span's are hashable, and one that is not text
        # only gives a key of its own (with the candidates of no value).
        key = (*map(attributes.get, self._value_names), *map(attributes.__contains__, self._presence_names))
        try:
            plan = self._plan_cache.get(key)
        except TypeError:  # an unhashable value (facts made by hand): the key of _shape
            key = self._shape(attributes)
            plan = self._plan_cache.get(key)
        if plan is None:
            judges = self._judges
            plan = [(rule, self._rest[rule.id], judges[rule.kind]) for rule in self._candidates(attributes)]
            if len(self._plan_cache) >= 4096:  # bounded as the candidates are
                self._plan_cache.clear()
            self._plan_cache[key] = plan
        return plan

    def _candidates(self, attributes: Mapping[str, Any]) -> list[Rule]:
        # The candidates depend only on a few attribute values and presences: cache them per shape.
        key = self._shape(attributes)
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
        for rule, rest, judge in self._plan(facts.attributes):
            if rest and not matches(rest, facts):
                continue
            firing = judge(rule, facts)
            if firing is not None:
                firings.append(firing)
        if self._evictions and not self._judging_evictions:
            firings += self._judge_evictions(facts)
        return firings

    def _group(self, rule: Rule, attributes: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return _group_key(rule.group_by, attributes), _group_of(rule.group_by, attributes)

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

    def _window(self, state: _RuleState, key: tuple[Any, ...], bucket: int) -> _Window:
        """The group's window, created when new (evicting the least suspicious group if full)."""
        window = state.groups.get(key)
        if window is not None:
            return window
        window = self._evict(state, bucket) if len(state.groups) >= self.max_groups else _Window.new()
        rule = state.rule
        if state.ghosts is not None and rule.threshold is not None:
            # Seen before it was evicted: start from what it had counted. Never enough to fire on
            # this span alone (at most threshold - 2), so a rare collision cannot raise an alert.
            prior = min(state.ghosts.estimate(key, bucket), max(0, math.ceil(rule.threshold) - 2))
            if prior > 0:
                window.restore(bucket, prior)
        state.groups.add(key, window)
        return window

    def _evict(self, state: _RuleState, bucket: int) -> _Window:
        """Evict the least suspicious group; its window, emptied, for the next group."""
        key, window = state.groups.evict(bucket)
        self.evicted += 1
        if state.rule.kind == semconv.RuleKindValues.COUNT:
            # What it counted (when last seen, or nothing once its window ran out) minus what it
            # had been given back from memory, which is remembered already.
            expired = window.epoch <= bucket - BUCKETS_PER_WINDOW
            remembered = 0 if expired else window.score - window.prior
            if remembered > 0:
                if state.ghosts is None:
                    state.ghosts = _Ghosts(self.max_groups)
                state.ghosts.add(key, remembered, bucket)
        if self.on_evict is not None:
            self.on_evict(state.rule.id, 1)
        self._evictions.append(state.rule.id)
        window.reset()
        return window

    def _judge_evictions(self, facts: SpanFacts) -> list[Firing]:
        """Each eviction this span caused, judged as a fact of its own (``security.rules.group_flood``).

        The fact depends only on the evicting rule, so which rules match it, and their groups, are
        worked out once per evicting rule; count rules then only count (a flood evicts per span).
        """
        evictions, self._evictions = self._evictions, []
        firings: list[Firing] = []
        if not self._eviction_rules:
            return firings
        self._judging_evictions = True
        try:
            for rule_id in evictions:
                for rule, key, group in self._eviction_plan(rule_id):
                    if rule.kind != semconv.RuleKindValues.COUNT:
                        firing = self._judges[rule.kind](rule, _eviction_facts(rule_id, facts))
                        if firing is not None:
                            firings.append(firing)
                        continue
                    assert rule.threshold is not None and rule.window is not None
                    window, now, total, _ = self._count_in(rule, key, True)
                    if now < window.suppressed_until or not compare(total, rule.comparison, rule.threshold):
                        continue
                    window.suppressed_until = now + rule.window
                    firings.append(self._firing(rule, float(total), _eviction_facts(rule_id, facts), group))
        finally:
            self._judging_evictions = False
            self._evictions.clear()  # evictions of the flood rule's own groups are not judged again
        return firings

    def _eviction_plan(self, rule_id: str) -> list[tuple[Rule, tuple[Any, ...], dict[str, Any]]]:
        plan = self._eviction_plans.get(rule_id)
        if plan is None:
            facts = _eviction_facts(rule_id, None)
            plan = self._eviction_plans[rule_id] = [
                (rule, *self._group(rule, facts.attributes))
                for rule in self._eviction_rules
                if matches(rule.match, facts)
            ]
        return plan

    def _count_in(self, rule: Rule, key: tuple[Any, ...], hit: bool) -> tuple[_Window, float, int, int]:
        """Count a span in the window of group ``key``; the window, the time and its sums."""
        assert rule.window is not None
        state = self._states[rule.id]
        now = self.clock()
        bucket = int(now // (rule.window / BUCKETS_PER_WINDOW))
        window = self._window(state, key, bucket)
        window.add(bucket, hit)
        total, hits = window.sums()
        state.groups.seen(key, window, hits)
        return window, now, total, hits

    def _judge_ratio(self, rule: Rule, facts: SpanFacts) -> Firing | None:
        assert rule.failure is not None and rule.threshold is not None and rule.min_samples is not None
        failed = matches(rule.failure, facts)
        # The group's attributes are only built for a firing; its key is what is counted.
        key = _group_key(rule.group_by, facts.attributes)
        window, now, total, failures = self._count_in(rule, key, failed)
        if total < rule.min_samples or now < window.suppressed_until:
            return None
        share = failures / total if rule.observed == "failure_rate" else (total - failures) / total
        if not compare(share, rule.comparison, rule.threshold):
            return None
        assert rule.window is not None
        window.suppressed_until = now + rule.window  # once per window and group
        return self._firing(rule, share, facts, _group_of(rule.group_by, facts.attributes))

    def _judge_count(self, rule: Rule, facts: SpanFacts) -> Firing | None:
        assert rule.threshold is not None and rule.window is not None
        window, now, total, _ = self._count_in(rule, _group_key(rule.group_by, facts.attributes), True)
        count = float(total)
        if now < window.suppressed_until or not compare(count, rule.comparison, rule.threshold):
            return None
        window.suppressed_until = now + rule.window
        return self._firing(rule, count, facts, _group_of(rule.group_by, facts.attributes))

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
                # The sample's facts: a reading may carry the tenant it was taken for (records.build).
                firings.append(
                    Firing(
                        rule=rule,
                        observed=value,
                        threshold=rule.threshold,
                        group=group,
                        at_s=self.clock(),
                        facts=facts,
                    )
                )
        return firings


def _eviction_facts(rule_id: str, cause: SpanFacts | None) -> SpanFacts:
    """The fact of one eviction by ``rule_id``, on the span that caused it."""
    return SpanFacts(
        name=semconv.B2bSecurityActionValues.GROUP_EVICTION,
        kind="internal",
        status="unset",
        duration_s=0.0,
        attributes={
            semconv.B2B_SECURITY_ACTION: semconv.B2bSecurityActionValues.GROUP_EVICTION,
            semconv.B2B_FLOOD_RULE_ID: rule_id,
        },
        trace_id=cause.trace_id if cause is not None else 0,
        span_id=cause.span_id if cause is not None else 0,
    )


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


def _group_key(group_by: Sequence[str], attributes: Mapping[str, Any]) -> tuple[Any, ...]:
    """The window key of a span's group: its values of the rule's ``group_by`` attributes."""
    get = attributes.get
    return tuple([_hashable(get(key)) for key in group_by])


def _group_of(group_by: Sequence[str], attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The group's attributes as a firing reports them (those the span has)."""
    get = attributes.get
    return {key: value for key in group_by if (value := get(key)) is not None}

"""The rules engine against the built-in rules: each fires just above its threshold, stays silent below.

Windows are driven by a fake clock; spans are given to the engine as facts, as the worker thread does.
"""

from __future__ import annotations

from typing import Any

import pytest

from b2b_otel import semconv as sc
from b2b_otel.derive import records
from b2b_otel.rules import load_rules
from b2b_otel.rules.engine import Engine, SpanFacts
from b2b_otel.scrub import Scrubber
from tests.support.deterministic import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> Engine:
    return Engine(load_rules(None, {}), clock)


def agent(duration: float = 0.1, failed: bool = False, name: str = "roi_agent") -> SpanFacts:
    return SpanFacts(
        name=f"invoke_agent {name}",
        kind="internal",
        status="error" if failed else "unset",
        duration_s=duration,
        attributes={sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_AGENT_NAME: name},
        trace_id=0xABC,
        span_id=0xDEF,
    )


def fired(engine: Engine, facts: SpanFacts) -> list[str]:
    return [f.rule.id for f in engine.judge_span(facts)]


# --- latency ---

LATENCY_CASES = [
    ("agent.execution.slow", 3.0, agent),
    ("agent.execution.critical", 300.0, agent),
    (
        "db.query.slow",
        10.0,
        lambda d: SpanFacts("SELECT", "client", "unset", d, {sc.DB_SYSTEM_NAME: "postgresql"}),
    ),
    (
        "external.api.slow",
        5.0,
        lambda d: SpanFacts(
            "GET", "client", "unset", d, {sc.HTTP_REQUEST_METHOD: "GET", sc.SERVER_ADDRESS: "crm"}
        ),
    ),
    (
        "workflow.completion.slow",
        1800.0,
        lambda d: SpanFacts(
            "invoke_workflow wf", "internal", "unset", d, {sc.GEN_AI_OPERATION_NAME: "invoke_workflow"}
        ),
    ),
]


@pytest.mark.parametrize(("rule_id", "threshold", "make"), LATENCY_CASES, ids=[c[0] for c in LATENCY_CASES])
def test_latency_rule_fires_just_above_and_not_below(
    engine: Engine, rule_id: str, threshold: float, make: Any
) -> None:
    assert rule_id not in fired(engine, make(threshold * 0.999))
    assert rule_id not in fired(engine, make(threshold))
    firings = [f for f in engine.judge_span(make(threshold * 1.001)) if f.rule.id == rule_id]
    assert len(firings) == 1
    assert firings[0].observed == pytest.approx(threshold * 1.001)
    assert firings[0].threshold == threshold


def test_latency_rules_judge_every_span_not_once_per_window(engine: Engine) -> None:
    assert fired(engine, agent(4.0)).count("agent.execution.slow") == 1
    assert fired(engine, agent(4.0)).count("agent.execution.slow") == 1


def test_external_api_slow_ignores_server_spans(engine: Engine) -> None:
    facts = SpanFacts("GET /x", "server", "unset", 9.0, {sc.HTTP_REQUEST_METHOD: "GET"})
    assert "external.api.slow" not in fired(engine, facts)


def test_threshold_override_variable(clock: FakeClock) -> None:
    engine = Engine(load_rules(None, {"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "0.5s"}), clock)
    assert "agent.execution.slow" in fired(engine, agent(0.6))
    assert "agent.execution.slow" not in fired(engine, agent(0.4))


# --- ratio ---


def test_agent_success_rate_fires_below_95_percent_over_min_samples(engine: Engine, clock: FakeClock) -> None:
    # 19 successes and 1 failure: 95 % exactly -> silent; one more failure: 20/21 < 95 % -> fires.
    results = []
    for index in range(20):
        clock.now += 1
        results += fired(engine, agent(failed=index == 0))
    assert "agent.success_rate.low" not in results
    clock.now += 1
    firing = [f for f in engine.judge_span(agent(failed=True)) if f.rule.id == "agent.success_rate.low"]
    assert len(firing) == 1
    assert firing[0].observed == pytest.approx(19 / 21)
    assert firing[0].group == {sc.GEN_AI_AGENT_NAME: "roi_agent"}


def test_ratio_rule_needs_its_minimum_samples(engine: Engine, clock: FakeClock) -> None:
    for _ in range(19):
        assert "agent.success_rate.low" not in fired(engine, agent(failed=True))


def test_ratio_rule_fires_once_per_window_and_group(engine: Engine, clock: FakeClock) -> None:
    ids: list[str] = []
    for _ in range(100):
        clock.now += 1
        ids += fired(engine, agent(failed=True))
    assert ids.count("agent.success_rate.low") == 1
    ids = []
    for _ in range(100):
        clock.now += 1
        ids += fired(engine, agent(failed=True, name="other_agent"))
    assert ids.count("agent.success_rate.low") == 1  # another group fires on its own
    clock.now += 3600  # a new window: the old counts slid out, and it fires again once
    ids = []
    for _ in range(25):
        clock.now += 1
        ids += fired(engine, agent(failed=True))
    assert ids.count("agent.success_rate.low") == 1


def test_ratio_window_slides_old_failures_out(engine: Engine, clock: FakeClock) -> None:
    for _ in range(5):
        fired(engine, agent(failed=True))
    clock.now += 2 * 3600
    ids: list[str] = []
    for _ in range(30):
        clock.now += 1
        ids += fired(engine, agent())
    assert "agent.success_rate.low" not in ids


def memory_op(failed: bool = False) -> SpanFacts:
    attributes = {sc.B2B_MEMORY_TIER: "episodic", sc.GEN_AI_OPERATION_NAME: "create_memory"}
    return SpanFacts("create_memory episodic", "internal", "error" if failed else "unset", 0.01, attributes)


def test_memory_failure_rate_above_one_percent(engine: Engine, clock: FakeClock) -> None:
    ids: list[str] = []
    for index in range(100):  # 1 failure in 100 = 1 %: not above
        clock.now += 1
        ids += fired(engine, memory_op(failed=index == 50))
    assert "memory.failure_rate.high" not in ids
    clock.now += 1
    assert "memory.failure_rate.high" in fired(engine, memory_op(failed=True))  # 2/101 > 1 %


def cache_lookup(hit: bool) -> SpanFacts:
    attributes = {sc.B2B_MEMORY_TIER: "working", sc.B2B_MEMORY_CACHE_HIT: hit}
    return SpanFacts("search_memory working", "internal", "unset", 0.001, attributes)


def test_cache_hit_rate_below_80_percent(engine: Engine, clock: FakeClock) -> None:
    ids: list[str] = []
    for index in range(20):  # 16 hits of 20 = 80 %: not below
        clock.now += 1
        ids += fired(engine, cache_lookup(hit=index >= 4))
    assert "memory.cache_hit.low" not in ids
    clock.now += 1
    assert "memory.cache_hit.low" in fired(engine, cache_lookup(hit=False))  # 16/21 < 80 %


def test_workflow_failure_rate_above_five_percent(engine: Engine, clock: FakeClock) -> None:
    def workflow(failed: bool) -> SpanFacts:
        return SpanFacts(
            "invoke_workflow wf",
            "internal",
            "error" if failed else "unset",
            1.0,
            {sc.GEN_AI_OPERATION_NAME: "invoke_workflow"},
        )

    ids: list[str] = []
    for index in range(20):  # 1 of 20 = 5 %: not above
        ids += fired(engine, workflow(failed=index == 0))
    assert "workflow.failure_rate.high" not in ids
    assert "workflow.failure_rate.high" in fired(engine, workflow(failed=True))


def test_external_api_unavailable_per_server_address(engine: Engine, clock: FakeClock) -> None:
    def call(server: str, failed: bool) -> SpanFacts:
        return SpanFacts(
            "GET",
            "client",
            "error" if failed else "unset",
            0.1,
            {sc.HTTP_REQUEST_METHOD: "GET", sc.SERVER_ADDRESS: server},
        )

    ids: list[str] = []
    for index in range(20):
        ids += fired(engine, call("crm.local", failed=index == 0))
        ids += fired(engine, call("erp.local", failed=False))
    assert "external.api.unavailable" not in ids
    firings = [
        f for f in engine.judge_span(call("crm.local", True)) if f.rule.id == "external.api.unavailable"
    ]
    assert [f.group for f in firings] == [{sc.SERVER_ADDRESS: "crm.local"}]


# --- count ---


def failed_login(address: str = "203.0.113.9") -> SpanFacts:
    attributes = {sc.B2B_SECURITY_ACTION: "login", sc.EVENT_OUTCOME: "failure", sc.CLIENT_ADDRESS: address}
    return SpanFacts("login", "internal", "unset", 0.0, attributes)


def test_bruteforce_fires_at_five_failed_logins_from_one_address_in_five_minutes(
    engine: Engine, clock: FakeClock
) -> None:
    for _ in range(4):
        clock.now += 30
        assert "security.login.bruteforce" not in fired(engine, failed_login())
    clock.now += 30
    firings = [f for f in engine.judge_span(failed_login()) if f.rule.id == "security.login.bruteforce"]
    assert len(firings) == 1
    assert firings[0].observed == 5
    assert firings[0].group == {sc.CLIENT_ADDRESS: "203.0.113.9"}


def test_bruteforce_spread_over_more_than_five_minutes_is_silent(engine: Engine, clock: FakeClock) -> None:
    for _ in range(10):
        clock.now += 80  # 4 failures per 5 minutes at most
        assert "security.login.bruteforce" not in fired(engine, failed_login())


def test_bruteforce_counts_per_address_and_fires_once_per_window(engine: Engine, clock: FakeClock) -> None:
    ids: list[str] = []
    for index in range(20):
        ids += fired(engine, failed_login("198.51.100.1"))
        ids += fired(engine, failed_login(f"192.0.2.{index}"))  # spread over addresses: never 5 from one
    assert ids.count("security.login.bruteforce") == 1


def test_successful_logins_do_not_count(engine: Engine) -> None:
    success = SpanFacts(
        "login",
        "internal",
        "unset",
        0.0,
        {sc.B2B_SECURITY_ACTION: "login", sc.EVENT_OUTCOME: "success", sc.CLIENT_ADDRESS: "x"},
    )
    assert all("security.login.bruteforce" not in fired(engine, success) for _ in range(10))


def denied(user: str = "u-1") -> SpanFacts:
    return SpanFacts(
        "access_denied", "internal", "unset", 0.0, {sc.B2B_SECURITY_ACTION: "access_denied", sc.USER_ID: user}
    )


def test_unusual_access_at_three_denials_per_user_in_ten_minutes(engine: Engine, clock: FakeClock) -> None:
    assert "security.access.unusual" not in fired(engine, denied())
    clock.now += 60
    assert "security.access.unusual" not in fired(engine, denied())
    clock.now += 60
    ids = fired(engine, denied())
    assert "security.access.unusual" in ids
    assert "security.access.violation" in ids  # each denial is also an event


# --- event ---


def test_privilege_escalation_only_when_roles_are_granted(engine: Engine) -> None:
    def change(granted: tuple[str, ...]) -> SpanFacts:
        return SpanFacts(
            "privilege_change",
            "internal",
            "unset",
            0.0,
            {
                sc.B2B_SECURITY_ACTION: "privilege_change",
                sc.USER_ID: "u-1",
                sc.B2B_ACTOR_ID: "a-1",
                sc.B2B_ROLES_GRANTED: granted,
                sc.B2B_ROLES_REVOKED: ("viewer",),
            },
        )

    assert "security.privilege.escalation" not in fired(engine, change(()))
    firings = [
        f for f in engine.judge_span(change(("admin",))) if f.rule.id == "security.privilege.escalation"
    ]
    assert len(firings) == 1
    assert firings[0].group == {sc.USER_ID: "u-1", sc.B2B_ACTOR_ID: "a-1"}


def _finding(field: str = "app.note", pattern: str = "credit_card") -> SpanFacts:
    return SpanFacts(
        "sensitive_data",
        "internal",
        "unset",
        0.0,
        {sc.B2B_SECURITY_ACTION: "sensitive_data", sc.B2B_SCRUB_FIELD: field, sc.B2B_SCRUB_PATTERN: pattern},
    )


def test_sensitive_data_fires_once_per_5_minutes_per_field_and_pattern(
    engine: Engine, clock: FakeClock
) -> None:
    first = engine.judge_span(_finding())
    group = {sc.B2B_SCRUB_FIELD: "app.note", sc.B2B_SCRUB_PATTERN: "credit_card"}
    assert [(f.rule.id, f.observed, f.group) for f in first] == [("security.sensitive_data", 1.0, group)]
    # The same field and pattern on 49 more spans within the window: no record of its own.
    for _ in range(49):
        clock.now += 1
        assert fired(engine, _finding()) == []
    # Another field, or another pattern in the same field, is another group.
    assert fired(engine, _finding(field="app.other")) == ["security.sensitive_data"]
    assert fired(engine, _finding(pattern="jwt")) == ["security.sensitive_data"]
    # Once the window has passed, the next finding fires with what the window counted.
    clock.now += 300 - 49
    again = engine.judge_span(_finding())
    assert [f.rule.id for f in again] == ["security.sensitive_data"]
    assert 1 < again[0].observed <= 51


def test_a_sensitive_data_record_names_field_pattern_and_count_unscrubbed(engine: Engine) -> None:
    # Its message passes the scrubber: "pattern=secret_key: 1" would read as a secret's key and value.
    (firing,) = engine.judge_span(_finding(field="app.db_password", pattern="secret_key"))
    record = records.build(firing, Scrubber())
    group = "b2b.scrub.field=app.db_password, b2b.scrub.pattern=secret_key"
    assert record.message == f"1 matching events within 300s ({group})"
    assert record.attributes[sc.B2B_OBSERVED_VALUE] == 1.0
    assert record.attributes[sc.B2B_SCRUB_PATTERN] == "secret_key"


# --- gauges ---


def test_data_quality_below_085(engine: Engine) -> None:
    def step(score: float) -> SpanFacts:
        return SpanFacts(
            "execute_step data_integration", "internal", "unset", 1.0, {sc.B2B_DATA_QUALITY_SCORE: score}
        )

    assert "workflow.data_quality.low" not in fired(engine, step(0.85))
    assert "workflow.data_quality.low" in fired(engine, step(0.849))


def test_queue_depth_above_ten_fires_on_entering_breach_only(engine: Engine) -> None:
    labels = {sc.GEN_AI_AGENT_NAME: "roi_agent"}
    assert engine.judge_gauge(sc.METRIC_B2B_AGENT_QUEUE_DEPTH, 10, labels) == []
    (firing,) = engine.judge_gauge(sc.METRIC_B2B_AGENT_QUEUE_DEPTH, 11, labels)
    assert (firing.rule.id, firing.observed, firing.group) == ("agent.queue.depth", 11, labels)
    assert engine.judge_gauge(sc.METRIC_B2B_AGENT_QUEUE_DEPTH, 12, labels) == []  # still breaching
    assert engine.judge_gauge(sc.METRIC_B2B_AGENT_QUEUE_DEPTH, 3, labels) == []  # recovered
    assert len(engine.judge_gauge(sc.METRIC_B2B_AGENT_QUEUE_DEPTH, 15, labels)) == 1  # breaches again


def test_pool_exhaustion_above_90_percent(engine: Engine) -> None:
    labels = {sc.DB_CLIENT_CONNECTION_POOL_NAME: "episodic"}
    assert engine.judge_gauge("pool_utilisation", 0.9, labels) == []
    (firing,) = engine.judge_gauge("pool_utilisation", 0.95, labels)
    assert firing.rule.id == "db.pool.exhaustion"


def test_llm_quota_above_80_percent_per_provider_and_quota(engine: Engine) -> None:
    tokens = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.B2B_LLM_QUOTA_KIND: sc.B2bLlmQuotaKindValues.TOKENS}
    requests = {**tokens, sc.B2B_LLM_QUOTA_KIND: sc.B2bLlmQuotaKindValues.REQUESTS}
    quota = sc.METRIC_B2B_LLM_QUOTA_UTILIZATION
    assert engine.judge_gauge(quota, 0.8, tokens) == []
    (firing,) = engine.judge_gauge(quota, 0.81, tokens)
    assert (firing.rule.id, firing.observed, firing.group) == (sc.RULE_EXTERNAL_LLM_QUOTA, 0.81, tokens)
    assert (firing.rule.severity, firing.rule.tier) == ("info", "operations")
    # The provider's other quota, well below the threshold, neither fires nor ends the tokens breach.
    assert engine.judge_gauge(quota, 0.2, requests) == []
    assert engine.judge_gauge(quota, 0.9, tokens) == []


# --- bounded memory ---


# A million spoofed addresses against the group cap: tests/test_flood.py (peak RSS in a subprocess).

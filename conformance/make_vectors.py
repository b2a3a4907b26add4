"""Writes the generated conformance vectors (conformance/vectors/*.json; README.md says the format).

Run ``.venv/bin/python conformance/make_vectors.py`` after changing a vector below; the hand-written
vectors in the folder (those not named here) are left alone. Every expectation is written out by hand
from the rules (SPEC section 5, b2b_otel/rules/default_rules.yaml), never computed by an engine: the
two engines are what the vectors check. Only the ECS/OCSF classification of the security rules is
taken from the registry (the generated b2b_otel/semconv.py), which is where SPEC says they live.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from b2b_otel import semconv as sc

OUT = Path(__file__).resolve().parent / "vectors"
T0 = 1_764_400_000  # seconds since the epoch: the vectors' clock starts here
SEVERITY_NUMBER = {"critical": 21, "warning": 13, "info": 9}
RESPOND_WITHIN_S = {"critical": 300, "warning": 3600, "info": 86400}
KIND = {"internal": 1, "server": 2, "client": 3}


def value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    return {"stringValue": str(v)}


def attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": value(v)} for k, v in attrs.items()]


class Spans:
    """Builds a vector's input: spans in order, each with an id (trace and span id from one counter)."""

    def __init__(self, first_id: int = 1) -> None:
        self.next_id = first_id
        self.resources: list[dict[str, Any]] = []

    def resource(self, service: str = "checkout", **extra: Any) -> list[dict[str, Any]]:
        spans: list[dict[str, Any]] = []
        attrs = {"service.name": service, **extra}
        self.resources.append(
            {
                "resource": {"attributes": attributes(attrs)},
                "scopeSpans": [{"scope": {"name": "vectors"}, "spans": spans}],
            }
        )
        return spans

    def span(
        self,
        into: list[dict[str, Any]],
        name: str,
        end_s: float,
        attrs: dict[str, Any],
        duration_s: float = 0.01,
        kind: str = "internal",
        error: bool = False,
    ) -> tuple[str, str]:
        n = self.next_id
        self.next_id += 1
        end = round(end_s * 1e9)
        start = end - round(duration_s * 1e9)
        span: dict[str, Any] = {
            "traceId": f"{n:032x}",
            "spanId": f"{n:016x}",
            "name": name,
            "kind": KIND[kind],
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(end),
            "attributes": attributes(attrs),
        }
        if error:
            span["status"] = {"code": 2}
        into.append(span)
        return f"{n:032x}", f"{n:016x}"

    def request(self) -> dict[str, Any]:
        return {"resourceSpans": self.resources}


def record(
    rule_id: str,
    ids: tuple[str, str],
    observed: float,
    threshold: float,
    group: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    info = sc.RULES[rule_id]
    attrs: dict[str, Any] = {
        "b2b.rule.id": rule_id,
        "b2b.alert.severity": info.severity,
        "b2b.alert.tier": info.tier,
        "b2b.alert.respond_within_s": RESPOND_WITHIN_S[info.severity],
        "b2b.observed.value": float(observed),
        "b2b.threshold.value": float(threshold),
        **(group or {}),
        **(extra or {}),
    }
    if info.security is not None:
        attrs.update(
            {
                "event.category": info.security.event_category,
                "event.type": info.security.event_type,
                "event.outcome": info.security.event_outcome,
                "ocsf.class_uid": info.security.ocsf_class_uid,
                "ocsf.activity_id": info.security.ocsf_activity_id,
            }
        )
    event = "b2b.security.event" if info.tier == "security" else "b2b.sla.breach"
    return {
        "rule_id": rule_id,
        "event_name": event,
        "severity_number": SEVERITY_NUMBER[info.severity],
        "trace_id": ids[0],
        "span_id": ids[1],
        "attributes": attrs,
    }


NO_TRACE = ("0" * 32, "0" * 16)
VECTORS: dict[str, dict[str, Any]] = {}


def vector(
    name: str, description: str, spans: Spans | None, expected: list[dict[str, Any]], **extra: Any
) -> None:
    v: dict[str, Any] = {"name": name, "description": description}
    v.update(extra)
    if spans is not None:
        v["input"] = spans.request()
    v["expected"] = expected
    VECTORS[name] = v


AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
WORKFLOW = {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "onboarding"}


def http(server: str) -> dict[str, Any]:
    return {"http.request.method": "GET", "server.address": server}


def login(address: str) -> dict[str, Any]:
    return {"b2b.security.action": "login", "event.outcome": "failure", "client.address": address}


def denied(user: str) -> dict[str, Any]:
    return {"b2b.security.action": "access_denied", "user.id": user}


def build() -> None:
    # --- latency rules
    s = Spans()
    r = s.resource()
    ids = s.span(r, "invoke_agent planner", T0 + 301, AGENT, duration_s=301)
    vector(
        "latency_agent_critical",
        "An agent invocation of 301 s is over both agent thresholds: agent.execution.critical (300 s) and "
        "agent.execution.slow (3 s) fire, in rules file order.",
        s,
        [
            record("agent.execution.critical", ids, 301, 300, {"gen_ai.agent.name": "planner"}),
            record("agent.execution.slow", ids, 301, 3, {"gen_ai.agent.name": "planner"}),
        ],
    )
    s = Spans()
    r = s.resource()
    s.span(r, "SELECT", T0 + 10, {"db.system.name": "postgresql"}, duration_s=10, kind="client")
    ids = s.span(r, "SELECT", T0 + 30, {"db.system.name": "postgresql"}, duration_s=10.5, kind="client")
    vector(
        "latency_db_query_slow",
        "A query of exactly 10 s does not fire db.query.slow (gt); one of 10.5 s does.",
        s,
        [record("db.query.slow", ids, 10.5, 10, {"db.system.name": "postgresql"})],
    )
    s = Spans()
    r = s.resource()
    ids = s.span(r, "invoke_workflow onboarding", T0 + 1801, WORKFLOW, duration_s=1801)
    vector(
        "latency_workflow_completion_slow",
        "A workflow of 1801 s (over 30 min) fires workflow.completion.slow; its ratio rule has one sample "
        "and stays quiet.",
        s,
        [record("workflow.completion.slow", ids, 1801, 1800, {"gen_ai.workflow.name": "onboarding"})],
    )
    s = Spans()
    r = s.resource()
    s.span(r, "GET", T0 + 5, http("crm.example"), duration_s=6, kind="internal")
    ids = s.span(r, "GET", T0 + 10, http("crm.example"), duration_s=6, kind="client")
    vector(
        "latency_external_api_slow",
        "A 6 s HTTP call fires external.api.slow only on a client span (an internal span with the same "
        "attributes does not match the rule's span_kind).",
        s,
        [record("external.api.slow", ids, 6, 5, {"server.address": "crm.example"})],
    )

    # --- threshold overrides (the Python layer's variables; the connector reads the same)
    s = Spans()
    r = s.resource()
    ids = s.span(r, "invoke_agent planner", T0 + 1, AGENT, duration_s=0.75)
    for i in range(2):
        last = s.span(r, "login", T0 + 2 + i, login("192.0.2.1"))
    vector(
        "override_thresholds",
        "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD=500ms makes a 0.75 s agent slow; "
        "B2B_OTEL_RULE_SECURITY_LOGIN_BRUTEFORCE_THRESHOLD=2 fires the brute force at the second failure; "
        "the records carry the overridden thresholds.",
        s,
        [
            record("agent.execution.slow", ids, 0.75, 0.5, {"gen_ai.agent.name": "planner"}),
            record("security.login.bruteforce", last, 2, 2, {"client.address": "192.0.2.1"}),
        ],
        threshold_overrides={
            "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "500ms",
            "B2B_OTEL_RULE_SECURITY_LOGIN_BRUTEFORCE_THRESHOLD": "2",
        },
    )

    # --- ratio rules
    s = Spans()
    r = s.resource()
    for i in range(18):
        s.span(r, "invoke_agent planner", T0 + i, AGENT, duration_s=0.5)
    s.span(r, "invoke_agent planner", T0 + 18, AGENT, duration_s=0.5, error=True)
    ids = s.span(r, "invoke_agent planner", T0 + 19, AGENT, duration_s=0.5, error=True)
    vector(
        "ratio_agent_success_rate_low",
        "18 good and 2 failed invocations of one agent: at the 20th (min_samples) the success rate is "
        "90 % < 95 %, agent.success_rate.low fires.",
        s,
        [record("agent.success_rate.low", ids, 0.9, 0.95, {"gen_ai.agent.name": "planner"})],
    )
    s = Spans()
    r = s.resource()
    for i in range(19):
        s.span(r, "invoke_agent planner", T0 + i, AGENT, duration_s=0.5, error=True)
    vector(
        "ratio_min_samples",
        "19 failed invocations of one agent (0 % success) never fire agent.success_rate.low: the window "
        "holds fewer than its 20 min_samples.",
        s,
        [],
    )
    s = Spans()
    r = s.resource()
    memory = {"b2b.memory.tier": "episodic", "b2b.memory.operation": "search"}
    for i in range(98):
        s.span(r, "memory search", T0 + i, memory)
    s.span(r, "memory search", T0 + 98, memory, error=True)
    ids = s.span(r, "memory search", T0 + 99, memory, error=True)
    vector(
        "ratio_memory_failure_rate_high",
        "2 failures in 100 memory operations (2 % > 1 %) fire memory.failure_rate.high at the 100th "
        "operation (its min_samples); the rule has no group.",
        s,
        [record("memory.failure_rate.high", ids, 0.02, 0.01)],
    )
    s = Spans()
    r = s.resource()
    for i in range(20):
        hit = i % 4 != 0  # 5 misses out of 20
        ids = s.span(r, "memory get", T0 + i, {"b2b.memory.tier": "working", "b2b.memory.cache.hit": hit})
    vector(
        "ratio_memory_cache_hit_low",
        "15 hits in 20 working-memory lookups (75 % < 80 %) fire memory.cache_hit.low at the 20th.",
        s,
        [record("memory.cache_hit.low", ids, 0.75, 0.8)],
    )
    s = Spans()
    r = s.resource()
    for i in range(19):
        s.span(r, "invoke_workflow onboarding", T0 + i, WORKFLOW, error=i in (3, 11))
    ids = s.span(r, "invoke_workflow onboarding", T0 + 19, WORKFLOW)
    vector(
        "ratio_workflow_failure_rate_high",
        "2 failed workflows in 20 (10 % > 5 %) fire workflow.failure_rate.high at the 20th.",
        s,
        [record("workflow.failure_rate.high", ids, 0.1, 0.05)],
    )
    s = Spans()
    r = s.resource()
    for i in range(20):
        s.span(r, "GET", T0 + i, http("crm.example"), kind="client", error=i < 2)
    for i in range(20):
        s.span(r, "GET", T0 + 3700 + i, http("crm.example"), kind="client")
    for i in range(19):
        s.span(r, "GET", T0 + 3720 + i, http("crm.example"), kind="client")
    for i in range(2):
        s.span(r, "GET", T0 + 3739 + i, http("crm.example"), kind="client", error=True)
    vector(
        "ratio_window_slides_out",
        "2 failures in the first 20 calls (10 %) fire external.api.unavailable once, at the 20th call. An "
        "hour later those calls have slid out of the 1-hour window: 39 good calls and 2 failures (4.9 %) "
        "stay quiet, though with the early calls still counted (4 in 61, 6.6 %) the rule would fire again.",
        s,
        [
            record(
                "external.api.unavailable",
                (f"{20:032x}", f"{20:016x}"),
                0.1,
                0.05,
                {"server.address": "crm.example"},
            )
        ],
    )

    # --- count rules, windows and groups
    s = Spans()
    r = s.resource()
    for i in range(4):
        s.span(r, "login", T0 + i, login("203.0.113.7"))
    s.span(r, "login", T0 + 301, login("203.0.113.7"))
    for i in range(3):
        s.span(r, "login", T0 + 302 + i, login("203.0.113.7"))
    ids = s.span(r, "login", T0 + 320, login("203.0.113.7"))
    vector(
        "count_window_slides_out",
        "Four failed logins within 3 s and a fifth at 301 s: the four have slid out of the 5-minute window "
        "(60 buckets of 5 s), the count is 1 and nothing fires; with four more by 320 s the window holds "
        "five and security.login.bruteforce fires once.",
        s,
        [record("security.login.bruteforce", ids, 5, 5, {"client.address": "203.0.113.7"})],
    )
    s = Spans()
    r = s.resource()
    for i in range(4):
        s.span(r, "login", T0 + i, login("198.51.100.1"))
        s.span(r, "login", T0 + i + 0.5, login("198.51.100.2"))
    ids1 = s.span(r, "login", T0 + 10, login("198.51.100.1"))
    for i in range(5):
        s.span(r, "login", T0 + 11 + i, login("198.51.100.1"))
    ids2 = s.span(r, "login", T0 + 20, login("198.51.100.2"))
    vector(
        "count_groups_and_once_per_window",
        "Two addresses fail four times each, interleaved: neither fires (groups are counted apart). The "
        "fifth failure of each fires its own record; five more failures of the first within the window do "
        "not fire again (once per window and group).",
        s,
        [
            record("security.login.bruteforce", ids1, 5, 5, {"client.address": "198.51.100.1"}),
            record("security.login.bruteforce", ids2, 5, 5, {"client.address": "198.51.100.2"}),
        ],
    )
    s = Spans()
    r = s.resource()
    for i in range(5):
        first = s.span(r, "login", T0 + i, login("198.51.100.9"))
    for i in range(5):
        again = s.span(r, "login", T0 + 301 + i, login("198.51.100.9"))
    vector(
        "count_fires_again_next_window",
        "Five failures fire the brute force; five more, after its 5-minute suppression has ended, fire it "
        "a second time.",
        s,
        [
            record("security.login.bruteforce", first, 5, 5, {"client.address": "198.51.100.9"}),
            record("security.login.bruteforce", again, 5, 5, {"client.address": "198.51.100.9"}),
        ],
    )
    s = Spans()
    r = s.resource()
    ids = s.span(r, "access_denied", T0, denied("u-7"))
    s.span(r, "access_denied", T0 + 60, denied("u-8"))
    s.span(r, "access_denied", T0 + 120, denied("u-7"))
    third = s.span(r, "access_denied", T0 + 500, denied("u-7"))
    viol = [record("security.access.violation", ids, 1, 0, {"user.id": "u-7"})]
    viol.append(record("security.access.violation", (f"{2:032x}", f"{2:016x}"), 1, 0, {"user.id": "u-8"}))
    viol.append(record("security.access.violation", (f"{3:032x}", f"{3:016x}"), 1, 0, {"user.id": "u-7"}))
    viol.append(record("security.access.violation", third, 1, 0, {"user.id": "u-7"}))
    viol.append(record("security.access.unusual", third, 3, 3, {"user.id": "u-7"}))
    vector(
        "count_access_unusual",
        "Every denied access fires security.access.violation (event); the third denial of one user within "
        "10 minutes also fires security.access.unusual (count), another user's denial not counted with them.",
        s,
        viol,
    )

    # --- security events
    s = Spans()
    r = s.resource()
    ids = s.span(r, "access_denied", T0, {**denied("u-1"), "b2b.tenant.id": "acme"})
    vector(
        "event_access_violation",
        "A denied access fires security.access.violation with its user, and the record names the span's "
        "tenant.",
        s,
        [record("security.access.violation", ids, 1, 0, {"user.id": "u-1"}, {"b2b.tenant.id": "acme"})],
    )
    finding = {
        "b2b.security.action": "sensitive_data",
        "b2b.scrub.field": "db.query.text",
        "b2b.scrub.pattern": "card",
    }
    other = {**finding, "b2b.scrub.pattern": "jwt"}
    s = Spans()
    r = s.resource()
    first = s.span(r, "sensitive_data", T0, finding)
    s.span(r, "sensitive_data", T0 + 10, finding)
    jwt = s.span(r, "sensitive_data", T0 + 20, other)
    s.span(r, "sensitive_data", T0 + 200, finding)
    later = s.span(r, "sensitive_data", T0 + 301, finding)
    group = {"b2b.scrub.field": "db.query.text", "b2b.scrub.pattern": "card"}
    vector(
        "count_sensitive_data",
        "Findings of sensitive data fire security.sensitive_data once per 5 minutes per b2b.scrub.field and "
        "b2b.scrub.pattern: the first card finding fires (1 in the window), the second does not, a jwt "
        "finding in the same field fires its own; after the 5 minutes a card finding fires again with the "
        "findings still in the window (the ones at 10 s, 200 s and 301 s: 3).",
        s,
        [
            record("security.sensitive_data", first, 1, 1, group),
            record("security.sensitive_data", jwt, 1, 1, {**group, "b2b.scrub.pattern": "jwt"}),
            record("security.sensitive_data", later, 3, 1, group),
        ],
    )

    # --- the connector's skip of spans a b2b_otel process judged already
    s = Spans()
    judged = s.resource(service="billing", **{"b2b.derived": True})
    plain = s.resource(service="legacy")
    s.span(judged, "invoke_agent planner", T0 + 1, AGENT, duration_s=4)
    s.span(judged, "access_denied", T0 + 2, denied("u-3"))
    for i in range(4):
        s.span(judged, "login", T0 + 3 + i, login("203.0.113.50"))
    ids = s.span(plain, "invoke_agent planner", T0 + 10, AGENT, duration_s=4)
    last = s.span(plain, "login", T0 + 11, login("203.0.113.50"))
    vector(
        "derived_resource_skip",
        "Spans whose resource says b2b.derived=true were judged by their own process: per-span rules leave "
        "them (no agent.execution.slow, no security.access.violation), but window rules count them with "
        "everyone's, so the fifth failed login, from another service, fires the brute force; the same "
        "slow agent from a service without b2b.derived fires agent.execution.slow.",
        s,
        [
            record("agent.execution.slow", ids, 4, 3, {"gen_ai.agent.name": "planner"}),
            record("security.login.bruteforce", last, 5, 5, {"client.address": "203.0.113.50"}),
        ],
    )

    # --- eviction at the group cap
    s = Spans()
    r = s.resource()
    for i in range(4):
        s.span(r, "login", T0 + i, login("198.51.100.77"))
    for i in range(3):
        s.span(r, "login", T0 + 10 + i, login(f"192.0.2.{i}"))
    ids = s.span(r, "login", T0 + 20, login("198.51.100.77"))
    vector(
        "count_eviction_at_cap",
        "With 2 groups per window rule, an attacker's 4 failures then 3 single failures from other "
        "addresses: the singles evict each other (least suspicious first), never the attacker's group, "
        "whose fifth failure fires the brute force.",
        s,
        [record("security.login.bruteforce", ids, 5, 5, {"client.address": "198.51.100.77"})],
        max_groups=2,
    )

    # --- gauges on sampled values
    def sample(source: str, at: float, v: float, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"source": source, "time_unix_nano": str(int(at * 1e9)), "value": v, "attributes": attrs}

    agent_attrs = {"gen_ai.agent.name": "planner"}
    vector(
        "gauge_agent_queue_depth",
        "agent.queue.depth fires when the queue depth enters the breaching state (> 10), not again while it "
        "stays there, and again after it left it; another agent is a group of its own.",
        None,
        [
            record("agent.queue.depth", NO_TRACE, 12, 10, agent_attrs),
            record("agent.queue.depth", NO_TRACE, 30, 10, {"gen_ai.agent.name": "scheduler"}),
            record("agent.queue.depth", NO_TRACE, 11, 10, agent_attrs),
        ],
        gauges=[
            sample("b2b.agent.queue.depth", T0, 10, agent_attrs),
            sample("b2b.agent.queue.depth", T0 + 10, 12, agent_attrs),
            sample("b2b.agent.queue.depth", T0 + 20, 15, agent_attrs),
            sample("b2b.agent.queue.depth", T0 + 25, 30, {"gen_ai.agent.name": "scheduler"}),
            sample("b2b.agent.queue.depth", T0 + 30, 4, agent_attrs),
            sample("b2b.agent.queue.depth", T0 + 40, 11, agent_attrs),
        ],
    )
    pool = {"db.client.connection.pool.name": "orders"}
    vector(
        "gauge_db_pool_exhaustion",
        "db.pool.exhaustion (computed pool_utilisation) fires above 90 % of the pool in use: 0.9 is not "
        "above, 0.95 is.",
        None,
        [record("db.pool.exhaustion", NO_TRACE, 0.95, 0.9, pool)],
        gauges=[
            sample("pool_utilisation", T0, 0.9, pool),
            sample("pool_utilisation", T0 + 10, 0.95, pool),
        ],
    )
    openai_tokens = {"gen_ai.provider.name": "openai", "b2b.llm.quota.kind": "tokens"}
    openai_requests = {"gen_ai.provider.name": "openai", "b2b.llm.quota.kind": "requests"}
    anthropic_tokens = {"gen_ai.provider.name": "anthropic", "b2b.llm.quota.kind": "tokens"}
    vector(
        "gauge_external_llm_quota",
        "external.llm.quota fires when a provider's quota utilisation enters > 80 %, per provider and "
        "quota kind: openai tokens at 0.85 (not again at 0.9), not openai requests at 0.5, "
        "anthropic tokens at 0.81.",
        None,
        [
            record("external.llm.quota", NO_TRACE, 0.85, 0.8, openai_tokens),
            record("external.llm.quota", NO_TRACE, 0.81, 0.8, anthropic_tokens),
        ],
        gauges=[
            sample("b2b.llm.quota.utilization", T0, 0.85, openai_tokens),
            sample("b2b.llm.quota.utilization", T0 + 1, 0.5, openai_requests),
            sample("b2b.llm.quota.utilization", T0 + 2, 0.9, openai_tokens),
            sample("b2b.llm.quota.utilization", T0 + 3, 0.81, anthropic_tokens),
        ],
    )


def main() -> None:
    build()
    for name, v in VECTORS.items():
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(v, indent=2) + "\n")
        print(f"wrote {path.relative_to(OUT.parent.parent)}")


if __name__ == "__main__":
    main()

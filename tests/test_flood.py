"""A flood of spoofed client addresses neither grows memory nor hides the real attacker.

The brute-force rule groups failed logins per ``client.address`` and tracks at most
``B2B_OTEL_RULES_MAX_GROUPS`` addresses. An attacker who floods distinct spoofed addresses used to
push the real address out before its fifth failure. Now the least suspicious groups go first, an
evicted group's count is remembered approximately, and the flood is an event of its own
(``security.rules.group_flood``). The big case runs in a subprocess, so that its peak RSS is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from b2b_otel import semconv as sc
from b2b_otel.rules import load_rules
from b2b_otel.rules.engine import Engine, SpanFacts
from tests.support.deterministic import FakeClock

ATTACKER = "198.51.100.7"

# Run in a fresh interpreter: one million spoofed failed logins, the attacker's five failures spread
# through them, with the default rules and group cap, over 200 s of a fake clock (inside the 5 min
# window). Prints the firings and the peak RSS growth as JSON.
FLOOD = textwrap.dedent(
    """
    import json, resource, sys
    from b2b_otel import semconv as sc
    from b2b_otel.rules import load_rules
    from b2b_otel.rules.engine import DEFAULT_MAX_GROUPS, Engine, SpanFacts

    spoofed, attacker = int(sys.argv[1]), sys.argv[2]
    now = [1_764_400_000.0]
    engine = Engine(load_rules(None, {}), lambda: now[0], max_groups=DEFAULT_MAX_GROUPS)

    def login(address, n):
        return SpanFacts("login", "internal", "unset", 0.0, {
            sc.B2B_SECURITY_ACTION: sc.B2bSecurityActionValues.LOGIN,
            sc.EVENT_OUTCOME: sc.EventOutcomeValues.FAILURE,
            sc.CLIENT_ADDRESS: address,
            sc.USER_ID: "admin",
        }, trace_id=n + 1, span_id=n + 1)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    attacks = {spoofed * k // 5 + spoofed // 10 for k in range(5)}
    firings = []
    for n in range(spoofed):
        now[0] += 200.0 / spoofed
        if n in attacks:
            firings += engine.judge_span(login(attacker, n))
        firings += engine.judge_span(login(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", n))
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({
        "firings": [
            {"rule": f.rule.id, "group": {k: str(v) for k, v in f.group.items()}, "observed": f.observed}
            for f in firings
        ],
        "tracked_groups": engine.tracked_groups(),
        "evicted": engine.evicted,
        "rss_growth_mib": growth_kib / 1024,
    }))
    """
)


def run_flood(spoofed: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", FLOOD, str(spoofed), ATTACKER],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def million() -> dict[str, Any]:
    return run_flood(1_000_000)


def test_the_attacker_hidden_in_a_million_spoofed_addresses_is_caught(million: dict[str, Any]) -> None:
    brute = [f for f in million["firings"] if f["rule"] == sc.RULE_SECURITY_LOGIN_BRUTEFORCE]
    assert brute == [
        {"rule": sc.RULE_SECURITY_LOGIN_BRUTEFORCE, "group": {sc.CLIENT_ADDRESS: ATTACKER}, "observed": 5.0}
    ]


def test_the_flood_keeps_the_groups_bounded_and_memory_flat(million: dict[str, Any]) -> None:
    # 10,000 addresses of the brute-force rule, one group of the flood rule per evicting rule.
    assert million["tracked_groups"] <= 10_000 + 2
    assert million["evicted"] >= 1_000_000 - 10_000
    # Unbounded, a million windows would take about a gigabyte.
    assert million["rss_growth_mib"] <= 64, million["rss_growth_mib"]


def test_the_flood_itself_is_a_security_event_once_per_window(million: dict[str, Any]) -> None:
    floods = [f for f in million["firings"] if f["rule"] == sc.RULE_SECURITY_RULES_GROUP_FLOOD]
    assert floods == [
        {
            "rule": sc.RULE_SECURITY_RULES_GROUP_FLOOD,
            "group": {sc.B2B_FLOOD_RULE_ID: sc.RULE_SECURITY_LOGIN_BRUTEFORCE},
            "observed": 100.0,
        }
    ]
    info = sc.RULES[sc.RULE_SECURITY_RULES_GROUP_FLOOD]
    assert info.event_name == sc.EVENT_B2B_SECURITY_EVENT and info.security is not None


# --- the eviction order, small enough to follow by hand ---


def failed_login(address: str) -> SpanFacts:
    return SpanFacts(
        "login",
        "internal",
        "unset",
        0.0,
        {
            sc.B2B_SECURITY_ACTION: sc.B2bSecurityActionValues.LOGIN,
            sc.EVENT_OUTCOME: sc.EventOutcomeValues.FAILURE,
            sc.CLIENT_ADDRESS: address,
        },
    )


def addresses(engine: Engine) -> set[str]:
    groups = engine._states[sc.RULE_SECURITY_LOGIN_BRUTEFORCE].groups
    return {key[0] for key in groups.windows}


def test_the_group_with_the_fewest_failures_is_evicted_first() -> None:
    clock = FakeClock()
    engine = Engine(load_rules(None, {}), clock, max_groups=3)
    for address in ("a", "a", "b", "b", "c"):
        engine.judge_span(failed_login(address))
        clock.now += 1
    engine.judge_span(failed_login("d"))  # c has one failure, a and b two: c goes
    assert addresses(engine) == {"a", "b", "d"}


def test_among_equals_the_least_recently_seen_is_evicted_first() -> None:
    clock = FakeClock()
    engine = Engine(load_rules(None, {}), clock, max_groups=3)
    for address in ("a", "b", "c", "a"):
        engine.judge_span(failed_login(address))
        clock.now += 1
    engine.judge_span(failed_login("b"))  # now a and b have two, c one
    engine.judge_span(failed_login("d"))
    engine.judge_span(failed_login("e"))  # d (one failure, newer than nothing else) goes before a, b
    assert addresses(engine) == {"a", "b", "e"}


def test_a_group_whose_window_ran_out_is_evicted_before_any_other() -> None:
    clock = FakeClock()
    engine = Engine(load_rules(None, {}), clock, max_groups=2)
    for _ in range(4):
        engine.judge_span(failed_login("old"))
    clock.now += 301  # old's four failures are out of the 5 min window
    engine.judge_span(failed_login("new"))
    engine.judge_span(failed_login("newer"))
    assert addresses(engine) == {"new", "newer"}


def test_an_evicted_group_seen_again_starts_from_what_it_had_counted() -> None:
    clock = FakeClock()
    engine = Engine(load_rules(None, {}), clock, max_groups=2)
    fired: list[str] = []
    engine.judge_span(failed_login("attacker"))
    for spoof in range(4):
        for index in range(3):  # the first round evicts the attacker; then it has more than a spoof
            engine.judge_span(failed_login(f"spoof-{spoof}-{index}"))
        fired += [f.group[sc.CLIENT_ADDRESS] for f in engine.judge_span(failed_login("attacker"))]
    assert fired == ["attacker"]


def test_addresses_under_the_threshold_never_fire_however_often_they_are_evicted() -> None:
    clock = FakeClock()
    engine = Engine(load_rules(None, {}), clock, max_groups=2)
    firings = [
        f.rule.id for index in range(20_000) for f in engine.judge_span(failed_login(f"spoof-{index % 5000}"))
    ]
    # Each address fails four times, spread out, and is evicted every time; the memory of evicted
    # groups is far too small for 5000 addresses (collisions everywhere), and still none fires: a
    # group needs two failures of its own on top of what it is given back.
    assert sc.RULE_SECURITY_LOGIN_BRUTEFORCE not in firings
    assert firings.count(sc.RULE_SECURITY_RULES_GROUP_FLOOD) == 1

"""Rate-limit headers -> ``b2b.llm.quota.utilization`` -> the default rule ``external.llm.quota``.

The rule (gauge, > 0.8, info, operations, per provider and quota kind) fires when a quota enters the
breaching state: once just above 80 %, never at or below it, and again only after the quota recovered.
Driven here through the real ``openai`` and ``anthropic`` clients, a local server whose rate-limit
headers the test sets, and a real OTLP receiver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import b2b_otel
from b2b_otel.llm.quota import utilisation
from tests.support.llm_servers import LLMServer, Quota
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

RULE = "external.llm.quota"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "150"}, {"tokens": 0.85}),
        ({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "500"}, {"requests": 0.0}),
        (
            {
                "anthropic-ratelimit-tokens-limit": "1000",
                "anthropic-ratelimit-tokens-remaining": "900",
                "anthropic-ratelimit-output-tokens-limit": "100",
                "anthropic-ratelimit-output-tokens-remaining": "5",
                "anthropic-ratelimit-input-tokens-limit": "1000",
                "anthropic-ratelimit-input-tokens-remaining": "500",
                "anthropic-ratelimit-requests-limit": "50",
                "anthropic-ratelimit-requests-remaining": "10",
            },
            {"tokens": 0.95, "requests": 0.8},  # the most used token limit counts
        ),
        ({"x-ratelimit-limit-tokens": "1000"}, {}),  # half a pair
        ({"x-ratelimit-limit-tokens": "0", "x-ratelimit-remaining-tokens": "0"}, {}),  # no limit to share
        ({"x-ratelimit-limit-tokens": "lots", "x-ratelimit-remaining-tokens": "1"}, {}),
        ({"x-ratelimit-limit-tokens": "nan", "x-ratelimit-remaining-tokens": "1"}, {}),
        ({"x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "250"}, {"tokens": 0.0}),
        ({"x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "-5"}, {}),
        ({"x-ratelimit-limit-tokens": " 100 ", "x-ratelimit-remaining-tokens": "0"}, {"tokens": 1.0}),
        ({}, {}),
    ],
)
def test_utilisation_is_the_used_share_of_each_limit(
    headers: dict[str, str], expected: dict[str, float]
) -> None:
    assert utilisation(headers) == pytest.approx(expected)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    llm = LLMServer(input_tokens=1, output_tokens=1).start()
    yield llm
    llm.stop()


@pytest.fixture
def receiver(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[OTLPReceiver]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "B2B_OTEL_")):
            monkeypatch.delenv(name)
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    reset_otel_globals()
    b2b_otel.instrument(service_name="llm-quota", instrumentations="openai,anthropic", log_dir=str(tmp_path))
    yield otlp_receiver
    reset_otel_globals()


def _at(quota: Quota, used: float) -> None:
    """Make the next answer report ``used`` of the token quota (the call itself spends 2 tokens)."""
    quota.limit_tokens = 10_000
    quota.remaining_tokens = round(10_000 * (1 - used)) + 2


def _breaches(receiver: OTLPReceiver) -> list[dict[str, Any]]:
    return [r for r in receiver.logs("b2b.sla.breach") if r["attributes"]["b2b.rule.id"] == RULE]


def test_the_quota_rule_fires_once_just_above_80_percent_and_never_at_or_below(
    server: LLMServer, receiver: OTLPReceiver
) -> None:
    client = openai.OpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)
    for used in (0.5, 0.79, 0.8, 0.8, 0.801, 0.85, 0.99, 0.81):
        _at(server.openai_quota, used)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert b2b_otel.shutdown()
    (breach,) = _breaches(receiver)
    attributes = breach["attributes"]
    assert attributes["b2b.observed.value"] == pytest.approx(0.801)
    assert attributes["b2b.threshold.value"] == 0.8
    assert attributes["b2b.alert.severity"] == "info" and attributes["b2b.alert.tier"] == "operations"
    assert attributes["gen_ai.provider.name"] == "openai" and attributes["b2b.llm.quota.kind"] == "tokens"
    assert breach["severity_number"] == 9


def test_a_quota_that_stays_at_80_percent_or_below_never_fires(
    server: LLMServer, receiver: OTLPReceiver
) -> None:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="ak-test", max_retries=0)
    for used in (0.1, 0.6, 0.79, 0.8, 0.8, 0.75, 0.8):
        _at(server.anthropic_quota, used)
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert b2b_otel.shutdown()
    assert _breaches(receiver) == []
    gauge = receiver.metrics("b2b.llm.quota.utilization")
    assert {
        (m["attributes"]["gen_ai.provider.name"], m["attributes"]["b2b.llm.quota.kind"]) for m in gauge
    } == {
        ("anthropic", "tokens"),
        ("anthropic", "requests"),
    }


def test_the_rule_fires_again_after_the_quota_recovered_and_per_provider(
    server: LLMServer, receiver: OTLPReceiver
) -> None:
    gpt = openai.OpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(base_url=server.base_url, api_key="ak-test", max_retries=0)
    for used in (0.9, 0.95, 0.4, 0.82):
        _at(server.openai_quota, used)
        gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    _at(server.anthropic_quota, 0.97)
    claude.messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert b2b_otel.shutdown()
    fired = [
        (b["attributes"]["gen_ai.provider.name"], round(b["attributes"]["b2b.observed.value"], 3))
        for b in _breaches(receiver)
    ]
    assert sorted(fired) == [("anthropic", 0.97), ("openai", 0.82), ("openai", 0.9)]


def test_the_firing_names_the_tenant_whose_call_crossed_the_threshold_and_stays_grouped_per_provider(
    server: LLMServer, receiver: OTLPReceiver
) -> None:
    client = openai.OpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)
    for tenant, used in (("tenant-a", 0.5), ("tenant-b", 0.79), ("tenant-c", 0.86), ("tenant-a", 0.9)):
        _at(server.openai_quota, used)
        with b2b_otel.context(tenant_id=tenant):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    _at(server.openai_quota, 0.95)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])  # no tenant
    assert b2b_otel.shutdown()
    # One group per provider and kind: tenant-a's 0.9 (and the tenant-less 0.95) is the same breach.
    (breach,) = _breaches(receiver)
    attributes = breach["attributes"]
    assert attributes["b2b.tenant.id"] == "tenant-c"
    assert attributes["b2b.observed.value"] == pytest.approx(0.86)
    assert attributes["gen_ai.provider.name"] == "openai" and attributes["b2b.llm.quota.kind"] == "tokens"
    # The gauge is the provider's quota, whoever spent it: its series carry no tenant.
    gauge = receiver.metrics("b2b.llm.quota.utilization")
    assert gauge and all("b2b.tenant.id" not in m["attributes"] for m in gauge)
    tokens = [m for m in gauge if m["attributes"]["b2b.llm.quota.kind"] == "tokens"]
    assert [m["value"] for m in tokens] == [pytest.approx(0.95)]


def test_a_tenant_below_the_threshold_gets_no_record(server: LLMServer, receiver: OTLPReceiver) -> None:
    client = openai.OpenAI(base_url=server.openai_url, api_key="sk-test", max_retries=0)
    for used in (0.3, 0.7, 0.8):
        _at(server.openai_quota, used)
        with b2b_otel.context(tenant_id="tenant-quiet"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert b2b_otel.shutdown()
    assert _breaches(receiver) == []

"""Start-up reads the built-in rules and price table through fast paths (no pydantic models); these
tests hold each fast path to the validated path, so that a change to a built-in YAML file that a fast
path would misread fails here, and check that start-up really takes the fast paths."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from b2b_otel.llm.prices import BUILTIN_SOURCE as PRICES_SOURCE
from b2b_otel.llm.prices import Price, builtin_prices, builtin_text, load_prices, parse_prices
from b2b_otel.rules import load_rules
from b2b_otel.rules.loader import BUILTIN_SOURCE as RULES_SOURCE
from b2b_otel.rules.loader import builtin_text as builtin_rules_text
from b2b_otel.rules.loader import validated_rules
from b2b_otel.rules.schema import Condition, Rule, Source


def _fields(value: object) -> object:
    """A record as nested plain data with the type of every leaf, so 3 and 3.0 differ."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _fields(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_fields(item) for item in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "750ms"},
        {"B2B_OTEL_RULE_SECURITY_LOGIN_BRUTEFORCE_THRESHOLD": "20"},
    ],
)
def test_the_builtin_rules_fast_path_gives_what_the_validated_path_gives(environ: dict[str, str]) -> None:
    fast = load_rules(None, environ)
    validated = validated_rules(builtin_rules_text(), RULES_SOURCE, environ)
    assert fast.source == validated.source == RULES_SOURCE
    assert len(fast) == len(validated) > 0
    for mine, theirs in zip(fast.rules, validated.rules, strict=True):
        assert type(mine) is Rule and type(theirs) is Rule
        assert _fields(mine) == _fields(theirs), mine.id
        assert mine == theirs
        for condition in (*mine.match, *(mine.failure or ())):
            assert type(condition) is Condition
        assert mine.source is None or type(mine.source) is Source


def test_an_override_the_fast_path_cannot_take_is_reported_by_the_validated_path_at_its_line() -> None:
    from b2b_otel import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_rules(None, {"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "soon"})
    (problem,) = caught.value.problems
    assert problem.variable == "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD"
    assert f"{RULES_SOURCE}:" in problem.message


def test_the_builtin_price_table_fast_path_gives_what_the_validated_path_gives() -> None:
    validated = parse_prices(builtin_text(), PRICES_SOURCE)
    taken, prices = builtin_prices()
    assert taken == validated.taken
    assert prices.keys() == validated.prices.keys()
    for name, price in prices.items():
        assert _fields(price) == _fields(validated.prices[name]), name
    lazy = load_prices(None)
    assert lazy.source == PRICES_SOURCE
    assert lazy.taken == validated.taken and lazy.prices == validated.prices
    assert all(type(p) is Price for p in lazy.prices.values())


def test_start_up_takes_the_fast_paths_and_a_price_is_still_there_at_the_first_call() -> None:
    code = """
import json, sys
from b2b_otel.llm.prices import load_prices
from b2b_otel.rules import load_rules
rules = load_rules(None, {})
table = load_prices(None)
before = sorted(m for m in ("b2b_otel.rules.models", "b2b_otel.llm.price_file") if m in sys.modules)
cost = table.cost("gpt-4o", 1_000_000, 0)
after = sorted(m for m in ("b2b_otel.rules.models", "b2b_otel.llm.price_file") if m in sys.modules)
print(json.dumps({"before": before, "rules": len(rules), "cost": cost, "after": after}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seen = json.loads(out)
    assert seen["before"] == []
    assert seen["rules"] > 0
    assert seen["cost"] == pytest.approx(2.50)
    assert seen["after"] == []  # the built-in table needs no models at its first use either


def test_a_broken_builtin_price_table_never_raises_into_the_application() -> None:
    from b2b_otel.llm.prices import PriceTable

    def broken() -> tuple[object, dict[str, Price]]:
        raise ValueError("unreadable")

    table = PriceTable(PRICES_SOURCE, load=broken)  # type: ignore[arg-type]
    assert table.cost("gpt-4o", 10, 10) is None
    assert table.prices == {}

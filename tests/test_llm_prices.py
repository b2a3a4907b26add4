"""The LLM price table: the built-in prices, model-name matching, and every bad input named at its line."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

import b2b_otel
from b2b_otel.llm.prices import BUILTIN_SOURCE, PRICES_VARIABLE, load_prices, parse_prices
from b2b_otel.setup.settings import resolve

# The models the built-in table must price (issue 10), and their list prices (USD / 1M tokens).
EXPECTED = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-haiku": (0.80, 4.00),
}

PRICE = "accepted: a price in USD per million tokens"
GOOD = """\
version: 1
prices_taken: 2026-01-15
models:
  - model: house-model
    aliases: [house-model-large]
    input: 1
    output: 2.5
    cached_input: 0.5
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(b2b_otel.ConfigError) as caught:
        parse_prices(text, "prices.yaml")
    return [str(problem) for problem in caught.value.problems]


# --- the built-in table ---------------------------------------------------------------------------


def test_builtin_table_prices_the_widely_used_models_and_says_when_prices_were_taken() -> None:
    table = load_prices(None)
    assert table.source == BUILTIN_SOURCE
    assert table.taken == datetime.date(2026, 3, 21)
    for model, (input_price, output_price) in EXPECTED.items():
        price = table.lookup(model)
        assert price is not None, model
        assert (price.input, price.output) == (input_price, output_price), model


def test_cost_is_tokens_times_price_per_million() -> None:
    table = load_prices(None)
    assert table.cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.50)
    assert table.cost("gpt-4o", 2_000, 500) == pytest.approx((2_000 * 2.50 + 500 * 10.00) / 1e6)


def test_cached_input_tokens_are_priced_at_the_cached_price_and_are_part_of_the_input() -> None:
    table = load_prices(None)
    # 1,000 input tokens of which 400 from the cache: 600 at 3.00 + 400 at 0.30, 100 out at 15.00.
    assert table.cost("claude-sonnet-4-5", 1_000, 100, 400) == pytest.approx(
        (600 * 3.00 + 400 * 0.30 + 100 * 15.00) / 1e6
    )
    # More cached than input (an inconsistent report) never gives a negative fresh count.
    assert table.cost("gpt-4o", 100, 0, 500) == pytest.approx(100 * 1.25 / 1e6)


@pytest.mark.parametrize(
    ("answered", "priced_as"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("o3-2025-04-16", "o3"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("GPT-4o", "gpt-4o"),
    ],
)
def test_dated_snapshots_and_latest_aliases_take_the_price_of_their_model(
    answered: str, priced_as: str
) -> None:
    table = load_prices(None)
    assert table.lookup(answered) == table.lookup(priced_as) is not None


@pytest.mark.parametrize(
    "model",
    ["gpt-4o-audio-preview", "gpt-4o-realtime", "gpt-5", "claude-sonnet", "my-finetune", "", "4o"],
)
def test_a_model_the_table_does_not_know_has_no_price_rather_than_a_neighbours(model: str) -> None:
    table = load_prices(None)
    assert table.lookup(model) is None
    assert table.cost(model, 1000, 1000) is None


# --- a replacement table --------------------------------------------------------------------------


def test_the_prices_file_replaces_the_builtin_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(GOOD, encoding="utf-8")
    table = load_prices(str(path))
    assert table.source == str(path) and table.taken == datetime.date(2026, 1, 15)
    assert table.cost("house-model-large", 1_000_000, 1_000_000) == pytest.approx(3.5)
    assert table.lookup("gpt-4o") is None  # replaced, not merged


def test_instrument_refuses_a_bad_prices_file_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(GOOD.replace("input: 1", "input: free"), encoding="utf-8")
    with pytest.raises(b2b_otel.ConfigError) as caught:
        b2b_otel.instrument(
            llm_prices_file=str(path),
            traces_exporter="none",
            metrics_exporter="none",
            logs_exporter="none",
            log_dir="none",
            instrumentations="none",
        )
    assert f"{path}:6: models[0].input=free: accepted: a price in USD per million tokens" in str(caught.value)
    assert b2b_otel.setup.install.current() is None  # nothing half-installed


def test_an_unreadable_prices_file_names_the_variable(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(b2b_otel.ConfigError) as caught:
        resolve({}, environ={PRICES_VARIABLE: missing})
    assert f"{PRICES_VARIABLE}='{missing}': file not found or not readable" in str(caught.value)
    with pytest.raises(b2b_otel.ConfigError) as direct:
        load_prices(missing)
    expected = f"{PRICES_VARIABLE}={missing}: cannot read the prices file (FileNotFoundError)"
    assert str(direct.value.problems[0]) == expected


# --- the bad-input matrix: each problem at its line, all of them in one run --------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "prices.yaml:1: the prices file is a mapping of version, prices_taken, models"),
        ("- a\n", "prices.yaml:1: the prices file is a mapping of version, prices_taken, models"),
        ("models: [\n", "prices.yaml:2: not valid YAML"),
        (GOOD.replace("version: 1", "version: 2"), "prices.yaml:1: version=2: accepted: 1"),
        (GOOD.replace("version: 1\n", ""), "prices.yaml:1: version: required; accepted: 1"),
        (
            GOOD.replace("2026-01-15", "last tuesday"),
            "prices.yaml:2: prices_taken=last tuesday: accepted: the date the prices were taken, YYYY-MM-DD",
        ),
        (
            GOOD.replace("2026-01-15", "2026-13-40"),
            "prices.yaml:2: prices_taken=2026-13-40: accepted: the date the prices were taken",
        ),
        (
            GOOD.replace("models:\n", "currency: EUR\nmodels:\n"),
            "prices.yaml:3: currency=EUR: unknown field of the prices file; "
            "accepted: version, prices_taken, models",
        ),
        (
            "version: 1\nprices_taken: 2026-01-15\nmodels: []\n",
            "prices.yaml:3: models=[]: accepted: a non-empty list of models",
        ),
        (
            GOOD.replace("  - model: house-model\n", "  - 5\n  - model: house-model\n"),
            "prices.yaml:4: models[0]=5: a model is a mapping of model, aliases, input, output, cached_input",
        ),
        (GOOD.replace("    input: 1\n", ""), "prices.yaml:4: models[0].input: required; accepted: a price"),
        (GOOD.replace("input: 1", "input: -1"), "prices.yaml:6: models[0].input=-1: accepted: a price"),
        (GOOD.replace("output: 2.5", "output: .nan"), f"prices.yaml:7: models[0].output=.nan: {PRICE}"),
        (GOOD.replace("output: 2.5", "output: .inf"), f"prices.yaml:7: models[0].output=.inf: {PRICE}"),
        (GOOD.replace("output: 2.5", "output: '2.5'"), f"prices.yaml:7: models[0].output=2.5: {PRICE}"),
        (GOOD.replace("output: 2.5", "output: true"), f"prices.yaml:7: models[0].output=true: {PRICE}"),
        (
            GOOD.replace("cached_input: 0.5", "cached_input: []"),
            "prices.yaml:8: models[0].cached_input=[]: accepted: a price",
        ),
        (
            GOOD.replace("model: house-model\n", "model: ''\n"),
            'prices.yaml:4: models[0].model="": accepted: a model name',
        ),
        (
            GOOD.replace("[house-model-large]", "[house-model-large, 7]"),
            "prices.yaml:5: models[0].aliases[1]=7: accepted: a list of model names",
        ),
        (
            GOOD.replace("    cached_input: 0.5\n", "    cached_input: 0.5\n    colour: red\n"),
            "prices.yaml:9: models[0].colour=red: unknown field of a model; accepted: model, aliases",
        ),
        (
            GOOD.replace("    cached_input: 0.5\n", "    cached_input: 0.5\n    input: 3\n"),
            "prices.yaml:9: models[0].input: duplicate key; give each key once",
        ),
        (
            GOOD + "  - model: HOUSE-MODEL-LARGE\n    input: 1\n    output: 1\n",
            "prices.yaml:9: models[1].model=HOUSE-MODEL-LARGE: "
            "model name already priced at models[0].aliases[0]",
        ),
    ],
)
def test_bad_prices_file_is_refused_at_its_line_and_field(text: str, expected: str) -> None:
    problems = _problems(text)
    assert any(p.startswith(expected) for p in problems), problems
    assert not any("pydantic" in p or "Input should" in p for p in problems), problems


def test_every_problem_of_a_file_is_reported_in_one_run_in_line_order() -> None:
    text = "version: 3\nprices_taken: soon\nmodels:\n  - model: a\n    input: -2\n"
    text += "  - model: a\n    output: x\n"
    problems = _problems(text)
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    for expected in (
        "prices.yaml:1: version=3",
        "prices.yaml:2: prices_taken=soon",
        "prices.yaml:4: models[0].output: required",
        "prices.yaml:5: models[0].input=-2",
        "prices.yaml:6: models[1].model=a: model name already priced",
        "prices.yaml:7: models[1].output=x",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_a_yaml_alias_bomb_is_refused_without_expanding_it() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    problems = _problems("\n".join(lines) + "\nversion: 1\n")
    assert len(problems) == 1 and "expands to more than" in problems[0]


def test_config_check_validates_the_prices_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(GOOD.replace("output: 2.5", "output: -3"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    cli = [sys.executable, "-m", "b2b_otel.cli", "config", "check"]
    bad = subprocess.run(cli, env={**env, PRICES_VARIABLE: str(path)}, capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"{path}:7: models[0].output=-3: {PRICE}" in bad.stderr
    path.write_text(GOOD, encoding="utf-8")
    good = subprocess.run(cli, env={**env, PRICES_VARIABLE: str(path)}, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert f"llm prices: 2 model names, taken 2026-01-15 ({path})" in good.stdout


def test_the_example_in_docs_llm_md_is_a_valid_price_table() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "llm.md").read_text(encoding="utf-8")
    (example,) = [block for block in page.split("```yaml\n")[1:] if block.startswith("version: 1")]
    table = parse_prices(example.split("```")[0], "docs/llm.md")
    assert table.lookup("gpt-4o-azure-eu") == table.lookup("gpt-4o-2024-08-06") is not None

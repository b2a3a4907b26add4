"""Start-up reads the built-in rules and price table through fast paths (no pydantic models); these
tests hold each fast path to the validated path, so that a change to a built-in YAML file that a fast
path would misread fails here, and check that start-up really takes the fast paths."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

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


def test_start_up_takes_the_fast_paths_and_a_price_is_still_there_at_the_first_call(tmp_path: Path) -> None:
    code = f"""
import json, sys
import b2b_otel
from b2b_otel.llm.usage import LLMCallProcessor
telemetry = b2b_otel.instrument(
    service_name="fast-paths", otlp_endpoint="http://127.0.0.1:9", log_dir={str(tmp_path)!r}
)
heavy = ("pydantic", "b2b_otel.rules.models", "b2b_otel.llm.price_file")
before = sorted(m for m in heavy if m in sys.modules)
table = next(p for p in telemetry._span_processors if isinstance(p, LLMCallProcessor)).prices
cost = table.cost("gpt-4o", 1_000_000, 0)
after = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({{"before": before, "rules": len(telemetry.rules), "cost": cost, "after": after}}))
sys.stdout.flush()
telemetry.shutdown(0.1)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seen = json.loads(out.splitlines()[0])
    assert seen["before"] == []  # instrument() built no pydantic model and imported no pydantic
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


# --- settings: the fast path against pydantic --------------------------------------------------------

_SAMPLES: list[object] = [
    "true",
    "false",
    "TRUE",
    "1",
    "0",
    "yes",
    "off",
    "5",
    "5000",
    "0.5",
    "1.5",
    "10s",
    "500ms",
    "1m",
    "otlp",
    "console,otlp",
    "none",
    "grpc",
    "http/protobuf",
    "GRPC",
    "gzip",
    "a=b,c=d",
    "json",
    "text",
    "always_on",
    "parentbased_traceidratio",
    "tracecontext,baggage",
    "auto",
    "",
    " 5",
    "+5",
    "1e3",
    "nan",
    "inf",
    "-1",
    "05",
    "5.",
    "99999999999999999999",
    "http://localhost:4318",
    5,
    5.0,
    0,
    1,
    -3,
    0.25,
    True,
    False,
    None,
    ("a",),
    ("a", 1),
    ["a"],
    {"a": "b"},
    {"a": 1},
    2**40,
    object(),
]


def test_every_value_the_settings_fast_path_takes_is_what_pydantic_makes_of_it() -> None:
    from pydantic import ValidationError

    from b2b_otel.setup import settings as s

    model = s.settings_model()
    spec = s._spec()
    taken = 0
    for name, convert in spec.converters.items():
        samples = [*_SAMPLES, s._default(name)]
        for value in samples:
            try:
                fast = convert(value)
            except s._Uncertain:
                continue
            try:
                slow = getattr(model(**{name: value}), name)
            except ValidationError as exc:
                raise AssertionError(
                    f"{name}={value!r}: the fast path took {fast!r}, pydantic refused"
                ) from exc
            assert type(fast) is type(slow) and fast == slow, (name, value, fast, slow)
            taken += 1
    assert taken > 3 * len(spec.converters)  # the fast path takes the common forms, not nothing


def test_resolve_gives_the_same_settings_by_the_fast_path_and_by_pydantic() -> None:
    from b2b_otel.setup import settings as s

    environ = {
        "OTEL_SERVICE_NAME": "svc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-team=a%20b",
        "OTEL_BSP_MAX_QUEUE_SIZE": "4096",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.region=eu",
        "B2B_OTEL_LOG_DIR": "none",
        "B2B_OTEL_SHUTDOWN_TIMEOUT": "3s",
        "B2B_OTEL_CAPTURE_CONTENT": "yes",
    }
    fast = s.resolve({"service_version": "1.2"}, environ=environ)
    raw = {name: value for name, value in fast.__dict__.items() if name in fast.model_fields_set}
    assert s._fast_values(raw) is not None
    validated = s.Settings._made(
        s._model_values(
            s.settings_model()(
                **{row.field: environ[row.var.env] for row in s.table() if row.var.env in environ},
                service_version="1.2",
            )
        ),
        fast.model_fields_set,
    )
    assert fast == validated
    assert fast.model_fields_set == validated.model_fields_set
    assert fast.otlp_timeout == 2.5 and fast.bsp_max_queue_size == 4096 and fast.capture_content is True


def test_a_value_the_fast_path_is_unsure_of_is_judged_by_pydantic_with_the_same_messages() -> None:
    from b2b_otel import ConfigError
    from b2b_otel.setup.settings import resolve

    assert resolve(environ={"OTEL_BSP_MAX_QUEUE_SIZE": " 4096"}).bsp_max_queue_size == 4096
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"OTEL_BSP_MAX_QUEUE_SIZE": "many", "OTEL_EXPORTER_OTLP_TIMEOUT": "-1"})
    shown = sorted(str(p) for p in caught.value.problems)
    assert shown[0].startswith("OTEL_BSP_MAX_QUEUE_SIZE='many': wrong type; accepted: a positive integer")
    assert shown[1].startswith("OTEL_EXPORTER_OTLP_TIMEOUT='-1': ")


def test_the_builtin_rules_snapshot_is_made_from_the_yaml_as_it_is_now() -> None:
    # Start-up reads the built-in rules from default_rules.json when its hash is the YAML's; after an
    # edit of default_rules.yaml, run scripts/gen_builtin_rules.py (start-up reads the YAML till then).
    import yaml

    from b2b_otel.rules.loader import BUILTIN_SNAPSHOT_RESOURCE, builtin_snapshot_text

    text = builtin_rules_text()
    path = Path(__file__).resolve().parents[1] / "b2b_otel" / "rules" / BUILTIN_SNAPSHOT_RESOURCE
    assert path.read_text(encoding="utf-8") == builtin_snapshot_text(text), (
        "default_rules.json is stale: run .venv/bin/python scripts/gen_builtin_rules.py"
    )
    assert json.loads(path.read_text(encoding="utf-8"))["rules_file"] == yaml.safe_load(text)


def test_a_stale_snapshot_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from b2b_otel.rules import loader

    edited = builtin_rules_text().replace("id: agent.execution.slow", "id: agent.execution.sluggish")
    assert edited != builtin_rules_text()
    fast = loader._builtin_rules(edited, {})
    assert fast is not None and "agent.execution.sluggish" in fast.ids
    assert fast == validated_rules(edited, RULES_SOURCE, {})

"""The semantic-convention registry (docs/semconv) is current, consistent and true to its sources.

The registry is the one place where the names of the outside world are written; these tests keep
the generated module and document in step with it, hold every `otel` name to the installed
opentelemetry-semantic-conventions package, and hold the registry to the names SPEC.md promises.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import inspect
import pkgutil
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from enum import Enum
from functools import cache
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# CI lays shared/ beside the clone, so SPEC.md is a sibling of the repository, not inside it.
SPEC = Path(__file__).resolve().parents[2] / "shared" / "SPEC.md"
REGISTRY_DIR = REPO / "docs" / "semconv"


def _load_by_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The generator is a script, not a package module; the generated module is loaded by path so
# that these tests do not depend on the rest of b2b_otel importing cleanly.
gen = _load_by_path("_gen_semconv_under_test", REPO / "scripts" / "gen_semconv.py")


@pytest.fixture(scope="module")
def registry() -> Any:
    return gen.load_registry()


@pytest.fixture(scope="module")
def semconv() -> ModuleType:
    return _load_by_path("_b2b_semconv_under_test", REPO / "b2b_otel" / "semconv.py")


# --------------------------------------------------------------------------- generated files


def test_generated_files_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    status = gen.main(["--check"])
    out = capsys.readouterr()
    assert status == 0, f"run `python scripts/gen_semconv.py`:\n{out.out}{out.err}"


def test_check_mode_fails_with_a_diff_when_a_generated_file_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REGISTRY_DIR, tmp_path / "docs" / "semconv")
    assert gen.main(["--root", str(tmp_path)]) == 0
    assert gen.main(["--check", "--root", str(tmp_path)]) == 0
    module = tmp_path / "b2b_otel" / "semconv.py"
    module.write_text(module.read_text().replace('"gen_ai.agent.name"', '"gen_ai.agent"'))
    capsys.readouterr()

    assert gen.main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert '-GEN_AI_AGENT_NAME: Final = "gen_ai.agent"' in out
    assert '+GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"' in out


def test_generation_is_deterministic() -> None:
    assert gen.render() == gen.render()


def test_generated_module_imports_only_the_standard_library() -> None:
    tree = ast.parse((REPO / "b2b_otel" / "semconv.py").read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names)


def test_span_name_helpers_fill_the_registry_patterns(semconv: ModuleType) -> None:
    result = doctest.testmod(semconv, verbose=False)
    assert result.attempted > 0 and result.failed == 0
    assert semconv.memory_span_name("search_memory", "working") == "search_memory working"


def test_constants_follow_the_otel_python_naming(semconv: ModuleType, registry: Any) -> None:
    assert semconv.GEN_AI_OPERATION_NAME == "gen_ai.operation.name"
    assert semconv.B2B_MEMORY_TIER == "b2b.memory.tier"
    assert semconv.GenAiOperationNameValues.INVOKE_AGENT == "invoke_agent"
    assert semconv.METRIC_GEN_AI_INVOKE_AGENT_DURATION == "gen_ai.invoke_agent.duration"
    assert semconv.METRIC_GEN_AI_INVOKE_AGENT_DURATION_UNIT == "s"
    assert semconv.EVENT_B2B_SLA_BREACH == "b2b.sla.breach"
    assert semconv.RULE_AGENT_EXECUTION_SLOW == "agent.execution.slow"
    for attribute in registry.attributes.values():
        assert getattr(semconv, gen.const_name(attribute.id)) == attribute.id
    assert set(semconv.METRICS) == {m.name for m in registry.metrics}
    assert tuple(r.id for r in registry.rules) == semconv.RULE_IDS


def test_severity_fixes_the_log_severity_number_and_response_time(semconv: ModuleType) -> None:
    assert dict(semconv.SEVERITY_NUMBER) == {"critical": 21, "warning": 13, "info": 9}
    assert dict(semconv.RESPOND_WITHIN_S) == {"critical": 300, "warning": 3600, "info": 86400}


# --------------------------------------------------------------------------- registry shape


def _raw_groups() -> Iterator[dict[str, Any]]:
    for path in sorted(REGISTRY_DIR.glob("*.yaml")):
        yield from yaml.safe_load(path.read_text())["groups"]


def _repeated(values: list[Any]) -> list[Any]:
    return [value for value, count in Counter(values).items() if count > 1]


def test_no_id_is_defined_twice() -> None:
    groups = list(_raw_groups())
    attribute_ids = [a["id"] for g in groups if g["type"] == "attribute_group" for a in g["attributes"]]
    rule_ids = [r["id"] for g in groups if g["type"] == "rule_set" for r in g["rules"]]
    assert _repeated([g["id"] for g in groups]) == []
    assert _repeated(attribute_ids) == []
    assert _repeated([g["metric_name"] for g in groups if g["type"] == "metric"]) == []
    assert _repeated([g["name"] for g in groups if g["type"] == "event"]) == []
    assert _repeated(rule_ids) == []
    for group in groups:
        for attribute in group.get("attributes", []):
            if isinstance(attribute.get("type"), dict):
                members = attribute["type"]["members"]
                assert _repeated([m["id"] for m in members]) == [], attribute["id"]
                assert _repeated([m["value"] for m in members]) == [], attribute["id"]


def test_loader_rejects_a_duplicate_attribute(tmp_path: Path) -> None:
    shutil.copytree(REGISTRY_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "zz_duplicate.yaml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "id": "registry.duplicate",
                        "type": "attribute_group",
                        "brief": "A second definition of an existing key.",
                        "attributes": [
                            {
                                "id": "gen_ai.agent.name",
                                "type": "string",
                                "brief": "Again.",
                                "examples": ["x"],
                                "stability": "development",
                                "source": "otel",
                            }
                        ],
                    }
                ]
            }
        )
    )
    with pytest.raises(gen.RegistryError, match=re.escape("duplicate attribute id gen_ai.agent.name")):
        gen.load_registry(tmp_path)


def test_histogram_buckets_are_strictly_increasing(registry: Any, semconv: ModuleType) -> None:
    histograms = [m for m in registry.metrics if m.instrument == "histogram"]
    assert histograms
    for metric in histograms:
        buckets = semconv.METRICS[metric.name].buckets
        assert buckets == metric.buckets
        assert all(b > a for a, b in pairwise(buckets)), metric.name
    for metric in registry.metrics:
        if metric.instrument != "histogram":
            assert semconv.METRICS[metric.name].buckets is None


def test_workflow_buckets_reach_past_the_thirty_minute_target(semconv: ModuleType) -> None:
    buckets = semconv.METRIC_GEN_AI_INVOKE_WORKFLOW_DURATION_BUCKETS
    assert 1800.0 in buckets and buckets[-1] > 1800.0


# --------------------------------------------------------------------------- OpenTelemetry package


@cache
def _otel_constants(package: str) -> dict[str, set[str]]:
    """Every string constant of the package's modules: value -> names of the modules defining it."""
    found: dict[str, set[str]] = {}
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str):
                found.setdefault(value, set()).add(module.__name__)
    return found


STABLE_ATTRIBUTES = "opentelemetry.semconv.attributes"
INCUBATING_ATTRIBUTES = "opentelemetry.semconv._incubating.attributes"
METRIC_PACKAGES = ("opentelemetry.semconv.metrics", "opentelemetry.semconv._incubating.metrics")


def _otel_attribute_ids() -> set[str]:
    return set(_otel_constants(STABLE_ATTRIBUTES)) | set(_otel_constants(INCUBATING_ATTRIBUTES))


def _otel_metric_names() -> set[str]:
    return {name for package in METRIC_PACKAGES for name in _otel_constants(package)}


def _otel_enum_values(attribute_id: str) -> set[Any] | None:
    """Values of OTel's ``<Name>Values`` enum for the attribute, or None when it has none."""
    class_name = gen.class_name(attribute_id) + "Values"
    for module_name in sorted(_otel_constants(INCUBATING_ATTRIBUTES).get(attribute_id, ())):
        enum = getattr(importlib.import_module(module_name), class_name, None)
        if isinstance(enum, type) and issubclass(enum, Enum):
            return {member.value for member in enum}
    return None


def test_every_otel_attribute_exists_in_the_installed_package(registry: Any) -> None:
    missing = [
        a.id for a in registry.attributes.values() if a.source == "otel" and a.id not in _otel_attribute_ids()
    ]
    assert missing == [], "not defined by opentelemetry-semantic-conventions: mark them otel-proposed or b2b"


def test_otel_attribute_stability_matches_the_package(registry: Any) -> None:
    stable = set(_otel_constants(STABLE_ATTRIBUTES))
    wrong = [
        (a.id, a.stability)
        for a in registry.attributes.values()
        if a.source == "otel" and (a.stability == "stable") != (a.id in stable)
    ]
    assert wrong == []


def test_every_otel_enum_member_exists_in_the_otel_enum(registry: Any) -> None:
    for attribute in registry.attributes.values():
        otel_members = [m.value for m in attribute.members if m.source == "otel"]
        if otel_members:
            known = _otel_enum_values(attribute.id)
            assert known is not None, f"OpenTelemetry has no value enum for {attribute.id}"
            assert set(otel_members) <= known, attribute.id


def test_otel_proposed_names_are_not_in_the_package_yet(registry: Any) -> None:
    """When the package catches up, the registry should say `otel` and be checked as such."""
    attributes = [a.id for a in registry.attributes.values() if a.source == "otel-proposed"]
    assert [a for a in attributes if a in _otel_attribute_ids()] == []
    metrics = [m.name for m in registry.metrics if m.source == "otel-proposed"]
    assert [m for m in metrics if m in _otel_metric_names()] == []
    for attribute in registry.attributes.values():
        proposed = [m.value for m in attribute.members if m.source == "otel-proposed"]
        if proposed:
            assert set(proposed) & (_otel_enum_values(attribute.id) or set()) == set(), attribute.id


class _RecordingMeter:
    """Stands in for an OTel Meter and records what a semconv ``create_*`` helper asked for."""

    KINDS = {
        "create_histogram": "histogram",
        "create_counter": "counter",
        "create_observable_counter": "counter",
        "create_up_down_counter": "updowncounter",
        "create_observable_up_down_counter": "updowncounter",
        "create_gauge": "gauge",
        "create_observable_gauge": "gauge",
    }

    def __init__(self) -> None:
        self.created: tuple[str, str] | None = None

    def __getattr__(self, method: str) -> Any:
        kind = self.KINDS[method]

        def create(name: str, *args: Any, unit: str = "", **kwargs: Any) -> None:
            self.created = (kind, unit)

        return create


def _otel_metric_shape(metric_name: str) -> tuple[str, str] | None:
    for package in METRIC_PACKAGES:
        for module_name in sorted(_otel_constants(package).get(metric_name, ())):
            helper = getattr(
                importlib.import_module(module_name), "create_" + gen.const_name(metric_name).lower(), None
            )
            if helper is None:
                continue
            meter = _RecordingMeter()
            extra = [None] * (len(inspect.signature(helper).parameters) - 1)  # e.g. callbacks
            helper(meter, *extra)
            return meter.created
    return None


def test_every_otel_metric_exists_with_the_same_instrument_and_unit(registry: Any) -> None:
    for metric in (m for m in registry.metrics if m.source == "otel"):
        assert metric.name in _otel_metric_names(), metric.name
        assert _otel_metric_shape(metric.name) == (metric.instrument, metric.unit), metric.name


# --------------------------------------------------------------------------- SPEC.md


needs_spec = pytest.mark.skipif(not SPEC.exists(), reason=f"{SPEC} is not laid out beside the repository")

_DOTTED = re.compile(r"^([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)(?:=(.+))?$")


def _spec_sections(first: int, last: int) -> str:
    text = SPEC.read_text(encoding="utf-8")
    match = re.search(rf"^## {first}\..*?(?=^## {last + 1}\.|\Z)", text, re.S | re.M)
    assert match, f"SPEC.md has no sections {first}-{last}"
    return match.group(0)


def _spec_dotted_names() -> list[tuple[str, str | None]]:
    """Backticked dotted names of sections 3-5, with the value after `=` when one is given."""
    names = []
    for token in re.findall(r"`([^`\n]+)`", _spec_sections(3, 5)):
        match = _DOTTED.match(token)
        if not match or match.group(1).startswith("b2b_otel.") or match.group(1).endswith(".log"):
            continue  # Python API paths and file names are not telemetry names
        names.append((match.group(1), match.group(2)))
    return names


def _registry_names(registry: Any) -> set[str]:
    return (
        set(registry.attributes)
        | {m.name for m in registry.metrics}
        | {e.name for e in registry.events}
        | {r.id for r in registry.rules}
    )


def _allowed_values(registry: Any, attribute_id: str) -> set[str]:
    attribute = registry.attributes[attribute_id]
    if attribute.type == "boolean":
        return {"true", "false"}
    return {str(m.value) for m in attribute.members}


@needs_spec
def test_every_name_in_spec_is_in_the_registry(registry: Any) -> None:
    names = _spec_dotted_names()
    assert len(names) > 40, "the SPEC parser found suspiciously few names"
    assert sorted({n for n, _ in names} - _registry_names(registry)) == []


@needs_spec
def test_every_attribute_value_in_spec_is_a_registry_value(registry: Any) -> None:
    pinned = [(name, value) for name, value in _spec_dotted_names() if value is not None]
    assert pinned
    for name, value in pinned:
        assert value in _allowed_values(registry, name), f"{name}={value}"


@needs_spec
def test_every_value_list_in_spec_is_made_of_registry_values(registry: Any) -> None:
    lists = re.findall(r"`([a-z0-9_.]+)` one of ((?:`\w+`(?:,\s*)?)+)", _spec_sections(3, 5))
    assert len(lists) >= 2
    for name, listed in lists:
        values = set(re.findall(r"`(\w+)`", listed))
        assert values <= _allowed_values(registry, name), name
    tiers = next(set(re.findall(r"`(\w+)`", listed)) for name, listed in lists if name == "b2b.memory.tier")
    assert tiers == _allowed_values(registry, "b2b.memory.tier")


@needs_spec
def test_spec_span_names_are_the_registry_patterns(registry: Any) -> None:
    def shape(name: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", name)

    spec_names = set()
    for section in (_spec_sections(3, 3), _spec_sections(5, 5)):
        for row in re.findall(r"^\|(.+)\|\s*$", section, re.M):
            cells = [c.strip() for c in row.split("|")]
            if len(cells) > 1 and cells[0].startswith("`") and "b2b_otel." in cells[0]:
                spec_names.add(shape(cells[1].strip("`")))
        spec_names.update(shape(n) for n in re.findall(r"marker span `([^`]+)`", section))
    assert spec_names <= {shape(s.name) for s in registry.spans}
    assert "alert {}" in spec_names


@needs_spec
def test_spec_attribute_types_match(registry: Any) -> None:
    types = {"int": "int", "bool": "boolean", "double": "double", "string": "string"}
    found = re.findall(r"`([a-z0-9_.]+)` \((int|bool|double|string)\b", _spec_sections(3, 5))
    assert found
    for name, spec_type in found:
        assert registry.attributes[name].type == types[spec_type], name


@needs_spec
def test_spec_metric_units_and_attributes_match(registry: Any) -> None:
    metrics = {m.name: m for m in registry.metrics}
    # Metric names are dotted; other backticked words of the section (`system_metrics`, the name of an
    # instrumentation) are not metrics.
    pattern = re.compile(r"`([a-z0-9_]+(?:\.[a-z0-9_]+)+)`\s*(?:\(([^)]*)\))?\s*(?:\{([^}]*)\})?")
    checked = 0
    for name, paren, braces in pattern.findall(_spec_sections(4, 4)):
        metric = metrics[name]
        if paren and re.fullmatch(r"[\w{}/.]+", paren):
            assert metric.unit == paren, name
        for item in filter(None, (part.strip() for part in (braces or "").split(","))):
            key, _, values = item.partition("=")
            assert key in {r.ref for r in metric.attributes}, f"{name} lacks attribute {key}"
            if values:
                assert set(values.split("|")) <= _allowed_values(registry, key), f"{name} {item}"
            checked += 1
    assert checked >= 10


# Rows of SPEC's rules table that describe a change to a rule not made yet: rule id -> (the kind SPEC
# names, the kind the rule has today, where the change is made). The test fails as soon as the registry
# follows SPEC, so that the entry goes with the change.
KINDS_NOT_YET_AS_IN_SPEC: dict[str, tuple[str, str, str]] = {}


# Default rules SPEC's table does not list (yet), listed after its rows: rule id -> why.
RULES_BEYOND_SPEC = {
    "security.rules.group_flood": "issue 9: a flood that forces window evictions is an event of its own",
}


@needs_spec
def test_default_rules_match_the_spec_table(registry: Any) -> None:
    rows = re.findall(
        r"^\| `([a-z0-9_.]+)` \| (\w+) \| [^|]+ \| (\w+) \| (\w+) \|\s*$", _spec_sections(5, 5), re.M
    )
    assert len(rows) >= 19, "the SPEC parser found suspiciously few rules"
    expected = []
    for rule_id, kind, severity, tier in rows:
        if rule_id in KINDS_NOT_YET_AS_IN_SPEC:
            spec_kind, today, _where = KINDS_NOT_YET_AS_IN_SPEC[rule_id]
            assert kind == spec_kind, f"SPEC changed {rule_id} again: update KINDS_NOT_YET_AS_IN_SPEC"
            kind = today
        expected.append((rule_id, kind, severity, tier))
    beyond = [(r.id, r.kind, r.severity, r.tier) for r in registry.rules if r.id in RULES_BEYOND_SPEC]
    assert [(r.id, r.kind, r.severity, r.tier) for r in registry.rules] == expected + beyond


@needs_spec
def test_rules_emit_the_event_spec_names_for_their_kind(registry: Any) -> None:
    for rule in registry.rules:
        expected = "b2b.security.event" if rule.id.startswith("security.") else "b2b.sla.breach"
        assert rule.event == expected, rule.id

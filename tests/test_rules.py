"""Rules as data: the built-in rules file, the schema's checks, threshold overrides, ``rules check``."""

from __future__ import annotations

import copy
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from b2b_otel import semconv
from b2b_otel._internal.errors import ConfigError
from b2b_otel.rules import load_rules, override_variable
from b2b_otel.rules.loader import BUILTIN_SOURCE

# The seed's thresholds (seed/monitoring-and-alerting.md, SPEC section 5): (threshold, comparison, window).
# Latency thresholds and windows in seconds; ratio thresholds as shares.
SEED_THRESHOLDS: dict[str, tuple[float | None, str | None, float | None]] = {
    semconv.RULE_AGENT_EXECUTION_CRITICAL: (300.0, "gt", None),
    semconv.RULE_AGENT_EXECUTION_SLOW: (3.0, "gt", None),
    semconv.RULE_AGENT_SUCCESS_RATE_LOW: (0.95, "lt", 3600.0),
    semconv.RULE_AGENT_QUEUE_DEPTH: (10.0, "gt", None),
    semconv.RULE_DB_QUERY_SLOW: (10.0, "gt", None),
    semconv.RULE_DB_POOL_EXHAUSTION: (0.9, "gt", None),
    semconv.RULE_MEMORY_FAILURE_RATE_HIGH: (0.01, "gt", 3600.0),
    semconv.RULE_MEMORY_CACHE_HIT_LOW: (0.80, "lt", 3600.0),
    semconv.RULE_WORKFLOW_FAILURE_RATE_HIGH: (0.05, "gt", 3600.0),
    semconv.RULE_WORKFLOW_COMPLETION_SLOW: (1800.0, "gt", None),
    semconv.RULE_EXTERNAL_API_SLOW: (5.0, "gt", None),
    semconv.RULE_EXTERNAL_API_UNAVAILABLE: (0.05, "gt", 3600.0),
    semconv.RULE_SECURITY_LOGIN_BRUTEFORCE: (5.0, "gte", 300.0),
    semconv.RULE_SECURITY_PRIVILEGE_ESCALATION: (None, None, None),
    semconv.RULE_SECURITY_ACCESS_VIOLATION: (None, None, None),
    semconv.RULE_SECURITY_SENSITIVE_DATA: (1.0, "gte", 300.0),  # every finding, once per 5 min and group
    semconv.RULE_SECURITY_ACCESS_UNUSUAL: (3.0, "gte", 600.0),
    semconv.RULE_WORKFLOW_DATA_QUALITY_LOW: (0.85, "lt", None),
    semconv.RULE_EXTERNAL_LLM_QUOTA: (0.8, "gt", None),
    semconv.RULE_SECURITY_RULES_GROUP_FLOOD: (100.0, "gte", 300.0),  # not the seed's: issue 9
}

GOOD_RULE = """\
  - id: custom.slow
    kind: latency
    severity: warning
    tier: operations
    description: A custom span is slow.
    match:
      - {span_name_prefix: "custom "}
    threshold: 2s
"""


def write_rules(tmp_path: Path, body: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules:\n" + body, encoding="utf-8")
    return str(path)


def problems_of(path: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_rules(path, environ or {})
    return [str(problem) for problem in info.value.problems]


# --- the built-in rules


def test_default_rules_have_exactly_the_spec_ids() -> None:
    rules = load_rules(None, {})
    assert sorted(rules.ids) == sorted(semconv.RULE_IDS)
    assert rules.source == BUILTIN_SOURCE


@pytest.mark.parametrize("rule_id", semconv.RULE_IDS)
def test_default_rule_has_the_spec_kind_severity_tier_and_event(rule_id: str) -> None:
    rule = load_rules(None, {}).get(rule_id)
    info = semconv.RULES[rule_id]
    assert (rule.kind, rule.severity, rule.tier, rule.event_name) == (
        info.kind,
        info.severity,
        info.tier,
        info.event_name,
    )
    assert rule.enabled


@pytest.mark.parametrize("rule_id", semconv.RULE_IDS)
def test_default_rule_has_the_seed_threshold(rule_id: str) -> None:
    rule = load_rules(None, {}).get(rule_id)
    assert (rule.threshold, rule.comparison, rule.window) == pytest.approx(SEED_THRESHOLDS[rule_id])


def test_default_ratio_rules_watch_success_where_the_seed_states_a_success_rate() -> None:
    rules = load_rules(None, {})
    assert rules.get(semconv.RULE_AGENT_SUCCESS_RATE_LOW).observed == "success_rate"
    assert rules.get(semconv.RULE_MEMORY_CACHE_HIT_LOW).observed == "success_rate"
    assert rules.get(semconv.RULE_WORKFLOW_FAILURE_RATE_HIGH).observed == "failure_rate"


def test_default_rules_group_by_the_keys_spec_names() -> None:
    rules = load_rules(None, {})
    assert rules.get(semconv.RULE_AGENT_SUCCESS_RATE_LOW).group_by == (semconv.GEN_AI_AGENT_NAME,)
    assert rules.get(semconv.RULE_EXTERNAL_API_UNAVAILABLE).group_by == (semconv.SERVER_ADDRESS,)
    assert rules.get(semconv.RULE_SECURITY_LOGIN_BRUTEFORCE).group_by == (semconv.CLIENT_ADDRESS,)
    assert rules.get(semconv.RULE_SECURITY_ACCESS_UNUSUAL).group_by == (semconv.USER_ID,)
    assert rules.get(semconv.RULE_EXTERNAL_LLM_QUOTA).group_by == (
        semconv.GEN_AI_PROVIDER_NAME,
        semconv.B2B_LLM_QUOTA_KIND,
    )


def test_default_rules_match_on_semconv_keys() -> None:
    rules = load_rules(None, {})
    agent = rules.get(semconv.RULE_AGENT_EXECUTION_SLOW).match
    assert [(c.attribute, c.equals) for c in agent] == [
        (semconv.GEN_AI_OPERATION_NAME, semconv.GenAiOperationNameValues.INVOKE_AGENT)
    ]
    escalation = rules.get(semconv.RULE_SECURITY_PRIVILEGE_ESCALATION).match
    assert {(c.attribute, c.form) for c in escalation} == {
        (semconv.B2B_SECURITY_ACTION, "equals"),
        (semconv.B2B_ROLES_GRANTED, "non_empty"),
    }
    data_quality = rules.get(semconv.RULE_WORKFLOW_DATA_QUALITY_LOW).source
    assert data_quality is not None and data_quality.span_attribute == semconv.B2B_DATA_QUALITY_SCORE
    quota = rules.get(semconv.RULE_EXTERNAL_LLM_QUOTA).source
    assert quota is not None and quota.metric == semconv.METRIC_B2B_LLM_QUOTA_UTILIZATION


def test_rules_check_accepts_the_default_file() -> None:
    path = Path(__file__).parents[1] / "b2b_otel" / "rules" / "default_rules.yaml"
    result = run_cli(str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {len(semconv.RULE_IDS)} rules (")
    assert semconv.RULE_SECURITY_ACCESS_UNUSUAL in result.stdout


# --- threshold overrides


def test_override_variable_upper_cases_the_id_and_replaces_dots() -> None:
    assert override_variable("agent.success_rate.low") == "B2B_OTEL_RULE_AGENT_SUCCESS_RATE_LOW_THRESHOLD"


def test_latency_override_takes_a_duration() -> None:
    rules = load_rules(None, {"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "0.5s"})
    assert rules.get(semconv.RULE_AGENT_EXECUTION_SLOW).threshold == 0.5
    assert rules.get(semconv.RULE_AGENT_EXECUTION_CRITICAL).threshold == 300.0


def test_ratio_override_takes_a_number() -> None:
    rules = load_rules(None, {"B2B_OTEL_RULE_AGENT_SUCCESS_RATE_LOW_THRESHOLD": "0.9"})
    assert rules.get(semconv.RULE_AGENT_SUCCESS_RATE_LOW).threshold == 0.9


def test_unrelated_variables_are_ignored() -> None:
    rules = load_rules(None, {"B2B_OTEL_RULES_FILE": "x.yaml", "PATH": "/bin"})
    assert len(rules) == len(semconv.RULE_IDS)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD", "fast", "not a duration"),
        ("B2B_OTEL_RULE_AGENT_SUCCESS_RATE_LOW_THRESHOLD", "5m", "not a number"),
        ("B2B_OTEL_RULE_AGENT_SUCCESS_RATE_LOW_THRESHOLD", "95", "between 0 and 1"),
        ("B2B_OTEL_RULE_SECURITY_ACCESS_VIOLATION_THRESHOLD", "1", "no threshold"),
        ("B2B_OTEL_RULE_NO_SUCH_RULE_THRESHOLD", "1s", "no rule has this id"),
    ],
)
def test_bad_override_names_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_rules(None, {variable: value})
    (problem,) = info.value.problems
    assert problem.variable == variable
    assert expected in problem.message


def test_overrides_apply_to_a_custom_file(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE)
    rules = load_rules(path, {"B2B_OTEL_RULE_CUSTOM_SLOW_THRESHOLD": "1m"})
    assert rules.get("custom.slow").threshold == 60.0
    # A default rule id is unknown once a custom file replaces the defaults.
    assert (
        "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD"
        in problems_of(path, {"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "1s"})[0]
    )


# --- bad files: each error names the file, the line and the field


def test_wrong_kind_names_line_and_field(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE.replace("kind: latency", "kind: latncy"))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:4: rules[0].kind=latncy")
    assert problem.endswith("accepted: latency, ratio, count, event, gauge")


def test_missing_field_names_the_rule_line_and_field(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE.replace("    description: A custom span is slow.\n", ""))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:3: rules[0].description=(missing)")


def test_missing_kind_specific_field_names_it(tmp_path: Path) -> None:
    ratio = GOOD_RULE.replace("kind: latency", "kind: ratio").replace("threshold: 2s", "threshold: 0.5")
    path = write_rules(tmp_path, ratio)
    assert problems_of(path) == [
        f"{path}:3: rules[0].{name}=(missing): required for a ratio rule"
        for name in ("comparison", "window", "min_samples", "failure")
    ]


def test_bad_duration_names_line_and_says_what_is_accepted(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE.replace("threshold: 2s", "threshold: 2 sec"))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:10: rules[0].threshold=2 sec")
    assert "5m" in problem


def test_latency_threshold_must_be_a_duration_not_a_ratio_threshold_a_string(tmp_path: Path) -> None:
    ratio = (
        GOOD_RULE.replace("kind: latency", "kind: ratio").replace(
            "threshold: 2s", "threshold: 95%\n    comparison: lt\n    window: 1h\n    min_samples: 5"
        )
        + "    failure: [{status: error}]\n"
    )
    (problem,) = problems_of(write_rules(tmp_path, ratio))
    assert ":10: rules[0].threshold=95%" in problem and "a number" in problem


def test_field_a_kind_does_not_use_is_refused(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE + "    window: 5m\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:11: rules[0].window=5m")
    assert "not used by a latency rule" in problem


def test_duplicate_id_names_the_second_rule(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE + GOOD_RULE)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:11: rules[1].id=custom.slow")
    assert "duplicate rule id" in problem


def test_unknown_key_names_line_and_lists_accepted_fields(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE + "    severty: critical\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:11: rules[0].severty=critical")
    assert "unknown field" in problem and "severity" in problem


def test_bad_condition_names_its_line(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE.replace('{span_name_prefix: "custom "}', "{attribute: k}"))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:9: rules[0].match[0]")
    assert "exactly one of equals, exists, non_empty" in problem


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE + "    threshold: 9s\n")
    (problem,) = problems_of(path)
    assert problem == f"{path}:11: rules[0].threshold: duplicate key; give each key once"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE + "    group_by: [a, b\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:12") and "not valid YAML" in problem


def test_wrong_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 2\nrules: []\n", encoding="utf-8")
    (problem,) = problems_of(str(path))
    assert problem.startswith(f"{path}:1: version=2")


def test_every_problem_of_a_file_is_listed(tmp_path: Path) -> None:
    broken = GOOD_RULE.replace("severity: warning", "severity: loud").replace("tier: operations", "tier: ops")
    assert len(problems_of(write_rules(tmp_path, broken))) == 2


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    (problem,) = problems_of(str(tmp_path / "nope.yaml"))
    assert "cannot read the rules file" in problem


# --- the command line


def run_cli(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "rules", "check", path],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rules_check_exits_0_and_lists_the_ids(tmp_path: Path) -> None:
    result = run_cli(write_rules(tmp_path, GOOD_RULE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK: 1 rules (custom.slow)"


def test_rules_check_exits_1_with_the_error_lines(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE.replace("threshold: 2s", "threshold: soon"))
    result = run_cli(path)
    assert result.returncode == 1
    assert f"{path}:10: rules[0].threshold=soon" in result.stderr


def test_docs_list_every_default_rule_and_its_override_variable() -> None:
    text = (Path(__file__).parents[1] / "docs" / "rules.md").read_text(encoding="utf-8")
    for rule in load_rules(None, {}).rules:
        assert f"`{rule.id}`" in text
        if rule.kind != "event":
            assert f"`{override_variable(rule.id)}`" in text


def test_a_yaml_alias_bomb_is_refused_quickly_with_the_file_named(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        previous = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([previous] * 10)}]")
    lines.append("rules: *a8")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as error:
        load_rules(str(bomb), {})
    assert "bomb.yaml" in str(error.value) and "aliases" in str(error.value)


def test_yaml_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("rules: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as error:
        load_rules(str(deep), {})
    assert "deep.yaml" in str(error.value)


# --- every problem of a file in one run, in our own words (issue 9)

MANY_MISTAKES = """\
version: 1
rules:
  - id: a.kind
    kind: latncy
    severity: warning
    tier: operations
    description: Unknown kind.
    match: [{span_name_prefix: "a "}]
    threshold: 2s
  - id: a.severity
    kind: latency
    severity: loud
    tier: operations
    description: Bad severity.
    match: [{span_name_prefix: "a "}]
    threshold: 2 sec
  - id: a.threshold
    kind: count
    severity: info
    tier: security
    description: Missing threshold, and a window on a latency rule below.
    match: [{attribute: event.outcome, equals: failure}]
    comparison: gte
    window: 5m
    group_by: client.address
  - id: a.window
    kind: latency
    severity: warning
    tier: operations
    description: A window on a latency rule.
    match: [{span_kind: cilent}]
    threshold: 1s
    comparison: lt
    window: 5m
    severty: critical
  - id: a.kind
    kind: event
    severity: info
    tier: security
    description: Duplicate id.
    match: [{attribute: b2b.security.action, equals: x}]
    enabled: "yes"
"""

# (line, field, what the message says): one entry per mistake above, in line order.
MANY_MISTAKES_EXPECTED = [
    (4, "rules[0].kind=latncy", "accepted: latency, ratio, count, event, gauge"),
    (12, "rules[1].severity=loud", "accepted: critical, warning, info"),
    (16, "rules[1].threshold=2 sec", "not a duration; accepted:"),
    (17, "rules[2].threshold=(missing)", "required for a count rule"),
    (25, "rules[2].group_by=client.address", "a list of attribute keys"),
    (31, "rules[3].match[0].span_kind=cilent", "accepted: internal, server, client, producer, consumer"),
    (33, "rules[3].comparison=lt", "accepted: gt, gte"),
    (34, "rules[3].window=5m", "not used by a latency rule"),
    (35, "rules[3].severty=critical", "unknown field; accepted: id, kind, severity"),
    (36, "rules[4].id=a.kind", "duplicate rule id (first at rules[0])"),
    (42, "rules[4].enabled=yes", "accepted: true, false"),
]

PYDANTIC_INTERNALS = re.compile(
    r"Input should|literal_error|model_type|_type\b|\bmissing\]|pydantic|errors\.pydantic\.dev|"
    r"<class |<dict>|<list>|Value error|For further information|validation error|type=",
)


def test_a_file_with_n_mistakes_reports_exactly_n_lines_naming_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MANY_MISTAKES, encoding="utf-8")
    problems = problems_of(str(path))
    assert len(problems) == len(MANY_MISTAKES_EXPECTED), "\n".join(problems)
    for problem, (line, field, says) in zip(problems, MANY_MISTAKES_EXPECTED, strict=True):
        assert problem.startswith(f"{path}:{line}: {field}: "), problem
        assert says in problem, problem
        assert not PYDANTIC_INTERNALS.search(problem), problem


def test_rules_check_prints_every_problem_and_the_overrides_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MANY_MISTAKES, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "rules", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "B2B_OTEL_RULE_NO_SUCH_RULE_THRESHOLD": "1s",
            "B2B_OTEL_RULE_A_SEVERITY_THRESHOLD": "soon",
        },
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"invalid b2b-otel configuration ({len(MANY_MISTAKES_EXPECTED) + 2} problems):"
    assert lines[-2].startswith("  B2B_OTEL_RULE_A_SEVERITY_THRESHOLD=soon: not a duration")
    assert f"(rule a.severity, {path}:10)" in lines[-2]
    assert lines[-1].startswith("  B2B_OTEL_RULE_NO_SUCH_RULE_THRESHOLD=1s: no rule has this id")


def test_overrides_are_checked_together_with_the_file(tmp_path: Path) -> None:
    path = write_rules(tmp_path, GOOD_RULE.replace("severity: warning", "severity: loud"))
    problems = problems_of(path, {"B2B_OTEL_RULE_CUSTOM_SLOW_THRESHOLD": "-1"})
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}:5: rules[0].severity=loud")
    assert problems[1].startswith("B2B_OTEL_RULE_CUSTOM_SLOW_THRESHOLD=-1: not a duration")


def test_ids_sharing_an_override_variable_name_the_second_rule(tmp_path: Path) -> None:
    second = GOOD_RULE.replace("id: custom.slow", "id: custom_slow")
    path = write_rules(tmp_path, GOOD_RULE + second)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:11: rules[1].id=custom_slow: shares the override variable")


def _default_rules() -> list[dict[str, object]]:
    text = (Path(__file__).parents[1] / "b2b_otel" / "rules" / "default_rules.yaml").read_text(
        encoding="utf-8"
    )
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return list(data["rules"])


# Values a user might write by mistake, of every YAML type.
_BAD_VALUES: list[object] = [
    None,
    "",
    "x",
    "2 sec",
    "95%",
    -1,
    0,
    0.5,
    1.5,
    7,
    True,
    False,
    [],
    ["a", 1],
    {},
    {"a": 1},
    [{"attribute": "k"}],
    [{"span_kind": "nope"}],
    [{"status": "error", "attribute": "k"}],
    "lt",
    "5m",
    float("nan"),
    float("inf"),
    "1e400",
    [[1]],
    {"metric": "m", "computed": "x"},
]
_FIELDS = [
    "id",
    "kind",
    "severity",
    "tier",
    "description",
    "match",
    "group_by",
    "threshold",
    "comparison",
    "window",
    "min_samples",
    "failure",
    "observe",
    "source",
    "event",
    "enabled",
    "bogus",
]


def _mutations(seed: int, count: int) -> list[tuple[str, list[dict[str, object]]]]:
    rng = random.Random(seed)
    rules = _default_rules()
    out = []
    for _ in range(count):
        mutated = copy.deepcopy(rules)
        notes = []
        for _ in range(rng.randint(1, 4)):
            rule = rng.choice(mutated)
            name = rng.choice(_FIELDS)
            if rng.random() < 0.2 and name in rule:
                del rule[name]
                notes.append(f"-{name}")
            else:
                rule[name] = copy.deepcopy(rng.choice(_BAD_VALUES))
                notes.append(f"{name}={rule[name]!r}")
            if rng.random() < 0.1:
                mutated.append(copy.deepcopy(rule))  # a duplicate id
                notes.append("dup")
        out.append(("; ".join(notes), mutated))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_no_message_for_a_mutated_default_file_shows_pydantic_internals(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "mutated.yaml"
    for notes, rules in _mutations(seed, 60):
        path.write_text(yaml.safe_dump({"version": 1, "rules": rules}, sort_keys=False), encoding="utf-8")
        try:
            load_rules(str(path), {"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "soon"})
        except ConfigError as exc:
            problems = [str(problem) for problem in exc.problems]
        else:
            raise AssertionError(f"a bad override passed ({notes})")
        lines = [int(p.split(":")[1]) for p in problems if p.startswith(str(path))]
        assert lines == sorted(lines), notes
        for problem in problems:
            assert "\n" not in problem, (notes, problem)
            assert not PYDANTIC_INTERNALS.search(problem), (notes, problem)
            if problem.startswith(str(path)):
                assert re.match(rf"{re.escape(str(path))}:\d+: (rules\[\d+\]|version|rules)", problem), (
                    problem
                )
                assert (
                    "accepted" in problem
                    or "required" in problem
                    or "duplicate" in problem
                    or ("needs" in problem or "only" in problem or "takes" in problem)
                ), (notes, problem)

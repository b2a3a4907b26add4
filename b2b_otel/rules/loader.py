"""Reading a rules file: YAML -> validated ``RuleSet``, every error pointing at a file line and field.

The YAML is composed into a node tree first so that each pydantic error location
(``rules -> 3 -> threshold``) can be mapped back to the line it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .. import semconv
from .._internal.errors import ConfigError, Problem
from .schema import NUMBER_ACCEPTED, Condition, Rule, RuleFieldError, RuleSet, RulesFile, Source

DEFAULT_RULES_RESOURCE = "default_rules.yaml"
BUILTIN_SOURCE = f"<built-in {DEFAULT_RULES_RESOURCE}>"
OVERRIDE_PREFIX = "B2B_OTEL_RULE_"
OVERRIDE_SUFFIX = "_THRESHOLD"

Loc = tuple[str | int, ...]


class FileProblem(Problem):
    """A rules-file problem: ``variable`` is ``FILE:LINE: field.path``; no ``=`` without a value."""

    def __str__(self) -> str:
        if not self.shown_value:
            return f"{self.variable}: {self.message}"
        return super().__str__()


def override_variable(rule_id: str) -> str:
    """The variable that overrides a rule's threshold.

    >>> override_variable("agent.execution.slow")
    'B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD'
    """
    return f"{OVERRIDE_PREFIX}{rule_id.upper().replace('.', '_')}{OVERRIDE_SUFFIX}"


def load_rules(path: str | None, environ: Mapping[str, str]) -> RuleSet:
    """The rules in force: the file at ``path`` (the built-in rules when ``None``) plus threshold overrides.

    Raises ``ConfigError`` listing every problem, each naming the file and line (or the variable).

    >>> rules = load_rules(None, {"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "0.5s"})
    >>> rules.get("agent.execution.slow").threshold
    0.5
    """
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_RULES_RESOURCE).read_text(encoding="utf-8")
        source = BUILTIN_SOURCE
    else:
        source = path
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [FileProblem(path, "", f"cannot read the rules file ({exc.__class__.__name__})")]
            ) from None
    rules_file = parse_rules(text, source)
    rules = _apply_overrides(rules_file.rules, environ)
    return RuleSet(rules=rules, source=source)


def parse_rules(text: str, source: str) -> RulesFile:
    """Validate the YAML text of a rules file; ``source`` names it in error messages."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        problems = _expansion_problems(root, source)
        if problems:
            raise ConfigError(problems)
        data = loader.construct_document(root) if root is not None else None
    except RecursionError:
        raise ConfigError([FileProblem(source, "", "not valid YAML: nested too deeply")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError([FileProblem(f"{source}:{line}", "", f"not valid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([FileProblem(source, "", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    problems = _duplicate_keys(root, source)
    if problems:
        raise ConfigError(problems)
    try:
        return RulesFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(error, root, source) for error in exc.errors()]) from None


MAX_NODES = 100_000
"""YAML nodes a rules file may expand to, aliases followed: far above any real rules file, far below
what a "billion laughs" alias bomb expands to."""


def _expansion_problems(root: yaml.Node | None, source: str) -> list[Problem]:
    """A rules file whose aliases expand beyond MAX_NODES is refused before anything walks it."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once instead of looping
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        sizes[id(node)] = total = min(total, MAX_NODES + 1)
        return total

    if root is None or size(root) <= MAX_NODES:
        return []
    return [
        FileProblem(
            f"{source}:{root.start_mark.line + 1}",
            "",
            f"the file expands to more than {MAX_NODES} YAML nodes (aliases followed); "
            "write the rules out instead of nesting anchors",
        )
    ]


def _duplicate_keys(node: yaml.Node | None, source: str) -> list[Problem]:
    # YAML silently keeps the last of two equal keys; in a rules file that hides a mistake.
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    line = key.start_mark.line + 1
                    problems.append(FileProblem(f"{source}:{line}: {key.value}", "", "duplicate key"))
                seen.add(key.value)
            problems.extend(_duplicate_keys(value, source))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems.extend(_duplicate_keys(item, source))
    return problems


def _problem(error: Any, root: yaml.Node | None, source: str) -> Problem:
    loc: Loc = tuple(error["loc"])
    message = str(error["msg"])
    shown_input = error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, RuleFieldError):
        loc = loc + cause.path
        message = cause.message
        shown_input = _dig(shown_input, cause.path)
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        accepted = ", ".join(model.model_fields) if model is not None else "see docs/rules.md"
        message = f"unknown field; accepted: {accepted}"
    elif kind == "missing":
        message = "required field is missing"
    line = _line_of(root, loc)
    where = f"{source}:{line}" if line is not None else source
    field = _field_path(loc)
    shown = _MISSING if kind == "missing" else _shown(shown_input)
    return FileProblem(f"{where}: {field}" if field else where, shown, message)


_MISSING = "(missing)"


def _dig(value: Any, path: Loc) -> Any:
    # The offending field's own value inside the object a model validator saw.
    for part in path:
        if isinstance(value, BaseModel):
            value = getattr(value, str(part), None)
        elif isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return _MISSING
    return _MISSING if value is None else value


def _model_at(loc: Loc) -> type[BaseModel] | None:
    # The model whose fields live at ``loc``: root, rules[i], rules[i].match[j], rules[i].source...
    if not loc:
        return RulesFile
    if len(loc) == 2 and loc[0] == "rules":
        return Rule
    if len(loc) == 3 and loc[2] == "source":
        return Source
    if len(loc) == 4 and loc[2] in ("match", "failure"):
        return Condition
    return None


def _field_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return f"<{type(value).__name__}>"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """The 1-based line of the deepest node of ``loc`` present in the file (a mapping key's own line)."""
    if root is None:
        return 1
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    line = key.start_mark.line + 1
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _apply_overrides(rules: tuple[Rule, ...], environ: Mapping[str, str]) -> tuple[Rule, ...]:
    by_variable: dict[str, Rule] = {}
    problems: list[Problem] = []
    for rule in rules:
        variable = override_variable(rule.id)
        if variable in by_variable:
            # Ids differing only in '.' versus '_' would share one override variable.
            other = by_variable[variable].id
            problems.append(
                FileProblem(variable, "", f"rule ids {other!r} and {rule.id!r} share this variable")
            )
        by_variable[variable] = rule
    updated = {rule.id: rule for rule in rules}
    for variable in sorted(environ):
        if not (variable.startswith(OVERRIDE_PREFIX) and variable.endswith(OVERRIDE_SUFFIX)):
            continue
        value = environ[variable]
        target = by_variable.get(variable)
        if target is None:
            problems.append(
                Problem(
                    variable,
                    value,
                    "no rule has this id; accepted: B2B_OTEL_RULE_<RULE_ID>_THRESHOLD for a "
                    "rule id of the rules file, upper-cased with '.' as '_'",
                )
            )
            continue
        try:
            updated[target.id] = _with_threshold(target, value)
        except ValueError as exc:
            problems.append(Problem(variable, value, f"{exc} (rule {target.id})"))
    if problems:
        raise ConfigError(problems)
    return tuple(updated[rule.id] for rule in rules)


def _with_threshold(rule: Rule, value: str) -> Rule:
    if rule.kind == semconv.RuleKindValues.EVENT:
        raise ValueError("an event rule has no threshold")
    threshold: str | float = value.strip()
    if rule.kind != semconv.RuleKindValues.LATENCY:
        try:
            threshold = float(value)
        except ValueError:
            raise ValueError(f"not a number; accepted: {NUMBER_ACCEPTED}") from None
    try:
        return Rule.model_validate({**rule.model_dump(exclude_none=True), "threshold": threshold})
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            msg = str(error["msg"])
            messages.append(msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg)
        raise ValueError("; ".join(messages)) from None

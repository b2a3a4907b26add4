"""Reading a rules file: YAML -> validated ``RuleSet``, every problem pointing at a file line and field.

The YAML is composed into a node tree first so that each problem's location (``rules[3].threshold``)
can be mapped back to the line it came from. Every problem of a file is found in one run: the rules
are validated one by one, each rule's cross-field checks run on the YAML as written (also when another
of its fields failed), then the duplicate ids and the threshold overrides. Messages are this module's
own: a pydantic error is only ever used for its location and kind, never for its text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, get_args

from .. import semconv
from .._internal.errors import ConfigError, Problem
from .schema import (
    NUMBER_ACCEPTED,
    Condition,
    Rule,
    RuleFieldError,
    RuleFieldErrors,
    RuleSet,
    Source,
    _positive_duration,
    check_threshold,
    condition_checks,
    duplicate_ids,
    rule_checks,
    source_checks,
)

if TYPE_CHECKING:  # YAML's node tree and pydantic's models: loaded only to validate a file
    import yaml
    from pydantic import BaseModel

    from .._internal.yamlfile import Loc
    from . import models

DEFAULT_RULES_RESOURCE = "default_rules.yaml"
# The built-in file as JSON with the hash of the YAML it was made from (scripts/gen_builtin_rules.py).
BUILTIN_SNAPSHOT_RESOURCE = "default_rules.json"
_HASH_KEY = "yaml_digest"  # SHA-256, hex, of the YAML text the snapshot was made from
BUILTIN_SOURCE = f"<built-in {DEFAULT_RULES_RESOURCE}>"
OVERRIDE_PREFIX = "B2B_OTEL_RULE_"
OVERRIDE_SUFFIX = "_THRESHOLD"


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

    Raises ``ConfigError`` listing every problem of the file and of the overrides, each naming the
    file, line and field (or the variable), sorted by line.

    >>> rules = load_rules(None, {"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "0.5s"})
    >>> rules.get("agent.execution.slow").threshold
    0.5
    """
    if path is None:
        text = builtin_text()
        fast = _builtin_rules(text, environ)
        if fast is not None:
            return fast
        source = BUILTIN_SOURCE  # an override to report: the validated path says it at its line
    else:
        source = path
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [FileProblem(path, "", f"cannot read the rules file ({exc.__class__.__name__})")]
            ) from None
    return validated_rules(text, source, environ)


def validated_rules(text: str, source: str, environ: Mapping[str, str]) -> RuleSet:
    """The rules of the YAML ``text`` through the pydantic models, every problem at its line."""
    from . import models

    checked = _check(text, source)
    thresholds = _check_overrides(checked, environ)
    checked.raise_problems()
    rules_file = models.RulesFile.model_validate(checked.data)
    rules = tuple(_with_threshold(models.to_rule(rule), thresholds) for rule in rules_file.rules)
    return RuleSet(rules=rules, source=source)


def _with_threshold(rule: Rule, thresholds: Mapping[str, float]) -> Rule:
    if rule.id in thresholds:
        return dataclasses.replace(rule, threshold=thresholds[rule.id])
    return rule


def parse_rules(text: str, source: str) -> models.RulesFile:
    """Validate the YAML text of a rules file; ``source`` names it in error messages.

    Raises ``ConfigError`` listing every problem of the file (overrides are not read).
    """
    from . import models

    checked = _check(text, source)
    checked.raise_problems()
    return models.RulesFile.model_validate(checked.data)


def builtin_text() -> str:
    """The text of the built-in ``default_rules.yaml``."""
    return resources.files(__package__).joinpath(DEFAULT_RULES_RESOURCE).read_text(encoding="utf-8")


def builtin_snapshot_text(text: str) -> str:
    """The JSON snapshot of the built-in rules file ``text`` (what scripts/gen_builtin_rules.py writes)."""
    import yaml

    data = yaml.load(text, Loader=_builtin_loader())  # a safe loader
    snapshot = {_HASH_KEY: _digest(text), "rules_file": data}
    return json.dumps(snapshot, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _builtin_data(text: str) -> Any:
    """The data of the built-in file: from its JSON snapshot when that was made from this very text
    (no YAML parser to import at start-up), else from the YAML."""
    try:
        raw = resources.files(__package__).joinpath(BUILTIN_SNAPSHOT_RESOURCE).read_text(encoding="utf-8")
        snapshot = json.loads(raw)
        if isinstance(snapshot, dict) and snapshot.get(_HASH_KEY) == _digest(text):
            return snapshot["rules_file"]
    except (OSError, ValueError, KeyError):
        pass
    import yaml

    return yaml.load(text, Loader=_builtin_loader())  # a safe loader


def _builtin_rules(text: str, environ: Mapping[str, str]) -> RuleSet | None:
    """The built-in rules without the models (start-up): the file is known valid, the tests hold this
    path to :func:`validated_rules`. None when an override has a problem, or the file is not as
    expected: the validated path then says what, at its line."""
    try:
        data = _builtin_data(text)
        checked = _Checked(BUILTIN_SOURCE, data=data)
        thresholds = _check_overrides(checked, environ)
        if checked.problems:
            return None
        rules = tuple(_with_threshold(_rule_record(raw), thresholds) for raw in data["rules"])
    except Exception:  # the file is not as the fast path expects: the validated path judges it
        return None
    return RuleSet(rules=rules, source=BUILTIN_SOURCE)


def _conditions(raw: Any) -> tuple[Condition, ...]:
    return tuple(Condition(**condition) for condition in raw)


def _rule_record(raw: dict[str, Any]) -> Rule:
    """A rule of the (valid) built-in file as the models would give it: durations in seconds, tuples."""
    kind = raw["kind"]
    threshold = raw.get("threshold")
    window = raw.get("window")
    failure = raw.get("failure")
    source = raw.get("source")
    return Rule(
        id=raw["id"],
        kind=kind,
        severity=raw["severity"],
        tier=raw["tier"],
        description=raw["description"],
        match=_conditions(raw.get("match") or ()),
        group_by=tuple(raw.get("group_by") or ()),
        threshold=None if threshold is None else check_threshold(kind, threshold),
        comparison=raw.get("comparison"),
        window=None if window is None else _positive_duration(window),
        min_samples=raw.get("min_samples"),
        failure=None if failure is None else _conditions(failure),
        observe=raw.get("observe"),
        source=None if source is None else Source(**source),
        event=raw.get("event"),
        enabled=raw.get("enabled", True),
    )


_NO_LINE = 1 << 62  # problems without a line (variables) go after those of the file


@dataclass
class _Checked:
    """A rules file's raw data and node tree, with every problem found so far and its line."""

    source: str
    root: yaml.Node | None = None
    data: Any = None
    problems: list[tuple[int, Problem]] = field(default_factory=list)
    paths: set[Loc] = field(default_factory=set)
    fatal: bool = False  # the YAML itself is unusable: nothing more can be checked

    def add(self, loc: Loc, shown: str, message: str) -> None:
        """A problem at ``loc`` (one per field path: the first found wins)."""
        from .._internal.yamlfile import field_path, line_of

        if loc in self.paths:
            return
        self.paths.add(loc)
        line = line_of(self.root, loc)
        where = f"{self.source}:{line}"
        path = field_path(loc)
        self.problems.append((line, FileProblem(f"{where}: {path}" if path else where, shown, message)))

    def add_variable(self, problem: Problem) -> None:
        self.problems.append((_NO_LINE, problem))

    def raise_problems(self) -> None:
        if self.problems:
            ordered = sorted(enumerate(self.problems), key=lambda item: (item[1][0], item[0]))
            raise ConfigError([problem for _, (_, problem) in ordered])


def _builtin_loader() -> type[yaml.SafeLoader]:
    """The built-in file is known to be valid YAML: libyaml's parser, where installed, reads it in a
    tenth of the time (start-up). A user's file keeps the pure-Python parser, whose error messages are
    the ones documented and tested."""
    import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


def _check(text: str, source: str) -> _Checked:
    import yaml

    from .._internal.yamlfile import expands_beyond, line_of

    checked = _Checked(source)
    loader = (_builtin_loader() if source == BUILTIN_SOURCE else yaml.SafeLoader)(text)
    try:
        root = loader.get_single_node()
        checked.root = root
        if expands_beyond(root, MAX_NODES):
            checked.fatal = True
            checked.problems.append(
                (
                    line_of(root, ()),
                    FileProblem(
                        f"{source}:{line_of(root, ())}",
                        "",
                        f"the file expands to more than {MAX_NODES} YAML nodes (aliases followed); "
                        "write the rules out instead of nesting anchors",
                    ),
                )
            )
            return checked
        checked.data = loader.construct_document(root) if root is not None else None
    except RecursionError:
        checked.fatal = True
        checked.problems.append((0, FileProblem(source, "", "not valid YAML: nested too deeply")))
        return checked
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        checked.fatal = True
        checked.problems.append((line, FileProblem(f"{source}:{line}", "", f"not valid YAML: {exc.problem}")))
        return checked
    except yaml.YAMLError as exc:
        checked.fatal = True
        checked.problems.append((0, FileProblem(source, "", f"not valid YAML: {exc}")))
        return checked
    finally:
        loader.dispose()
    _duplicate_keys(checked, root, ())
    _check_file(checked)
    return checked


MAX_NODES = 100_000
"""YAML nodes a rules file may expand to, aliases followed: far above any real rules file, far below
what a "billion laughs" alias bomb expands to."""


def _duplicate_keys(checked: _Checked, node: yaml.Node | None, loc: Loc) -> None:
    # YAML silently keeps the last of two equal keys; in a rules file that hides a mistake.
    from .._internal.yamlfile import duplicate_keys, field_path

    def report(key_loc: Loc, line: int) -> None:
        where = f"{checked.source}:{line}: {field_path(key_loc)}"
        checked.problems.append((line, FileProblem(where, "", "duplicate key; give each key once")))

    duplicate_keys(node, loc, report)


def _check_file(checked: _Checked) -> None:
    from .models import FIELD_ACCEPTED, OBJECT_ACCEPTED, RulesFile

    data = checked.data
    if not isinstance(data, dict):
        checked.add((), _shown(data), f"accepted: {OBJECT_ACCEPTED[RulesFile]}")
        return
    for name in data:
        if name not in RulesFile.model_fields:
            checked.add((name,), _shown(data[name]), _unknown_field(RulesFile))
    version = data.get("version", _ABSENT)
    if version is _ABSENT:
        checked.add(("version",), _MISSING, _required(RulesFile, "version"))
    elif type(version) is not int or version != 1:
        checked.add(("version",), _shown(version), f"accepted: {FIELD_ACCEPTED[RulesFile]['version']}")
    rules = data.get("rules", _ABSENT)
    if rules is _ABSENT:
        checked.add(("rules",), _MISSING, _required(RulesFile, "rules"))
        return
    if not isinstance(rules, list):
        checked.add(("rules",), _shown(rules), f"accepted: {FIELD_ACCEPTED[RulesFile]['rules']}")
        return
    for index, rule in enumerate(rules):
        _check_rule(checked, rule, ("rules", index))
    for error in duplicate_ids([rule.get("id") if isinstance(rule, dict) else None for rule in rules]):
        checked.add(error.path, _shown(_dig(data, error.path)), error.message)


def _check_rule(checked: _Checked, raw: Any, loc: Loc) -> None:
    """Every problem of one rule: its fields' own, then the checks across its fields."""
    from pydantic import ValidationError

    from . import models

    if not isinstance(raw, dict):
        checked.add(loc, _shown(raw), f"a rule is {models.OBJECT_ACCEPTED[models.Rule]}")
        return
    try:
        models.Rule.model_validate(raw)
        errors: list[Any] = []
    except ValidationError as exc:
        errors = exc.errors()
    failed: dict[Loc, set[str]] = {}  # object path (relative to the rule) -> its fields that failed
    for error in errors:
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, RuleFieldErrors):
            continue  # a model validator's checks: run below on the raw YAML, all of them
        relative: Loc = tuple(error["loc"])
        field_loc, model, name = _resolve(relative)
        if name is not None:
            failed.setdefault(_owner(field_loc, name), set()).add(name)
        if field_loc and isinstance(field_loc[0], str):
            failed.setdefault((), set()).add(field_loc[0])  # the rule's own field failed, at some depth
        checked.add((*loc, *field_loc), _shown_at(raw, field_loc, error), _message(error, model, name, cause))
    rule_failed = frozenset(failed.get((), set()))
    _add_checks(checked, raw, loc, (), rule_checks(raw, rule_failed))
    for key in ("match", "failure"):
        conditions = raw.get(key)
        if isinstance(conditions, list) and key not in _whole_failed(errors, key):
            for index, condition in enumerate(conditions):
                if isinstance(condition, dict):
                    own = frozenset(failed.get((key, index), set()))
                    _add_checks(checked, raw, loc, (key, index), condition_checks(condition, own))
    source = raw.get("source")
    if isinstance(source, dict):
        _add_checks(
            checked, raw, loc, ("source",), source_checks(source, frozenset(failed.get(("source",), set())))
        )


def _whole_failed(errors: list[Any], key: str) -> set[str]:
    # ``match: foo`` (not a list at all): its items are not conditions to check.
    return {key for error in errors if tuple(error["loc"]) == (key,)}


def _owner(field_loc: Loc, name: str) -> Loc:
    """The object path (relative to the rule) that holds field ``name`` at ``field_loc``."""
    index = len(field_loc) - 1
    while index >= 0 and field_loc[index] != name:
        index -= 1
    return field_loc[:index] if index >= 0 else ()


def _add_checks(
    checked: _Checked, raw: dict[str, Any], loc: Loc, at: Loc, errors: list[RuleFieldError]
) -> None:
    for error in errors:
        path = (*at, *error.path)
        value = _dig(raw, path)
        checked.add((*loc, *path), _MISSING if value is _ABSENT else _shown(value), error.message)


def _nesting() -> tuple[dict[tuple[type[BaseModel], str], type[BaseModel]], set[tuple[type[BaseModel], str]]]:
    """Which model a field's objects are (``_NESTED``), and which fields are lists (``_LISTS``)."""
    from .models import Condition, Rule, RulesFile, Source

    nested: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
        (RulesFile, "rules"): Rule,
        (Rule, "match"): Condition,
        (Rule, "failure"): Condition,
        (Rule, "source"): Source,
    }
    return nested, {(RulesFile, "rules"), (Rule, "match"), (Rule, "failure"), (Rule, "group_by")}


def _resolve(loc: Loc, model: type[BaseModel] | None = None) -> tuple[Loc, type[BaseModel], str | None]:
    """A pydantic location trimmed to a field of the file (``match[0].equals``, not ``...equals.int``),
    the model that field belongs to and its name (``None`` when the location is an object itself)."""
    from . import models

    _NESTED, _LISTS = _nesting()
    if model is None:
        model = models.Rule
    out: list[str | int] = []
    name: str | None = None
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if not isinstance(part, str) or part not in model.model_fields:
            if isinstance(part, str) and name is None and not out:
                out.append(part)  # an unknown key at this level
                return tuple(out), model, part
            break
        out.append(part)
        name = part
        if (model, part) in _LISTS:
            if not (parts and isinstance(parts[0], int)):
                break  # the list itself is wrong
            out.append(parts.pop(0))
            nested = _NESTED.get((model, part))
            if nested is None:
                break
            model, name = nested, None
        elif (model, part) in _NESTED:
            model, name = _NESTED[(model, part)], None
        else:
            break
        if parts and isinstance(parts[0], str) and parts[0] not in model.model_fields:
            out.append(parts[0])
            return tuple(out), model, parts[0]
    return tuple(out), model, name


def _message(error: Any, model: type[BaseModel], name: str | None, cause: Any) -> str:
    from .models import FIELD_ACCEPTED, OBJECT_ACCEPTED

    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_field(model)
    if name is None or name not in model.model_fields:
        return f"accepted: {OBJECT_ACCEPTED[model]}"
    if kind == "missing":
        return _required(model, name)
    if kind == "value_error" and isinstance(cause, ValueError) and not isinstance(cause, RuleFieldErrors):
        return cause.message if isinstance(cause, RuleFieldError) else str(cause)
    return f"accepted: {FIELD_ACCEPTED[model][name]}"


def _unknown_field(model: type[BaseModel]) -> str:
    return f"unknown field; accepted: {', '.join(model.model_fields)}"


def _required(model: type[BaseModel], name: str) -> str:
    from .models import FIELD_ACCEPTED

    return f"required field is missing; accepted: {FIELD_ACCEPTED[model][name]}"


class _Absent:
    def __repr__(self) -> str:
        return "(missing)"


_ABSENT: Any = _Absent()
_MISSING = "(missing)"


def _dig(value: Any, path: Loc) -> Any:
    # The value at ``path`` in the YAML as written; _ABSENT when it is not there.
    from .._internal.yamlfile import dig

    return dig(value, path, _ABSENT)


def _shown_at(raw: dict[str, Any], field_loc: Loc, error: Any) -> str:
    if error["type"] == "missing":
        return _MISSING
    value = _dig(raw, field_loc)
    return _MISSING if value is _ABSENT else _shown(value)


def _shown(value: Any) -> str:
    """A value as the file wrote it, short: YAML flow style, never a Python repr."""
    from .._internal.yamlfile import shown

    return _MISSING if value is _ABSENT else shown(value)


def _check_overrides(checked: _Checked, environ: Mapping[str, str]) -> dict[str, float]:
    """Check every B2B_OTEL_RULE_<ID>_THRESHOLD of ``environ`` against the rules as written.

    Returns the checked thresholds by rule id; the problems go to ``checked``. Skipped when the YAML
    itself is unusable (there are no rule ids to check against).
    """
    if checked.fatal:
        return {}
    rules = checked.data.get("rules") if isinstance(checked.data, dict) else None
    by_variable: dict[str, tuple[str, Any, int]] = {}  # variable -> rule id, raw kind, index
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        if not isinstance(rule_id, str):
            continue
        variable = override_variable(rule_id)
        other = by_variable.get(variable)
        if other is not None and other[0] != rule_id:
            # Ids differing only in '.' versus '_' would share one override variable.
            checked.add(
                ("rules", index, "id"),
                rule_id,
                f"shares the override variable {variable} with rules[{other[2]}] ({other[0]}); "
                "accepted: ids that differ in more than '.' versus '_'",
            )
        by_variable.setdefault(variable, (rule_id, rule.get("kind"), index))
    thresholds: dict[str, float] = {}
    for variable in sorted(environ):
        if not (variable.startswith(OVERRIDE_PREFIX) and variable.endswith(OVERRIDE_SUFFIX)):
            continue
        value = environ[variable]
        target = by_variable.get(variable)
        if target is None:
            checked.add_variable(
                Problem(
                    variable,
                    value,
                    f"no rule has this id in {checked.source}; accepted: B2B_OTEL_RULE_<RULE_ID>_THRESHOLD "
                    "for a rule id of the rules file, upper-cased with '.' as '_'",
                )
            )
            continue
        rule_id, kind, index = target
        if not isinstance(kind, str) or kind not in get_args(semconv.RuleKind):
            continue  # the rule's kind is wrong: that problem is reported at its line
        try:
            thresholds[rule_id] = _override_threshold(kind, value)
        except ValueError as exc:
            from .._internal.yamlfile import line_of

            line = line_of(checked.root, ("rules", index))
            checked.add_variable(Problem(variable, value, f"{exc} (rule {rule_id}, {checked.source}:{line})"))
    return thresholds


def _override_threshold(kind: str, value: str) -> float:
    if kind == semconv.RuleKindValues.EVENT:
        raise ValueError("an event rule has no threshold; accepted: no override for it")
    if kind == semconv.RuleKindValues.LATENCY:
        return check_threshold(kind, value.strip())
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"not a number; accepted: {NUMBER_ACCEPTED}") from None
    return check_threshold(kind, number)

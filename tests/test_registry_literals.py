"""No module of ``b2b_otel/`` spells a name of the outside world as a string literal.

Every attribute key and value, event, metric and rule name, span name, resource key, scope and other
fixed name is written once, in the registry (``docs/semconv``), and reaches the code as a constant of
the generated ``b2b_otel.semconv``. This test parses every module but the generated one and fails on a
string constant (f-string parts and dict keys included) that is a registry name, naming the constant to
use instead. String statements (docstrings, attribute docs) and ``__all__`` entries (names of Python
objects) are not code and are not read.

Which strings count (exact, case-sensitive match of the whole string or f-string part):

- **Names** count wherever they are written: every registry name that is not a plain word, i.e. that
  has a dot, underscore, dash or space in it (``b2b.rule.id``, ``service.name``, ``window_evicted``,
  ``b2b_otel.derived``, the ``"alert "`` of the span name ``alert {rule_id}``), and every value of the
  registry's ``name`` groups.
- **Plain words** (only letters: ``rules``, ``logs``, ``critical``, ``latency``, ``state``, ``signal``)
  are also ordinary English and field names of files and snapshots (``event``, ``state``, ``rules:``).
  Such a word counts where the code says which attribute (or which rule kind) it is a value of:

  1. as the value of a dict entry whose key is that attribute (``{"signal": "rules"}``,
     ``{sc.SIGNAL: "rules"}``), or as a key of such a dict next to another registry key;
  2. as the value of a keyword argument, parameter default or assignment named like the attribute's last
     segment (``reason="shutdown"``, ``scope: str = "process"``, ``kind=...`` for rule kinds);
  3. compared with an expression named like it (``rule.kind == "latency"``, ``record.severity ==
     "critical"``, ``signal in ("traces", "logs")``);
  4. in a tuple, list or set, or as the keys of a dict, whose strings are all values of one attribute
     and are at least two (``("idle", "used")``, ``{"critical": ..., "warning": ...}``).

  Elsewhere a plain word is left alone: ``"event"`` as a JSON field, a ``"state"`` entry of a health
  snapshot, ``"failure"`` among the field names of the rules file.

What is reported anyway but is not the registry name is listed in :data:`ALLOWED`, each entry scoped to
one module and one function, class attribute or module constant (so the same literal elsewhere is still
caught) and giving the reason. An entry that no longer matches anything fails the test too, so that the
list shrinks when the code changes.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "b2b_otel"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load("_gen_semconv_for_literal_scan", REPO / "scripts" / "gen_semconv.py")
semconv = _load("_semconv_for_literal_scan", PACKAGE / "semconv.py")

# (module relative to the repository, scope, literal) -> why the literal is not the registry name.
# The scope is the dotted path of the enclosing classes and functions, or the module-level or class-level
# name being assigned; "<module>" for other module-level code.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("b2b_otel/audit_trail/record.py", "AuditRecorder._emit", "audit "): (
        "the first word of the audit log record's human-readable body"
    ),
    ("b2b_otel/distro.py", "B2BOtelDistro._configure", "b2b_otel"): (
        "the opentelemetry_configurator entry point's name (pyproject.toml)"
    ),
    ("b2b_otel/cli.py", "build_parser", "b2b-otel"): "the console script's name",
}

# Literals that are the registry names, left in a module someone else is changing at the time of writing:
# replace each with the constant the failure names and delete its entry (a stale entry fails the test).
NOT_YET_REPLACED: dict[tuple[str, str, str], str] = {}


# --- the registry's names --------------------------------------------------------------------------

_PLAIN = re.compile(r"[a-z]+")
RULE_KIND = "<rule kind>"


@dataclass(frozen=True)
class Owner:
    """What a plain word is a value of: an attribute (``key``) or the rule kinds, and how code names it."""

    key: str
    word: str  # the last segment of the key: ``severity`` for b2b.alert.severity; ``kind`` for rule kinds


@dataclass(frozen=True)
class Registry:
    spellings: dict[str, tuple[str, ...]]  # every registry name -> how to write it instead
    names: frozenset[str]  # the literals that count wherever they are written
    owners: dict[str, frozenset[Owner]]  # plain words -> what they are values of
    keys: frozenset[str]  # attribute keys


@cache
def registry() -> Registry:
    loaded = gen.load_registry()
    spellings: dict[str, list[str]] = {}
    names: set[str] = set()
    owners: dict[str, set[Owner]] = {}

    def add(value: Any, spelling: str, owner: Owner | None = None, always: bool = False) -> None:
        if not isinstance(value, str) or not value.strip():
            return
        spellings.setdefault(value, []).append(f"semconv.{spelling}")
        if always or not _PLAIN.fullmatch(value):
            names.add(value)
        elif owner is not None:
            owners.setdefault(value, set()).add(owner)

    for attribute in loaded.attributes.values():
        owner = Owner(attribute.id, attribute.id.rsplit(".", 1)[-1])
        add(attribute.id, gen.const_name(attribute.id), owner)
        for member in attribute.members:
            add(member.value, f"{gen.class_name(attribute.id)}Values.{gen.const_name(member.id)}", owner)
    for event in loaded.events:
        add(event.name, "EVENT_" + gen.const_name(event.name), always=True)
    for metric in loaded.metrics:
        add(metric.name, "METRIC_" + gen.const_name(metric.name), always=True)
    for kind in loaded.rule_kinds:
        add(kind.id, "RuleKindValues." + gen.const_name(kind.id), Owner(RULE_KIND, "kind"))
    for rule in loaded.rules:
        add(rule.id, "RULE_" + gen.const_name(rule.id), always=True)
    for name in loaded.names:
        add(name.value, name.constant, always=True)
    for span in loaded.spans:
        key = gen.const_name(span.key)
        if not span.params:
            add(span.name, f"SPAN_{key}_NAME", Owner("<span name>", "name"))
            continue
        add(span.name, f"SPAN_{key}_NAME_PATTERN", always=True)
        for part in re.split(r"\{[a-z_]+\}", span.name):
            add(part, f"{span.key}_span_name(...)", always=True)
    return Registry(
        spellings={value: tuple(dict.fromkeys(found)) for value, found in spellings.items()},
        names=frozenset(names),
        owners={word: frozenset(found) for word, found in owners.items()},
        keys=frozenset(loaded.attributes),
    )


# --- the scan --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A string constant of a module: where it is and what it says."""

    path: str
    line: int
    scope: str
    value: str


def _is_documentation(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _assigned_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        return None
    names = [t.id for t in targets if isinstance(t, ast.Name)]
    return names[0] if len(names) == 1 else None


def _string(node: ast.AST | None) -> str | None:
    """The string an expression stands for: a constant, or a ``semconv``/``sc`` constant the generated
    module defines (``sc.SIGNAL``, ``sc.SignalValues.RULES``); None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    path: list[str] = []
    while isinstance(node, ast.Attribute):
        path.insert(0, node.attr)
        node = node.value
    if not (isinstance(node, ast.Name) and node.id in ("sc", "semconv") and path):
        return None
    value: Any = semconv
    for part in path:
        value = getattr(value, part, None)
    return value if isinstance(value, str) else None


def _tail_name(node: ast.AST) -> str | None:
    """The name an expression ends in: ``rule.kind`` -> kind, ``signal`` -> signal."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


class _Context:
    """Decides whether a plain word stands where the code says which attribute it is a value of."""

    def __init__(self, tree: ast.AST, reg: Registry) -> None:
        self.reg = reg
        self.parent: dict[int, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node

    def _owners(self, word: str) -> frozenset[Owner]:
        return self.reg.owners.get(word, frozenset())

    def _named(self, name: str | None, word: str) -> bool:
        return name is not None and any(name.lower() == o.word for o in self._owners(word))

    def _one_owner(self, strings: list[str | None]) -> bool:
        if len(strings) < 2 or any(s is None for s in strings):
            return False
        common = set(self._owners(strings[0] or ""))
        for s in strings[1:]:
            common &= self._owners(s or "")
        return bool(common)

    def counts(self, node: ast.Constant) -> bool:
        word = node.value
        parent = self.parent.get(id(node))
        if isinstance(parent, ast.Dict):
            return self._in_dict(node, parent)
        holder: ast.AST = node
        if isinstance(parent, (ast.Tuple, ast.List, ast.Set)):
            strings = [_string(e) for e in parent.elts if isinstance(e, (ast.Constant, ast.Attribute))]
            if len(strings) == len(parent.elts) and self._one_owner(strings):
                return True
            holder, parent = parent, self.parent.get(id(parent))
        if isinstance(parent, ast.keyword):
            return self._named(parent.arg, word)
        if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is holder:
            return self._named(_assigned_name(parent), word)
        if isinstance(parent, ast.arguments):
            return self._named(self._parameter_of(holder, parent), word)
        if isinstance(parent, ast.Compare):
            others = [parent.left, *parent.comparators]
            return any(self._named(_tail_name(o), word) for o in others if o is not holder)
        return False

    def _in_dict(self, node: ast.Constant, parent: ast.Dict) -> bool:
        word = node.value
        keys = [_string(k) for k in parent.keys]
        if node in parent.values:
            key = keys[parent.values.index(node)]
            return key is not None and any(o.key == key for o in self._owners(word))
        index = next(i for i, k in enumerate(parent.keys) if k is node)
        if word in self.reg.keys:  # a plain attribute key: its value, or a sibling key, says so
            value = _string(parent.values[index])
            if value is not None and any(o.key == word for o in self._owners(value)):
                return True
            if any(k in self.reg.keys and k != word for k in keys if k is not None):
                return True
        return self._one_owner(keys)

    @staticmethod
    def _parameter_of(default: ast.AST, arguments: ast.arguments) -> str | None:
        positional = arguments.posonlyargs + arguments.args
        for arg, value in zip(
            positional[len(positional) - len(arguments.defaults) :], arguments.defaults, strict=True
        ):
            if value is default:
                return arg.arg
        for arg, kw_value in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
            if kw_value is default:
                return arg.arg
        return None


def literals(tree: ast.Module, path: str) -> Iterator[tuple[Literal, ast.Constant]]:
    """Every string constant of a parsed module that is code, not documentation, with its scope."""

    def visit(node: ast.AST, scope: tuple[str, ...], top: bool) -> Iterator[tuple[Literal, ast.Constant]]:
        if _is_documentation(node):
            return
        inner, inner_top = scope, False
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner, inner_top = (*scope, node.name), isinstance(node, ast.ClassDef)
        elif isinstance(node, ast.Module):
            inner_top = True
        elif top and (name := _assigned_name(node)) is not None:
            if name == "__all__":
                return  # the names of Python objects a module exports
            inner = (*scope, name)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield Literal(path, node.lineno, ".".join(scope) or "<module>", node.value), node
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inner, inner_top)

    yield from visit(tree, (), False)


def _is_generated(path: Path) -> bool:
    return path.read_text(encoding="utf-8").startswith(f"# {gen.GENERATED_NOTICE}")


def scanned_modules() -> list[Path]:
    """Every module of the package that is not generated from the registry."""
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not _is_generated(p)]


def hits(source: str, path: str) -> list[tuple[Literal, tuple[str, ...]]]:
    """The literals of ``source`` that count as registry names, with how to write each instead."""
    reg = registry()
    tree = ast.parse(source, path)
    context = _Context(tree, reg)
    found = []
    for lit, node in literals(tree, path):
        if lit.value in reg.names or (lit.value in reg.owners and context.counts(node)):
            found.append((lit, reg.spellings[lit.value]))
    return found


@cache
def package_hits() -> tuple[tuple[Literal, tuple[str, ...]], ...]:
    found = []
    for path in scanned_modules():
        found += hits(path.read_text(encoding="utf-8"), path.relative_to(REPO).as_posix())
    return tuple(found)


# --- the tests -------------------------------------------------------------------------------------


def test_no_module_spells_a_registry_name_as_a_literal() -> None:
    bad = [
        f"{lit.path}:{lit.line}: {lit.value!r} -> use {' or '.join(spellings)}"
        for lit, spellings in package_hits()
        if (lit.path, lit.scope, lit.value) not in ALLOWED | NOT_YET_REPLACED
    ]
    assert bad == [], (
        "string literals that are registry names (if one means something else there, add "
        "(path, scope, literal) and the reason to ALLOWED):\n" + "\n".join(bad)
    )


def test_every_allowed_literal_is_still_there() -> None:
    seen = {(lit.path, lit.scope, lit.value) for lit, _ in package_hits()}
    assert sorted(set(ALLOWED) - seen) == [], "remove these entries from ALLOWED"
    assert sorted(set(NOT_YET_REPLACED) - seen) == [], "replaced: remove these entries from NOT_YET_REPLACED"


def test_the_generated_module_is_the_only_one_left_out() -> None:
    every = set(PACKAGE.rglob("*.py"))
    assert every - set(scanned_modules()) == {PACKAGE / "semconv.py"}


def _scan(code: str) -> list[tuple[int, str, str]]:
    return [(lit.line, lit.scope, lit.value) for lit, _ in hits(textwrap.dedent(code), "example.py")]


def test_names_count_wherever_they_are_written() -> None:
    code = """
        def fire(rule_id, count):
            record(attributes={"b2b.rule.id": rule_id})
            drop("window_evicted", count)
            tracer = provider.get_tracer("b2b_otel.derived")
            span = tracer.start_span(f"alert {rule_id}")
            resource = {"service.name": "checkout"}
            return "alert " + rule_id
    """
    assert _scan(code) == [
        (3, "fire", "b2b.rule.id"),
        (4, "fire", "window_evicted"),
        (5, "fire", "b2b_otel.derived"),
        (6, "fire", "alert "),
        (7, "fire", "service.name"),
        (8, "fire", "alert "),
    ]


def test_plain_words_count_where_the_code_says_what_they_are_values_of() -> None:
    code = """
        DROPPED = {"signal": "rules"}
        ALSO = {sc.SIGNAL: "rules", "reason": reason}
        PUSHED = ("critical", "warning")
        LEVELS = {"critical": "CRITICAL", "info": "INFO"}

        def build(firing, scope="process"):
            count(1, reason="shutdown")
            if firing.rule.kind == "latency" or signal in ("traces", "logs"):
                state = "idle"
    """
    assert _scan(code) == [
        (2, "DROPPED", "signal"),
        (2, "DROPPED", "rules"),
        (3, "ALSO", "reason"),
        (3, "ALSO", "rules"),
        (4, "PUSHED", "critical"),
        (4, "PUSHED", "warning"),
        (5, "LEVELS", "critical"),
        (5, "LEVELS", "info"),
        (7, "build", "process"),
        (8, "build", "shutdown"),
        (9, "build", "latency"),
        (9, "build", "traces"),
        (9, "build", "logs"),
        (10, "build", "idle"),
    ]


def test_plain_words_that_are_not_telemetry_are_left_alone() -> None:
    code = """
        FIELDS = ("seq", "ts", "outcome", "details")
        REQUIRED = {"ratio": ("threshold", "failure")}
        WORDS = frozenset({"count", "ratio", "token", "max"})

        def line(record, loc):
            snapshot = {"state": "writable", "rules": len(rules), "event": record.code}
            if loc[0] == "rules" or info.instrument == "gauge":
                run(work, timeout_s, "shutdown")
            log_dir = "logs"
    """
    assert _scan(code) == []


def test_the_scan_says_which_constant_to_use() -> None:
    (found,) = hits('reason = "window_evicted"\n', "example.py")
    assert found[1] == ("semconv.ReasonValues.WINDOW_EVICTED",)
    (found,) = hits('prefix = f"alert {rule}"\n', "example.py")
    assert found[1] == ("semconv.alert_span_name(...)",)
    (found,) = hits('action = {sc.B2B_SECURITY_ACTION: "login"}\n', "example.py")
    assert set(found[1]) == {"semconv.B2bSecurityActionValues.LOGIN", "semconv.SPAN_LOGIN_NAME"}


def test_the_scan_leaves_documentation_and_exported_names_alone() -> None:
    code = '''
        """Module doc naming b2b.rule.id."""

        __all__ = ["b2b.derived", "shutdown"]

        class Sink:
            """Counts b2b.telemetry.dropped."""

            name: str
            """Short name, e.g. `b2b_otel.derived`."""

            def write(self, record):
                """Takes a b2b.sla.breach record."""
                return f"{record.operation} {record.tier}: ok"
    '''
    assert _scan(code) == []


def test_scopes_name_the_enclosing_function_and_the_assigned_constant() -> None:
    code = """
        SIGNALS = ("traces", "metrics")
        "b2b.rule.id"

        class Settings:
            service: str = "service.name"

            def check(self):
                return self.kind == "latency"
    """
    assert _scan(code) == [
        (2, "SIGNALS", "traces"),
        (2, "SIGNALS", "metrics"),
        (6, "Settings.service", "service.name"),
        (9, "Settings.check", "latency"),
    ]

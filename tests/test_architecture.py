"""The package's layers hold: no import goes up a layer, no two packages import each other.

Every module of ``b2b_otel/`` is parsed with :mod:`ast` and every import in it is collected: at
module level, inside functions and methods, under ``if TYPE_CHECKING:``, and constant-string
``importlib.import_module(...)`` calls. Relative imports are resolved against the importing module.
Each module belongs to exactly one unit of :data:`LAYERS` (a package such as ``b2b_otel.derive`` or a
single module such as ``b2b_otel.security``); the checker fails on

- an import of a unit in a higher layer (a unit may import its own modules and any unit of its own
  layer or below);
- a cycle between units, found by a search of the unit-level import graph (so same-layer imports
  are allowed only one way round);
- a module in no unit (a new package or top-level module must be placed in :data:`LAYERS` on purpose);
- an import of the repository's own folders (``examples``, ``tests``...), which a wheel does not ship.

The layers and the reasoning behind them are drawn in ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "b2b_otel"

# The one table of layers, lowest first: (what the layer is, the units in it). Keep docs/architecture.md
# in step when this changes.
Layers = Sequence[tuple[str, Sequence[str]]]
LAYERS: Layers = (
    ("leaves", ("b2b_otel._version", "b2b_otel.semconv", "b2b_otel._internal")),
    ("scrubbing, rules, LLM calls, instrumentation API, security", (
        "b2b_otel.scrub", "b2b_otel.rules", "b2b_otel.llm", "b2b_otel.api", "b2b_otel.security",
    )),
    ("audit trail", ("b2b_otel.audit_trail",)),
    ("derivation pipeline", ("b2b_otel.derive",)),
    ("sinks and exporters", ("b2b_otel.sinks", "b2b_otel.export")),
    ("composition root", ("b2b_otel.setup",)),
    ("entry points", ("b2b_otel", "b2b_otel.cli", "b2b_otel.distro")),
)  # fmt: skip

# Top-level folders of the repository that are not part of the installed package.
REPOSITORY_ONLY = ("examples", "tests", "benchmarks", "scripts")


# --- collecting imports ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """One source file of the package."""

    name: str  # dotted, e.g. b2b_otel.api.spans; a package's __init__ is the package's name
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Import:
    """One module an import statement brings in: ``target`` is dotted and absolute."""

    module: Module
    line: int
    statement: str
    target: str


def find_modules(root: Path, package: str) -> dict[str, Module]:
    """Every ``.py`` file under ``root/package``, by dotted module name."""
    modules: dict[str, Module] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        modules[name] = Module(name, path, is_package)
    return modules


def where(module: Module, line: int, root: Path) -> str:
    """``b2b_otel/api/spans.py:25``: how every message names a place."""
    return f"{module.path.relative_to(root)}:{line}"


def _base_of(module: Module, level: int) -> str | None:
    """The package a relative import of ``level`` dots starts from; None when it leaves the top."""
    parts = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    if level - 1 >= len(parts):
        return None
    return ".".join(parts[: len(parts) - (level - 1)])


def _dynamic_target(node: ast.Call) -> str | None:
    """The constant module name of ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports_of(module: Module, modules: dict[str, Module], root: Path) -> tuple[list[Import], list[str]]:
    """Every import anywhere in ``module`` (resolved), and the problems met while resolving them."""
    found: list[Import] = []
    problems: list[str] = []
    source = module.path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(module.path))
    except SyntaxError as exc:
        return [], [f"{where(module, exc.lineno or 1, root)}: cannot parse: {exc.msg}"]

    def add(node: ast.AST, target: str) -> None:
        line = getattr(node, "lineno", 1)
        found.append(Import(module, line, ast.unparse(node), target))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _base_of(module, node.level)
                if base is None:
                    problems.append(
                        f"{where(module, node.lineno, root)}: `{ast.unparse(node)}` "
                        "goes above the top-level package"
                    )
                    continue
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            targets: dict[str, None] = {}
            for alias in node.names:
                # `from pkg import name`: the submodule pkg.name when there is one, else pkg itself.
                submodule = f"{origin}.{alias.name}"
                targets[submodule if alias.name != "*" and submodule in modules else origin] = None
            for target in targets:
                add(node, target)
        elif isinstance(node, ast.Call):
            dynamic = _dynamic_target(node)
            if dynamic is not None and dynamic.startswith("."):
                problems.append(
                    f"{where(module, node.lineno, root)}: `{ast.unparse(node)}` is a relative dynamic "
                    "import this check cannot place; import the module by its absolute name"
                )
            elif dynamic is not None:
                add(node, dynamic)
    found.sort(key=lambda imp: imp.line)  # ast.walk is breadth first; report the first import in a file
    return found, problems


# --- the checks --------------------------------------------------------------------------------------


def unit_of(module: str, units: Sequence[str], package: str) -> str | None:
    """The unit of LAYERS that ``module`` belongs to (the top-level package holds only its __init__)."""
    best: str | None = None
    for unit in units:
        inside = module.startswith(unit + ".") and unit != package
        if (module == unit or inside) and (best is None or len(unit) > len(best)):
            best = unit
    return best


def _strongly_connected(graph: dict[str, dict[str, Import]]) -> Iterator[list[str]]:
    """Tarjan's algorithm: the strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, {})):
            if successor not in index:
                yield from visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def _shortest_path(
    graph: dict[str, dict[str, Import]], start: str, goal: str, members: set[str]
) -> list[str]:
    """A shortest path start -> ... -> goal inside one strongly connected component (breadth first)."""
    came_from: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [goal]
            while path[-1] != start:
                path.append(came_from[path[-1]])
            return path[::-1]
        for successor in sorted(graph.get(node, {})):
            if successor in members and successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    raise AssertionError(f"{goal} and {start} share a component, yet no path leads from one to the other")


def _cycles(graph: dict[str, dict[str, Import]]) -> Iterator[list[str]]:
    """Cycles that together use every edge lying on some cycle: a -> b closed by a shortest b -> a."""
    for component in _strongly_connected(graph):
        members = set(component)
        covered: set[tuple[str, str]] = set()
        for a in component:
            for b in sorted(graph.get(a, {})):
                if b not in members or (a, b) in covered:
                    continue
                cycle = [a, *_shortest_path(graph, b, a, members)]
                covered.update(pairwise(cycle))
                yield cycle


def check(root: Path, package: str, layers: Layers) -> list[str]:
    """Every violation of the layering of ``root/package``, one message each, naming file:line."""
    modules = find_modules(root, package)
    layer_of = {unit: number for number, (_, units) in enumerate(layers) for unit in units}
    units = list(layer_of)
    problems: list[str] = []

    for number, (_, layer_units) in enumerate(layers):
        for unit in layer_units:
            if unit not in modules:
                problems.append(f"LAYERS: layer {number} names {unit}, which is no module of {package}")
            elif sum(unit in u for _, u in layers) > 1:
                problems.append(f"LAYERS: {unit} is in more than one layer")

    def describe(unit: str) -> str:
        number = layer_of[unit]
        return f"{unit} (layer {number}, {layers[number][0]})"

    graph: dict[str, dict[str, Import]] = {}
    for module in modules.values():
        source_unit = unit_of(module.name, units, package)
        if source_unit is None:
            problems.append(
                f"{module.path.relative_to(root)}:1: module {module.name} is in no layer; "
                "place it in LAYERS (tests/test_architecture.py) and docs/architecture.md"
            )
        found, resolving = imports_of(module, modules, root)
        problems.extend(resolving)
        for imp in found:
            at = f"{where(module, imp.line, root)}: `{imp.statement}`"
            top = imp.target.split(".")[0]
            if top in REPOSITORY_ONLY:
                problems.append(f"{at} imports {imp.target}: the repository's {top}/ is not installed")
                continue
            if top != package:
                continue  # the standard library and third-party packages
            if imp.target not in modules:
                problems.append(f"{at} imports {imp.target}, which is no module of {package}")
                continue
            target_unit = unit_of(imp.target, units, package)
            if source_unit is None or target_unit is None or target_unit == source_unit:
                continue  # an unplaced module is reported once, above
            if layer_of[target_unit] > layer_of[source_unit]:
                problems.append(
                    f"{at} goes up a layer: {describe(source_unit)} imports {describe(target_unit)}"
                )
            graph.setdefault(source_unit, {}).setdefault(target_unit, imp)

    for cycle in _cycles(graph):
        edges = "; ".join(
            f"{where(graph[a][b].module, graph[a][b].line, root)} `{graph[a][b].statement}`"
            for a, b in pairwise(cycle)
        )
        problems.append(f"import cycle between packages: {' -> '.join(cycle)} ({edges})")
    return problems


# --- the tests ---------------------------------------------------------------------------------------


def test_every_import_of_the_package_follows_the_layers() -> None:
    problems = check(REPO, PACKAGE, LAYERS)
    assert not problems, "layering of b2b_otel/ (see docs/architecture.md):\n" + "\n".join(problems)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_reports_an_upward_import_a_cycle_an_unplaced_module_and_a_repository_import(
    tmp_path: Path,
) -> None:
    # toy.low (layer 0) reaches up into toy.high inside a function; toy.a and toy.b (both layer 1)
    # import each other, one way under TYPE_CHECKING; toy.stray is in no layer; toy.high imports
    # the repository's examples.
    _write(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/low.py": "def later():\n    from .high import thing\n    return thing\n",
            "toy/high.py": "import json\nimport examples.demo\nthing = json\n",
            "toy/a/__init__.py": "from ..b import helper\n",
            "toy/b/__init__.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.a import x\nhelper = 1\n"
            ),
            "toy/stray.py": "import json\n",
        },
    )
    layers: Layers = (("low", ("toy.low",)), ("middle", ("toy.a", "toy.b")), ("top", ("toy", "toy.high")))

    problems = check(tmp_path, "toy", layers)

    def reported(*parts: str) -> bool:
        return any(all(part in problem for part in parts) for problem in problems)

    assert reported("toy/low.py:2", "from .high import thing", "goes up a layer"), problems
    cycle = (
        "import cycle between packages",
        "toy.a -> toy.b -> toy.a",
        "toy/a/__init__.py:1",
        "toy/b/__init__.py:3",
    )
    assert reported(*cycle), problems
    assert reported("toy/stray.py:1", "toy.stray is in no layer"), problems
    assert reported("toy/high.py:2", "import examples.demo", "not installed"), problems
    assert len(problems) == 4, problems


def test_the_checker_passes_a_package_that_follows_its_layers(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "toy/__init__.py": "from .high import thing\n",
            "toy/low.py": "import json\nVALUE = json.dumps(1)\n",
            "toy/high.py": "from .low import VALUE as thing\nfrom toy import low\n",
        },
    )
    layers: Layers = (("low", ("toy.low",)), ("top", ("toy", "toy.high")))

    assert check(tmp_path, "toy", layers) == []

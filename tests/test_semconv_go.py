"""The Go names of the collector connector come from the registry, never from string literals.

scripts/gen_semconv.py writes the Go package semconv of the b2bderive connector from docs/semconv
(rendered by scripts/semconv_go.py). These tests keep that file current and hold the connector's Go
code to it: a registry name written as a literal in a hand-written Go file fails here with its
file and line.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CONNECTORS = REPO / "collector" / "connector"
# Go's convention for generated files (https://go.dev/s/generatedcode), before the package clause.
GENERATED = re.compile(r"^// Code generated .* DO NOT EDIT\.$", re.M)


def _load_by_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_by_path("_gen_semconv_for_go", REPO / "scripts" / "gen_semconv.py")
semconv_go = gen.semconv_go


@pytest.fixture(scope="module")
def registry() -> Any:
    return gen.load_registry()


def _registry_names(registry: Any) -> set[str]:
    """The names a Go literal must not spell: attribute keys, metric and event names, rule ids."""
    return (
        set(registry.attributes)
        | {m.name for m in registry.metrics}
        | {e.name for e in registry.events}
        | {r.id for r in registry.rules}
    )


# --------------------------------------------------------------------------- Go string literals


def go_string_literals(source: str) -> Iterator[tuple[int, str]]:
    """(line, value) of every string literal in Go source; comments and rune literals are skipped."""
    i, line, n = 0, 1, len(source)
    while i < n:
        c = source[i]
        if c == "\n":
            line += 1
            i += 1
        elif source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += source.count("\n", i, end)
            i = end
        elif c == "`":
            end = source.find("`", i + 1)
            end = n if end < 0 else end
            yield line, source[i + 1 : end]
            line += source.count("\n", i, end)
            i = end + 1
        elif c in "\"'":
            j = i + 1
            while j < n and source[j] != c and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            if c == '"':
                yield line, _unquote(source[i + 1 : j])
            i = j + 1
        else:
            i += 1


def _unquote(body: str) -> str:
    if "\\" not in body:
        return body
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _is_generated(source: str) -> bool:
    package = re.search(r"^package ", source, re.M)
    return GENERATED.search(source[: package.start() if package else len(source)]) is not None


def _hand_written_go_files() -> list[Path]:
    return sorted(
        path
        for path in CONNECTORS.rglob("*.go")
        if not path.name.endswith("_test.go") and not _is_generated(path.read_text(encoding="utf-8"))
    )


def registry_literals(paths: list[Path], names: set[str]) -> list[str]:
    """``file:line: "name"`` for every string literal in the files that equals a registry name."""
    found = []
    for path in paths:
        for line, value in go_string_literals(path.read_text(encoding="utf-8")):
            if value in names:
                where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
                found.append(f"{where}:{line}: {value!r}")
    return found


# --------------------------------------------------------------------------- tests


def test_generated_go_file_is_what_the_generator_writes_now(registry: Any) -> None:
    path = REPO / semconv_go.GO_PATH
    expected = semconv_go.render_go(registry)
    actual = path.read_text(encoding="utf-8") if path.exists() else ""
    if actual != expected:
        diff = difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"{semconv_go.GO_PATH} (on disk)",
            tofile=f"{semconv_go.GO_PATH} (from registry)",
        )
        pytest.fail("stale; run `python scripts/gen_semconv.py`:\n" + "".join(list(diff)[:80]))


def test_generator_check_mode_covers_the_go_file() -> None:
    assert semconv_go.GO_PATH in gen.render()


@pytest.mark.skipif(shutil.which("gofmt") is None, reason="gofmt not installed")
def test_generated_go_file_is_gofmt_clean(registry: Any) -> None:
    text = semconv_go.render_go(registry)
    formatted = subprocess.run(["gofmt"], input=text, capture_output=True, text=True, check=True).stdout
    assert formatted == text


def test_every_registry_name_has_a_go_constant(registry: Any) -> None:
    text = semconv_go.render_go(registry)
    constants = set(re.findall(r'^const \w+ = "([^"]*)"$', text, re.M))
    assert sorted(_registry_names(registry) - constants) == []
    for attribute in registry.attributes.values():
        for member in attribute.members:
            value = f'"{member.value}"' if isinstance(member.value, str) else str(member.value)
            assert f"= {value}\n" in text, f"{attribute.id} member {member.id}"


def test_connector_go_code_spells_no_registry_name_as_a_literal(registry: Any) -> None:
    paths = _hand_written_go_files()
    assert any(p.name == "connector.go" for p in paths), "the connector's Go files were not found"
    found = registry_literals(paths, _registry_names(registry))
    assert found == [], "use the constants of internal/semconv instead:\n" + "\n".join(found)


def test_literal_scan_finds_code_literals_only(tmp_path: Path) -> None:
    source = tmp_path / "x.go"
    source.write_text(
        "package x\n"
        "\n"
        '// "b2b.rule.id" in a comment is fine\n'
        "/* so is\n"
        '   "b2b.rule.id" here */\n'
        "var quote = '\"'\n"
        'var key = "b2b.rule.id"\n'
        "var tag = `b2b.scope`\n"
        'var text = "b2b.rule.id is the key"\n'
        'var escaped = "b2b\\x2erule.id"\n',
        encoding="utf-8",
    )
    found = registry_literals([source], {"b2b.rule.id", "b2b.scope"})
    assert [f.split(": ", 1)[0].rsplit(":", 1)[1] for f in found] == ["7", "8", "10"]


def test_generated_and_test_files_are_left_out_of_the_scan() -> None:
    assert _is_generated("// Code generated by mdatagen. DO NOT EDIT.\n\npackage metadata\n")
    assert not _is_generated("package x\n\n// Code generated by mdatagen. DO NOT EDIT.\n")
    assert all(not p.name.endswith("_test.go") for p in _hand_written_go_files())
    assert REPO / semconv_go.GO_PATH not in _hand_written_go_files()

"""The YAML examples of the documentation still work: every rules file in docs/ passes ``rules check``.

A rules file is any YAML example (a ```yaml block of a page, or a ``.yaml`` file directly in docs/)
with top-level ``version`` and ``rules`` keys; the other blocks (fragments of one rule, collector
configuration) must at least be YAML. Each rules file is checked by the installed ``b2b-otel``
command, as a user would run it, with no threshold override in the environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCS = Path(__file__).resolve().parents[1] / "docs"
_BLOCK = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    """(where, text) of every YAML example: fenced blocks of docs/*.md and docs/*.yaml files."""
    found: list[tuple[str, str]] = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.name}:{line}", match.group(1)))
    for path in sorted(DOCS.glob("*.yaml")):
        found.append((path.name, path.read_text(encoding="utf-8")))
    return found


def _is_rules_file(text: str) -> bool:
    document = yaml.safe_load(text)
    return isinstance(document, dict) and "version" in document and "rules" in document


EXAMPLES = _examples()
RULES_FILES = [(where, text) for where, text in EXAMPLES if _is_rules_file(text)]


def test_the_docs_hold_rules_file_examples_and_the_worked_example_is_among_them() -> None:
    assert "custom-rules.yaml" in [where for where, _ in RULES_FILES]
    assert len(RULES_FILES) >= 2, RULES_FILES


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_every_yaml_example_of_the_docs_is_yaml(where: str, text: str) -> None:
    yaml.safe_load(text)


@pytest.mark.parametrize(("where", "text"), RULES_FILES, ids=[where for where, _ in RULES_FILES])
def test_every_rules_file_example_of_the_docs_passes_rules_check(
    where: str, text: str, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("B2B_OTEL_RULE_")}
    done = subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "rules", "check", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, f"{where}: rules check failed\n{done.stdout}{done.stderr}"
    assert done.stdout.startswith("OK: "), done.stdout

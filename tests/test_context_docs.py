"""The ``>>>`` examples of docs/context.md run and say what the code does."""

from __future__ import annotations

import doctest
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "context.md"


def test_the_examples_of_the_context_page_run() -> None:
    result = doctest.testfile(str(PAGE), module_relative=False, verbose=False, report=True)
    assert result.attempted >= 5
    assert result.failed == 0


def test_the_page_documents_the_setting_and_the_keys() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for name in ("B2B_OTEL_TRUST_INCOMING_CONTEXT", "b2b.tenant.id", "user.id", "session.id", "_INVALID"):
        assert name in text, name

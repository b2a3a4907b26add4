"""Shared fixtures; every test also checks that it left no span current."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace

pytest_plugins = ["tests.support.fixtures", "tests.support.alertmanager"]


@pytest.fixture(autouse=True)
def no_span_left_current() -> Iterator[None]:
    """A test that leaves a span attached would leak it as the parent of the next test's spans."""
    yield
    current = trace.get_current_span()
    assert not current.get_span_context().is_valid, f"a span was left current: {current}"

"""Shared pytest fixtures; load with ``pytest_plugins = ["tests.support.fixtures"]``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.otlp_receiver import OTLPReceiver
from tests.support.postgres import pg_url

__all__ = ["otlp_receiver", "pg_url"]


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    """A started OTLP receiver (HTTP + gRPC on 127.0.0.1), stopped after the test."""
    with OTLPReceiver() as receiver:
        yield receiver

"""Database metrics against a real PostgreSQL: pool connections and client operation duration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool

import b2b_otel
from tests.support.capture import Capture, install_capture
from tests.support.otel_globals import reset_otel_globals


@pytest.fixture
def capture() -> Iterator[Capture]:
    yield install_capture()
    reset_otel_globals()


def test_registered_pool_reports_used_idle_and_max_connections(capture: Capture, pg_url: str) -> None:
    with ConnectionPool(pg_url, min_size=2, max_size=4, name="episodic", open=True) as pool:
        pool.wait(timeout=10)
        b2b_otel.register_pool(pool)
        with pool.connection():
            counts = {
                dict(p.attributes)["state"]: p.value
                for p in capture.points("db.client.connection.count")
                if dict(p.attributes)["db.client.connection.pool.name"] == "episodic"
            }
            assert counts == {"used": 1, "idle": 1}
        (maximum,) = [
            p
            for p in capture.points("db.client.connection.max")
            if p.attributes["db.client.connection.pool.name"] == "episodic"
        ]
        assert maximum.value == 4

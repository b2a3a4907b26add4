"""PostgreSQL for the test suite: a session fixture that yields a reachable connection URL.

The database tests are required, so an unreachable server is a test *failure* with a clear
message, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

PG_URL_ENV = "B2B_OTEL_TEST_PG_URL"
REPO_ROOT = Path(__file__).resolve().parents[2]
PG_SCRIPT = REPO_ROOT / "scripts" / "pg.sh"
# Generous: on a fresh machine `pg.sh start` may first apt-get install PostgreSQL.
_START_TIMEOUT_S = 900.0
_CONNECT_TIMEOUT_S = 15.0


def _run_pg_script(command: str, timeout_s: float) -> str:
    """Run ``scripts/pg.sh COMMAND`` and return its stdout; fail the test run on error."""
    try:
        proc = subprocess.run(
            ["bash", str(PG_SCRIPT), command],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{PG_SCRIPT} {command}` did not finish within {timeout_s:g}s: {exc}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"`{PG_SCRIPT} {command}` failed with exit code {proc.returncode}; PostgreSQL is required "
            f"for these tests (set {PG_URL_ENV} to use an existing server).\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout


def _check_reachable(url: str, timeout_s: float = _CONNECT_TIMEOUT_S) -> None:
    """Connect and run ``SELECT 1``, retrying briefly: a server that just started may still refuse."""
    import psycopg  # imported here so that non-database tests never need it

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.Error as exc:
            error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    # Failing outside the except block keeps the report to our message, without a chained traceback.
    pytest.fail(
        f"PostgreSQL at {url} is not reachable after {timeout_s:g}s: {error}\n"
        f"These tests are required. Start it with `bash {PG_SCRIPT} start` "
        f"or point {PG_URL_ENV} at a server you own.",
        pytrace=False,
    )


def ensure_postgres() -> str:
    """Return the URL of a reachable test database, starting our own server if needed."""
    url = os.environ.get(PG_URL_ENV, "").strip()
    if not url:
        _run_pg_script("start", _START_TIMEOUT_S)
        url = _run_pg_script("url", 30.0).strip()
    _check_reachable(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    """libpq URL of the test database (``$B2B_OTEL_TEST_PG_URL`` or the server from ``scripts/pg.sh``)."""
    return ensure_postgres()

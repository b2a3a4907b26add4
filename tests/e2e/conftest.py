"""The end-to-end suite runs against the real local stack (scripts/stack.sh), started once a session.

These tests build two Go binaries on a fresh machine (minutes) and start five servers, so they run
only when asked: B2B_OTEL_TEST_STACK=1 (`make test-e2e` sets it); otherwise they are skipped with that
reason. When asked, a stack that cannot be built or started fails the tests with the script's output.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack_client import REPO, stack_dir

OPT_IN = "B2B_OTEL_TEST_STACK"
# A first build of both binaries takes several minutes on two cores; later runs take seconds.
BUILD_TIMEOUT_S = 45 * 60


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(OPT_IN, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    skip = pytest.mark.skip(reason=f"end-to-end stack tests run with {OPT_IN}=1 (make test-e2e)")
    for item in items:
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(skip)


def _run_stack_script(command: str) -> None:
    try:
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "stack.sh"), command],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"scripts/stack.sh {command} did not finish within {BUILD_TIMEOUT_S}s:\n{expired.stdout}")
    if done.returncode != 0:
        pytest.fail(
            f"scripts/stack.sh {command} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def stack_built() -> Path:
    """The binaries in .cache/bin and the Debian packages, built or installed when missing."""
    _run_stack_script("build")
    return REPO / ".cache" / "bin"


@pytest.fixture(scope="session")
def stack(stack_built: Path) -> Path:
    """The running stack (left running afterwards, like PostgreSQL: `make down` stops it); its files' dir."""
    _run_stack_script("up")
    return stack_dir()

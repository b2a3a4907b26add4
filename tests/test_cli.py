"""The installed ``b2b-otel`` command: only commands that work from a wheel."""

from __future__ import annotations

import subprocess
import sys

import pytest

import b2b_otel
from b2b_otel.cli import build_parser, main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"b2b-otel {b2b_otel.__version__}"


def test_the_installed_command_has_no_demo() -> None:
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(commands.choices) == {"config", "rules", "audit"}  # type: ignore[union-attr]


def test_the_demo_is_a_command_of_the_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.b2bvalue", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "python -m examples.b2bvalue demo" in result.stdout


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    # The reader's end of the pipe is closed before the command writes: `b2b-otel rules show | head -0`.
    child = subprocess.Popen(
        [sys.executable, "-m", "b2b_otel.cli", "rules", "show"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr

"""SIGTERM and SIGINT: what was buffered when the signal came is exported, and the application's own
handling (a server framework's graceful shutdown) still runs.

Real processes: a plain script, uvicorn serving an ASGI app, gunicorn serving a WSGI app, each
exporting to a real OTLP receiver with batch delays of an hour, so that only a flush sends anything.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.otlp_receiver import OTLPReceiver

REPO = Path(__file__).resolve().parent.parent
N = 4
HOUR_MS = "3600000"


def app_env(receiver: OTLPReceiver, log_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    env.update(receiver.otel_env())
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "OTEL_BSP_SCHEDULE_DELAY": HOUR_MS,
            "OTEL_BLRP_SCHEDULE_DELAY": HOUR_MS,
            "OTEL_METRIC_EXPORT_INTERVAL": HOUR_MS,
            "B2B_OTEL_INSTRUMENTATIONS": "logging",
            "B2B_OTEL_LOG_DIR": str(log_dir),
            "B2B_OTEL_SHUTDOWN_TIMEOUT": "20s",
        }
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def start(
    processes: list[subprocess.Popen[str]], args: list[str], env: dict[str, str]
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    processes.append(process)
    return process


def wait_for_line(process: subprocess.Popen[str], text: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if text in line:
            return
    raise AssertionError(f"{text!r} never printed; exit {process.wait(30)}: {process.stderr.read()}")  # type: ignore[union-attr]


def get(url: str, timeout_s: float = 60.0) -> None:
    """GET ``url`` once the server is up (connection refused until then)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.status == 200
                return
        except (ConnectionError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def assert_everything_arrived(receiver: OTLPReceiver) -> None:
    """N spans, their N log records, and the N findings judged into security.sensitive_data records."""

    def complete() -> bool:
        spans = [s for s in receiver.spans() if s["name"].startswith("work ")]
        logs = [r for r in receiver.logs() if str(r["body"]).endswith(" done")]
        findings = [
            r for r in receiver.logs() if r["attributes"].get("b2b.rule.id") == "security.sensitive_data"
        ]
        return len(spans) == N and len(logs) == N and len(findings) == N

    receiver.wait_until(complete, timeout=60, what=f"{N} spans, {N} log records and {N} findings")
    spans = [s for s in receiver.spans() if s["name"].startswith("work ")]
    assert not any("hunter2" in str(s["attributes"]) for s in spans)


def assert_nothing_sent_yet(receiver: OTLPReceiver) -> None:
    # The batch delays are an hour: before the signal everything is still buffered in the process.
    assert not [s for s in receiver.spans() if s["name"].startswith("work ")]


def test_sigterm_with_the_default_action_flushes_then_ends_the_process_as_killed(
    otlp_receiver: OTLPReceiver, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    process = start(
        processes,
        [sys.executable, "-m", "tests.apps.lifecycle_app", "plain", str(N)],
        app_env(otlp_receiver, tmp_path),
    )
    wait_for_line(process, "ready")
    assert_nothing_sent_yet(otlp_receiver)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == -signal.SIGTERM  # the default action still ends it, as killed
    assert_everything_arrived(otlp_receiver)


def test_sigint_flushes_and_still_raises_keyboard_interrupt(
    otlp_receiver: OTLPReceiver, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    process = start(
        processes,
        [sys.executable, "-m", "tests.apps.lifecycle_app", "plain", str(N)],
        app_env(otlp_receiver, tmp_path),
    )
    wait_for_line(process, "ready")
    process.send_signal(signal.SIGINT)
    assert process.wait(60) != 0
    assert "KeyboardInterrupt" in (process.stderr.read() if process.stderr else "")
    assert_everything_arrived(otlp_receiver)


def test_the_applications_own_handler_runs_after_the_flush(
    otlp_receiver: OTLPReceiver, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    process = start(
        processes,
        [sys.executable, "-m", "tests.apps.lifecycle_app", "own-handler", str(N)],
        app_env(otlp_receiver, tmp_path),
    )
    wait_for_line(process, "ready")
    process.send_signal(signal.SIGTERM)
    wait_for_line(process, "app handler ran")
    assert process.wait(60) == 3
    assert_everything_arrived(otlp_receiver)


def test_uvicorn_graceful_shutdown_runs_and_the_buffered_telemetry_arrives(
    otlp_receiver: OTLPReceiver, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    process = start(
        processes,
        [sys.executable, "-m", "uvicorn", "tests.apps.lifecycle_app:asgi_app", "--port", str(port)],
        app_env(otlp_receiver, tmp_path),
    )
    get(f"http://127.0.0.1:{port}/work?n={N}")
    assert_nothing_sent_yet(otlp_receiver)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    stderr = process.stderr.read() if process.stderr else ""
    assert "Application shutdown complete" in stderr, stderr  # uvicorn's graceful shutdown ran
    assert_everything_arrived(otlp_receiver)


def test_gunicorn_worker_flushes_on_the_masters_sigterm(
    otlp_receiver: OTLPReceiver, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    process = start(
        processes,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "30",
            "tests.apps.lifecycle_app:wsgi_app",
        ],
        app_env(otlp_receiver, tmp_path),
    )
    get(f"http://127.0.0.1:{port}/work?n={N}")
    assert_nothing_sent_yet(otlp_receiver)
    process.send_signal(signal.SIGTERM)
    assert process.wait(90) == 0
    stderr: Any = process.stderr.read() if process.stderr else ""
    assert "Worker exiting" in stderr, stderr
    assert_everything_arrived(otlp_receiver)

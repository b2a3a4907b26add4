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


# --- telemetry made during the framework's graceful shutdown -----------------------------------------
#
# uvicorn runs the lifespan's shutdown half after the signal, then puts back the handlers it found
# (SIG_DFL) and sends itself the signal again: the process ends without atexit. The application here
# never calls b2b_otel.shutdown().


def assert_lifespan_telemetry_arrived(receiver: OTLPReceiver, processes: int = 1) -> None:
    """The N work spans and logs of before the signal, and the lifespan's span and log of after it."""

    def complete() -> bool:
        names = [s["name"] for s in receiver.spans()]
        bodies = [str(r["body"]) for r in receiver.logs()]
        return (
            len([n for n in names if n.startswith("work ")]) == N
            and names.count("lifespan shutdown") == processes
            and len([b for b in bodies if b.startswith("work ")]) == N
            and bodies.count("lifespan shutdown done") == processes
        )

    receiver.wait_until(complete, timeout=60, what="the work and the lifespan shutdown's span and log")
    shutdown_span = next(s for s in receiver.spans() if s["name"] == "lifespan shutdown")
    assert shutdown_span["attributes"]["app.shutdown.token"] == "[REDACTED:secret_key]"


def lifespan_env(receiver: OTLPReceiver, log_dir: Path, **extra: str) -> dict[str, str]:
    env = app_env(receiver, log_dir)
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("workers", "own_handler"),
    [(1, False), (1, True), (2, False), (2, True)],
    ids=["one-process", "one-process-app-handler", "workers", "workers-app-handler"],
)
def test_uvicorn_lifespan_shutdown_telemetry_arrives_without_an_explicit_shutdown(
    otlp_receiver: OTLPReceiver,
    tmp_path: Path,
    processes: list[subprocess.Popen[str]],
    workers: int,
    own_handler: bool,
) -> None:
    # One process imports the application before uvicorn takes the signals; each of --workers N
    # imports it after (inside uvicorn's signal capture), so b2b_otel's handler then sits in front
    # of uvicorn's and is not the one uvicorn puts back before sending itself the signal again.
    port = free_port()
    env = lifespan_env(otlp_receiver, tmp_path, APP_OWN_HANDLER="1" if own_handler else "0")
    args = [sys.executable, "-m", "uvicorn", "tests.apps.lifespan_app:app", "--port", str(port)]
    process = start(processes, [*args, "--workers", str(workers)], env)
    get(f"http://127.0.0.1:{port}/work?n={N}")
    assert_nothing_sent_yet(otlp_receiver)
    process.send_signal(signal.SIGTERM)
    code = process.wait(60)
    stdout = process.stdout.read() if process.stdout else ""
    stderr = process.stderr.read() if process.stderr else ""
    assert code in (0, -signal.SIGTERM), (code, stderr)
    assert stdout.count("lifespan shutdown finished") == workers, (stdout, stderr)  # not cut short
    assert stderr.count("Application shutdown complete") == workers, stderr
    assert stdout.count("app handler ran") == (workers if own_handler else 0), stdout
    assert_lifespan_telemetry_arrived(otlp_receiver, workers)


def test_uvicorn_worker_under_gunicorn_lifespan_shutdown_telemetry_arrives(
    otlp_receiver: OTLPReceiver, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn.workers")
    port = free_port()
    process = start(
        processes,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "1",
            "--worker-class",
            "uvicorn.workers.UvicornWorker",
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "30",
            "tests.apps.lifespan_app:app",
        ],
        lifespan_env(otlp_receiver, tmp_path),
    )
    get(f"http://127.0.0.1:{port}/work?n={N}")
    assert_nothing_sent_yet(otlp_receiver)
    process.send_signal(signal.SIGTERM)
    assert process.wait(90) == 0
    stdout = process.stdout.read() if process.stdout else ""
    assert "lifespan shutdown finished" in stdout, stdout
    assert_lifespan_telemetry_arrived(otlp_receiver)


def test_sig_dfl_put_back_during_a_shutdown_puts_our_flush_in_front_and_shutdown_undoes_it() -> None:
    # In this process, without sending the final signal: what uvicorn does once its graceful shutdown is
    # over (put back SIG_DFL, then raise the signal again) must meet our handler, not the bare default.
    from b2b_otel.setup.signals import SignalFlush

    builtin = signal.signal
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    flushes: list[bool] = []
    framework: list[int] = []

    def framework_handler(signum: int, frame: Any) -> None:
        framework.append(signum)

    try:
        signal.signal(signal.SIGTERM, framework_handler)
        handlers = SignalFlush(flushes.append, 5.0)
        assert handlers.install() == ["SIGTERM", "SIGINT"]
        # In front of a function, interposed from the start: the signal may have reached that function
        # before ours was installed (a uvicorn worker told to stop while importing the application),
        # so SIG_DFL put back before any signal passed through ours still meets ours.
        assert signal.signal is not builtin
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGTERM) == handlers._handle
        assert handlers._previous[int(signal.SIGTERM)] is signal.SIG_DFL  # a final flush, then the default
        handlers._previous[int(signal.SIGTERM)] = framework_handler

        signal.raise_signal(signal.SIGTERM)
        assert flushes == [False] and framework == [signal.SIGTERM]  # flushed, then the framework's
        assert signal.signal is not builtin
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the framework puts back what it found
        assert signal.getsignal(signal.SIGTERM) == handlers._handle  # ours is in front of it
        signal.signal(signal.SIGINT, signal.default_int_handler)  # anything else passes through
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGTERM) == handlers._handle

        handlers.uninstall()
        assert signal.signal is builtin
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler ours stood in front of
    finally:
        signal.signal = builtin
        for sig, handler in before.items():
            signal.signal(sig, handler)

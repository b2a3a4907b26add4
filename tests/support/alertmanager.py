"""A real Prometheus Alertmanager (Debian package) on a loopback port, for tests."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BINARY_CANDIDATES = ("prometheus-alertmanager", "alertmanager")

CONFIG = """
route:
  receiver: blackhole
  group_by: [alertname]
  group_wait: 1s
receivers:
  - name: blackhole
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Alertmanager:
    """A running Alertmanager; ``alerts()`` reads its API v2."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            data: list[dict[str, Any]] = json.loads(response.read())
        return data

    def wait_for_alerts(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            alerts = self.alerts()
            if len(alerts) >= count:
                return alerts
            time.sleep(0.2)
        raise AssertionError(f"expected {count} alerts in Alertmanager, got {len(alerts)}: {alerts}")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """Starts Alertmanager on a free loopback port; fails (never skips) when it cannot."""
    binary = next((shutil.which(name) for name in BINARY_CANDIDATES if shutil.which(name)), None)
    if binary is None:
        subprocess.run(["bash", "scripts/ensure_debs.sh", "prometheus-alertmanager"], check=True, timeout=600)
        binary = next((shutil.which(name) for name in BINARY_CANDIDATES if shutil.which(name)), None)
    assert binary, (
        "Alertmanager is not installed and could not be installed (package prometheus-alertmanager)"
    )
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG)
    port = _free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"Alertmanager did not start; log:\n{log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    try:
        yield Alertmanager(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()

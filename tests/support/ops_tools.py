"""The operations tools from Debian's packages (promtool, amtool, the servers), installed when missing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tool(name: str, package: str) -> str:
    """The path of ``name``; installs ``package`` (scripts/ensure_debs.sh) when it is missing."""
    found = shutil.which(name)
    if found is None:
        subprocess.run(["bash", str(REPO / "scripts" / "ensure_debs.sh"), package], check=True, timeout=900)
        found = shutil.which(name)
    assert found, f"{name} is not installed and could not be installed (Debian package {package})"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> None:
    """Waits until ``url`` answers; fails with the process's log when it exits or never answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"{url} did not answer; log:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)

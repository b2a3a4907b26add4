"""The application's own logging configuration after ``instrument()``: ``basicConfig()`` still gives it
console output, ``basicConfig(force=True)``, ``dictConfig()`` and ``fileConfig()`` do not cut the logging
bridge off, and each record reaches the backend once. Real processes (a clean ``logging`` module each)
exporting to the real OTLP receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.otlp_receiver import OTLPReceiver

REPO = Path(__file__).resolve().parent.parent

CONFIGURE = {
    "basicConfig": 'logging.basicConfig(level=logging.INFO, format="app| %(levelname)s %(message)s")',
    "basicConfig-force": (
        'logging.basicConfig(level=logging.INFO, format="app| %(levelname)s %(message)s", force=True)'
    ),
    "dictConfig": textwrap.dedent(
        """
        import logging.config
        logging.config.dictConfig({
            "version": 1,
            "formatters": {"plain": {"format": "app| %(levelname)s %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
            "root": {"level": "INFO", "handlers": ["console"]},
        })
        """
    ),
    "fileConfig": textwrap.dedent(
        """
        import logging.config, pathlib, tempfile
        ini = pathlib.Path(tempfile.mkdtemp()) / "logging.ini"
        ini.write_text(
            "[loggers]\\nkeys=root\\n[handlers]\\nkeys=console\\n[formatters]\\nkeys=plain\\n"
            "[logger_root]\\nlevel=INFO\\nhandlers=console\\n"
            "[handler_console]\\nclass=StreamHandler\\nformatter=plain\\nargs=(sys.stderr,)\\n"
            "[formatter_plain]\\nformat=app| %(levelname)s %(message)s\\n"
        )
        logging.config.fileConfig(ini)
        """
    ),
}

SCRIPT = """
import logging, sys
import b2b_otel

telemetry = b2b_otel.instrument(service_name="app-logging")
{configure}
log = logging.getLogger("app.main")
log.info("info from the app %s", "password=Hunter2xyz")
log.warning("warning from the app")
telemetry.shutdown()
"""


def run(receiver: OTLPReceiver, configure: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    env.update(receiver.otel_env())
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "B2B_OTEL_INSTRUMENTATIONS": "logging",
            "B2B_OTEL_LOG_DIR": str(tmp_path),
            "OTEL_METRICS_EXPORTER": "none",
        }
    )
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(configure=configure)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("how", sorted(CONFIGURE))
def test_the_applications_logging_configuration_after_instrument_works_and_keeps_the_bridge(
    otlp_receiver: OTLPReceiver, tmp_path: Path, how: str
) -> None:
    done = run(otlp_receiver, CONFIGURE[how], tmp_path)
    assert done.returncode == 0, done.stderr
    console = [line for line in done.stderr.splitlines() if line.startswith("app| ")]
    # The application's own format, its level (INFO shows), each record once on the console.
    assert console == [
        "app| INFO info from the app password=Hunter2xyz",
        "app| WARNING warning from the app",
    ], done.stderr
    # Still bridged: each record reaches the backend once, scrubbed there.
    bodies = [str(r["body"]) for r in otlp_receiver.logs() if "from the app" in str(r["body"])]
    assert sorted(bodies) == ["info from the app password=[REDACTED:secret_key]", "warning from the app"]


def test_without_a_configuration_warnings_still_reach_stderr_once(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    done = run(otlp_receiver, "", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning from the app") == 1, done.stderr  # Python's last resort, once
    assert "info from the app" not in done.stderr  # below the last resort's level, as without b2b_otel

"""The handle's lifecycle at its edges: shutdown order and bounds, timeouts, the audit trail without
telemetry, health's truth, and an instrument() that fails or is called again."""

from __future__ import annotations

import logging
import math
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import b2b_otel
from b2b_otel._internal import selflog
from b2b_otel.audit_trail.verify import verify
from b2b_otel.setup.libraries import SEMCONV_OPT_IN_VAR
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

QUIET = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}


@pytest.fixture(autouse=True)
def clean_globals(otlp_receiver: OTLPReceiver) -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def findings_logs(receiver: OTLPReceiver) -> list[dict[str, Any]]:
    return [r for r in receiver.logs() if r["attributes"].get("b2b.rule.id") == "security.sensitive_data"]


# --- shutdown order -----------------------------------------------------------------------------------


def test_findings_of_the_last_export_become_records_when_the_app_exits_right_away(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=otlp_receiver.http_endpoint,
        log_dir=str(tmp_path),
        instrumentations="none",
        metric_export_interval="1h",
        bsp_schedule_delay="1h",
    )
    tracer = trace.get_tracer("app")
    for index in range(4):
        with tracer.start_as_current_span(f"charge {index}") as span:
            span.set_attribute(f"app.note_{index}", f"password=hunter2-Pa55word-{index}")
    assert telemetry.shutdown(20)  # no flush first: the findings come out of shutdown's span export
    otlp_receiver.wait_until(lambda: len(findings_logs(otlp_receiver)) == 4, timeout=30, what="4 findings")
    markers = [s for s in otlp_receiver.spans() if s["name"] == "alert security.sensitive_data"]
    assert len(markers) == 4
    security = [line for line in (tmp_path / "security.log").read_text().splitlines() if "sensitive" in line]
    assert len(security) == 4
    events = otlp_receiver.wait_for_metrics(lambda m: any(p["name"] == "b2b.security.events" for p in m))
    assert [p["value"] for p in events if p["name"] == "b2b.security.events"][-1] == 4


def test_what_a_cut_short_shutdown_leaves_queued_is_counted_as_dropped(black_hole: int) -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=f"http://127.0.0.1:{black_hole}",
        bsp_max_export_batch_size=10,
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )
    for index in range(50):
        with trace.get_tracer("app").start_as_current_span(f"work {index}"):
            pass
    assert telemetry.shutdown(1) is False  # the backend never answers: the bound cuts it short
    dropped = telemetry.health()["signals"]["traces"]["dropped"]
    # One batch of 10 hangs in the exporter; what waited behind it is counted, not lost silently.
    assert dropped.get("shutdown", 0) >= 30, dropped


# --- timeouts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["x", None, math.inf, -1, math.nan, True, [1]])
def test_flush_and_shutdown_take_any_timeout_without_raising(bad: Any) -> None:
    telemetry = b2b_otel.instrument(log_dir="none", instrumentations="none", **QUIET)
    assert telemetry.force_flush(bad) is True
    assert telemetry.shutdown(bad) is True


def test_shutdown_without_a_timeout_is_bounded_by_the_shutdown_timeout_setting(
    black_hole: int, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=f"http://127.0.0.1:{black_hole}",
        shutdown_timeout="1s",
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )
    with trace.get_tracer("app").start_as_current_span("work"):
        pass
    selflog.reset()  # an earlier test may have said the same within the minute
    with caplog.at_level(logging.WARNING, logger="b2b_otel"):
        assert telemetry.shutdown() is False  # the exporter's own timeout (10 s) is longer
    assert "shutdown did not finish within 1s" in caplog.text


def test_a_bad_timeout_is_said_in_the_self_log(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = b2b_otel.instrument(log_dir="none", instrumentations="none", **QUIET)
    selflog.reset()  # an earlier test may have said the same within the minute
    with caplog.at_level(logging.WARNING, logger="b2b_otel"):
        telemetry.force_flush("soon")  # type: ignore[arg-type]
    assert "force_flush(timeout_s='soon') is not a finite number" in caplog.text


# --- health -------------------------------------------------------------------------------------------


def test_health_names_the_error_class_of_a_refused_connection() -> None:
    telemetry = b2b_otel.instrument(
        otlp_endpoint=f"http://127.0.0.1:{closed_port()}",
        otlp_timeout="500ms",
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )
    with trace.get_tracer("app").start_as_current_span("work"):
        pass
    telemetry.force_flush(10)
    failure = telemetry.health()["signals"]["traces"]["last_failure"]
    assert failure is not None and failure["error"] == "ConnectionError"


def test_health_names_the_http_status_the_backend_answered(otlp_receiver: OTLPReceiver) -> None:
    otlp_receiver.fail_with = 400  # not retried
    telemetry = b2b_otel.instrument(
        otlp_endpoint=otlp_receiver.http_endpoint,
        metrics_exporter="none",
        logs_exporter="none",
        log_dir="none",
        instrumentations="none",
    )
    with trace.get_tracer("app").start_as_current_span("work"):
        pass
    telemetry.force_flush(10)
    failure = telemetry.health()["signals"]["traces"]["last_failure"]
    assert failure is not None and failure["error"] == "HTTP 400"


# --- the audit trail ----------------------------------------------------------------------------------


def test_audit_before_instrument_raises() -> None:
    code = (
        "import b2b_otel\n"
        "try:\n"
        "    b2b_otel.audit('invoice.paid', actor_id='u-1', target='inv-1')\n"
        "except b2b_otel.AuditError as error:\n"
        "    print('raised:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "raised:" in result.stdout and "instrument() was not called" in result.stdout, result


def test_audit_without_an_audit_file_raises_and_health_says_not_configured() -> None:
    telemetry = b2b_otel.instrument(log_dir="none", instrumentations="none", **QUIET)
    with pytest.raises(b2b_otel.AuditError, match="B2B_OTEL_LOG_DIR=none"):
        b2b_otel.audit("invoice.paid", actor_id="u-1", target="inv-1")
    audit = telemetry.health()["audit_file"]
    assert (audit["state"], audit["writable"]) == ("not_configured", False)


def test_audit_after_shutdown_raises() -> None:
    b2b_otel.instrument(log_dir="none", instrumentations="none", **QUIET)
    b2b_otel.shutdown()
    with pytest.raises(b2b_otel.AuditError, match="shutdown"):
        b2b_otel.audit("invoice.paid", actor_id="u-1", target="inv-1")


def test_sdk_disabled_keeps_the_audit_trail_and_validates_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "no-such-sampler")  # not read when disabled
    monkeypatch.setenv("B2B_OTEL_LOG_DIR", str(tmp_path))
    monkeypatch.setenv("B2B_OTEL_AUDIT_KEY", "k3y")
    telemetry = b2b_otel.instrument()
    assert telemetry.disabled
    b2b_otel.audit("invoice.paid", actor_id="u-1", target="inv-1", amount=12)
    assert telemetry.health()["audit_file"]["state"] == "writable"
    result = verify([tmp_path / "audit.log"], key=b"k3y")
    assert result.ok and result.records == 1, result


def test_sdk_disabled_still_validates_the_audit_trails_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("B2B_OTEL_LOG_DIR", str(tmp_path / "a-file"))
    with pytest.raises(b2b_otel.ConfigError, match="B2B_OTEL_LOG_DIR") as error:
        b2b_otel.instrument()
    assert len(error.value.problems) == 1


def test_health_says_when_the_last_audit_write_failed(tmp_path: Path) -> None:
    telemetry = b2b_otel.instrument(log_dir=str(tmp_path), instrumentations="none", **QUIET)
    assert telemetry.health()["audit_file"]["state"] == "writable"
    (tmp_path / "audit.log").mkdir()  # the audit file's path is taken: nothing can be written
    with pytest.raises(b2b_otel.AuditError):
        b2b_otel.audit("invoice.paid", actor_id="u-1", target="inv-1")
    audit = telemetry.health()["audit_file"]
    assert audit["state"] == "last_write_failed" and audit["writable"] is False
    assert audit["error"]


# --- instrument() that fails, and the application's own log output --------------------------------------


def test_a_failed_instrument_leaves_the_semconv_variable_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SEMCONV_OPT_IN_VAR, raising=False)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [not a rule]\n")  # fails while building, after settings resolved
    with pytest.raises(b2b_otel.ConfigError):
        b2b_otel.instrument(rules_file=str(rules), log_dir="none", instrumentations="none", **QUIET)
    assert SEMCONV_OPT_IN_VAR not in os.environ


@pytest.mark.parametrize("logs_exporter", ["none", "console"])
def test_the_applications_warnings_still_reach_stderr(logs_exporter: str) -> None:
    code = (
        "import logging, b2b_otel\n"
        f"b2b_otel.instrument(instrumentations='logging', log_dir='none', logs_exporter={logs_exporter!r},"
        " traces_exporter='none', metrics_exporter='none')\n"
        "logging.getLogger('app').warning('disk almost full')\n"
        "logging.getLogger('app').info('not shown: below lastResort level')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "B2B_OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("disk almost full") == 1, result.stderr
    assert "not shown" not in result.stderr


def test_a_finding_reported_after_the_rules_stopped_is_counted_never_silent() -> None:
    # The last metric export runs after the rules stop, so its findings are the usual case here. The
    # processor itself counts them, so every exporter that reports findings (spans, logs, metrics,
    # the application's own) gets the same rule.
    from b2b_otel.derive.processor import DerivationProcessor
    from b2b_otel.rules import load_rules
    from b2b_otel.scrub import Finding, Scrubber

    drops: list[tuple[str, int]] = []
    derivation = DerivationProcessor(
        load_rules(None, {}), Scrubber(), [], on_drop=lambda reason, n: drops.append((reason, n))
    )
    derivation.shutdown()
    derivation.finding(Finding("b2b.agent.name", "password"), 0, 0)
    assert drops == [("shutdown", 1)]
    assert derivation.pending() == 0

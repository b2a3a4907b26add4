"""``Telemetry.health()["audit_file"]`` reports the audit trail's mode and checkpoint state (issue 14).

Real ``instrument()``, a real signing key and real files; a checkpoint is made to fail by taking the
lock file's path with a folder, as an operator's mistake would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import b2b_otel
from b2b_otel.audit_trail.signing import keygen
from tests.support.otel_globals import reset_otel_globals

QUIET = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def clean_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    private, _, _ = keygen(tmp_path_factory.mktemp("keys") / "audit")
    return private


def _audit(i: int) -> None:
    b2b_otel.audit("invoice.approve", actor_id=f"u-{i}", target=f"invoice-{i}", amount=i)


def test_health_reports_the_checkpoints_of_a_signed_log(tmp_path: Path, signing_key: Path) -> None:
    telemetry = b2b_otel.instrument(
        log_dir=str(tmp_path),
        instrumentations="none",
        audit_signing_key=str(signing_key),
        audit_checkpoint_interval="1h",
        **QUIET,
    )
    assert telemetry.audit is not None
    log = telemetry.audit.log
    _audit(1)
    _audit(2)
    audit: dict[str, Any] = telemetry.health()["audit_file"]
    assert (audit["state"], audit["writable"], audit["mode"]) == ("writable", True, "signed")
    assert audit["checkpoints"] == {
        "interval_seconds": 3600.0,
        "last": None,
        "unsigned_records": 2,
        "failures": 0,
        "error": None,
    }

    written = log.checkpoint()
    assert written is not None
    checkpoints = telemetry.health()["audit_file"]["checkpoints"]
    assert checkpoints["last"]["number"] == 1 and checkpoints["last"]["tree_size"] == 2
    assert RFC3339_MS.match(checkpoints["last"]["time"]), checkpoints
    assert checkpoints["unsigned_records"] == 0 and checkpoints["failures"] == 0

    _audit(3)
    lock = tmp_path / "audit.log.lock"
    lock.unlink()
    lock.mkdir()  # the lock's path taken: no checkpoint can be written
    with pytest.raises(b2b_otel.AuditError):
        log.checkpoint()
    checkpoints = telemetry.health()["audit_file"]["checkpoints"]
    assert checkpoints["failures"] == 1 and "audit.log.lock" in checkpoints["error"]
    assert checkpoints["last"]["number"] == 1

    lock.rmdir()
    assert log.checkpoint() is not None
    checkpoints = telemetry.health()["audit_file"]["checkpoints"]
    assert checkpoints["error"] is None and checkpoints["failures"] == 1  # failures count since start
    assert (checkpoints["last"]["number"], checkpoints["last"]["tree_size"]) == (2, 3)
    assert checkpoints["unsigned_records"] == 0
    assert str(signing_key) not in str(telemetry.health())


def test_health_of_plain_hmac_and_unconfigured_audit_files(tmp_path: Path) -> None:
    telemetry = b2b_otel.instrument(log_dir=str(tmp_path / "plain"), instrumentations="none", **QUIET)
    _audit(1)
    audit = telemetry.health()["audit_file"]
    assert (audit["mode"], audit["checkpoints"]) == ("sha256", None)
    b2b_otel.shutdown()
    reset_otel_globals()

    telemetry = b2b_otel.instrument(
        log_dir=str(tmp_path / "keyed"), instrumentations="none", audit_key="k3y-for-tests", **QUIET
    )
    _audit(1)
    audit = telemetry.health()["audit_file"]
    assert (audit["mode"], audit["checkpoints"]) == ("hmac", None)
    assert "k3y-for-tests" not in str(telemetry.health())
    b2b_otel.shutdown()
    reset_otel_globals()

    telemetry = b2b_otel.instrument(log_dir="none", instrumentations="none", **QUIET)
    audit = telemetry.health()["audit_file"]
    assert (audit["state"], audit["mode"], audit["checkpoints"]) == ("not_configured", None, None)

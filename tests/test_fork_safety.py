"""After os.fork (as under gunicorn), the child judges and exports its own spans."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import b2b_otel
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver


@pytest.fixture(autouse=True)
def clean_globals(otlp_receiver: OTLPReceiver) -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def test_forked_child_judges_and_exports_its_spans(otlp_receiver: OTLPReceiver) -> None:
    telemetry = b2b_otel.instrument(
        service_name="forking",
        otlp_endpoint=otlp_receiver.http_endpoint,
        log_dir="none",
        instrumentations="none",
    )
    b2b_otel.security.access_denied("parent-user", "doc", "read")  # starts the parent's worker thread
    assert telemetry.force_flush(10)
    pid = os.fork()
    if pid == 0:  # the child: its worker thread must be re-created
        code = 1
        try:
            for _ in range(5):
                b2b_otel.security.login("child-user", "192.0.2.200", success=False)
            code = 0 if b2b_otel.shutdown(10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    logs = otlp_receiver.wait_for_logs(
        lambda items: any(r["attributes"].get("b2b.rule.id") == "security.login.bruteforce" for r in items)
    )
    fired = [r for r in logs if r["attributes"].get("b2b.rule.id") == "security.login.bruteforce"]
    assert fired[0]["attributes"]["client.address"] == "192.0.2.200"
    assert sum(s["name"] == "login" for s in otlp_receiver.spans()) == 5

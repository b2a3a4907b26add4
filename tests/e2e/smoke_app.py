"""A tiny application for the stack smoke test: one instrument() call and a small span tree.

    python -m tests.e2e.smoke_app RUN_ID

    smoke request                       (root)
    ├── login                           b2b.security.action=login
    └── smoke step
        └── smoke failing call          status ERROR

Every span carries smoke.run_id=RUN_ID so that the test finds exactly this run's trace in Jaeger.
"""

from __future__ import annotations

import sys

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

import b2b_otel


def main(run_id: str) -> None:
    telemetry = b2b_otel.instrument(service_name="stack-smoke", otlp_endpoint="http://127.0.0.1:4318")
    tracer = trace.get_tracer("tests.e2e.smoke_app")
    marker = {"smoke.run_id": run_id}
    with tracer.start_as_current_span("smoke request", attributes=marker):
        with tracer.start_as_current_span(
            "login",
            attributes={**marker, "b2b.security.action": "login", "event.outcome": "success"},
        ):
            pass
        with (
            tracer.start_as_current_span("smoke step", attributes=marker),
            tracer.start_as_current_span("smoke failing call", attributes=marker) as failing,
        ):
            failing.set_status(Status(StatusCode.ERROR, "the smoke test's deliberate failure"))
    telemetry.shutdown(10)


if __name__ == "__main__":
    main(sys.argv[1])

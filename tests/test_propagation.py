"""OTEL_PROPAGATORS: the headers that leave through httpx, to a real HTTP server on loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import baggage, context, propagate, trace

import b2b_otel
from b2b_otel import ConfigError
from b2b_otel.setup import propagation
from b2b_otel.setup.settings import resolve
from tests.support.otel_globals import reset_otel_globals

ROOT = Path(__file__).resolve().parents[1]


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    before = propagate.get_global_textmap()
    reset_otel_globals()
    yield
    reset_otel_globals()
    propagate.set_global_textmap(before)


def _call_inside_a_span(url: str) -> str:
    """One httpx request inside a span with baggage; the span's trace id, as hex."""
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with trace.get_tracer("test.propagation").start_as_current_span("outer") as span:
            httpx.get(url, timeout=10)
            return f"{span.get_span_context().trace_id:032x}"
    finally:
        context.detach(token)


def _instrument(tmp_path: Path, **overrides: Any) -> None:
    b2b_otel.instrument(
        log_dir=str(tmp_path),
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter="none",
        instrumentations="httpx",
        **overrides,
    )


def test_tracecontext_and_baggage_are_sent_by_default(
    tmp_path: Path, server: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = server
    _instrument(tmp_path)
    trace_id = _call_inside_a_span(url)
    (headers,) = seen
    assert headers["traceparent"].split("-")[1] == trace_id
    assert "tenant=acme" in headers["baggage"]


def test_only_the_named_propagators_are_used(
    tmp_path: Path, server: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = server
    _instrument(tmp_path, propagators="baggage")
    _call_inside_a_span(url)
    (headers,) = seen
    assert "traceparent" not in headers and "tenant=acme" in headers["baggage"]


def test_none_sends_no_context(tmp_path: Path, server: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = server
    _instrument(tmp_path, propagators="none")
    _call_inside_a_span(url)
    (headers,) = seen
    assert "traceparent" not in headers and "baggage" not in headers


def _fake_distribution(folder: Path) -> None:
    """An installed distribution registering propagator ``b3`` by entry point, as the real one does."""
    (folder / "fake_b3_propagator.py").write_text(
        "from opentelemetry import trace\n"
        "from opentelemetry.propagators.textmap import TextMapPropagator, default_setter\n"
        "class SingleHeader(TextMapPropagator):\n"
        "    def inject(self, carrier, context=None, setter=default_setter):\n"
        "        ctx = trace.get_current_span(context).get_span_context()\n"
        "        setter.set(carrier, 'b3', f'{ctx.trace_id:032x}-{ctx.span_id:016x}-1')\n"
        "    def extract(self, carrier, context=None, getter=None):\n"
        "        return context\n"
        "    @property\n"
        "    def fields(self):\n"
        "        return {'b3'}\n",
        encoding="utf-8",
    )
    info = folder / "fake_b3_propagator-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-b3-propagator\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_propagator]\nb3 = fake_b3_propagator:SingleHeader\n"
    )


def test_a_propagator_of_an_installed_package_is_found_by_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = server
    site = tmp_path / "site"
    site.mkdir()
    _fake_distribution(site)
    monkeypatch.syspath_prepend(str(site))
    assert "b3" in propagation.available()
    _instrument(tmp_path, propagators="tracecontext,b3")
    trace_id = _call_inside_a_span(url)
    (headers,) = seen
    assert headers["b3"].startswith(trace_id) and headers["traceparent"].split("-")[1] == trace_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("b3", "needs the package opentelemetry-propagator-b3"),
        ("jaeger", "needs the package opentelemetry-propagator-jaeger"),
        ("tracecontext,xray", "unknown propagator 'xray'"),
        ("TraceContext", "unknown propagator 'TraceContext'"),
        ("tracecontext,", "empty item"),
        ("none,baggage", "'none' cannot be combined"),
    ],
)
def test_a_propagator_that_cannot_be_used_is_a_config_error(value: str, expected: str) -> None:
    if value == "b3" and "b3" in propagation.available():
        pytest.skip("opentelemetry-propagator-b3 is installed here")
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"OTEL_PROPAGATORS": value})
    (problem,) = caught.value.problems
    assert problem.variable == "OTEL_PROPAGATORS"
    assert expected in problem.message
    assert "accepted: comma list of tracecontext, baggage, b3, b3multi, jaeger" in problem.message


def test_a_missing_propagator_package_stops_instrument_before_anything_is_installed(tmp_path: Path) -> None:
    before = propagate.get_global_textmap()
    with pytest.raises(ConfigError, match=r"instrument\(propagators=...\)='jaeger'"):
        _instrument(tmp_path, propagators="jaeger")
    assert propagate.get_global_textmap() is before
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "config", "check"],
        env={"PATH": "/usr/bin:/bin", "B2B_OTEL_LOG_DIR": "none", "OTEL_SERVICE_NAME": "svc", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_config_check_shows_the_propagators() -> None:
    result = _cli({"OTEL_PROPAGATORS": "baggage"})
    assert result.returncode == 0, result.stderr
    assert "propagators: baggage" in result.stdout


def test_config_check_names_a_missing_propagator_package_instead_of_crashing() -> None:
    # opentelemetry.propagate raises at import on such a value; config check must not import it first.
    result = _cli({"OTEL_PROPAGATORS": "jaeger"})
    assert result.returncode == 1
    assert "OTEL_PROPAGATORS='jaeger'" in result.stderr and "opentelemetry-propagator-jaeger" in result.stderr
    assert "Traceback" not in result.stderr

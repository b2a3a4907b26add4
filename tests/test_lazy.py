"""Lazy library instrumentation (issue 11, setup/lazy.py): ``instrument()`` imports no library the
application did not import; the library is instrumented when the application imports it.

The application cases run in fresh interpreters (this test process has imported httpx already),
against a real HTTP server on loopback; the spans are read from an in-memory exporter added to the
real provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from b2b_otel.setup import lazy

ROOT = Path(__file__).resolve().parent.parent

APP = """
import http.server, json, sys, threading
import b2b_otel
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/accounts/1"
__BEFORE__
telemetry = b2b_otel.instrument(service_name="lazy-test", traces_exporter="none", metrics_exporter="none",
                                logs_exporter="none", log_dir="none", instrumentations=__NAMES__)
captured = InMemorySpanExporter()
telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(captured))
after_instrument = sorted(m for m in ("httpx", "psycopg", "openai", "anthropic") if m in sys.modules)
__AFTER__
import httpx
httpx.get(url).raise_for_status()
spans = [s for s in captured.get_finished_spans() if s.attributes.get("http.request.method") == "GET"]
from b2b_otel.setup import lazy
print(json.dumps({"after_instrument": after_instrument, "instrumented": list(telemetry.instrumented),
                  "client_spans": len(spans), "waiting": list(lazy.waiting())}))
"""


def _app(names: str, before: str = "", after: str = "") -> dict[str, object]:
    code = APP.replace("__NAMES__", repr(names)).replace("__BEFORE__", before).replace("__AFTER__", after)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    value = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(value, dict)
    return value


def test_instrument_imports_no_library_and_instruments_httpx_when_the_application_imports_it() -> None:
    result = _app("httpx,psycopg")
    assert result["after_instrument"] == []  # neither httpx nor psycopg imported by instrument()
    assert result["instrumented"] == ["httpx", "psycopg"]  # both armed, reported as instrumented
    assert result["client_spans"] == 1  # httpx imported afterwards: its request made a client span
    assert result["waiting"] == ["psycopg"]  # never imported by this application: still waiting


def test_auto_imports_none_of_the_optional_client_libraries() -> None:
    result = _app("auto")
    assert result["after_instrument"] == []
    assert result["client_spans"] == 1


def test_a_library_imported_before_instrument_is_instrumented_at_once() -> None:
    result = _app("httpx", before="import httpx")
    assert result["after_instrument"] == ["httpx"]
    assert result["client_spans"] == 1
    assert result["waiting"] == []


def test_shutdown_before_the_import_leaves_the_library_alone() -> None:
    result = _app("httpx", after="telemetry.shutdown()")
    assert result["client_spans"] == 0  # the hook was cancelled: httpx is not patched
    assert result["waiting"] == []


@pytest.fixture()
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _write(directory: Path, name: str, body: str = "VALUE = 42\n") -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")


def test_the_callback_runs_once_after_the_module_executed(module_dir: Path) -> None:
    name = "b2b_lazy_probe_once"
    _write(module_dir, name)
    seen: list[object] = []
    lazy.when_imported(name, lambda module: seen.append(getattr(module, "VALUE", None)))
    assert name in lazy.waiting()
    try:
        module = __import__(name)
        assert seen == [42]  # the module's body had run when the callback saw it
        assert name not in lazy.waiting()
        assert "exec_module" not in vars(module.__spec__.loader)  # the loader's own method is back
        lazy.when_imported(name, lambda module: seen.append("again"))  # already imported: at once
        assert seen == [42, "again"]
    finally:
        sys.modules.pop(name, None)


def test_a_failing_callback_never_breaks_the_application_import(module_dir: Path) -> None:
    name = "b2b_lazy_probe_failing"
    _write(module_dir, name)

    def broken(module: ModuleType) -> None:
        raise RuntimeError("instrumentor exploded")

    lazy.when_imported(name, broken)
    try:
        module = __import__(name)
        assert module.VALUE == 42
    finally:
        sys.modules.pop(name, None)


def test_cancel_forgets_the_callbacks(module_dir: Path) -> None:
    name = "b2b_lazy_probe_cancelled"
    _write(module_dir, name)
    seen: list[object] = []
    lazy.when_imported(name, seen.append)
    assert lazy.cancel(name) is True
    assert lazy.cancel(name) is False
    try:
        __import__(name)
        assert seen == []
    finally:
        sys.modules.pop(name, None)

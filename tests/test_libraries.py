"""The instrumentation table: what ``auto`` picks, what an explicit name needs, system metrics at a real
OTLP receiver, and that instrumenting leaves the environment and the HTTP clients as they were."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import b2b_otel
from b2b_otel.setup import libraries
from b2b_otel.setup.libraries import LIBRARIES, Library
from b2b_otel.setup.settings import resolve
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

QUIET = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none", "log_dir": "none"}
VARIABLE = "B2B_OTEL_INSTRUMENTATIONS"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "B2B_OTEL_")):
            monkeypatch.delenv(name)
    reset_otel_globals()
    yield
    reset_otel_globals()


def _without_instrumentor(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The library stays, its instrumentation is gone (a module that does not exist)."""
    real = LIBRARIES[name]
    monkeypatch.setitem(
        LIBRARIES, name, Library(real.module, real.instrumentor + "_absent", real.package, real.extra)
    )


def _without_library(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = LIBRARIES[name]
    monkeypatch.setitem(
        LIBRARIES, name, Library(real.module + "_absent", real.instrumentor, real.package, real.extra)
    )


def test_the_spec_names_are_the_table() -> None:
    assert set(LIBRARIES) == {"psycopg", "httpx", "logging", "openai", "anthropic", "system_metrics"}
    assert set(libraries.FACTORIES) == set(LIBRARIES)


def test_auto_is_every_instrumentation_whose_library_and_instrumentor_are_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve({}, environ={}).enabled_instrumentations() == tuple(LIBRARIES)
    _without_instrumentor(monkeypatch, "anthropic")
    _without_library(monkeypatch, "psycopg")
    enabled = resolve({}, environ={VARIABLE: "auto"}).enabled_instrumentations()
    assert enabled == ("httpx", "logging", "openai", "system_metrics")


def test_auto_installs_the_llm_clients_and_process_metrics_and_skips_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without_instrumentor(monkeypatch, "anthropic")
    telemetry = b2b_otel.instrument(**QUIET)
    assert set(telemetry.instrumented) == {"psycopg", "httpx", "logging", "openai", "system_metrics"}


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("instrumentor", "openai: its instrumentation is not installed (pip install 'b2b-otel[openai]')"),
        ("library", "openai: its library is not installed (import openai_absent)"),
    ],
)
def test_a_named_instrumentation_that_cannot_run_is_a_config_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, missing: str, expected: str
) -> None:
    (_without_instrumentor if missing == "instrumentor" else _without_library)(monkeypatch, "openai")
    monkeypatch.setenv(VARIABLE, "httpx,openai")
    with pytest.raises(b2b_otel.ConfigError) as caught:
        b2b_otel.instrument(**QUIET)
    assert f"{VARIABLE}='httpx,openai': {expected}" in str(caught.value)
    assert b2b_otel.setup.install.current() is None


def test_system_metrics_name_is_accepted_and_every_missing_part_is_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without_instrumentor(monkeypatch, "system_metrics")
    _without_instrumentor(monkeypatch, "psycopg")
    with pytest.raises(b2b_otel.ConfigError) as caught:
        resolve({"instrumentations": "psycopg,system_metrics"}, environ={})
    text = str(caught.value)
    assert "psycopg: its instrumentation is not installed (pip install 'b2b-otel[psycopg]')" in text
    assert (
        "system_metrics: its instrumentation is not installed (pip install 'b2b-otel[system-metrics]')"
        in text
    )


def test_process_metrics_reach_a_real_otlp_receiver_and_host_metrics_do_not(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_PYTHON_SYSTEM_METRICS_EXCLUDED_METRICS", "process.open_file_descriptor.*")
    telemetry = b2b_otel.instrument(
        service_name="proc-metrics", instrumentations="system_metrics", log_dir=str(tmp_path / "logs")
    )
    assert telemetry.instrumented == ["system_metrics"]
    assert b2b_otel.shutdown()
    names = {m["name"] for m in otlp_receiver.metrics()}
    for expected in (
        "process.cpu.time",
        "process.memory.usage",
        "process.thread.count",
        "process.cpu.utilization",
    ):
        assert expected in names, names
    assert not [n for n in names if n.startswith(("system.", "process.runtime."))], names
    assert "process.open_file_descriptor.count" not in names  # the user's exclusion still applies
    (rss,) = otlp_receiver.metrics("process.memory.usage")
    assert rss["value"] > 1_000_000 and rss["resource"]["service.name"] == "proc-metrics"
    # The exclusion variable is the user's again.
    assert os.environ["OTEL_PYTHON_SYSTEM_METRICS_EXCLUDED_METRICS"] == "process.open_file_descriptor.*"


def test_instrumenting_the_llm_clients_leaves_the_genai_variables_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_COMPLETION_HOOK", "upload")
    b2b_otel.instrument(instrumentations="openai,anthropic", capture_content=True, **QUIET)
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" not in os.environ
    assert os.environ["OTEL_INSTRUMENTATION_GENAI_COMPLETION_HOOK"] == "upload"


@pytest.mark.parametrize(
    ("capture", "asked", "mode"),
    [
        (False, None, "NO_CONTENT"),
        (False, "span_only", "NO_CONTENT"),
        (True, None, "SPAN_ONLY"),
        (True, "event_only", "EVENT_ONLY"),
        (True, "SPAN_AND_EVENT", "SPAN_AND_EVENT"),
        (True, "no_content", "SPAN_ONLY"),
        (True, "bogus", "SPAN_ONLY"),
    ],
)
def test_b2b_otel_capture_content_decides_the_genai_content_mode(
    monkeypatch: pytest.MonkeyPatch, capture: bool, asked: str | None, mode: str
) -> None:
    if asked is not None:
        monkeypatch.setenv(libraries.GENAI_CAPTURE_VAR, asked)
    monkeypatch.setenv(libraries.GENAI_HOOK_VAR, "upload")
    assert libraries.genai_environment(capture) == {
        libraries.GENAI_CAPTURE_VAR: mode,
        libraries.GENAI_HOOK_VAR: None,
    }


def test_shutdown_puts_the_http_clients_send_back() -> None:
    # openai imported first: its instrumentation (and the rate-limit header reader with it) is then
    # installed by instrument() itself, not later by the lazy import hook.
    import openai  # noqa: F401

    before = (httpx.Client.send, httpx.AsyncClient.send)
    b2b_otel.instrument(instrumentations="openai", **QUIET)
    assert httpx.Client.send is not before[0] and httpx.AsyncClient.send is not before[1]
    assert b2b_otel.shutdown()
    assert (httpx.Client.send, httpx.AsyncClient.send) == before


def test_the_zero_code_loop_leaves_every_entry_point_of_our_instrumentations_distributions_to_us() -> None:
    # A distribution that brings one of b2b-otel's instrumentations may declare more entry points
    # (the httpx one also declares httpx2): loading such a sibling from opentelemetry-instrument's
    # generic loop imports the instrumented library in the middle of the instrumentation's own import,
    # where the lazy import hook would meet a half-initialised module.
    from importlib.metadata import entry_points

    from b2b_otel import distro

    ours = {library.instrumentor for library in LIBRARIES.values()}
    siblings = {
        entry_point.name
        for entry_point in entry_points(group="opentelemetry_instrumentor")
        if entry_point.value.split(":", 1)[0] in ours
    }
    assert "httpx2" in siblings  # the member of the class that was found
    assert siblings <= distro._MANAGED, sorted(siblings - distro._MANAGED)


def test_the_dependency_check_reads_imported_versions_and_defers_when_unsure() -> None:
    """instrument() skips the instrumentor's metadata scan only when the imported modules' versions
    settle it; any doubt (not imported, no __version__, a marker, out of range) leaves the check on."""
    import psutil

    from b2b_otel.setup.libraries import _met_by_imported_versions

    class Needs:
        def __init__(self, *requirements: str) -> None:
            self.requirements = requirements

        def instrumentation_dependencies(self) -> tuple[str, ...]:
            return self.requirements

    assert _met_by_imported_versions(Needs()) is True  # logging: nothing to check
    assert _met_by_imported_versions(Needs("psutil >= 5")) is True
    assert _met_by_imported_versions(Needs(f"psutil > {psutil.__version__}")) is False
    assert _met_by_imported_versions(Needs("psutil >= 5", "not_imported_anywhere >= 1")) is False
    assert _met_by_imported_versions(Needs("psutil >= 5; python_version > '3'")) is False
    assert _met_by_imported_versions(Needs("not a requirement !!")) is False

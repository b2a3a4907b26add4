"""instrument(): providers, resource, sampler, idempotency, attaching to existing providers."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

import b2b_otel
from b2b_otel.setup.libraries import SEMCONV_OPT_IN_VAR
from b2b_otel.setup.sampling import RecordAllSampler
from tests.support.otel_globals import reset_otel_globals

QUIET = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none", "log_dir": "none"}


@pytest.fixture(autouse=True)
def clean_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_otel_globals()
    yield
    reset_otel_globals()


def test_instrument_sets_sdk_providers_with_the_resource() -> None:
    telemetry = b2b_otel.instrument(
        service_name="b2bvalue", service_version="1.2.3", environment="staging", **QUIET
    )
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    assert isinstance(metrics.get_meter_provider(), MeterProvider)
    assert isinstance(_logs.get_logger_provider(), LoggerProvider)
    attributes = provider.resource.attributes
    assert attributes["service.name"] == "b2bvalue"
    assert attributes["service.version"] == "1.2.3"
    assert attributes["deployment.environment.name"] == "staging"
    assert attributes["telemetry.distro.name"] == "b2b-otel"
    assert attributes["telemetry.distro.version"] == b2b_otel.__version__
    assert attributes["telemetry.sdk.language"] == "python"
    assert "host.name" in attributes and "process.pid" in attributes
    assert "process.command_args" not in attributes  # may carry credentials
    assert telemetry.resource is not None


def test_service_name_variable_wins_over_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,team=payments")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-var")
    b2b_otel.instrument(**QUIET)
    attributes = trace.get_tracer_provider().resource.attributes  # type: ignore[attr-defined]
    assert attributes["service.name"] == "from-var"
    assert attributes["team"] == "payments"


def test_second_call_returns_the_same_handle_and_changes_nothing() -> None:
    first = b2b_otel.instrument(service_name="one", **QUIET)
    provider = trace.get_tracer_provider()
    second = b2b_otel.instrument(service_name="two", traces_exporter="console")
    assert second is first
    assert trace.get_tracer_provider() is provider
    assert provider.resource.attributes["service.name"] == "one"  # type: ignore[attr-defined]


def test_sampler_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    b2b_otel.instrument(**QUIET)
    sampler = trace.get_tracer_provider().sampler  # type: ignore[attr-defined]
    # The user's sampler decides export; the wrapper only makes dropped spans visible to the rules.
    assert isinstance(sampler, RecordAllSampler)
    assert isinstance(sampler.inner, ParentBased)
    assert isinstance(sampler.inner._root, TraceIdRatioBased)
    assert sampler.inner._root.rate == 0.25


def test_stable_db_and_http_conventions_are_selected_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SEMCONV_OPT_IN_VAR, raising=False)
    b2b_otel.instrument(**QUIET)
    import os

    assert os.environ[SEMCONV_OPT_IN_VAR] == "database,http"


def test_user_choice_of_semconv_opt_in_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEMCONV_OPT_IN_VAR, "http/dup")
    b2b_otel.instrument(**QUIET)
    import os

    assert os.environ[SEMCONV_OPT_IN_VAR] == "http/dup"


def test_existing_application_providers_are_kept_and_extended() -> None:
    spans = InMemorySpanExporter()
    app_tracer_provider = TracerProvider()
    app_tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(app_tracer_provider)
    reader = InMemoryMetricReader()
    app_meter_provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(app_meter_provider)
    logs = InMemoryLogRecordExporter()
    app_logger_provider = LoggerProvider()
    app_logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    _logs.set_logger_provider(app_logger_provider)

    telemetry = b2b_otel.instrument(traces_exporter="console", metrics_exporter="none", logs_exporter="none")

    assert trace.get_tracer_provider() is app_tracer_provider
    assert metrics.get_meter_provider() is app_meter_provider
    assert _logs.get_logger_provider() is app_logger_provider
    # b2b_otel's processors were added after the application's own processor, which stays first.
    # traces_exporter is given explicitly, so b2b_otel's own exporter runs beside the application's
    # (without it, the application's exporter alone would export: tests/test_app_providers.py).
    processors = app_tracer_provider._active_span_processor._span_processors
    assert isinstance(processors[0], SimpleSpanProcessor)
    assert any(isinstance(p, BatchSpanProcessor) for p in processors[1:])
    with trace.get_tracer("t").start_as_current_span("still-exported-by-the-app"):
        logging.getLogger("app").warning("hello from the app")
    assert [s.name for s in spans.get_finished_spans()] == ["still-exported-by-the-app"]
    # The logging bridge feeds the application's logger provider.
    assert any(record.log_record.body == "hello from the app" for record in logs.get_finished_logs())
    assert telemetry.shutdown(5)


def test_config_error_leaves_nothing_installed() -> None:
    with pytest.raises(b2b_otel.ConfigError):
        b2b_otel.instrument(otlp_protocol="carrier-pigeon", instrumentations="httpx")
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert not isinstance(metrics.get_meter_provider(), MeterProvider)
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    # And a corrected call afterwards works.
    assert b2b_otel.instrument(**QUIET) is not None


def test_sdk_disabled_gives_a_noop_handle() -> None:
    telemetry = b2b_otel.instrument(sdk_disabled=True)
    assert telemetry.disabled
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert telemetry.shutdown(1)


def test_unknown_instrumentation_is_a_config_error() -> None:
    with pytest.raises(b2b_otel.ConfigError, match=r"instrument\(instrumentations=\.\.\.\)"):
        b2b_otel.instrument(instrumentations="psycopg,mongo", **{k: v for k, v in QUIET.items()})


def test_shutdown_uninstruments_libraries() -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    telemetry = b2b_otel.instrument(instrumentations="httpx", **QUIET)
    assert telemetry.instrumented == ["httpx"]
    assert HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    assert b2b_otel.shutdown(5)
    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry


def test_health_snapshot_reports_signals_and_files(tmp_path: object) -> None:
    telemetry = b2b_otel.instrument(
        traces_exporter="console", metrics_exporter="none", logs_exporter="none", log_dir=str(tmp_path)
    )
    health = telemetry.health()
    assert health["enabled"] is True
    assert health["signals"]["traces"]["exporters"] == ["console"]
    assert health["signals"]["traces"]["queue"]["capacity"] == 2048
    assert health["signals"]["traces"]["dropped"] == {}
    assert health["log_dir"]["writable"] is True
    assert health["audit_file"]["path"].endswith("audit.log")


def test_unknown_keyword_is_a_config_error_naming_it() -> None:
    with pytest.raises(b2b_otel.ConfigError, match=r"instrument\(servce_name=\.\.\.\)"):
        b2b_otel.instrument(servce_name="x", **QUIET)  # type: ignore[call-arg]
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


def test_mypy_strict_catches_a_misspelt_keyword_and_passes_a_correct_call(tmp_path: Path) -> None:
    # b2b_otel is an editable install that mypy cannot follow, so it is found through mypy_path;
    # follow_imports=silent keeps errors inside b2b_otel out of the report, which is about the snippets.
    root = Path(b2b_otel.__file__).resolve().parents[1]
    (tmp_path / "mypy.ini").write_text(
        f"[mypy]\npython_version = 3.10\nmypy_path = {root}\n\n[mypy-b2b_otel.*]\nfollow_imports = silent\n",
        encoding="utf-8",
    )
    (tmp_path / "misspelt.py").write_text(
        'import b2b_otel\n\nb2b_otel.instrument(servce_name="x")\n', encoding="utf-8"
    )
    (tmp_path / "correct.py").write_text(
        "import b2b_otel\n\n"
        "telemetry: b2b_otel.Telemetry = b2b_otel.instrument(\n"
        '    service_name="x", redact="off", otlp_timeout="250ms", shutdown_timeout=2,\n'
        '    bsp_max_queue_size=4096, traces_exporter=["console"], otlp_headers={"k": "v"},\n'
        '    otlp_protocol="grpc", otlp_traces_insecure=None,\n'
        ")\n"
        'options: b2b_otel.InstrumentOptions = {"log_dir": "none", "sdk_disabled": True}\n'
        "b2b_otel.instrument(**options)\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini"]
    command += ["--cache-dir", str(tmp_path / ".cache"), "correct.py", "misspelt.py"]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = result.stdout + result.stderr
    lines = report.splitlines()
    assert [line for line in lines if line.startswith("correct.py")] == [], report
    errors = [line for line in lines if line.startswith("misspelt.py") and ": error:" in line]
    assert len(errors) == 1, report
    assert 'Unexpected keyword argument "servce_name"' in errors[0], report
    assert result.returncode == 1, report

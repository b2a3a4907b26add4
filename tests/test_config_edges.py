"""Configuration at its edges: what the validator accepts, the SDK accepts; nothing secret is shown."""

from __future__ import annotations

import collections
import math
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import b2b_otel
from b2b_otel import ConfigError
from b2b_otel.setup.settings import Settings, numeric_bounds, resolve
from tests.support.otel_globals import reset_otel_globals

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- numbers: one range per setting, the SDK's


def test_every_numeric_setting_declares_its_range() -> None:
    bounds = numeric_bounds()
    for name, info in Settings.model_fields.items():
        text = repr(info.annotation)
        if "int" in text or "float" in text:
            assert name in bounds, f"{name} is numeric but declares no Bounds"


def _is_int(name: str) -> bool:
    return "int" in repr(Settings.model_fields[name].annotation)


def _lowest_accepted(name: str) -> float:
    """The smallest keyword value above an open lower end that resolve() accepts (doubling from the
    smallest float: a bare number of a millisecond setting is divided by 1000 and may underflow)."""
    value = math.nextafter(0.0, math.inf)
    while True:
        try:
            resolve({name: value}, environ={})
            return value
        except ConfigError:
            value *= 2


def _accepted_ends(low_end: bool) -> dict[str, Any]:
    """Each numeric setting at one end of its accepted range, as a keyword value (ms settings in ms)."""
    values: dict[str, Any] = {}
    for name, bounds in numeric_bounds().items():
        scale = 1000 if bounds.unit == "ms" else 1
        if low_end:
            value: float = _lowest_accepted(name) if bounds.low_open else bounds.low * scale
        else:
            value = bounds.high * scale
        values[name] = int(value) if _is_int(name) else value
    return values


@pytest.mark.parametrize("low_end", [True, False], ids=["lowest", "highest"])
def test_the_validator_accepts_both_ends_of_every_range(low_end: bool) -> None:
    values = _accepted_ends(low_end)
    settings = resolve(values, environ={})
    for name, bounds in numeric_bounds().items():
        stored = getattr(settings, name)
        assert stored > bounds.low if bounds.low_open else stored == pytest.approx(bounds.low) or not low_end
        assert stored == pytest.approx(bounds.high) or low_end


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("low_end", [True, False], ids=["lowest", "highest"])
def test_the_real_sdk_pieces_accept_every_value_the_validator_accepts(
    tmp_path: Path, protocol: str, low_end: bool
) -> None:
    # instrument() builds the real batch processors, metric readers, OTLP exporters and sampler.
    values = _accepted_ends(low_end)
    telemetry = b2b_otel.instrument(
        **values,
        otlp_protocol=protocol,
        otlp_endpoint=f"http://127.0.0.1:{_closed_port()}",
        traces_sampler="parentbased_traceidratio",
        log_dir=str(tmp_path),
        instrumentations="none",
    )
    assert not telemetry.disabled
    with trace.get_tracer("test.edges").start_as_current_span("edge"):
        pass
    assert b2b_otel.shutdown(timeout_s=5) in (True, False)


def _outside(name: str) -> list[Any]:
    bounds = numeric_bounds()[name]
    if _is_int(name):
        return [bounds.low - 1, bounds.high + 1]
    scale = 1000 if bounds.unit == "ms" else 1
    below = bounds.low * scale if bounds.low_open else (bounds.low - 1) * scale
    return [below, bounds.high * scale * 1.001, math.inf, math.nan]


@pytest.mark.parametrize("name", sorted(numeric_bounds()))
def test_a_value_outside_the_range_names_the_setting(name: str) -> None:
    for value in _outside(name):
        with pytest.raises(ConfigError) as caught:
            resolve({name: value}, environ={})
        (problem,) = caught.value.problems
        assert problem.variable == f"instrument({name}=...)"
        assert "accepted:" in problem.message


@pytest.mark.parametrize(
    "variable", ["OTEL_BSP_SCHEDULE_DELAY", "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_BLRP_SCHEDULE_DELAY"]
)
def test_zero_delays_are_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    monkeypatch.setenv(variable, "0")
    with pytest.raises(ConfigError) as caught:
        b2b_otel.instrument(log_dir=str(tmp_path), instrumentations="none")
    (problem,) = caught.value.problems
    assert problem.variable == variable
    assert "greater than 0 ms" in problem.message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0ms"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "0"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "25h"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "99999999999"),
        ("B2B_OTEL_RULES_MAX_GROUPS", "0"),
        ("B2B_OTEL_SHUTDOWN_TIMEOUT", "2d"),
        ("OTEL_TRACES_SAMPLER_ARG", "nan"),
    ],
)
def test_values_the_sdk_would_refuse_are_refused_with_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={variable: value})
    assert [p.variable for p in caught.value.problems] == [variable]


def test_a_blrp_batch_larger_than_its_queue_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"OTEL_BLRP_MAX_QUEUE_SIZE": "8", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "9"})
    assert [p.variable for p in caught.value.problems] == ["OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"]


# --- comma lists, in every form


@pytest.mark.parametrize(
    "value", [["OTLP"], ("Console",), collections.deque(["OTLP", "console"]), "OTLP,Console"]
)
def test_exporter_names_match_in_any_case_in_every_form(value: Any) -> None:
    names = resolve({"traces_exporter": value}, environ={}).traces_exporter
    assert set(names) <= {"otlp", "console"} and names


@pytest.mark.parametrize("value", [collections.deque(["zipkin"]), ["otlp", "Zipkin"], ("none", "otlp")])
def test_bad_exporter_names_are_refused_in_every_form(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"instrument\(traces_exporter=...\)"):
        resolve({"traces_exporter": value}, environ={})


def test_a_list_item_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ConfigError, match="every item must be a string"):
        resolve({"redact_allow_keys": ["user.id", 7]}, environ={})


def test_instrumentation_names_match_in_any_case() -> None:
    assert resolve({"instrumentations": ["LOGGING"]}, environ={}).instrumentations == ("logging",)


# --- B2B_OTEL_TRACE_LINK


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("http://jaeger:16686/trace/", "no {trace_id} field"),
        ("http://jaeger:16686/trace/{traceid}", "unknown field {traceid}"),
        ("http://jaeger:16686/{service}/{trace_id}", "unknown field {service}"),
        ("http://jaeger:16686/trace/{}", "unknown field {}"),
        ("http://jaeger:16686/trace/{trace_id", "not a valid template"),
        ("http://jaeger:16686/trace/{trace_id}}", "not a valid template"),
        ("jaeger/trace/{trace_id}", "http:// or https://"),
    ],
)
def test_a_trace_link_that_would_break_the_alert_push_is_refused(template: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"B2B_OTEL_TRACE_LINK": template})
    (problem,) = caught.value.problems
    assert problem.variable == "B2B_OTEL_TRACE_LINK"
    assert expected in problem.message
    assert "accepted:" in problem.message and "{trace_id}" in problem.message


@pytest.mark.parametrize(
    "template",
    ["https://ui.example/trace/{trace_id}", "http://j:16686/search?traceID={trace_id}&x={{literal}}"],
)
def test_an_accepted_trace_link_formats(template: str) -> None:
    link = resolve(environ={"B2B_OTEL_TRACE_LINK": template}).trace_link
    assert "ab" * 16 in link.format(trace_id="ab" * 16)


# --- OTEL_SDK_DISABLED is a kill switch


EVERY_VARIABLE_BAD = {
    "OTEL_EXPORTER_OTLP_PROTOCOL": "udp",
    "OTEL_TRACES_EXPORTER": "zipkin",
    "OTEL_BSP_SCHEDULE_DELAY": "0",
    "OTEL_PROPAGATORS": "b3",
    "B2B_OTEL_TRACE_LINK": "nowhere",
    "B2B_OTEL_RULES_FILE": "/nonexistent.yaml",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "not a url",
    "B2B_OTEL_INSTRUMENTATIONS": "kafka",
}


def test_with_the_sdk_disabled_other_variables_are_not_validated(tmp_path: Path) -> None:
    env = {**EVERY_VARIABLE_BAD, "OTEL_SDK_DISABLED": "true", "B2B_OTEL_LOG_DIR": str(tmp_path)}
    settings = resolve(environ={**env, "B2B_OTEL_AUDIT_KEY": "k"})
    assert settings.sdk_disabled
    assert (settings.log_dir, settings.audit_key) == (str(tmp_path), "k")
    assert settings.traces_exporter == ("otlp",) and settings.otlp_protocol == "http/protobuf"


def test_with_the_sdk_disabled_a_keyword_override_does_not_stop_the_app(tmp_path: Path) -> None:
    settings = resolve({"sdk_disabled": True, "bsp_schedule_delay": 0, "log_dir": str(tmp_path)}, environ={})
    assert settings.sdk_disabled and settings.bsp_schedule_delay == 5.0


def test_with_the_sdk_disabled_the_audit_trail_folder_is_still_validated() -> None:
    env = {**EVERY_VARIABLE_BAD, "OTEL_SDK_DISABLED": "1", "B2B_OTEL_LOG_DIR": "/etc/hostname/logs"}
    with pytest.raises(ConfigError) as caught:
        resolve(environ=env)
    assert [p.variable for p in caught.value.problems] == ["B2B_OTEL_LOG_DIR"]


def test_a_bad_sdk_disabled_value_is_still_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"OTEL_SDK_DISABLED": "maybe", "OTEL_TRACES_EXPORTER": "zipkin"})
    assert sorted(p.variable for p in caught.value.problems) == ["OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"]


# --- config check: secrets, warnings


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", *(args or ("config", "check"))],
        env={"PATH": "/usr/bin:/bin", "B2B_OTEL_LOG_DIR": "none", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


# One distinct secret per secret-bearing variable (headers: in the key and in the value; URLs: userinfo).
SECRETS = {
    "OTEL_EXPORTER_OTLP_HEADERS": ("hdr-key-s3cr3t-a", "hdr-val-s3cr3t-a"),
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": ("hdr-key-s3cr3t-t", "hdr-val-s3cr3t-t"),
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS": ("hdr-key-s3cr3t-m", "hdr-val-s3cr3t-m"),
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS": ("hdr-key-s3cr3t-l", "hdr-val-s3cr3t-l"),
    "B2B_OTEL_AUDIT_KEY": ("audit-key-s3cr3t",),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("ep-user-s3cr3t", "ep-pass-s3cr3t"),
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ("ept-user-s3cr3t", "ept-pass-s3cr3t"),
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": ("epm-user-s3cr3t", "epm-pass-s3cr3t"),
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": ("epl-user-s3cr3t", "epl-pass-s3cr3t"),
    "B2B_OTEL_ALERTMANAGER_URL": ("am-user-s3cr3t", "am-pass-s3cr3t"),
    "B2B_OTEL_TRACE_LINK": ("link-user-s3cr3t", "link-pass-s3cr3t"),
}
ALL_SECRETS = [part for parts in SECRETS.values() for part in parts]


def _planted(valid: bool) -> dict[str, str]:
    """Every secret-bearing variable with its secret; ``valid=False`` breaks each one (or its URL)."""
    env: dict[str, str] = {}
    for variable, parts in SECRETS.items():
        if variable.endswith("_HEADERS"):
            env[variable] = f"{parts[0]}={parts[1]}" + ("" if valid else ",broken")
        elif variable == "B2B_OTEL_AUDIT_KEY":
            env[variable] = parts[0]
        else:
            port = "4318" if valid else "99999"
            path = "/trace/{trace_id}" if variable == "B2B_OTEL_TRACE_LINK" else "/v1/traces?token=q-s3cr3t"
            env[variable] = f"https://{parts[0]}:{parts[1]}@collector:{port}{path}"
    return env


def _assert_no_secret(text: str) -> None:
    leaked = [secret for secret in [*ALL_SECRETS, "q-s3cr3t"] if secret in text]
    assert not leaked, f"secrets in output: {leaked}\n{text}"


def test_config_check_never_shows_a_secret_when_the_configuration_is_valid() -> None:
    result = _cli(_planted(valid=True))
    assert result.returncode == 0, result.stderr
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in result.stdout and "https://***@collector:4318" in result.stdout
    _assert_no_secret(result.stdout + result.stderr)


def test_config_check_never_shows_a_secret_when_every_variable_is_bad() -> None:
    result = _cli(_planted(valid=False))
    assert result.returncode == 1
    assert "OTEL_EXPORTER_OTLP_ENDPOINT='https://***@collector:99999" in result.stderr
    _assert_no_secret(result.stdout + result.stderr)


@pytest.mark.parametrize("valid", [True, False])
def test_no_config_error_text_shows_a_secret(valid: bool) -> None:
    env = _planted(valid)
    # Each variable alone, and with a neighbour broken, so that every error path is taken.
    for variable in env:
        for extra in ({}, {"OTEL_BSP_SCHEDULE_DELAY": "0"}):
            try:
                resolve(environ={variable: env[variable], **extra})
            except ConfigError as exc:
                _assert_no_secret(str(exc) + repr(exc.problems))
    with pytest.raises(ConfigError) as caught:
        resolve({"otlp_endpoint": ["https://kw-user-s3cr3t:pw@h"]}, environ=env)
    _assert_no_secret(str(caught.value))
    assert "kw-user-s3cr3t" not in str(caught.value)


def test_config_check_warns_of_a_bare_timeout_in_milliseconds() -> None:
    result = _cli({"OTEL_EXPORTER_OTLP_TIMEOUT": "10", "OTEL_SERVICE_NAME": "svc"})
    assert result.returncode == 0, result.stderr
    assert "warning: OTEL_EXPORTER_OTLP_TIMEOUT=10 means 10 milliseconds" in result.stderr
    quiet = _cli({"OTEL_EXPORTER_OTLP_TIMEOUT": "10s", "OTEL_SERVICE_NAME": "svc"})
    assert "warning" not in quiet.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/v1/traces", "ends in a signal path"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/logs", "points at the logs path"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://collector:4318", "is used as is"),
    ],
)
def test_config_check_warns_of_an_endpoint_with_the_wrong_signal_path(
    variable: str, value: str, expected: str
) -> None:
    result = _cli({variable: value, "OTEL_SERVICE_NAME": "svc"})
    assert result.returncode == 0, result.stderr
    assert f"warning: {variable}={value}" in result.stderr and expected in result.stderr


def test_config_check_warns_when_no_service_name_is_set() -> None:
    result = _cli({})
    assert result.returncode == 0, result.stderr
    assert "warning: OTEL_SERVICE_NAME is not set" in result.stderr
    named = _cli({"OTEL_RESOURCE_ATTRIBUTES": "service.name=svc"})
    assert "OTEL_SERVICE_NAME" not in named.stderr


def test_config_check_with_the_sdk_disabled_passes_despite_bad_variables() -> None:
    result = _cli({**EVERY_VARIABLE_BAD, "OTEL_SDK_DISABLED": "true"})
    assert result.returncode == 0, result.stderr
    assert "telemetry disabled" in result.stdout


# --- rules show


def test_rules_show_prints_the_thresholds_after_overrides() -> None:
    result = _cli({"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "0.5s"}, "rules", "show")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("agent.execution.slow "))
    assert "> 0.5s" in line and "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD" in line
    critical = next(x for x in result.stdout.splitlines() if "agent.execution.critical" in x)
    assert "> 300s" in critical and "overridden" not in critical


def test_rules_show_names_a_bad_override() -> None:
    result = _cli({"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "fast"}, "rules", "show")
    assert result.returncode == 1
    assert "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD=fast" in result.stderr

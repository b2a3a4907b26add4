"""Configuration: one validated settings table, clear errors, secrets never shown."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

import b2b_otel
from b2b_otel import ConfigError
from b2b_otel.rules import load_rules
from b2b_otel.setup.options import InstrumentOptions
from b2b_otel.setup.settings import Settings, render_markdown, resolve, table

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_follow_the_opentelemetry_specification() -> None:
    settings = resolve(environ={})
    assert settings.otlp_protocol == "http/protobuf"
    assert settings.traces_exporter == ("otlp",)
    assert settings.traces_sampler == "parentbased_always_on"
    assert settings.bsp_max_queue_size == 2048
    assert settings.bsp_schedule_delay == pytest.approx(5.0)
    assert settings.blrp_schedule_delay == pytest.approx(1.0)
    assert settings.metric_export_interval == pytest.approx(60.0)
    assert settings.otlp_timeout == pytest.approx(10.0)
    assert settings.log_dir == "logs"
    assert settings.log_format == "json"
    assert settings.redact is True
    assert settings.instrumentations == ("auto",)


def test_keyword_overrides_win_over_environment_which_wins_over_defaults() -> None:
    env = {"OTEL_SERVICE_NAME": "from-env", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    settings = resolve({"service_name": "from-kwarg"}, environ=env)
    assert settings.service_name == "from-kwarg"
    assert settings.otlp_protocol == "grpc"
    assert resolve(environ={}).service_name is None


def test_empty_variable_counts_as_unset() -> None:
    assert resolve(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": ""}).otlp_protocol == "http/protobuf"


@pytest.mark.parametrize("raw", ["true", "TRUE", "1", "yes", "On"])
def test_booleans_accept_true_spellings_in_any_case(raw: str) -> None:
    assert resolve(environ={"OTEL_SDK_DISABLED": raw}).sdk_disabled is True


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", "OFF"])
def test_booleans_accept_false_spellings_in_any_case(raw: str) -> None:
    assert resolve(environ={"B2B_OTEL_REDACT": raw}).redact is False


@pytest.mark.parametrize(
    ("raw", "seconds"), [("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("500ms", 0.5)]
)
def test_durations_accept_seconds_and_units(raw: str, seconds: float) -> None:
    assert resolve(environ={"B2B_OTEL_SHUTDOWN_TIMEOUT": raw}).shutdown_timeout == pytest.approx(seconds)


def test_otel_millisecond_variables_take_milliseconds_without_unit() -> None:
    settings = resolve(environ={"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_EXPORTER_OTLP_TIMEOUT": "2s"})
    assert settings.bsp_schedule_delay == pytest.approx(0.25)
    assert settings.otlp_timeout == pytest.approx(2.0)


def test_http_endpoint_gets_the_signal_path_appended() -> None:
    settings = resolve(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert settings.signal_otlp("traces").endpoint == "http://collector:4318/v1/traces"
    assert settings.signal_otlp("logs").endpoint == "http://collector:4318/v1/logs"


def test_per_signal_variables_win_and_are_used_as_is() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:9000/custom",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=1",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "b=2",
    }
    settings = resolve(environ=env)
    assert settings.signal_otlp("metrics").endpoint == "http://metrics:9000/custom"
    traces = settings.signal_otlp("traces")
    assert (traces.protocol, traces.endpoint, traces.insecure) == ("grpc", "http://traces:4317", True)
    assert settings.signal_otlp("traces").headers == {"a": "1"}
    assert settings.signal_otlp("logs").headers == {"b": "2"}


def test_grpc_default_endpoint_is_4317() -> None:
    target = resolve(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}).signal_otlp("logs")
    assert target.endpoint == "http://localhost:4317"


def test_headers_are_percent_decoded() -> None:
    settings = resolve(environ={"OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b,x-tenant=acme"})
    assert settings.otlp_headers == {"api-key": "a b", "x-tenant": "acme"}


BAD_CONFIGURATIONS = [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "accepted: grpc or http/protobuf"),
    ("OTEL_TRACES_SAMPLER_ARG", "1.5", "accepted: a number from 0 to 1"),
    ("OTEL_TRACES_SAMPLER", "sometimes", "accepted: always_on"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "-5", "accepted: a positive integer"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "many", "accepted: a positive integer"),
    ("B2B_OTEL_INSTRUMENTATIONS", "psycopg,redis", "unknown instrumentation redis"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "malformed URL"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://:99999", "malformed URL"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key", "not of the form key=value"),
    ("B2B_OTEL_LOG_DIR", "/etc/hostname/logs", "not a folder"),
    ("OTEL_TRACES_EXPORTER", "zipkin", "accepted: comma list of otlp, console; or none"),
    ("OTEL_SDK_DISABLED", "maybe", "accepted: a boolean"),
    ("B2B_OTEL_SHUTDOWN_TIMEOUT", "soon", "accepted: a duration"),
    ("B2B_OTEL_LOG_FORMAT", "xml", "accepted: json or text"),
    ("B2B_OTEL_ALERTMANAGER_URL", "am:9093", "malformed URL"),
    ("B2B_OTEL_RULES_FILE", "/nonexistent/rules.yaml", "not found or not readable"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "accepted: gzip or none"),
]


@pytest.mark.parametrize(
    ("variable", "value", "expected"), BAD_CONFIGURATIONS, ids=[b[0] for b in BAD_CONFIGURATIONS]
)
def test_bad_value_gives_one_clear_line_naming_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={variable: value})
    error = caught.value
    assert len(error.problems) == 1
    line = str(error).splitlines()[1]
    assert line.strip().startswith(f"{variable}=")
    assert expected in line
    assert "accepted" in line


def test_batch_larger_than_queue_is_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20"})
    assert [p.variable for p in caught.value.problems] == ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"]


def test_unwritable_log_directory_is_rejected(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="B2B_OTEL_LOG_DIR"):
        resolve(environ={"B2B_OTEL_LOG_DIR": str(blocker)})


def test_log_dir_none_disables_local_files() -> None:
    assert resolve(environ={"B2B_OTEL_LOG_DIR": "none"}).log_path is None


def test_several_bad_variables_give_one_error_listing_all() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_TRACES_SAMPLER_ARG": "7",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "not a url",
        "OTEL_BSP_MAX_QUEUE_SIZE": "0",
        "B2B_OTEL_INSTRUMENTATIONS": "kafka",
    }
    with pytest.raises(ConfigError) as caught:
        resolve(environ=env)
    named = sorted(p.variable for p in caught.value.problems)
    assert named == sorted(env)
    assert str(caught.value).startswith("invalid b2b-otel configuration (5 problems):")


def test_secret_values_and_keys_never_appear_in_errors() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_HEADERS": "x-super-secret-key=hunter2hunter2,brokenpair",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization",
    }
    with pytest.raises(ConfigError) as caught:
        resolve(environ=env)
    text = str(caught.value)
    assert "hunter2" not in text
    assert "x-super-secret-key" not in text
    assert "authorization" not in text
    assert "OTEL_EXPORTER_OTLP_HEADERS=***" in text


def test_unknown_keyword_override_is_named() -> None:
    with pytest.raises(ConfigError, match=r"instrument\(servce_name=...\)"):
        resolve({"servce_name": "typo"}, environ={})


def test_typed_keyword_overrides_are_accepted() -> None:
    settings = resolve(
        {"otlp_headers": {"k": "v"}, "instrumentations": ["httpx"], "redact": False}, environ={}
    )
    assert settings.otlp_headers == {"k": "v"}
    assert settings.instrumentations == ("httpx",)
    assert settings.redact is False


def test_every_setting_has_a_variable_doc_and_accepted_text() -> None:
    rows = list(table())
    assert len(rows) == len(Settings.model_fields)
    envs = [row.var.env for row in rows]
    assert len(envs) == len(set(envs))
    for row in rows:
        assert row.var.env.startswith(("OTEL_", "B2B_OTEL_"))
        assert row.var.doc and row.var.accepted


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_script_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_doc_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == render_markdown(), (
        "docs/configuration.md is stale: run python scripts/gen_config_docs.py"
    )
    # And b2b_otel/setup/options.py (InstrumentOptions), from the same table.
    outputs = _load_script("gen_config_docs").outputs()
    assert ROOT / "b2b_otel" / "setup" / "options.py" in outputs
    for target, text in outputs.items():
        assert target.read_text(encoding="utf-8") == text, (
            f"{target.relative_to(ROOT)} is stale: run python scripts/gen_config_docs.py"
        )


def test_instrument_options_has_one_key_per_setting() -> None:
    assert list(InstrumentOptions.__annotations__) == list(Settings.model_fields)
    assert InstrumentOptions.__total__ is False
    assert b2b_otel.InstrumentOptions is InstrumentOptions


def test_options_module_imports_only_typing() -> None:
    # `import b2b_otel` must stay cheap: no pydantic, no settings module behind InstrumentOptions.
    tree = ast.parse((ROOT / "b2b_otel" / "setup" / "options.py").read_text(encoding="utf-8"))
    imported = {
        alias.name if isinstance(node, ast.Import) else str(node.module)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {"__future__", "typing", "collections.abc"}, imported


# Valid Python values and strings per field where "x" would not do (URLs, files, list items).
_TEXT = {
    "otlp_endpoint": "http://127.0.0.1:4318",
    "alertmanager_url": "http://127.0.0.1:9093",
    "trace_link": "http://127.0.0.1:16686/trace/{trace_id}",
    "log_dir": "none",
}
_ITEM = {"instrumentations": "logging", "redact_allow_keys": "user.id", "propagators": "baggage"}


def _samples(field: str, hint: Any, readable: str) -> list[Any]:
    """One value per member of the field's InstrumentOptions type."""
    members = get_args(hint) or (hint,)
    item = _ITEM.get(field, "console")
    text = _TEXT.get(
        field, readable if field.endswith(("_certificate", "rules_file", "prices_file")) else "x"
    )
    if field.endswith("_endpoint"):
        text = _TEXT["otlp_endpoint"]
    samples: list[Any] = []
    for member in members:
        origin = get_origin(member)
        if member is type(None):
            samples.append(None)
        elif member is bool:
            samples += [True, False]
        elif member is int:
            samples.append(Settings.model_fields[field].get_default())
        elif member is float:
            samples += [0.5, 1]
        elif origin is Literal:
            samples += list(get_args(member))
        elif origin is list:
            samples.append([item])
        elif origin is tuple:
            samples.append((item,))
        elif origin is Mapping:
            samples.append(types.MappingProxyType({"k": "v"}))
        elif member is str:
            # The string form: what the environment variable of this field would hold.
            if bool in members:
                samples += ["yes", "OFF"]
            elif int in members:
                samples.append(str(Settings.model_fields[field].get_default()))
            elif float in members:
                samples.append("0.5")
            elif any(get_origin(m) is Literal for m in members):
                literal = next(m for m in members if get_origin(m) is Literal)
                samples.append(f" {get_args(literal)[0].upper()} ")
            elif any(get_origin(m) is list for m in members):
                samples.append(f"{item}, {item}" if field != "traces_exporter" else "otlp,console")
            elif any(get_origin(m) is Mapping for m in members):
                samples.append("k=v,k2=v%202")
            else:
                samples.append(text)
        else:
            raise AssertionError(f"{field}: no sample for {member!r}; teach _samples() this type")
    return samples


def _pem(path: Path, block: str) -> str:
    path.write_text(f"-----BEGIN {block}-----\nAAAA\n-----END {block}-----\n", encoding="utf-8")
    return str(path)


def test_every_form_instrument_options_allows_is_accepted(tmp_path: Path) -> None:
    readable = tmp_path / "ca.pem"
    readable.write_text("not checked here\n", encoding="utf-8")
    # mTLS files are checked for their PEM block, and are given in pairs.
    key, cert = _pem(tmp_path / "client.key", "PRIVATE KEY"), _pem(tmp_path / "client.pem", "CERTIFICATE")
    # The audit signing key is loaded: a real Ed25519 key.
    from b2b_otel.audit_trail.signing import keygen

    signing_key = str(keygen(tmp_path / "audit-keys")[0])
    hints = get_type_hints(InstrumentOptions)
    for field, hint in hints.items():
        partner: dict[str, Any] = {}
        if field.endswith("_client_key"):
            partner = {field.replace("_client_key", "_client_certificate"): cert}
        elif field.endswith("_client_certificate"):
            partner = {field.replace("_client_certificate", "_client_key"): key}
        for value in _samples(field, hint, str(readable)):
            if partner and isinstance(value, str):
                value = key if field.endswith("_client_key") else cert
            if field == "audit_signing_key" and isinstance(value, str):
                value = signing_key
            try:
                resolve({field: value, **(partner if value is not None else {})}, environ={})
            except ConfigError as exc:  # pragma: no cover - the failure message is the point
                pytest.fail(f"InstrumentOptions allows {field}={value!r} but resolve() rejects it: {exc}")


def _cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "config", "check"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_config_check_prints_effective_configuration_with_secrets_masked() -> None:
    result = _cli({"OTEL_EXPORTER_OTLP_HEADERS": "api-key=topsecret", "OTEL_SERVICE_NAME": "svc"})
    assert result.returncode == 0, result.stderr
    assert "topsecret" not in result.stdout + result.stderr
    assert "OTEL_EXPORTER_OTLP_HEADERS" in result.stdout and "***" in result.stdout
    assert "svc" in result.stdout
    assert "traces: otlp http/protobuf -> http://localhost:4318/v1/traces" in result.stdout


def test_config_check_exits_non_zero_with_the_config_error_text() -> None:
    result = _cli({"OTEL_EXPORTER_OTLP_PROTOCOL": "udp", "OTEL_EXPORTER_OTLP_HEADERS": "k=topsecret,bad"})
    assert result.returncode == 1
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='udp'" in result.stderr
    assert "OTEL_EXPORTER_OTLP_HEADERS=***" in result.stderr
    assert "topsecret" not in result.stderr + result.stdout


def test_config_check_also_validates_rule_threshold_variables() -> None:
    result = _cli({"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "fast"})
    assert result.returncode == 1
    assert "B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD=fast" in result.stderr
    ok = _cli({"B2B_OTEL_RULE_AGENT_EXECUTION_SLOW_THRESHOLD": "0.5s"})
    assert ok.returncode == 0, ok.stderr
    count = len(load_rules(None, {}))
    assert f"rules: {count} enabled of {count} (built-in)" in ok.stdout

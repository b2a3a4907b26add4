"""Every setting of b2b_otel, declared once, and the one place where they are resolved.

Each field of :class:`Settings` is a row of the settings table: its environment variable, type,
default and doc live on the field (``Var`` metadata). Keyword overrides to ``instrument()`` use the
field name, e.g. ``instrument(service_name="api", otlp_protocol="grpc")``. Precedence: keyword
overrides, then environment variables, then defaults. Nothing here runs at import time: settings
are read and validated when ``instrument()`` (or ``b2b-otel config check``) calls :func:`resolve`.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import string
import tempfile
import threading
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import unquote, urlsplit

from .. import semconv as sc
from .._internal.durations import parse_duration
from .._internal.errors import ConfigError, Problem
from .._internal.sizes import parse_size
from ..scrub import Scrubber
from . import libraries, propagation

# The signals, as OTEL_EXPORTER_OTLP_{SIGNAL}_* and the signal of b2b.telemetry.dropped name them.
TRACES, METRICS, LOGS = sc.SignalValues.TRACES, sc.SignalValues.METRICS, sc.SignalValues.LOGS
SIGNALS = (TRACES, METRICS, LOGS)
EXPORTER_NAMES = ("otlp", "console", "none")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
# Instrumentation name -> the client library and instrumentor it needs (setup/libraries.py).
INSTRUMENTATION_LIBRARIES = libraries.LIBRARIES
MASK = "***"


@dataclass(frozen=True)
class Var:
    """Metadata of one setting: where it comes from and what it accepts."""

    env: str
    doc: str
    accepted: str
    secret: bool = False


# --- the field declarations' metadata -----------------------------------------------------------
# Settings are validated by the fast path below (:func:`_fast_values`) when every value is of a form
# whose result is certain, and by pydantic (:func:`settings_model`, built from the same declarations)
# otherwise, with pydantic's checks and this module's messages. So start-up imports no pydantic: these
# stand-ins carry the declarations' validators and become pydantic's own in ``settings_model()``.


@dataclass(frozen=True)
class BeforeValidator:
    """Run ``func`` on the raw value before its type is checked (pydantic's ``BeforeValidator``)."""

    func: Callable[[Any], Any]


@dataclass(frozen=True)
class AfterValidator:
    """Run ``func`` on the value after its type is checked (pydantic's ``AfterValidator``)."""

    func: Callable[[Any], Any]


@dataclass(frozen=True)
class _DefaultFactory:
    factory: Callable[[], Any]


def Field(default_factory: Callable[[], Any]) -> Any:
    """A default made fresh for each Settings (``Field(default_factory=dict)``)."""
    return _DefaultFactory(default_factory)


# --- parsers: each turns the raw string of an environment variable into a typed value -------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse_bool(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("not a boolean")
    return value


def _parse_millis(value: Any) -> Any:
    # OpenTelemetry's own duration variables are milliseconds when no unit is given.
    return parse_duration(value, bare_unit="ms")


def _parse_list(value: Any) -> Any:
    # A string is split at commas; any other collection of strings (list, tuple, deque, set...) is
    # taken item by item, so that every form reaches the same checks.
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray, Mapping)):
        items = tuple(value)
        if not all(isinstance(item, str) for item in items):
            raise ValueError("every item must be a string")
        return tuple(item.strip() for item in items if item.strip())
    return value


def _parse_names(value: Any) -> Any:
    # Names (exporters, instrumentations, propagators) are matched in any case, in every form.
    items = _parse_list(value)
    return tuple(item.lower() for item in items) if isinstance(items, tuple) else items


def parse_key_values(value: Any, what: str) -> Any:
    """``k1=v1,k2=v2`` (W3C baggage style, percent-decoded) into a dict; errors never echo values."""
    if not isinstance(value, str):
        return value
    result: dict[str, str] = {}
    for position, item in enumerate(value.split(","), start=1):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} entry {position} is not of the form key=value")
        result[unquote(key.strip())] = unquote(val.strip())
    return result


def _parse_headers(value: Any) -> Any:
    return parse_key_values(value, "header")


def _parse_resource_attributes(value: Any) -> Any:
    return parse_key_values(value, "resource attribute")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _parse_propagators(value: Any) -> Any:
    # Exact names, no empty items: opentelemetry.propagate reads the variable itself, just so, and
    # raises on what it cannot find ("B3", "tracecontext,").
    if isinstance(value, str) and any(not item.strip() for item in value.split(",")):
        raise ValueError("empty item in the list")
    return _parse_list(value)


def _parse_exporters(value: Any) -> Any:
    items = _parse_names(value)
    if isinstance(items, tuple):
        unknown = [item for item in items if item not in EXPORTER_NAMES]
        if unknown or not items:
            raise ValueError("unknown exporter")
        if "none" in items and len(items) > 1:
            raise ValueError("'none' cannot be combined with other exporters")
    return items


@dataclass(frozen=True)
class Bounds:
    """The range a numeric setting accepts: what the SDK piece it configures accepts, nothing wider.

    Durations are held in seconds and shown in ``unit`` (``ms`` or ``s``); counts and ratios have no
    unit. ``tests/test_config_edges.py`` builds the real SDK pieces from both ends of every range.
    """

    low: float
    high: float
    low_open: bool = False  # True: ``low`` itself is refused (the SDK wants it strictly greater)
    unit: str = ""

    def shown(self, value: float) -> str:
        """``value`` in the unit users write: ``5000 ms``, ``5 s``, ``10``."""
        number = value * 1000 if self.unit == "ms" else value
        text = f"{number:.3f}".rstrip("0").rstrip(".")  # never exponent form: 86400000, not 8.64e+07
        return f"{text} {self.unit}" if self.unit else text

    def check(self, value: Any) -> Any:
        """``value`` when inside the range, else ``ValueError`` saying the range in the user's unit."""
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("not a finite number")
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high:
            above = "greater than" if self.low_open else "at least"
            raise ValueError(f"must be {above} {self.shown(self.low)} and at most {self.shown(self.high)}")
        return value


MAX_DURATION_S = 86_400.0
"""The longest delay, interval or timeout accepted (one day): far beyond any sensible export
cadence, far below the thread-wait limit the SDK's workers would overflow."""
MAX_COUNT = 2**31 - 1
_MILLIS = Bounds(0.0, MAX_DURATION_S, low_open=True, unit="ms")
_SECONDS = Bounds(0.0, MAX_DURATION_S, unit="s")
_COUNT = Bounds(1, MAX_COUNT)
_RATIO = Bounds(0.0, 1.0)
_BUFFER_BYTES = Bounds(64 * 1024, 2**50)  # 64 KiB .. 1 PiB
_CHECKPOINT_INTERVAL = Bounds(0.1, MAX_DURATION_S, unit="s")

Bool = Annotated[bool, BeforeValidator(_parse_bool)]
Seconds = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_SECONDS.check), _SECONDS]
Millis = Annotated[float, BeforeValidator(_parse_millis), AfterValidator(_MILLIS.check), _MILLIS]
Exporters = Annotated[tuple[str, ...], BeforeValidator(_parse_exporters)]
Protocol = Annotated[Literal["grpc", "http/protobuf"], BeforeValidator(_lower)]
Compression = Annotated[Literal["gzip", "none"], BeforeValidator(_lower)]
Headers = Annotated[dict[str, str], BeforeValidator(_parse_headers)]
StrList = Annotated[tuple[str, ...], BeforeValidator(_parse_list)]
NameList = Annotated[tuple[str, ...], BeforeValidator(_parse_names)]
PositiveInt = Annotated[int, AfterValidator(_COUNT.check), _COUNT]
Ratio = Annotated[float, AfterValidator(_RATIO.check), _RATIO]

_EXPORTER_ACCEPTS = "comma list of otlp, console; or none"
_ENDPOINT_ACCEPTS = "an absolute http:// or https:// URL, e.g. http://localhost:4318"
_HEADERS_ACCEPTS = "comma list of key=value pairs (values percent-encoded)"
_MS_ACCEPTS = "milliseconds as a positive number, or a duration such as 10s, 500ms, 1m; at most 24h"
_COUNT_ACCEPTS = f"a positive integer up to {MAX_COUNT}"
_PROPAGATORS_ACCEPTS = (
    "comma list of tracecontext, baggage, b3, b3multi, jaeger (b3 and jaeger where their "
    "packages are installed), spelt so; or none"
)
_FILE_ACCEPTS = "a readable file"
_PEM_ACCEPTS = "a readable PEM file"
TRACE_LINK_FIELDS = ("trace_id",)


def _signal_vars(signal: str, what: str, accepted: str, secret: bool = False) -> Var:
    env = f"OTEL_EXPORTER_OTLP_{signal.upper()}_{what}"
    doc = f"{what.lower()} for {signal} only; falls back to OTEL_EXPORTER_OTLP_{what}"
    return Var(env, doc, accepted, secret)


class _SettingsType(type):
    @property
    def model_fields(cls) -> dict[str, Any]:
        """The fields of the pydantic model of the settings (name -> ``FieldInfo``), in table order."""
        fields: dict[str, Any] = settings_model().model_fields
        return fields


class Settings(metaclass=_SettingsType):
    """The resolved configuration. Field name = keyword override; ``Var`` metadata = the table row.

    Frozen. ``Settings(**values)`` validates as :func:`resolve` does (pydantic's ``ValidationError``
    on a bad value); :func:`resolve` is what reads the environment.
    """

    def __init__(self, **values: Any) -> None:
        checked = _fast_values(values)
        if checked is None:
            checked = _model_values(settings_model()(**values))
        self.__dict__.update(checked)
        self.__dict__["_fields_set"] = frozenset(values)

    @classmethod
    def _made(cls, values: dict[str, Any], given: Iterable[str]) -> Settings:
        made = cls.__new__(cls)
        made.__dict__.update(values)
        made.__dict__["_fields_set"] = frozenset(given)
        return made

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Settings are frozen: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Settings are frozen: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _spec().fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _spec().fields)
        return f"Settings({shown})"

    @property
    def model_fields_set(self) -> frozenset[str]:
        """The fields given (by the environment or a keyword) rather than left at their default."""
        given: frozenset[str] = self.__dict__["_fields_set"]
        return given

    def model_copy(self, update: Mapping[str, Any] | None = None) -> Settings:
        """A copy with ``update`` applied (not validated again, as pydantic's ``model_copy``)."""
        values = {name: getattr(self, name) for name in _spec().fields}
        values.update(update or {})
        return Settings._made(values, self.model_fields_set | set(update or {}))

    # --- service and resource
    sdk_disabled: Annotated[
        Bool,
        Var("OTEL_SDK_DISABLED", "disable all telemetry; instrument() returns a no-op handle", "a boolean"),
    ] = False
    service_name: Annotated[
        str | None,
        Var(
            "OTEL_SERVICE_NAME",
            "service.name of the resource (wins over OTEL_RESOURCE_ATTRIBUTES)",
            "a string",
        ),
    ] = None
    service_version: Annotated[
        str | None, Var("B2B_OTEL_SERVICE_VERSION", "service.version of the resource", "a string")
    ] = None
    environment: Annotated[
        str | None,
        Var(
            "B2B_OTEL_ENVIRONMENT", "deployment.environment.name of the resource, e.g. production", "a string"
        ),
    ] = None
    resource_attributes: Annotated[
        dict[str, str],
        BeforeValidator(_parse_resource_attributes),
        Var("OTEL_RESOURCE_ATTRIBUTES", "extra resource attributes", "comma list of key=value pairs"),
    ] = Field(default_factory=dict)

    # --- exporters and OTLP
    traces_exporter: Annotated[
        Exporters, Var("OTEL_TRACES_EXPORTER", "where spans go", _EXPORTER_ACCEPTS)
    ] = ("otlp",)
    metrics_exporter: Annotated[
        Exporters, Var("OTEL_METRICS_EXPORTER", "where metrics go", _EXPORTER_ACCEPTS)
    ] = ("otlp",)
    logs_exporter: Annotated[
        Exporters, Var("OTEL_LOGS_EXPORTER", "where log records go", _EXPORTER_ACCEPTS)
    ] = ("otlp",)
    otlp_endpoint: Annotated[
        str | None,
        Var(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "base URL of the OTLP receiver; default http://localhost:4318 (http/protobuf) "
            "or http://localhost:4317 (grpc); /v1/<signal> is appended for http/protobuf",
            _ENDPOINT_ACCEPTS,
        ),
    ] = None
    otlp_protocol: Annotated[
        Protocol, Var("OTEL_EXPORTER_OTLP_PROTOCOL", "OTLP transport", "grpc or http/protobuf")
    ] = "http/protobuf"
    otlp_headers: Annotated[
        Headers,
        Var(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "headers sent with every export (never logged)",
            _HEADERS_ACCEPTS,
            True,
        ),
    ] = Field(default_factory=dict)
    otlp_timeout: Annotated[
        Millis, Var("OTEL_EXPORTER_OTLP_TIMEOUT", "timeout of one export, in milliseconds", _MS_ACCEPTS)
    ] = 10.0
    otlp_compression: Annotated[
        Compression, Var("OTEL_EXPORTER_OTLP_COMPRESSION", "payload compression", "gzip or none")
    ] = "none"
    otlp_certificate: Annotated[
        str | None,
        Var(
            "OTEL_EXPORTER_OTLP_CERTIFICATE", "CA certificate (PEM) to verify the receiver", "a readable file"
        ),
    ] = None
    otlp_client_key: Annotated[
        str | None,
        Var(
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "private key (PEM) of the client certificate, for mTLS; set with the client certificate",
            _PEM_ACCEPTS,
        ),
    ] = None
    otlp_client_certificate: Annotated[
        str | None,
        Var(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "client certificate (PEM) presented to the receiver, for mTLS; set with the client key",
            _PEM_ACCEPTS,
        ),
    ] = None
    otlp_insecure: Annotated[
        Bool | None,
        Var(
            "OTEL_EXPORTER_OTLP_INSECURE",
            "gRPC without TLS; default: true for http:// endpoints, false for https://",
            "a boolean",
        ),
    ] = None

    otlp_traces_endpoint: Annotated[
        str | None, _signal_vars(TRACES, "ENDPOINT", _ENDPOINT_ACCEPTS + " (used as is)")
    ] = None
    otlp_traces_protocol: Annotated[
        Protocol | None, _signal_vars(TRACES, "PROTOCOL", "grpc or http/protobuf")
    ] = None
    otlp_traces_headers: Annotated[
        Headers | None, _signal_vars(TRACES, "HEADERS", _HEADERS_ACCEPTS, secret=True)
    ] = None
    otlp_traces_timeout: Annotated[Millis | None, _signal_vars(TRACES, "TIMEOUT", _MS_ACCEPTS)] = None
    otlp_traces_compression: Annotated[
        Compression | None, _signal_vars(TRACES, "COMPRESSION", "gzip or none")
    ] = None
    otlp_traces_certificate: Annotated[str | None, _signal_vars(TRACES, "CERTIFICATE", "a readable file")] = (
        None
    )
    otlp_traces_insecure: Annotated[Bool | None, _signal_vars(TRACES, "INSECURE", "a boolean")] = None
    otlp_traces_client_key: Annotated[str | None, _signal_vars(TRACES, "CLIENT_KEY", _PEM_ACCEPTS)] = None
    otlp_traces_client_certificate: Annotated[
        str | None, _signal_vars(TRACES, "CLIENT_CERTIFICATE", _PEM_ACCEPTS)
    ] = None

    otlp_metrics_endpoint: Annotated[
        str | None, _signal_vars(METRICS, "ENDPOINT", _ENDPOINT_ACCEPTS + " (used as is)")
    ] = None
    otlp_metrics_protocol: Annotated[
        Protocol | None, _signal_vars(METRICS, "PROTOCOL", "grpc or http/protobuf")
    ] = None
    otlp_metrics_headers: Annotated[
        Headers | None, _signal_vars(METRICS, "HEADERS", _HEADERS_ACCEPTS, secret=True)
    ] = None
    otlp_metrics_timeout: Annotated[Millis | None, _signal_vars(METRICS, "TIMEOUT", _MS_ACCEPTS)] = None
    otlp_metrics_compression: Annotated[
        Compression | None, _signal_vars(METRICS, "COMPRESSION", "gzip or none")
    ] = None
    otlp_metrics_certificate: Annotated[
        str | None, _signal_vars(METRICS, "CERTIFICATE", "a readable file")
    ] = None
    otlp_metrics_insecure: Annotated[Bool | None, _signal_vars(METRICS, "INSECURE", "a boolean")] = None
    otlp_metrics_client_key: Annotated[str | None, _signal_vars(METRICS, "CLIENT_KEY", _PEM_ACCEPTS)] = None
    otlp_metrics_client_certificate: Annotated[
        str | None, _signal_vars(METRICS, "CLIENT_CERTIFICATE", _PEM_ACCEPTS)
    ] = None

    otlp_logs_endpoint: Annotated[
        str | None, _signal_vars(LOGS, "ENDPOINT", _ENDPOINT_ACCEPTS + " (used as is)")
    ] = None
    otlp_logs_protocol: Annotated[
        Protocol | None, _signal_vars(LOGS, "PROTOCOL", "grpc or http/protobuf")
    ] = None
    otlp_logs_headers: Annotated[
        Headers | None, _signal_vars(LOGS, "HEADERS", _HEADERS_ACCEPTS, secret=True)
    ] = None
    otlp_logs_timeout: Annotated[Millis | None, _signal_vars(LOGS, "TIMEOUT", _MS_ACCEPTS)] = None
    otlp_logs_compression: Annotated[
        Compression | None, _signal_vars(LOGS, "COMPRESSION", "gzip or none")
    ] = None
    otlp_logs_certificate: Annotated[str | None, _signal_vars(LOGS, "CERTIFICATE", "a readable file")] = None
    otlp_logs_insecure: Annotated[Bool | None, _signal_vars(LOGS, "INSECURE", "a boolean")] = None
    otlp_logs_client_key: Annotated[str | None, _signal_vars(LOGS, "CLIENT_KEY", _PEM_ACCEPTS)] = None
    otlp_logs_client_certificate: Annotated[
        str | None, _signal_vars(LOGS, "CLIENT_CERTIFICATE", _PEM_ACCEPTS)
    ] = None

    # --- sampling
    traces_sampler: Annotated[
        Literal[
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        ],
        BeforeValidator(_lower),
        Var("OTEL_TRACES_SAMPLER", "which traces are exported", ", ".join(SAMPLERS)),
    ] = "parentbased_always_on"
    traces_sampler_arg: Annotated[
        Ratio | None,
        Var(
            "OTEL_TRACES_SAMPLER_ARG",
            "ratio for the traceidratio samplers (default 1.0)",
            "a number from 0 to 1",
        ),
    ] = None

    # --- context propagation
    propagators: Annotated[
        tuple[str, ...],
        BeforeValidator(_parse_propagators),
        Var(
            "OTEL_PROPAGATORS",
            "headers that carry the trace context and baggage to other services",
            _PROPAGATORS_ACCEPTS,
        ),
    ] = propagation.DEFAULT
    trust_incoming_context: Annotated[
        Bool,
        Var(
            "B2B_OTEL_TRUST_INCOMING_CONTEXT",
            "take b2b.tenant.id, user.id and session.id from the W3C baggage of incoming requests; false"
            " drops them where a request's context is extracted (a service whose callers are not trusted),"
            " so that only b2b_otel.context() sets them",
            "a boolean",
        ),
    ] = True

    # --- batching (OTEL_BSP_* for spans, OTEL_BLRP_* for log records)
    bsp_schedule_delay: Annotated[
        Millis, Var("OTEL_BSP_SCHEDULE_DELAY", "delay between two span exports (ms)", _MS_ACCEPTS)
    ] = 5.0
    bsp_export_timeout: Annotated[
        Millis, Var("OTEL_BSP_EXPORT_TIMEOUT", "maximum time of one span export (ms)", _MS_ACCEPTS)
    ] = 30.0
    bsp_max_queue_size: Annotated[
        PositiveInt, Var("OTEL_BSP_MAX_QUEUE_SIZE", "spans buffered before dropping", _COUNT_ACCEPTS)
    ] = 2048
    bsp_max_export_batch_size: Annotated[
        PositiveInt,
        Var(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "spans per export",
            "a positive integer <= OTEL_BSP_MAX_QUEUE_SIZE",
        ),
    ] = 512
    blrp_schedule_delay: Annotated[
        Millis, Var("OTEL_BLRP_SCHEDULE_DELAY", "delay between two log exports (ms)", _MS_ACCEPTS)
    ] = 1.0
    blrp_export_timeout: Annotated[
        Millis, Var("OTEL_BLRP_EXPORT_TIMEOUT", "maximum time of one log export (ms)", _MS_ACCEPTS)
    ] = 30.0
    blrp_max_queue_size: Annotated[
        PositiveInt,
        Var("OTEL_BLRP_MAX_QUEUE_SIZE", "log records buffered before dropping", _COUNT_ACCEPTS),
    ] = 2048
    blrp_max_export_batch_size: Annotated[
        PositiveInt,
        Var(
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
            "log records per export",
            "a positive integer <= OTEL_BLRP_MAX_QUEUE_SIZE",
        ),
    ] = 512
    metric_export_interval: Annotated[
        Millis, Var("OTEL_METRIC_EXPORT_INTERVAL", "interval between two metric exports (ms)", _MS_ACCEPTS)
    ] = 60.0
    metric_export_timeout: Annotated[
        Millis, Var("OTEL_METRIC_EXPORT_TIMEOUT", "maximum time of one metric export (ms)", _MS_ACCEPTS)
    ] = 30.0

    # --- product settings
    instrumentations: Annotated[
        NameList,
        Var(
            "B2B_OTEL_INSTRUMENTATIONS",
            "libraries to instrument; auto = each whose client library and instrumentation (the extra "
            "b2b-otel[NAME]) are installed",
            "auto, none, or a comma list of psycopg, httpx, logging, openai, anthropic, system_metrics",
        ),
    ] = ("auto",)
    rules_file: Annotated[
        str | None,
        Var(
            "B2B_OTEL_RULES_FILE",
            "YAML rules file; unset = the built-in rules (the default thresholds listed in docs/rules.md)",
            "a readable file",
        ),
    ] = None
    log_dir: Annotated[
        str,
        Var(
            "B2B_OTEL_LOG_DIR",
            "folder of critical.log, security.log, performance.log, audit.log; none disables",
            ("a writable folder path, or none"),
        ),
    ] = "logs"
    log_format: Annotated[
        Literal["json", "text"],
        BeforeValidator(_lower),
        Var("B2B_OTEL_LOG_FORMAT", "line format of the local log files", "json or text"),
    ] = "json"
    audit_key: Annotated[
        str | None,
        Var(
            "B2B_OTEL_AUDIT_KEY",
            "HMAC-SHA256 key of the audit chain; unset = plain SHA-256",
            "a string",
            True,
        ),
    ] = None
    audit_signing_key: Annotated[
        str | None,
        Var(
            "B2B_OTEL_AUDIT_SIGNING_KEY",
            "Ed25519 private-key PEM file (b2b-otel audit keygen DIR): the audit records become leaves of "
            "a Merkle tree, details are stored as erasable salted commitments, and signed checkpoints are "
            "written to audit.log and emitted as b2b.audit.checkpoint log records; see [audit.md](audit.md)",
            "a readable, unencrypted Ed25519 private key in PEM (PKCS#8)",
        ),
    ] = None
    audit_checkpoint_interval: Annotated[
        float,
        BeforeValidator(parse_duration),
        AfterValidator(_CHECKPOINT_INTERVAL.check),
        _CHECKPOINT_INTERVAL,
        Var(
            "B2B_OTEL_AUDIT_CHECKPOINT_INTERVAL",
            "how often a signed checkpoint of the audit trail is written (when records were added since "
            "the last one), and at shutdown; with B2B_OTEL_AUDIT_SIGNING_KEY",
            "a duration: 10, 10s, 500ms, 1m; at least 100ms",
        ),
    ] = 10.0
    redact: Annotated[Bool, Var("B2B_OTEL_REDACT", "scrub sensitive data before export", "a boolean")] = True
    capture_content: Annotated[
        Bool,
        Var(
            "B2B_OTEL_CAPTURE_CONTENT",
            "record LLM prompts and completions on the openai/anthropic call spans, scrubbed like "
            "everything else; see [llm.md](llm.md)",
            "a boolean",
        ),
    ] = False
    llm_prices_file: Annotated[
        str | None,
        Var(
            "B2B_OTEL_LLM_PRICES_FILE",
            "YAML of per-model input/output prices (USD per million tokens) for b2b.llm.cost; unset = "
            "the built-in table (see [llm.md](llm.md))",
            "a readable file",
        ),
    ] = None
    redact_allow_keys: Annotated[
        StrList,
        Var("B2B_OTEL_REDACT_ALLOW_KEYS", "attribute keys never scrubbed", "comma list of attribute keys"),
    ] = ()
    alertmanager_url: Annotated[
        str | None,
        Var(
            "B2B_OTEL_ALERTMANAGER_URL",
            "Prometheus Alertmanager (API v2) that receives critical and warning firings",
            "an absolute http:// or https:// URL, e.g. http://127.0.0.1:9093",
        ),
    ] = None
    rules_max_groups: Annotated[
        PositiveInt,
        Var(
            "B2B_OTEL_RULES_MAX_GROUPS",
            "groups (e.g. client addresses) a window rule tracks; the least suspicious go first",
            _COUNT_ACCEPTS,
        ),
    ] = 10_000
    trace_link: Annotated[
        str,
        Var(
            "B2B_OTEL_TRACE_LINK",
            "link to a trace in alert annotations; {trace_id} is replaced",
            "an http:// or https:// URL template containing {trace_id}, its only field "
            "(a literal brace is written {{ or }})",
        ),
    ] = "http://localhost:16686/trace/{trace_id}"
    shutdown_timeout: Annotated[
        Seconds,
        Var(
            "B2B_OTEL_SHUTDOWN_TIMEOUT", "how long the flush at exit may take", "a duration: 5, 5s, 500ms, 1m"
        ),
    ] = 5.0
    export_buffer_dir: Annotated[
        str | None,
        Var(
            "B2B_OTEL_EXPORT_BUFFER_DIR",
            "when set, span and log batches the OTLP backend did not take are kept in this folder and "
            "replayed when it is back, also by the next process start; see "
            "[export-buffer.md](export-buffer.md)",
            "a writable folder path",
        ),
    ] = None
    export_buffer_max_size: Annotated[
        int,
        BeforeValidator(parse_size),
        AfterValidator(_BUFFER_BYTES.check),
        _BUFFER_BYTES,
        Var(
            "B2B_OTEL_EXPORT_BUFFER_MAX_SIZE",
            "bytes the export buffer keeps per signal and process (64 MiB); the oldest batches are "
            "dropped first, counted as b2b.telemetry.dropped{reason=buffer_full}",
            "bytes, or a size such as 512KiB, 64MiB, 1GiB, 100MB; at least 64KiB",
        ),
    ] = 64 * 1024 * 1024

    # --- derived views -----------------------------------------------------------------------------

    def signal_otlp(self, signal: str) -> OTLPTarget:
        """The effective OTLP target of one signal: per-signal variables over the generic ones."""
        protocol = getattr(self, f"otlp_{signal}_protocol") or self.otlp_protocol
        endpoint = getattr(self, f"otlp_{signal}_endpoint")
        if endpoint is None:
            base = self.otlp_endpoint or (
                "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
            )
            endpoint = base if protocol == "grpc" else base.rstrip("/") + f"/v1/{signal}"
        headers = getattr(self, f"otlp_{signal}_headers")
        timeout = getattr(self, f"otlp_{signal}_timeout")
        compression = getattr(self, f"otlp_{signal}_compression")
        certificate = getattr(self, f"otlp_{signal}_certificate")
        client_key = getattr(self, f"otlp_{signal}_client_key") or self.otlp_client_key
        client_certificate = (
            getattr(self, f"otlp_{signal}_client_certificate") or self.otlp_client_certificate
        )
        insecure = getattr(self, f"otlp_{signal}_insecure")
        if insecure is None:
            insecure = self.otlp_insecure
        if insecure is None:
            insecure = urlsplit(endpoint).scheme == "http"
        return OTLPTarget(
            protocol=protocol,
            endpoint=endpoint,
            headers=dict(self.otlp_headers if headers is None else headers),
            timeout_s=self.otlp_timeout if timeout is None else timeout,
            compression=compression or self.otlp_compression,
            certificate=certificate or self.otlp_certificate,
            insecure=bool(insecure),
            client_key=client_key,
            client_certificate=client_certificate,
        )

    def exporters(self, signal: str) -> tuple[str, ...]:
        """The exporter names of one signal (``traces``, ``metrics``, ``logs``)."""
        value: tuple[str, ...] = getattr(self, f"{signal}_exporter")
        return value

    def enabled_instrumentations(self) -> tuple[str, ...]:
        """The instrumentations to install: ``auto`` expands to those whose library is importable."""
        names = self.instrumentations
        if names == ("none",):
            return ()
        if names == ("auto",):
            return libraries.available()
        return names

    @property
    def log_path(self) -> Path | None:
        """The local log folder, or None when local files are disabled."""
        return None if self.log_dir.strip().lower() == "none" else Path(self.log_dir)


@dataclass(frozen=True)
class OTLPTarget:
    """Where and how one signal is exported over OTLP."""

    protocol: str
    endpoint: str
    headers: dict[str, str]
    timeout_s: float
    compression: str
    certificate: str | None
    insecure: bool
    client_key: str | None = None
    client_certificate: str | None = None


# --- the table --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row of the settings table."""

    field: str
    var: Var
    default: Any


def table() -> Iterator[Row]:
    """The settings table, in declaration order."""
    spec = _spec()
    for name in spec.fields:
        yield Row(name, spec.vars[name], _default(name))


# --- the declarations read once: the fast path, and the pydantic model -------------------------------


@dataclass(frozen=True)
class _Spec:
    fields: dict[str, Any]  # name -> annotation (Annotated metadata included), declaration order
    vars: dict[str, Var]
    converters: dict[str, Callable[[Any], Any]]


_spec_lock = threading.RLock()  # settings_model() holds it while it reads _spec()
_spec_cache: list[_Spec] = []
_model_cache: list[Any] = []


def _spec() -> _Spec:
    if not _spec_cache:
        with _spec_lock:
            if not _spec_cache:
                hints = typing.get_type_hints(Settings, include_extras=True)
                fields = {name: hints[name] for name in Settings.__annotations__}
                found = {
                    name: next(m for m in _metadata(a) if isinstance(m, Var)) for name, a in fields.items()
                }
                converters = {name: _converter(a) for name, a in fields.items()}
                _spec_cache.append(_Spec(fields, found, converters))
    return _spec_cache[0]


def _metadata(annotation: Any) -> tuple[Any, ...]:
    return tuple(getattr(annotation, "__metadata__", ()))


def _default(name: str) -> Any:
    default = Settings.__dict__[name]
    return default.factory() if isinstance(default, _DefaultFactory) else default


class _Uncertain(Exception):
    """The fast path cannot be sure what pydantic makes of a value: pydantic decides."""


def _uncertain(value: Any) -> Any:
    raise _Uncertain


_INTEGER = re.compile(r"(?:0|[1-9][0-9]{0,17})")
_DECIMAL = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,18})?")


def _converter(annotation: Any) -> Callable[[Any], Any]:
    """What pydantic (lax mode) makes of a value for ``annotation``, for the values whose result is
    certain; ``_Uncertain`` for every other value (and a validator's ``ValueError``: its message is
    pydantic's to give). ``tests/test_startup_fast_paths.py`` holds each to pydantic's."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base = _converter(annotation.__origin__)
        meta = _metadata(annotation)
        befores = [m.func for m in meta if isinstance(m, BeforeValidator)]
        afters = [m.func for m in meta if isinstance(m, AfterValidator)]
        if len(befores) > 1:  # pydantic's order of several would matter: none is declared so
            return _uncertain

        def annotated(value: Any) -> Any:
            try:
                for before in befores:
                    value = before(value)
                value = base(value)
                for after in afters:
                    value = after(value)
            except (ValueError, TypeError, AssertionError):
                raise _Uncertain from None
            return value

        return annotated
    if origin in (Union, types.UnionType):
        arms = [arm for arm in get_args(annotation) if arm is not type(None)]
        if len(arms) != 1 or len(get_args(annotation)) != 2:
            return _uncertain
        arm = _converter(arms[0])
        return lambda value: None if value is None else arm(value)
    if origin is Literal:
        choices = frozenset(c for c in get_args(annotation) if type(c) is str)
        return lambda value: value if type(value) is str and value in choices else _uncertain(value)
    if annotation is bool:
        return lambda value: value if type(value) is bool else _uncertain(value)
    if annotation is str:
        return lambda value: value if type(value) is str else _uncertain(value)
    if annotation is int:
        return _to_int
    if annotation is float:
        return _to_float
    if origin is tuple and get_args(annotation) == (str, ...):
        return _to_strings
    if origin is dict and get_args(annotation) == (str, str):
        return _to_string_dict
    return _uncertain


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and _INTEGER.fullmatch(value):
        return int(value)
    raise _Uncertain


def _to_float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    if type(value) is str and _DECIMAL.fullmatch(value):
        return float(value)
    raise _Uncertain


def _to_strings(value: Any) -> tuple[str, ...]:
    if type(value) is tuple and all(type(item) is str for item in value):
        return value
    raise _Uncertain


def _to_string_dict(value: Any) -> dict[str, str]:
    if type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items()):
        return dict(value)
    raise _Uncertain


def _fast_values(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """Every field's value (defaults for those not given), or None when pydantic must decide."""
    spec = _spec()
    result: dict[str, Any] = {}
    try:
        for name, value in values.items():
            convert = spec.converters.get(name)
            if convert is None:
                return None  # an unknown field: pydantic's extra_forbidden
            result[name] = convert(value)
    except _Uncertain:
        return None
    for name in spec.fields:
        if name not in result:
            result[name] = _default(name)
    return result


def _model_values(model: Any) -> dict[str, Any]:
    return {name: getattr(model, name) for name in _spec().fields}


def settings_model() -> Any:
    """The pydantic model of :class:`Settings`, built from its declarations at the first need.

    What validates the values the fast path is not sure of, with pydantic's checks; the field table
    as pydantic sees it (``Settings.model_fields``).
    """
    if not _model_cache:
        with _spec_lock:
            if not _model_cache:
                import pydantic

                fields: dict[str, Any] = {}
                for name, annotation in _spec().fields.items():
                    default = Settings.__dict__[name]
                    if isinstance(default, _DefaultFactory):
                        default = pydantic.Field(default_factory=default.factory)
                    fields[name] = (_for_pydantic(annotation, pydantic), default)
                config = pydantic.ConfigDict(frozen=True, extra="forbid")
                _model_cache.append(pydantic.create_model("Settings", __config__=config, **fields))
    return _model_cache[0]


def _for_pydantic(annotation: Any, pydantic: Any) -> Any:
    """``annotation`` with this module's validator stand-ins replaced by pydantic's own."""
    origin = get_origin(annotation)
    if origin is Annotated:
        meta = [
            pydantic.BeforeValidator(m.func)
            if isinstance(m, BeforeValidator)
            else pydantic.AfterValidator(m.func)
            if isinstance(m, AfterValidator)
            else m
            for m in _metadata(annotation)
        ]
        params = (_for_pydantic(annotation.__origin__, pydantic), *meta)
        return Annotated[params]
    if origin in (Union, types.UnionType):
        return Union[tuple(_for_pydantic(arm, pydantic) for arm in get_args(annotation))]  # noqa: UP007
    return annotation


def _rows_by_field() -> dict[str, Row]:
    return {row.field: row for row in table()}


def numeric_bounds() -> dict[str, Bounds]:
    """The accepted range of every numeric setting, by field name."""

    def find(annotation: Any, metadata: Iterable[Any]) -> Bounds | None:
        for item in metadata:
            if isinstance(item, Bounds):
                return item
        for arg in get_args(annotation):
            found = find(arg, getattr(arg, "__metadata__", ()))
            if found is not None:
                return found
        return None

    result: dict[str, Bounds] = {}
    for name, info in Settings.model_fields.items():
        bounds = find(info.annotation, info.metadata)
        if bounds is not None:
            result[name] = bounds
    return result


# Fields holding a URL, whose userinfo (user:password@) and query may carry credentials.
URL_FIELDS = frozenset(
    {"otlp_endpoint", *(f"otlp_{s}_endpoint" for s in SIGNALS), "alertmanager_url", "trace_link"}
)


def mask_url(value: str, query: bool = True) -> str:
    """``value`` with the userinfo (and query) of a URL masked; the scheme, host and path stay readable.

    Works on malformed URLs too, since they are the ones an error message shows.

    >>> mask_url("https://user:pa55@collector:4318/otlp?token=abc")
    'https://***@collector:4318/otlp?***'
    """
    scheme, sep, rest = value.partition("://")
    head = scheme + sep if sep else ""
    rest = rest if sep else value
    if "@" in rest:
        rest = f"{MASK}@{rest.rsplit('@', 1)[1]}"
    if query and "?" in rest:
        path, _, params = rest.partition("?")
        _, hash_sign, fragment = params.partition("#")
        rest = f"{path}?{MASK}{hash_sign}{fragment}"
    return head + rest


def show_value(row: Row, value: Any) -> str:
    """A value as it may appear in output: secrets masked whole (keys included), durations with units."""
    if value is None:
        return "unset"
    if row.var.secret:
        return MASK if value else "(empty)"
    if isinstance(value, str) and row.field in URL_FIELDS:
        # The trace link's query holds {trace_id}, not a credential.
        return mask_url(value, query=row.field != "trace_link")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and row.var.accepted == _MS_ACCEPTS:
        return f"{value * 1000:g}ms"
    if isinstance(value, float) and row.field in ("shutdown_timeout", "audit_checkpoint_interval"):
        return f"{value:g}s"
    # Free-form values (OTEL_RESOURCE_ATTRIBUTES=api.token=...) are scrubbed like telemetry.
    if isinstance(value, tuple):
        return _SHOWN.text(",".join(value)) if value else "(empty)"
    if isinstance(value, dict):
        clean = _SHOWN.attributes(value) or value
        return _SHOWN.text(",".join(f"{k}={v}" for k, v in clean.items())) if value else "(empty)"
    return _SHOWN.text(str(value))


_SHOWN = Scrubber()


# --- resolution --------------------------------------------------------------------------------------


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# What OTEL_SDK_DISABLED=true leaves on: the audit trail, and the settings it reads.
AUDIT_FIELDS = frozenset(
    {"sdk_disabled", "log_dir", "audit_key", "audit_signing_key", "audit_checkpoint_interval"}
)


def _disabled(raw: Mapping[str, Any]) -> bool:
    try:
        return _parse_bool(raw.get("sdk_disabled", False)) is True
    except ValueError:
        return False  # a bad OTEL_SDK_DISABLED is reported as a problem of its own


def resolve(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the environment, apply keyword overrides, validate all; raise one ConfigError listing all.

    With ``OTEL_SDK_DISABLED=true`` telemetry is off and nothing else may stop the application: only
    the audit trail's settings (``B2B_OTEL_LOG_DIR``, ``B2B_OTEL_AUDIT_KEY``) are read and validated,
    every other setting keeps its default.
    """
    env = os.environ if environ is None else environ
    rows = _rows_by_field()
    overrides = dict(overrides or {})
    problems: list[Problem] = []

    raw: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name, row in rows.items():
        value = env.get(row.var.env)
        # The OpenTelemetry specification treats an empty variable as unset.
        if value is not None and value.strip() != "":
            raw[name] = value
            source[name] = row.var.env
    for name, value in overrides.items():
        if name not in rows:
            problems.append(
                Problem(
                    f"instrument({name}=...)", "given", "unknown keyword; accepted: see docs/configuration.md"
                )
            )
            continue
        raw[name] = value
        source[name] = f"instrument({name}=...)"
    if _disabled(raw):
        raw = {name: value for name, value in raw.items() if name in AUDIT_FIELDS}
        problems = []

    bad_fields: set[str] = set()
    fast = _fast_values(raw)
    if fast is not None:
        settings = Settings._made(fast, raw)
    else:
        settings = _validated(raw, rows, source, bad_fields, problems)
    problems.extend(
        p for p in _cross_check(settings, rows, source) if p.variable not in _names(bad_fields, rows, source)
    )
    if problems:
        raise ConfigError(problems)
    return settings


def _validated(
    raw: dict[str, Any],
    rows: dict[str, Row],
    source: dict[str, str],
    bad_fields: set[str],
    problems: list[Problem],
) -> Settings:
    """The settings through pydantic; each bad field a problem (in ``problems`` and ``bad_fields``)."""
    from pydantic import ValidationError

    model = settings_model()
    try:
        return Settings._made(_model_values(model(**raw)), raw)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            if field in bad_fields or field not in rows:
                continue
            bad_fields.add(field)
            row = rows[field]
            problems.append(
                Problem(
                    source.get(field, row.var.env),
                    _shown_raw(row, raw.get(field)),
                    f"{_reason(error)}; accepted: {row.var.accepted}",
                )
            )
        # Validate the rest again without the bad fields, so cross-field and file-system checks
        # still run and one error lists every problem.
        rest = {k: v for k, v in raw.items() if k not in bad_fields}
        return Settings._made(_model_values(model(**rest)), rest)


def _names(fields: set[str], rows: dict[str, Row], source: dict[str, str]) -> set[str]:
    return {source.get(f, rows[f].var.env) for f in fields}


def _shown_raw(row: Row, value: Any) -> str:
    if row.var.secret:
        return MASK
    if row.field in URL_FIELDS:
        # A URL of the wrong type is shown by its type only: it may hold credentials too.
        return repr(show_value(row, value)) if isinstance(value, str) else f"<{type(value).__name__}>"
    return repr(_SHOWN.text(value) if isinstance(value, str) else show_value(row, value))


def _reason(error: Any) -> str:
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "literal_error":
        return "not one of the accepted values"
    if error.get("type", "").endswith("_parsing") or error.get("type", "").endswith("_type"):
        return "wrong type"
    return message[0].lower() + message[1:] if message else "invalid value"


def _cross_check(settings: Settings, rows: dict[str, Row], source: dict[str, str]) -> list[Problem]:
    """Checks that need more than one field, or the file system."""
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        row = rows[field]
        problems.append(
            Problem(
                source.get(field, row.var.env),
                _shown_raw(row, getattr(settings, field)),
                f"{message}; accepted: {row.var.accepted}",
            )
        )

    if settings.log_path is not None:
        reason = _unwritable_reason(settings.log_path)
        if reason:
            bad("log_dir", reason)
    if settings.export_buffer_dir is not None:
        reason = _unwritable_reason(Path(settings.export_buffer_dir))
        if reason:
            bad("export_buffer_dir", reason)
    for field, reason in _audit_reasons(settings):
        bad(field, reason)
    if settings.sdk_disabled:
        return problems  # everything else is off, and keeps its default

    for field in ("otlp_endpoint", *(f"otlp_{s}_endpoint" for s in SIGNALS), "alertmanager_url"):
        value = getattr(settings, field)
        if value is not None and not _valid_url(value):
            bad(field, "malformed URL")
    for field in (
        "otlp_certificate",
        *(f"otlp_{s}_certificate" for s in SIGNALS),
        "rules_file",
        "llm_prices_file",
    ):
        value = getattr(settings, field)
        if value is not None and not (os.path.isfile(value) and os.access(value, os.R_OK)):
            bad(field, "file not found or not readable")
    for prefix in ("otlp", *(f"otlp_{s}" for s in SIGNALS)):
        for field, block in (
            (f"{prefix}_client_key", "PRIVATE KEY"),
            (f"{prefix}_client_certificate", "CERTIFICATE"),
        ):
            value = getattr(settings, field)
            reason = _pem_reason(value, block) if value is not None else None
            if reason:
                bad(field, reason)
    for message, field in _unpaired_client_files(settings, rows):
        bad(field, message)
    try:
        propagation.build(settings.propagators)
    except ValueError as exc:
        bad("propagators", f"{exc} (installed here: {', '.join(propagation.available())})")
    reason = _trace_link_reason(settings.trace_link)
    if reason:
        bad("trace_link", reason)
    if settings.bsp_max_export_batch_size > settings.bsp_max_queue_size:
        bad("bsp_max_export_batch_size", "larger than the queue")
    if settings.blrp_max_export_batch_size > settings.blrp_max_queue_size:
        bad("blrp_max_export_batch_size", "larger than the queue")
    grpc_fields = {  # OTLP over gRPC is the optional extra b2b-otel[grpc]
        f"otlp_{s}_protocol" if getattr(settings, f"otlp_{s}_protocol") else "otlp_protocol"
        for s in SIGNALS
        if "otlp" in settings.exporters(s) and settings.signal_otlp(s).protocol == "grpc"
    }
    if grpc_fields and not _importable("opentelemetry.exporter.otlp.proto.grpc"):
        for field in sorted(grpc_fields):
            bad(field, "the gRPC exporter is not installed: pip install 'b2b-otel[grpc]'")
    names = settings.instrumentations
    if names not in (("auto",), ("none",)):
        unknown = [n for n in names if n not in INSTRUMENTATION_LIBRARIES]
        missing = [
            f"{n}: {reason}"
            for n in names
            if n in INSTRUMENTATION_LIBRARIES and (reason := INSTRUMENTATION_LIBRARIES[n].missing())
        ]
        if unknown:
            bad("instrumentations", f"unknown instrumentation {', '.join(unknown)}")
        elif missing:
            bad("instrumentations", "; ".join(missing))
    elif len(names) != 1:
        bad("instrumentations", "auto and none stand alone")
    return problems


def _audit_reasons(settings: Settings) -> list[tuple[str, str]]:
    """The signing key (a readable Ed25519 PEM) and whether the existing audit.log can be continued."""
    from ..audit_trail.chain import DEFAULT_LOG_NAME

    signing_key = None
    if settings.audit_signing_key is not None:
        from ..audit_trail.signing import load_private_key

        try:
            signing_key = load_private_key(settings.audit_signing_key)
        except ValueError as exc:
            return [("audit_signing_key", str(exc))]
    if settings.log_path is None:
        return []
    from ..audit_trail.writer import existing_log_problem

    key = settings.audit_key.encode("utf-8") if settings.audit_key else None
    found = existing_log_problem(settings.log_path / DEFAULT_LOG_NAME, key, signing_key)
    if found is None:
        return []
    problem, field = found
    return [(field, f"{settings.log_path / DEFAULT_LOG_NAME}: {problem}")]


def _pem_reason(path: str, block: str) -> str | None:
    """Why ``path`` is not a readable PEM file holding a ``block`` (e.g. ``CERTIFICATE``), or None."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(1 << 20).decode("ascii", errors="replace")
    except OSError:
        return "file not found or not readable"
    if f"-----BEGIN {block}-----" not in text and not re.search(rf"-----BEGIN [A-Z ]*{block}-----", text):
        return f"not a PEM file with a {block} block"
    if "ENCRYPTED" in text:
        return "the private key is encrypted; the exporters take an unencrypted key"
    return None


def _unpaired_client_files(settings: Settings, rows: dict[str, Row]) -> list[tuple[str, str]]:
    """mTLS needs the key and the certificate together: (message, field) for each one set alone."""
    result: list[tuple[str, str]] = []
    for prefix in ("otlp", *(f"otlp_{s}" for s in SIGNALS)):
        key, cert = f"{prefix}_client_key", f"{prefix}_client_certificate"
        for given, partner in ((key, cert), (cert, key)):
            if getattr(settings, given) is None:
                continue
            has_partner = getattr(settings, partner) is not None
            if prefix != "otlp":
                has_partner = has_partner or getattr(settings, f"otlp_{partner.split('_', 2)[2]}") is not None
            if not has_partner:
                result.append((f"set without {rows[partner].var.env}", given))
    return result


def _trace_link_reason(template: str) -> str | None:
    """Why ``template`` cannot make a trace link, or None: fields, braces and the URL it yields."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        return f"not a valid template ({exc})"
    unknown = [f"{{{field}}}" for field in fields if field not in TRACE_LINK_FIELDS]
    if unknown:
        return f"unknown field {', '.join(unknown)}"
    if "trace_id" not in fields:
        return "no {trace_id} field"
    try:
        link = template.format(trace_id="0" * 32)
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        return f"not a valid template ({exc})"
    if not _valid_url(link):
        return "does not make an absolute http:// or https:// URL"
    return None


def _valid_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _unwritable_reason(path: Path) -> str | None:
    """Why files cannot be created in ``path`` (which may not exist yet), or None."""
    if path.exists():
        if not path.is_dir():
            return "exists and is not a folder"
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            return f"folder not writable ({exc.strerror or type(exc).__name__})"
        return None
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot be created: {ancestor} is not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot be created: {ancestor} is not writable"
    return None


_BARE_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")
_SIGNAL_PATH = re.compile(r"/v1/(traces|metrics|logs)/?$")


def config_warnings(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Valid settings that are probably not what was meant; ``config check`` prints them (exit 0)."""
    env = os.environ if environ is None else environ
    if settings.sdk_disabled:
        return []
    rows = _rows_by_field()
    found: list[str] = []
    for row in rows.values():
        raw = env.get(row.var.env, "")
        timing = row.var.accepted == _MS_ACCEPTS and row.var.env.endswith(("_TIMEOUT", "_INTERVAL"))
        if timing and _BARE_NUMBER.match(raw) and float(raw) < 1000:
            found.append(
                f"{row.var.env}={raw.strip()} means {raw.strip()} milliseconds (OpenTelemetry reads a "
                f"bare number as ms); write {raw.strip()}s for seconds"
            )
    base = settings.otlp_endpoint
    if base is not None and _SIGNAL_PATH.search(urlsplit(base).path):
        shown = mask_url(base)
        found.append(
            f"OTEL_EXPORTER_OTLP_ENDPOINT={shown} ends in a signal path, but /v1/<signal> is appended to it "
            f"for http/protobuf (e.g. {shown.rstrip('/')}/v1/traces); give the base URL, or use "
            "OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT, which is used as is"
        )
    for signal in SIGNALS:
        own = getattr(settings, f"otlp_{signal}_endpoint")
        if own is None or "otlp" not in settings.exporters(signal):
            continue
        variable = rows[f"otlp_{signal}_endpoint"].var.env
        target = settings.signal_otlp(signal)
        match = _SIGNAL_PATH.search(urlsplit(own).path)
        if target.protocol == "grpc" and urlsplit(own).path not in ("", "/"):
            found.append(f"{variable}={mask_url(own)} has a path, which gRPC ignores")
        elif target.protocol == "http/protobuf" and match is not None and match.group(1) != signal:
            found.append(f"{variable}={mask_url(own)} points at the {match.group(1)} path, not /v1/{signal}")
        elif target.protocol == "http/protobuf" and match is None:
            found.append(
                f"{variable}={mask_url(own)} is used as is: nothing is appended, and OTLP/HTTP receivers "
                f"usually listen on /v1/{signal}"
            )
    for signal in SIGNALS:
        target = settings.signal_otlp(signal)
        if "otlp" in settings.exporters(signal) and target.client_certificate and target.insecure:
            found.append(
                f"{signal}: a client certificate is set but {mask_url(target.endpoint)} is not TLS "
                "(http://, or OTEL_EXPORTER_OTLP_INSECURE): it is not sent"
            )
    if not settings.service_name and sc.SERVICE_NAME not in settings.resource_attributes:
        found.append(
            "OTEL_SERVICE_NAME is not set (nor service.name in OTEL_RESOURCE_ATTRIBUTES): telemetry is "
            "exported as unknown_service"
        )
    return found


def effective(settings: Settings) -> list[tuple[str, str, str]]:
    """(variable, shown value, doc) for every setting, secrets masked: what ``config check`` prints."""
    return [(row.var.env, show_value(row, getattr(settings, row.field)), row.var.doc) for row in table()]


def render_markdown() -> str:
    """docs/configuration.md, generated from the table."""
    lines = [
        "# Configuration",
        "",
        "<!-- generated by scripts/gen_config_docs.py from b2b_otel/setup/settings.py; do not edit -->",
        "",
        "`b2b_otel.instrument(**overrides)` reads these variables when it runs (never at import).",
        "Keyword overrides use the *keyword* column and win over the environment, which wins over",
        "defaults. An empty variable counts as unset. Booleans accept true/false/1/0/yes/no/on/off in",
        "any case. Durations accept seconds (`30`) or `30s`, `5m`, `1h`; the OpenTelemetry `*_TIMEOUT`,",
        "`*_DELAY` and `*_INTERVAL` variables take milliseconds when no unit is given, as the",
        "OpenTelemetry specification says. Every bad value is reported at once in one",
        "`b2b_otel.ConfigError`, secrets masked; `b2b-otel config check` prints the effective configuration.",
        "",
        "| variable | keyword | default | accepted | meaning |",
        "|---|---|---|---|---|",
    ]
    for row in table():
        default = row.default
        if isinstance(default, bool):
            default = str(default).lower()
        elif isinstance(default, tuple):
            default = ",".join(default) if default else "(empty)"
        elif isinstance(default, dict):
            default = "(empty)"
        elif default is None:
            default = "(unset)"
        elif isinstance(default, float) and row.var.accepted == _MS_ACCEPTS:
            default = f"{round(default * 1000)} ms"
        elif isinstance(default, float):
            default = f"{default:g} s"
        secret = " Secret: never printed." if row.var.secret else ""
        lines.append(
            f"| `{row.var.env}` | `{row.field}` | {str(default).replace('|', '/')} | "
            f"{row.var.accepted.replace('|', '/')} | {row.var.doc}.{secret} |"
        )
    lines += [
        "",
        "Rule thresholds of the default rules can be overridden with `B2B_OTEL_RULE_<RULE_ID>_THRESHOLD`",
        "(the rule id upper-cased, `.` replaced by `_`), see `docs/rules.md`.",
        "",
    ]
    return "\n".join(lines)

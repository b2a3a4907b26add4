"""Scenario 3, start-up: ``import b2b_otel`` + ``instrument()`` against a hand-built plain SDK set-up.

Each case runs in a fresh interpreter (timed inside it, from before the first import to the end of
the set-up; the interpreter's own start is the same for both and left out). The targeted number is
the process's CPU time over that stretch, which other processes' load hardly moves; wall times are
reported beside it. b2b_otel's bytecode is compiled first (:func:`compile_bytecode`), as an installed
b2b-otel's is:

- b2b-otel: ``import b2b_otel; b2b_otel.instrument(...)`` with every default (instrumentations
  ``auto``, rules, local files, OTLP/HTTP for every signal to an address nothing listens on);
- plain: ``import opentelemetry.sdk`` and the OTLP/HTTP exporters, then a TracerProvider with a
  BatchSpanProcessor, a MeterProvider with a periodic reader and a LoggerProvider with a batch
  processor, each set as the global provider.

Then the import check: after ``instrument()`` with ``auto``, none of httpx, psycopg, openai or
anthropic is in ``sys.modules`` unless the application imported it; an application that imports
httpx afterwards gets it instrumented (and one that imported it before, too).

    python -m benchmarks.startup [--rounds 9] [--json]
"""

from __future__ import annotations

import argparse
import compileall
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import alternate, emit, median, result, row, run_python

# Nothing listens there: instrument() must not connect at start-up anyway.
DEAD_ENDPOINT = "http://127.0.0.1:9"
WATCHED = ("httpx", "psycopg", "openai", "anthropic")

B2B = """
import time
cpu = time.process_time()
started = time.perf_counter()
import b2b_otel
imported = time.perf_counter()
telemetry = b2b_otel.instrument(service_name="bench-startup", otlp_endpoint={endpoint!r}, log_dir={logs!r})
done = time.perf_counter()
import json, sys
cpu = time.process_time() - cpu
print(json.dumps({{"import_s": imported - started, "total_s": done - started, "cpu_s": cpu,
                  "modules": sorted(m for m in {watched!r} if m in sys.modules),
                  "instrumented": list(telemetry.instrumented)}}))
"""

PLAIN = """
import time
cpu = time.process_time()
started = time.perf_counter()
import opentelemetry.sdk
from opentelemetry import _logs, metrics, trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
imported = time.perf_counter()
resource = Resource.create({{"service.name": "bench-startup"}})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint={endpoint!r} + "/v1/traces")))
trace.set_tracer_provider(tracer_provider)
reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint={endpoint!r} + "/v1/metrics"))
metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
logger_provider = LoggerProvider(resource=resource)
log_exporter = OTLPLogExporter(endpoint={endpoint!r} + "/v1/logs")
logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
_logs.set_logger_provider(logger_provider)
{features}done = time.perf_counter()
import json
cpu = time.process_time() - cpu
print(json.dumps({{"import_s": imported - started, "total_s": done - started, "cpu_s": cpu}}))
"""

# The same features as b2b-otel's defaults, by hand: the logging bridge, the process metrics and
# the context into threads (the contrib instrumentations). Reported beside the target, not as it.
FEATURES = """from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
from opentelemetry.instrumentation.threading import ThreadingInstrumentor
LoggingInstrumentor().instrument()
SystemMetricsInstrumentor().instrument()
ThreadingInstrumentor().instrument()
"""

# The application imports httpx after instrument(): it is instrumented then; before: at once.
LATE_IMPORT = """
import sys
import b2b_otel
b2b_otel.instrument(service_name="bench-startup", otlp_endpoint={endpoint!r}, log_dir={logs!r})
before = sorted(m for m in {watched!r} if m in sys.modules)
{imports}
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
import json
print(json.dumps({{"before": before,
                  "httpx_instrumented": HTTPXClientInstrumentor().is_instrumented_by_opentelemetry,
                  "httpx_send_wrapped": hasattr(httpx.HTTPTransport.handle_request, "__wrapped__")}}))
"""


def compile_bytecode() -> bool:
    """Compile b2b_otel's bytecode, as pip does when it installs the wheel; True when all compiled.

    The plain case's modules (site-packages) were compiled when they were installed; b2b_otel's, in a
    source checkout run with ``PYTHONDONTWRITEBYTECODE=1`` (as this machine's shells are), would be
    compiled from source in every fresh interpreter: about a quarter of the measured start-up, which
    no installed b2b-otel pays.
    """
    package = Path(__file__).resolve().parent.parent / "b2b_otel"
    return bool(compileall.compile_dir(str(package), quiet=1))


def scenario(rounds: int) -> dict[str, Any]:
    bytecode = compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="b2b-bench-") as logs:
        fill = {"endpoint": DEAD_ENDPOINT, "logs": logs, "watched": WATCHED}
        b2b_runs: list[dict[str, Any]] = []
        plain_runs: list[dict[str, Any]] = []

        def b2b() -> float:
            value = run_python(["-c", B2B.format(**fill)])
            b2b_runs.append(value)
            return float(value["cpu_s"])

        def plain() -> float:
            value = run_python(["-c", PLAIN.format(features="", **fill)])
            plain_runs.append(value)
            return float(value["cpu_s"])

        def plain_features() -> float:
            return float(run_python(["-c", PLAIN.format(features=FEATURES, **fill)])["cpu_s"])

        results = alternate({"plain": plain, "b2b": b2b, "plain_features": plain_features}, rounds)
        late = run_python(["-c", LATE_IMPORT.format(imports="import httpx", **fill)])
        early_code = "import httpx\n" + LATE_IMPORT.format(imports="", **fill)
        early = run_python(["-c", early_code])

    b2b_cpu = median(results["b2b"])
    plain_cpu = median(results["plain"])
    features_cpu = median(results["plain_features"])
    b2b_total = median([r["total_s"] for r in b2b_runs])
    plain_total = median([r["total_s"] for r in plain_runs])
    b2b_import = median([r["import_s"] for r in b2b_runs])
    plain_import = median([r["import_s"] for r in plain_runs])
    imported = sorted({m for r in b2b_runs for m in r["modules"]})
    checks = {
        "bytecode_compiled_first": bytecode,
        "not_imported_by_instrument": not imported,
        "imported_by_instrument": imported,
        "auto_instrumentations": b2b_runs[-1]["instrumented"],
        "httpx_imported_after_instrument_is_instrumented": bool(
            late["httpx_instrumented"] and late["httpx_send_wrapped"]
        ),
        "httpx_imported_before_instrument_is_instrumented": bool(
            early["httpx_instrumented"] and early["httpx_send_wrapped"]
        ),
    }
    return result(
        "startup",
        "start-up: import and set-up in a fresh interpreter",
        [
            row("plain: import opentelemetry.sdk + exporters", plain_import * 1e3, "ms", plain_import * 1e3),
            row("plain: imports + hand-built providers", plain_total * 1e3, "ms", plain_total * 1e3),
            row("b2b-otel: import b2b_otel", b2b_import * 1e3, "ms", plain_import * 1e3),
            row("b2b-otel: import + instrument()", b2b_total * 1e3, "ms", plain_total * 1e3),
            row("plain: imports + providers, CPU", plain_cpu * 1e3, "CPU ms", plain_cpu * 1e3),
            row("b2b-otel: import + instrument(), CPU", b2b_cpu * 1e3, "CPU ms", plain_cpu * 1e3),
            row(
                "plain + logging bridge, process metrics, threads, CPU",
                features_cpu * 1e3,
                "CPU ms",
                plain_cpu * 1e3,
            ),
        ],
        b2b_cpu / plain_cpu,
        1.5,
        "b2b-otel import+instrument() / plain import+providers, CPU",
        details={
            "rounds": rounds,
            # b2b-otel against plain OpenTelemetry doing the same (the contrib logging, process-metrics
            # and threading instrumentations on): what the rest of b2b-otel costs at start-up.
            "ratio_same_features": round(b2b_cpu / features_cpu, 3),
            "checks": checks,
            "ok": all(v is True for k, v in checks.items() if isinstance(v, bool)),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    value = scenario(args.rounds)
    if args.json:
        emit(value)
    else:
        from benchmarks.run import print_table

        print_table([value])
        print(json.dumps(value["details"]["checks"], indent=2))


if __name__ == "__main__":
    main()

"""``python -m examples.b2bvalue``: run the workload with telemetry, print a summary.

    python -m examples.b2bvalue [--cases N] [--faults a,b] [--pg-url URL] [--service-name NAME]
    python -m examples.b2bvalue demo [--cases N] [--faults all]   # what `make demo` runs

``demo`` runs the workload as its own process against the local stack and prints what the real
services saw (see ``demo.py``); it lives with the example, not in the installed ``b2b-otel``.

Exit status: 0 when every case was built, 1 when some failed, 2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence

import psycopg
from psycopg_pool import PoolTimeout

import b2b_otel

from .app import run
from .faults import ACCEPTED, FAULTS_ENV, FaultError, Faults

DEFAULT_SERVICE_NAME = "b2bvalue-demo"
# Eight cases visit every CRM account (sub-industries included) and make >= 100 memory operations,
# the minimum sample of the memory failure-rate rule, so --faults failing_memory can trip it.
DEFAULT_CASES = 8
# Where the database URL may come from, in order of precedence after --pg-url.
PG_URL_ENVS = ("B2BVALUE_PG_URL", "B2B_OTEL_TEST_PG_URL")


def masked(url: str) -> str:
    """The URL with any password replaced, fit for an error message."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of the example."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.b2bvalue",
        description="Build business cases with instrumented agents; optionally inject faults.",
    )
    parser.add_argument("--cases", type=_positive, default=DEFAULT_CASES, help=f"default {DEFAULT_CASES}")
    parser.add_argument(
        "--faults",
        default=None,
        help=f"comma list of {', '.join(ACCEPTED)} (default: ${FAULTS_ENV}, else none)",
    )
    parser.add_argument(
        "--pg-url", default=None, help=f"PostgreSQL URL (default: ${' or $'.join(PG_URL_ENVS)})"
    )
    parser.add_argument(
        "--service-name",
        default=None,
        help=f"OTel service name (default: $OTEL_SERVICE_NAME, else {DEFAULT_SERVICE_NAME})",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the run's database schema for inspection"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, instrument, run, report, shut telemetry down (or, with ``demo``, run the demo)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from .demo import main as demo_main

        return demo_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    pg_url = args.pg_url or next((os.environ[name] for name in PG_URL_ENVS if os.environ.get(name)), None)
    if not pg_url:
        parser.error(f"no PostgreSQL URL: pass --pg-url or set {' or '.join(PG_URL_ENVS)}")
    try:
        faults = Faults.from_env(args.faults)
    except FaultError as exc:
        parser.error(str(exc))

    # Before instrument(): basicConfig does nothing once the root logger has a handler.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # An explicit flag wins; otherwise OTEL_SERVICE_NAME, otherwise the demo's name.
    service_name = args.service_name or (
        None if os.environ.get("OTEL_SERVICE_NAME") else DEFAULT_SERVICE_NAME
    )
    try:
        b2b_otel.instrument(**({"service_name": service_name} if service_name else {}))
    except b2b_otel.ConfigError as exc:
        print(f"b2bvalue: telemetry configuration error:\n{exc}", file=sys.stderr)
        return 2
    try:
        summary = run(args.cases, faults, pg_url, keep_data=args.keep_data)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        print(f"b2bvalue: cannot use PostgreSQL at {masked(pg_url)}: {exc}", file=sys.stderr)
        return 2
    finally:
        b2b_otel.shutdown()
    print(summary.render())
    return 0 if summary.built == len(summary.cases) else 1


if __name__ == "__main__":
    sys.exit(main())

"""``make bench``: every scenario in a fresh interpreter, one table, ``benchmarks/results.json``.

    python -m benchmarks                      # every scenario at its full size
    python -m benchmarks --tiny --out X.json  # each once at a tiny size (the harness test)
    python -m benchmarks --only hot_path,startup   # these again; the others' results in --out are kept

Each scenario module runs its b2b-otel case and its baseline alternately and reports medians; the
numbers are ratios on this machine at this moment, never verdicts about another one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, run_python

# name -> (module, arguments at full size, arguments at the tiny size)
SCENARIOS: dict[str, tuple[str, list[str], list[str]]] = {
    "hot_path": ("benchmarks.hot_path", [], ["--spans", "50", "--rounds", "1"]),
    "export_path": ("benchmarks.export_path", [], ["--rounds", "1", "--batches", "1"]),
    "startup": ("benchmarks.startup", [], ["--rounds", "1"]),
    "memory": ("benchmarks.memory", [], ["--addresses", "2000"]),
    "sustained": ("benchmarks.sustained", [], ["--seconds", "1", "--rounds", "1"]),
    "audit": ("benchmarks.audit", [], ["--seconds", "0.3"]),
}
DEFAULT_OUT = ROOT / "benchmarks" / "results.json"


def machine() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "b2b_otel": version("b2b-otel"),
        "opentelemetry_sdk": version("opentelemetry-sdk"),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'scenario':<12} {'case':<44} {'value':>14} {'unit':<14} {'ratio':>7}")
    for entry in results:
        for item in entry["rows"]:
            ratio = "" if item["ratio"] is None else f"{item['ratio']:.2f}x"
            print(
                f"{entry['scenario']:<12} {item['case']:<44} {_fmt(item['value']):>14} "
                f"{item['unit']:<14} {ratio:>7}"
            )
        print()
    print(f"{'scenario':<12} {'targeted number':<62} {'value':>8} {'target':>8}  verdict")
    for entry in results:
        target = entry["target"]
        if target is None:
            print(f"{entry['scenario']:<12} {'(no target) ratio':<62} {_fmt(entry['ratio']):>8}")
            continue
        verdict = "met" if entry["met"] else "MISSED"
        limit = f"{target['comparison']} {target['limit']}"
        metric = target["metric"][:62]
        print(f"{entry['scenario']:<12} {metric:<62} {entry['value']:>8.3f} {limit:>8}  {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="each scenario once at a tiny size")
    parser.add_argument("--only", default="", help="comma list of scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for name in names:
        module, full, tiny = SCENARIOS[name]
        print(f"==> {name}", file=sys.stderr, flush=True)
        entry = run_python(["-m", module, "--json", *(tiny if args.tiny else full)])
        entry["seconds"] = round(time.monotonic() - started, 1)
        entry["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entry["load_average"] = [round(x, 2) for x in os.getloadavg()]
        started = time.monotonic()
        results.append(entry)
    scenarios = {entry["scenario"]: entry for entry in results}
    if args.only and args.out.exists():
        # Some scenarios run again: the others' results of an earlier run of the same size are kept.
        try:
            earlier = json.loads(args.out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = {}
        if isinstance(earlier, dict) and earlier.get("size") == ("tiny" if args.tiny else "full"):
            kept = {k: v for k, v in earlier.get("scenarios", {}).items() if k not in scenarios}
            scenarios = {
                name: {**kept, **scenarios}[name] for name in SCENARIOS if name in {**kept, **scenarios}
            }
    document = {
        "size": "tiny" if args.tiny else "full",
        "machine": machine(),
        "scenarios": scenarios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

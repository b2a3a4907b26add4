"""The shared conformance vectors (conformance/vectors): input spans as OTLP/JSON -> expected derived records.

The collector connector's Go tests run the same files, so the two engines cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from b2b_otel.derive import records
from b2b_otel.rules import load_rules
from b2b_otel.rules.engine import Engine, SpanFacts
from b2b_otel.scrub import Scrubber

VECTORS = sorted((Path(__file__).resolve().parents[1] / "conformance" / "vectors").glob("*.json"))
KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}


def any_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return tuple(any_value(v) for v in value["arrayValue"].get("values", []))
    raise ValueError(f"unsupported AnyValue {value}")


def spans_of(request: dict[str, Any]) -> list[tuple[float, SpanFacts]]:
    result = []
    for resource_spans in request["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
                facts = SpanFacts(
                    name=span["name"],
                    kind=KINDS[int(span.get("kind", 1))],
                    status=STATUS[int(span.get("status", {}).get("code", 0))],
                    duration_s=(end - start) / 1e9,
                    attributes={a["key"]: any_value(a["value"]) for a in span.get("attributes", [])},
                    trace_id=int(span["traceId"], 16),
                    span_id=int(span["spanId"], 16),
                )
                result.append((end / 1e9, facts))
    return result


def run_vector(vector: dict[str, Any]) -> list[records.DerivedRecord]:
    now = [0.0]
    # A vector may bound the groups of each window rule (the connector's max_groups) to reach evictions.
    engine = Engine(load_rules(None, {}), clock=lambda: now[0], max_groups=vector.get("max_groups", 10_000))
    derived = []
    for end_s, facts in spans_of(vector["input"]):
        now[0] = end_s
        derived += [records.build(firing, Scrubber()) for firing in engine.judge_span(facts)]
    return derived


def test_there_are_vectors_for_every_rule_kind() -> None:
    names = {path.stem.split("_", 1)[0] for path in VECTORS}
    assert {"latency", "ratio", "count", "event", "gauge", "quiet"} <= names


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    derived = run_vector(vector)
    expected = vector["expected"]
    assert [r.rule_id for r in derived] == [e["rule_id"] for e in expected], vector["description"]
    for record, want in zip(derived, expected, strict=True):
        assert record.event_name == want["event_name"]
        assert record.severity_number == want["severity_number"]
        assert f"{record.trace_id:032x}" == want["trace_id"]
        assert f"{record.span_id:016x}" == want["span_id"]
        for key, value in want["attributes"].items():
            assert key in record.attributes, f"{key} missing from {record.attributes}"
            if isinstance(value, float):
                assert record.attributes[key] == pytest.approx(value, rel=1e-9), key
            else:
                assert record.attributes[key] == value, key
        assert record.attributes["b2b.scope"] == "process"

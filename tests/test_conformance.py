"""The shared conformance vectors (conformance/vectors): input spans as OTLP/JSON -> expected derived records.

The collector connector's Go tests run the same files, so the two engines cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from b2b_otel import semconv
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


def judged_by_process(resource: dict[str, Any]) -> bool:
    """The resource says b2b.derived=true (a bool, or the string true): its process judged it already."""
    for attribute in resource.get("attributes", []):
        if attribute["key"] == semconv.B2B_DERIVED:
            value = any_value(attribute["value"])
            return value is True or (isinstance(value, str) and value.lower() == "true")
    return False


def spans_of(request: dict[str, Any]) -> list[tuple[float, SpanFacts, bool]]:
    """(end time, facts, whether per-span rules judge it) of every span, in order."""
    result = []
    for resource_spans in request["resourceSpans"]:
        per_span = not judged_by_process(resource_spans.get("resource", {}))
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
                result.append((end / 1e9, facts, per_span))
    return result


WINDOW_KINDS = {semconv.RuleKindValues.RATIO, semconv.RuleKindValues.COUNT}


def run_vector(vector: dict[str, Any]) -> list[records.DerivedRecord]:
    now = [0.0]
    # threshold_overrides are the Python layer's B2B_OTEL_RULE_<ID>_THRESHOLD variables (the connector
    # reads the same); max_groups bounds each window rule's groups (the connector's max_groups).
    rules = load_rules(None, vector.get("threshold_overrides", {}))
    engine = Engine(rules, clock=lambda: now[0], max_groups=vector.get("max_groups", 10_000))
    derived = []
    for end_s, facts, per_span in spans_of(vector.get("input", {"resourceSpans": []})):
        now[0] = end_s
        firings = engine.judge_span(facts)
        if not per_span:
            # A span whose process judged it (b2b.derived=true) reaches an engine only at the fleet
            # level: there, per-span rules leave it and window rules count it. Per-span rules keep no
            # state, so leaving out their firings is judging without them.
            firings = [f for f in firings if f.rule.kind in WINDOW_KINDS]
        derived += [records.build(firing, Scrubber()) for firing in firings]
    for sample in vector.get("gauges", []):
        now[0] = int(sample["time_unix_nano"]) / 1e9
        firings = engine.judge_gauge(sample["source"], float(sample["value"]), sample["attributes"])
        derived += [records.build(firing, Scrubber()) for firing in firings]
    return derived


def test_there_are_vectors_for_every_rule_kind() -> None:
    names = {path.stem.split("_", 1)[0] for path in VECTORS}
    assert {"latency", "ratio", "count", "event", "gauge", "quiet"} <= names


def test_every_default_rule_fires_in_a_vector() -> None:
    """At least one vector per default rule id: each rule's firing is held equal in both engines."""
    fired = {e["rule_id"] for path in VECTORS for e in json.loads(path.read_text())["expected"]}
    default_ids = {rule.id for rule in load_rules(None, {}).rules}
    assert default_ids - fired == set(), "default rules no vector fires"
    assert len(default_ids) >= 20


def test_the_vectors_cover_the_window_mechanics() -> None:
    """Windows sliding out, groups, once per window, minimum samples, eviction, the b2b.derived skip and
    threshold overrides each have a vector (named in conformance/README.md)."""
    names = {path.stem for path in VECTORS}
    for needed in (
        "ratio_window_slides_out",
        "count_window_slides_out",
        "count_groups_and_once_per_window",
        "count_fires_again_next_window",
        "ratio_min_samples",
        "count_eviction_at_cap",
        "count_group_flood",
        "derived_resource_skip",
        "override_thresholds",
    ):
        assert needed in names


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

"""The export path's memory of scrub verdicts (issue 11, export/scrubbing.py ``_Memo``): what it returns
and reports is what the scrubber itself returns and reports, on the first sight and on every repeat."""

from __future__ import annotations

from typing import Any

import pytest

from b2b_otel.export.scrubbing import _Collector, _Memo
from b2b_otel.scrub import Finding, Scrubber

MAPS: list[dict[str, Any]] = [
    {"gen_ai.agent.name": "roi_calculator_agent", "gen_ai.request.model": "gpt-4o-mini", "n": 3},
    {"url.full": "http://crm.local/accounts/7?api_key=sk-live-0123456789abcdef0123", "server.port": 8089},
    {"db.query.text": "SELECT 1 FROM users WHERE password = 'hunter2hunter2'", "db.system.name": "pg"},
    {"b2bvalue.crm.billing_note": "card on file 4111 1111 1111 1111", "flag": True, "ratio": 1.0},
    {"http.request.header.authorization": "Bearer abc.def.ghi", "count": 1},
    {"tags": ("a", "b"), "gen_ai.agent.name": "roi_calculator_agent"},  # a sequence: never remembered
    {"token=sk-live-0123456789abcdef0123": "x"},  # a key with a secret in it
]


def _direct(scrubber: Scrubber, attributes: dict[str, Any]) -> tuple[dict[str, Any] | None, set[Finding]]:
    found = _Collector()
    return scrubber.attributes(attributes, found), set(found.found.values())


@pytest.mark.parametrize("attributes", MAPS)
def test_the_memo_answers_as_the_scrubber_first_time_and_every_time(attributes: dict[str, Any]) -> None:
    scrubber = Scrubber()
    memo = _Memo(scrubber)
    expected, expected_findings = _direct(scrubber, attributes)
    for _ in range(3):  # a miss, then hits
        found = _Collector()
        clean = memo.attributes(attributes, found)
        assert (clean is None) == (expected is None)
        if expected is not None:
            assert clean == expected
            assert clean is not attributes
        assert set(found.found.values()) == expected_findings


def test_equal_values_of_different_types_are_remembered_apart() -> None:
    scrubber = Scrubber()
    memo = _Memo(scrubber)
    memo.attributes({"k": 1}, _Collector())
    memo.attributes({"k": 1.0}, _Collector())
    assert memo.attributes({"k": True}, _Collector()) is None
    keys = {(key, kind) for key, kind, _ in memo._entries}
    assert keys == {("k", int), ("k", float), ("k", bool)}


def test_span_names_are_remembered_with_their_findings() -> None:
    scrubber = Scrubber()
    memo = _Memo(scrubber)
    name = "GET /reset?password=hunter2hunter2"
    expected = scrubber.text(name, "span.name")
    for _ in range(2):
        found = _Collector()
        assert memo.text(name, "span.name", found) == expected != name
        assert found.found


def test_the_memo_is_bounded() -> None:
    memo = _Memo(Scrubber())
    for i in range(_Memo.ENTRIES * 2 + 10):
        memo.attributes({"case": f"case-{i}"}, _Collector())
    assert len(memo._entries) <= _Memo.ENTRIES
    long_text = "x" * (_Memo.MAX_TEXT + 1)
    memo.attributes({"long": long_text}, _Collector())
    assert not any(value == long_text for _, _, value in memo._entries)


def test_the_cases_hold_secrets_the_scrubber_finds() -> None:
    scrubber = Scrubber()
    changed = [m for m in MAPS if _direct(scrubber, m)[0] is not None]
    assert len(changed) >= 5  # the memo tests above compare real redactions, not only clean maps

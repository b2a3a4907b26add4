"""The local files rotate by size (issue 11 made the size check one fstat a line): no file passes
its limit, no line is lost or split while the backups last, and a line never lands in a closed file."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from b2b_otel import semconv as sc
from b2b_otel.derive.records import DerivedRecord
from b2b_otel.derive.sink import AgentExecution
from b2b_otel.sinks import files


def _execution(i: int) -> AgentExecution:
    return AgentExecution(
        agent=f"agent_{i:03d}",
        duration_s=0.25,
        error_type=None,
        end_s=time.time(),
        trace_id=i + 1,
        span_id=i + 1,
    )


def test_performance_log_rotates_at_its_size_and_keeps_every_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_BYTES", 2_000)
    sink = files.LocalFiles(tmp_path, "json")
    for i in range(30):
        sink.agent_execution(_execution(i))
    sink.close()
    logs = sorted(tmp_path.glob("performance.log*"))
    assert len(logs) >= 2, logs  # it rotated
    assert all(path.stat().st_size < 2_000 for path in logs)
    agents = sorted(json.loads(line)["agent"] for path in logs for line in path.read_text().splitlines())
    assert agents == [f"agent_{i:03d}" for i in range(30)]  # every line whole, none twice


def test_a_file_under_its_limit_is_appended_to(tmp_path: Path) -> None:
    sink = files.LocalFiles(tmp_path, "text")
    sink.agent_execution(_execution(1))
    sink.close()
    sink = files.LocalFiles(tmp_path, "text")
    sink.agent_execution(_execution(2))
    sink.close()
    lines = (tmp_path / "performance.log").read_text().splitlines()
    assert len(lines) == 2 and "agent_001" in lines[0] and "agent_002" in lines[1]
    assert not list(tmp_path.glob("performance.log.*"))


def _slow_json_line(execution: AgentExecution) -> str:
    """The AGENT_EXECUTION line as json.dumps(json_safe(...)) writes it (the fast path must equal it)."""
    from b2b_otel._internal.formats import fmt_seconds, hex_ids, iso, json_safe

    trace_hex, span_hex = hex_ids(execution.trace_id, execution.span_id)
    obj: dict[str, object] = {
        "ts": iso(execution.end_s),
        "level": "INFO",
        "event": "AGENT_EXECUTION",
        "message": f"{execution.agent} completed in {fmt_seconds(execution.duration_s)}",
        "agent": execution.agent,
        "duration_s": round(execution.duration_s, 6),
        "trace_id": trace_hex,
        "span_id": span_hex,
    }
    if execution.tenant is not None:
        obj["tenant"] = execution.tenant
    return json.dumps(json_safe(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize("agent", ["support", 'quo"te\\back', "ünï\u2028\n\t\x01", "lone\ud800", ""])
@pytest.mark.parametrize("tenant", [None, "acme", 'te"n\ud801'])
@pytest.mark.parametrize("seconds", [0.0, -0.0, 7.19e-05, 0.25, 123.4567891, 1e20, math.inf, math.nan])
@pytest.mark.parametrize("end_s", [0.0, 1_750_000_000.9995, 1_764_878_609.1807])
def test_the_agent_execution_json_line_is_what_json_dumps_writes(
    tmp_path: Path, agent: str, tenant: str | None, seconds: float, end_s: float
) -> None:
    execution = AgentExecution(agent, seconds, None, end_s, 2**127 + 5, 2**63 + 7, tenant)
    sink = files.LocalFiles(tmp_path, "json")
    sink.agent_execution(execution)
    sink.agent_execution(execution)  # the second from the remembered name and second
    sink.close()
    lines = (tmp_path / files.PERFORMANCE).read_bytes().decode("utf-8").split("\n")  # not at U+2028
    assert lines == [_slow_json_line(execution)] * 2 + [""]
    json.loads(lines[0])  # strict JSON


def test_agent_execution_lines_are_written_when_the_workers_drain_ends(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from b2b_otel.derive.processor import DerivationProcessor
    from b2b_otel.rules import load_rules
    from b2b_otel.scrub import Scrubber

    sink = files.LocalFiles(tmp_path, "json")
    processor = DerivationProcessor(load_rules(None, {}), Scrubber(), [sink])
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    try:
        for i in range(3):
            attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": f"agent_{i}"}
            tracer.start_span(f"invoke_agent agent_{i}", attributes=attributes).end()
        # judge_queued waits for the drain only (not the sinks' flush): the lines are in the file.
        assert processor.judge_queued(5.0)
        lines = (tmp_path / files.PERFORMANCE).read_text().splitlines()
        assert [json.loads(line)["agent"] for line in lines] == ["agent_0", "agent_1", "agent_2"]
    finally:
        processor.shutdown()
        sink.close()


def test_collected_lines_keep_their_order_with_other_lines_of_the_file(tmp_path: Path) -> None:
    sink = files.LocalFiles(tmp_path, "text")
    sink.agent_execution(_execution(1))
    failed = AgentExecution("agent_002", 0.5, "builtins.ValueError", time.time(), 3, 3)
    sink.agent_execution(failed)
    record = DerivedRecord(
        rule_id="performance.test",
        event_name=sc.EVENT_B2B_SLA_BREACH,
        severity=sc.B2bAlertSeverityValues.WARNING,
        tier="ops",
        attributes={},
        message="a derived line",
        trace_id=0,
        span_id=0,
        time_s=time.time(),
    )
    sink.write(record)  # written at once, after the lines collected before it
    sink.agent_execution(_execution(3))
    sink.close()
    lines = (tmp_path / files.PERFORMANCE).read_text().splitlines()
    assert len(lines) == 5, lines
    assert "agent_001" in lines[0] and "AGENT_EXECUTION" in lines[1] and "AGENT_FAILURE" in lines[2]
    assert "a derived line" in lines[3] and "agent_003" in lines[4]


def test_a_batch_that_cannot_be_written_counts_every_line(tmp_path: Path) -> None:
    from b2b_otel.derive.processor import DerivationProcessor
    from b2b_otel.rules import load_rules
    from b2b_otel.scrub import Scrubber

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    sink = files.LocalFiles(blocker / "logs", "json")  # mkdir fails: nothing can be written
    drops: list[tuple[str, int]] = []
    processor = DerivationProcessor(
        load_rules(None, {}), Scrubber(), [sink], on_drop=lambda reason, n: drops.append((reason, n))
    )
    for i in range(5):
        sink.agent_execution(_execution(i))
    processor._end_of_drain()
    assert drops == [("write_failed", 5)]
    processor._end_of_drain()  # nothing left: nothing counted twice
    assert drops == [("write_failed", 5)]


def test_a_batch_rotates_between_lines_and_never_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_BYTES", 1_000)
    sink = files.LocalFiles(tmp_path, "json")
    for i in range(40):
        sink.agent_execution(_execution(i))  # one batch, several files' worth
    sink.write_pending()
    sink.close()
    logs = sorted(tmp_path.glob("performance.log*"))
    assert len(logs) >= 4, logs
    assert all(0 < path.stat().st_size < 1_000 for path in logs)
    agents = sorted(json.loads(line)["agent"] for path in logs for line in path.read_text().splitlines())
    assert agents == [f"agent_{i:03d}" for i in range(40)][-len(agents) :]  # the newest kept, whole
    assert len(agents) >= 5 * 4  # backups hold most of them


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_does_not_write_the_parents_collected_lines(tmp_path: Path) -> None:
    import os

    sink = files.LocalFiles(tmp_path, "json")
    sink.agent_execution(_execution(1))  # collected, not yet written
    pid = os.fork()
    if pid == 0:  # the child: its own line only
        try:
            sink.agent_execution(_execution(2))
            sink.write_pending()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    sink.write_pending()
    sink.close()
    agents = [json.loads(line)["agent"] for line in (tmp_path / files.PERFORMANCE).read_text().splitlines()]
    assert sorted(agents) == ["agent_001", "agent_002"]  # agent_001 once, by the parent

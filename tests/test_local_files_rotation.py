"""The local files rotate by size (issue 11 made the size check one fstat a line): no file passes
its limit, no line is lost or split while the backups last, and a line never lands in a closed file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

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

"""The tamper-evident audit trail: ``AuditLog`` writes one chain, ``verify`` names the first bad seq."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from b2b_otel import AuditError
from b2b_otel.audit_trail.chain import GENESIS_HASH, RECORD_FIELDS, record_hash
from b2b_otel.audit_trail.verify import VerifyReport, verify
from b2b_otel.audit_trail.writer import AuditLog

KEY = b"k3y-for-tests-only"
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
ROOT = Path(__file__).resolve().parents[1]


def _append(log: AuditLog, i: int, **details: Any) -> dict[str, Any]:
    return log.append(
        "invoice.approve", f"u-{i}", f"invoice-{i}", "success", TRACE, SPAN, {"i": i, **details}
    )


def _log_with(tmp_path: Path, n: int, key: bytes | None = KEY) -> Path:
    path = tmp_path / "audit.log"
    log = AuditLog(path, key=key)
    for i in range(n):
        _append(log, i)
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines(keepends=True)


def _failure(path: Path, key: bytes | None = KEY) -> tuple[int | None, str | None]:
    report = verify([path], key)
    assert not report.ok, report
    return report.bad_seq, report.kind


def _rehash(line: str, key: bytes | None, **changes: Any) -> str:
    record = json.loads(line)
    record.update(changes)
    record["hash"] = record_hash(record, key)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"


# --- the chain --------------------------------------------------------------------------------------


def test_records_have_exactly_the_spec_fields_and_chain(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 3)
    records = [json.loads(line) for line in _lines(path)]
    assert [list(r) for r in records] == [list(RECORD_FIELDS)] * 3
    assert RECORD_FIELDS == (
        "seq",
        "ts",
        "action",
        "actor_id",
        "target",
        "outcome",
        "trace_id",
        "span_id",
        "details",
        "prev_hash",
        "hash",
    )
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["prev_hash"] == GENESIS_HASH
    assert records[1]["prev_hash"] == records[0]["hash"]
    assert records[0]["ts"].endswith("Z") and len(records[0]["ts"]) == len("2025-06-20T01:52:00.123Z")
    assert verify([path], KEY) == VerifyReport(True, 3, 1, 3)


def test_append_returns_the_record_written(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    record = _append(log, 1, obj=object(), nan=float("nan"), nested={"k": (1, 2)}, text="grüße")
    assert json.loads(_lines(tmp_path / "audit.log")[0]) == record
    assert record["details"]["nan"] == "nan"
    assert record["details"]["nested"] == {"k": [1, 2]}
    assert record["details"]["obj"].startswith("<object object")
    assert "grüße" in (tmp_path / "audit.log").read_text("utf-8")  # not ASCII-escaped


def test_ids_must_be_hex_or_empty(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    assert log.append("a", "u", "t", "success", "", "", {})["trace_id"] == ""
    with pytest.raises(ValueError, match="trace_id"):
        log.append("a", "u", "t", "success", "xyz", "", {})


def test_hmac_and_plain_hashes_differ_and_each_verifies_only_in_its_mode(tmp_path: Path) -> None:
    keyed = _log_with(tmp_path / "k", 2, key=KEY)
    plain = _log_with(tmp_path / "p", 2, key=None)
    assert verify([keyed], KEY).ok
    assert verify([plain], None).ok
    # The keyed log says so in its first record; the plain one, verified with a key, has no marker.
    assert _failure(keyed, None) == (1, "mode")
    assert _failure(plain, KEY) == (1, "mode")


def test_wrong_key_fails_and_hints_at_the_key(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 3)
    report = verify([path], b"another key")
    assert (report.ok, report.bad_seq, report.kind) == (False, 1, "mode")
    assert "wrong key" in report.problem


def test_continues_the_chain_across_instances(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 2)
    assert _append(AuditLog(path, key=KEY), 9)["seq"] == 3
    assert verify([path], KEY).records == 3


def test_rotation_keeps_one_chain_over_all_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, key=KEY, max_bytes=1500, backups=20)
    for i in range(20):
        _append(log, i)
    rotated = sorted(tmp_path.glob("audit.log.[0-9]*"))
    assert len(rotated) >= 3
    first_of_live = json.loads(_lines(path)[0])
    last_of_1 = json.loads(_lines(tmp_path / "audit.log.1")[-1])
    assert first_of_live["prev_hash"] == last_of_1["hash"]
    assert verify([tmp_path], KEY) == VerifyReport(True, 20, 1, 20)
    assert verify([*tmp_path.glob("audit.log*")], KEY).ok  # a shell glob, sidecars included


def test_rotation_beyond_backups_is_vouched_for_by_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, key=KEY, max_bytes=1500, backups=1)
    for i in range(20):
        _append(log, i)
    report = verify([tmp_path], KEY)
    assert report.ok and report.last_seq == 20 and report.first_seq is not None and report.first_seq > 1
    (tmp_path / "audit.log.anchor").unlink()
    assert _failure(tmp_path) == (1, "missing")


def test_concurrent_processes_write_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from b2b_otel.audit_trail.writer import AuditLog
        log = AuditLog(Path({str(path)!r}), key={KEY!r}, max_bytes=8000)
        for i in range(50):
            log.append("a", sys.argv[1], "t", "success", "", "", {{"i": i}})
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, f"p{n}"], cwd=ROOT) for n in range(4)]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    report = verify([tmp_path], KEY)
    assert report == VerifyReport(True, 200, 1, 200)
    records = [
        json.loads(line)
        for f in sorted(tmp_path.glob("audit.log*"))
        if f.suffix not in (".head", ".lock", ".anchor")
        for line in _lines(f)
    ]
    assert sorted(r["seq"] for r in records) == list(range(1, 201))
    assert sorted((r["actor_id"], r["details"]["i"]) for r in records) == sorted(
        (f"p{n}", i) for n in range(4) for i in range(50)
    )


def test_a_forked_child_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, key=KEY)
    _append(log, 1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _append(log, 2)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert _append(log, 3)["seq"] == 3
    assert verify([path], KEY).records == 3


# --- tampering: each kind, with the right seq --------------------------------------------------------


def test_edited_field_is_reported_at_its_seq(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 5)
    lines = _lines(path)
    lines[2] = lines[2].replace('"actor_id":"u-2"', '"actor_id":"mallory"')
    path.write_text("".join(lines), "utf-8")
    assert _failure(path) == (3, "edited")


def test_edit_rehashed_without_the_key_is_still_an_edit(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 5, key=None)
    lines = _lines(path)
    lines[2] = _rehash(lines[2], None, outcome="failure")
    path.write_text("".join(lines), "utf-8")
    assert _failure(path, None) == (3, "edited")


def test_deleted_middle_line_is_missing(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 6)
    lines = _lines(path)
    del lines[2]
    path.write_text("".join(lines), "utf-8")
    report = verify([path], KEY)
    assert (report.bad_seq, report.kind) == (3, "missing")
    assert report.summary() == "FAIL: seq 3: missing (seq 3 not in the files: seq 4 follows seq 2)"


def test_inserted_forged_line_is_inserted(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 5)
    lines = _lines(path)
    forged = _rehash(lines[2], b"guessed key", actor_id="mallory")  # a copy of seq 3, re-signed
    lines.insert(3, forged)
    path.write_text("".join(lines), "utf-8")
    assert _failure(path) == (3, "inserted")


def test_inserted_line_with_a_valid_plain_hash_is_inserted(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 5, key=None)
    lines = _lines(path)
    lines.insert(2, _rehash(lines[2], None, actor_id="mallory"))  # claims seq 3, links to seq 2
    path.write_text("".join(lines), "utf-8")
    report = verify([path], None)
    assert (report.bad_seq, report.kind) == (3, "inserted")
    assert report.where.endswith("line 3")


def test_swapped_lines_are_reordered(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 6)
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_text("".join(lines), "utf-8")
    assert _failure(path) == (4, "reordered")


def test_swapped_last_two_lines_are_reordered(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 6)
    lines = _lines(path)
    lines[4], lines[5] = lines[5], lines[4]
    path.write_text("".join(lines), "utf-8")
    assert _failure(path) == (6, "reordered")


def test_record_moved_down_is_reordered(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 8)
    lines = _lines(path)
    lines.insert(6, lines.pop(2))
    path.write_text("".join(lines), "utf-8")
    assert _failure(path) == (3, "reordered")


def test_cut_tail_is_truncated(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 6)
    path.write_text("".join(_lines(path)[:4]), "utf-8")
    report = verify([path], KEY)
    assert (report.bad_seq, report.kind) == (5, "truncated")
    assert "seq 5..6" in report.problem


def test_next_append_after_a_cut_keeps_the_gap_visible(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 6)
    path.write_text("".join(_lines(path)[:4]), "utf-8")
    assert _append(AuditLog(path, key=KEY), 7)["seq"] == 7
    assert _failure(path) == (5, "missing")


def test_corrupt_json_is_malformed(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 5)
    lines = _lines(path)
    lines[3] = lines[3][:40] + "\n"
    path.write_text("".join(lines), "utf-8")
    assert _failure(path) == (4, "malformed")


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda line: line.replace('"details":{', '"details":{"x":NaN,', 1), id="nan"),
        pytest.param(lambda line: line.replace('"details":{', '"details":{"x":-Infinity,', 1), id="infinity"),
        pytest.param(lambda line: line.replace('"details":{', '"details":' + "[" * 50_000, 1), id="deep"),
        pytest.param(lambda line: line.replace('"seq":2', '"seq":' + "9" * 5000, 1), id="huge-seq"),
    ],
)
def test_edits_that_are_no_json_are_malformed_never_a_crash(tmp_path: Path, edit: Any) -> None:
    path = _log_with(tmp_path, 3)
    lines = _lines(path)
    lines[1] = edit(lines[1].rstrip("\n")) + "\n"
    path.write_text("".join(lines), "utf-8")
    assert _failure(path) == (2, "malformed")


def test_missing_field_is_malformed(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 3)
    lines = _lines(path)
    record = json.loads(lines[1])
    del record["target"]
    lines[1] = json.dumps(record) + "\n"
    path.write_text("".join(lines), "utf-8")
    report = verify([path], KEY)
    assert (report.bad_seq, report.kind) == (2, "malformed")
    assert "target" in report.problem


def test_deleted_head_is_reported(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 3)
    (tmp_path / "audit.log.head").unlink()
    assert _failure(path) == (4, "head")


# --- durability and errors ---------------------------------------------------------------------------


def test_record_survives_sigkill_right_after_append_returns(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from b2b_otel.audit_trail.writer import AuditLog
        AuditLog(Path({str(path)!r}), key={KEY!r}).append("a", "u", "t", "success", "", "", {{}})
        print("done", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "done\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    assert verify([path], KEY) == VerifyReport(True, 1, 1, 1)


def test_unwritable_location_raises_audit_error_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file", "utf-8")
    path = blocker / "audit.log"  # fails even for root
    with pytest.raises(AuditError, match=str(blocker)):
        _append(AuditLog(path), 1)
    assert blocker.read_text("utf-8") == "a regular file"


def test_disk_full_raises_audit_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(AuditError, match=r"audit\.log.*No space left"):
        _append(AuditLog(path), 1)


def test_failed_write_leaves_no_partial_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _log_with(tmp_path, 2)
    before = path.read_bytes()
    real_write = os.write

    def half_write(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}") == str(path):
            return real_write(fd, bytes(data)[: len(data) // 2])
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_write)
    with pytest.raises(AuditError, match="short write"):
        _append(AuditLog(path, key=KEY), 3)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _append(AuditLog(path, key=KEY), 3)["seq"] == 3
    assert verify([path], KEY).ok


# --- the command line --------------------------------------------------------------------------------


def _cli(*args: str, key: str | None = KEY.decode()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "B2B_OTEL_AUDIT_KEY"}
    if key is not None:
        env["B2B_OTEL_AUDIT_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "b2b_otel.cli", "audit", "verify", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exit_0_when_intact(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 4)
    result = _cli(str(path))
    assert (result.returncode, result.stdout) == (0, "OK: 4 records, chain intact (seq 1..4)\n")
    assert KEY.decode() not in result.stdout + result.stderr


def test_cli_exit_1_names_the_first_bad_seq(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 4)
    lines = _lines(path)
    lines[1] = lines[1].replace("u-1", "u-X")
    path.write_text("".join(lines), "utf-8")
    result = _cli(str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL: seq 2: edited (hash does not match content)\n")
    assert KEY.decode() not in result.stdout + result.stderr


def test_cli_key_env_names_another_variable(tmp_path: Path) -> None:
    path = _log_with(tmp_path, 2)
    env_result = _cli(str(path), "--key-env", "MY_AUDIT_KEY", key=None)
    assert env_result.returncode == 2 and "MY_AUDIT_KEY is not set" in env_result.stderr
    without = _cli(str(path), key=None)  # no key: the first record says the log is keyed
    assert without.returncode == 1 and without.stdout.startswith("FAIL: seq 1: mode (")
    assert "--key-env" in without.stdout


def test_cli_expect_mode_fails_a_plain_log_when_a_keyed_one_was_expected(tmp_path: Path) -> None:
    plain = _log_with(tmp_path, 2, key=None)
    assert _cli(str(plain), key=None).returncode == 0
    expected = _cli(str(plain), "--expect-mode", "hmac", key=None)
    assert expected.returncode == 1 and expected.stdout.startswith("FAIL: seq 1: mode (")
    assert "no mode marker" in expected.stdout
    assert _cli(str(plain), "--expect-mode", "signed", key=None).returncode == 1
    bad = _cli(str(plain), "--expect-mode", "sha1", key=None)
    assert bad.returncode == 2 and "--expect-mode" in bad.stderr and "hmac" in bad.stderr


def test_cli_exit_2_for_a_missing_file(tmp_path: Path) -> None:
    result = _cli(str(tmp_path / "nope.log"))
    assert result.returncode == 2 and "nope.log" in result.stderr

"""The export disk buffer: bounded, oldest dropped and counted first, torn records skipped, shared by
processes, owner-only files, and a byte-faithful replay through the real OTLP exporters."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import b2b_otel
from b2b_otel import semconv as sc
from b2b_otel._internal.errors import ConfigError
from b2b_otel._internal.sizes import parse_size
from b2b_otel.export import disk_buffer as db
from b2b_otel.export.health import SignalHealth
from b2b_otel.setup.settings import resolve
from tests.support.otel_globals import reset_otel_globals
from tests.support.otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[1]
KIB = 1024


class Drops:
    """Records what a store counted as dropped, by reason."""

    def __init__(self) -> None:
        self.by_reason: dict[str, int] = {}

    def __call__(self, reason: str, items: int) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + items


def payload(index: int, size: int = 1000) -> bytes:
    return f"batch-{index:04d}:".encode().ljust(size, b".")


def eventually(probe: Any, condition: Any, timeout_s: float = 10.0) -> Any:
    """The first value of ``probe()`` that meets ``condition``; fails after ``timeout_s`` with the last."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if condition(value) or time.monotonic() > deadline:
            assert condition(value), value
            return value
        time.sleep(0.05)


def drain(store: db.BatchStore) -> list[bytes]:
    out = []
    while (taken := store.take()) is not None:
        entry, data = taken
        store.done(entry, replayed=True)
        out.append(data)
    return out


# --- the record format -------------------------------------------------------------------------------


def test_a_record_round_trips_with_its_item_count() -> None:
    record = db.encode_record(b"\x0a\x03abc", 7)
    assert len(record) == db.HEADER_SIZE + 5
    assert db.decode_record(record) == (b"\x0a\x03abc", 7)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda r: r[:-3], id="torn payload"),
        pytest.param(lambda r: r[: db.HEADER_SIZE - 4], id="torn header"),
        pytest.param(lambda r: r[:-1] + bytes([r[-1] ^ 1]), id="flipped payload bit"),
        pytest.param(lambda r: r[:9] + bytes([r[9] ^ 1]) + r[10:], id="flipped header bit"),
        pytest.param(lambda r: b"", id="empty file"),
    ],
)
def test_a_damaged_record_is_refused(damage: Any) -> None:
    with pytest.raises(db.CorruptRecord):
        db.decode_record(damage(db.encode_record(b"payload bytes", 3)))


def test_a_torn_payload_still_tells_how_many_items_were_lost() -> None:
    with pytest.raises(db.CorruptRecord) as caught:
        db.decode_record(db.encode_record(b"payload bytes", 3)[:-2])
    assert caught.value.items == 3


# --- the store ---------------------------------------------------------------------------------------


def test_the_cap_drops_the_oldest_batches_first_and_counts_their_items(tmp_path: Path) -> None:
    drops = Drops()
    store = db.BatchStore(tmp_path, "traces", max_bytes=10 * KIB, on_drop=drops)
    for index in range(25):
        assert store.append(payload(index), items=index + 1)
    stats = store.stats()
    assert stats["bytes"] <= 10 * KIB
    kept = drain(store)
    record = 1000 + db.HEADER_SIZE
    fit = (10 * KIB) // record
    assert kept == [payload(i) for i in range(25 - fit, 25)]  # the newest, in order
    lost = sum(i + 1 for i in range(25 - fit))
    assert drops.by_reason == {sc.ReasonValues.BUFFER_FULL: lost}
    assert stats["dropped"] == {sc.ReasonValues.BUFFER_FULL: lost}
    assert stats["stored"] == sum(range(1, 26))
    assert store.stats()["replayed"] == sum(i + 1 for i in range(25 - fit, 25))
    assert store.stats()["bytes"] == 0 and not list(store.own_dir.glob("*.otlp"))


def test_a_batch_larger_than_the_cap_is_dropped_and_counted_keeping_the_others(tmp_path: Path) -> None:
    drops = Drops()
    store = db.BatchStore(tmp_path, "logs", max_bytes=4 * KIB, on_drop=drops)
    assert store.append(payload(1), items=2)
    assert not store.append(payload(2, size=8 * KIB), items=40)
    assert drops.by_reason == {sc.ReasonValues.BUFFER_FULL: 40}
    assert drain(store) == [payload(1)]


def test_a_torn_record_on_disk_is_skipped_and_counted_not_fatal(tmp_path: Path) -> None:
    drops = Drops()
    store = db.BatchStore(tmp_path, "traces", max_bytes=1024 * KIB, on_drop=drops)
    for index in range(3):
        store.append(payload(index), items=5)
    middle = sorted(store.own_dir.glob("*.otlp"))[1]
    middle.write_bytes(middle.read_bytes()[:300])  # a write cut short by a crash
    assert drain(store) == [payload(0), payload(2)]
    assert drops.by_reason == {sc.ReasonValues.BUFFER_CORRUPT: 5}
    assert store.stats()["corrupt_batches"] == 1
    assert not middle.exists()


def test_folders_and_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = db.BatchStore(tmp_path / "buffer", "traces", max_bytes=1024 * KIB, on_drop=Drops())
        store.append(payload(1), items=1)
    finally:
        os.umask(old)
    for folder in (tmp_path / "buffer", store.signal_dir, store.own_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in store.own_dir.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from b2b_otel.export.disk_buffer import BatchStore

    root, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = BatchStore(root, "traces", max_bytes=64 * 1024 * 1024, on_drop=lambda reason, items: None)
    for index in range(count):
        assert store.append(f"{name}-{index:04d}".encode() * 20, items=1)
    print("written", flush=True)
    if len(sys.argv) > 4:
        time.sleep(60)  # stays alive, holding its folder, until killed
    """
)


def start_writer(root: Path, name: str, count: int, linger: bool = False) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", WRITER, str(root), name, str(count), *(["linger"] if linger else [])]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_processes_sharing_a_folder_write_apart_and_a_new_one_adopts_the_dead_ones(tmp_path: Path) -> None:
    # A living process first (it adopts nothing), then three that write at once and exit, then one that
    # adopts their batches and is killed: a new store gets all but the living process's batches.
    living = start_writer(tmp_path, "living", 10, linger=True)
    killed = None
    try:
        assert living.stdout is not None and living.stdout.readline().strip() == "written"
        writers = [start_writer(tmp_path, f"p{n}", 40) for n in range(3)]
        for writer in writers:
            assert writer.wait(timeout=60) == 0
        killed = start_writer(tmp_path, "killed", 30, linger=True)
        assert killed.stdout is not None and killed.stdout.readline().strip() == "written"
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)

        store = db.BatchStore(tmp_path, "traces", max_bytes=64 * 1024 * 1024, on_drop=Drops())
        got = drain(store)
        expected = [f"p{n}-{i:04d}".encode() * 20 for n in range(3) for i in range(40)]
        expected += [f"killed-{i:04d}".encode() * 20 for i in range(30)]
        assert sorted(got) == sorted(expected)  # each once; nothing of the living process
        assert store.stats()["adopted_batches"] == 150
        others = [d for d in store.signal_dir.iterdir() if d != store.own_dir]
        assert len(others) == 1 and len(list(others[0].glob("*.otlp"))) == 10  # the living one's, untouched
    finally:
        for proc in (living, killed):
            if proc is not None:
                proc.kill()
                proc.wait(timeout=10)
    assert db.BatchStore(tmp_path, "traces", 64 * 1024 * 1024, Drops()).stats()["batches"] == 10


def test_a_closed_store_leaves_its_batches_for_the_next_process(tmp_path: Path) -> None:
    first = db.BatchStore(tmp_path, "logs", max_bytes=1024 * KIB, on_drop=Drops())
    first.append(payload(1), items=3)
    first.close()
    second = db.BatchStore(tmp_path, "logs", max_bytes=1024 * KIB, on_drop=Drops())
    assert second.stats()["items"] == 3
    assert drain(second) == [payload(1)]


def _in_a_forked_child(work: Any, timeout_s: float = 20.0) -> Any:
    """``work()`` in a forked child; its JSON result, or a failure when the child hangs or fails."""
    import json

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            signal.alarm(int(timeout_s))  # a deadlocked child ends itself
            os.write(write_end, json.dumps(work()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail("the forked child hung (a lock held at the fork?)")
        time.sleep(0.05)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0, f"the child failed (status {status})"
    return json.loads(output)


def test_a_forked_child_shares_nothing_of_the_parents_buffer(tmp_path: Path) -> None:
    import threading

    store = db.BatchStore(tmp_path, "traces", max_bytes=1024 * KIB, on_drop=Drops())
    store.append(payload(1), items=2)
    parent_dir = store.own_dir
    # Another thread of the parent holds the store's lock across the fork: the child would wait forever
    # for a lock no thread of its own will release.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:

        def child() -> dict[str, Any]:
            before = store.stats()
            kept = store.append(payload(2), items=3)
            taken = store.take()
            assert taken is not None
            store.done(taken[0], replayed=True)
            return {"before": before, "kept": kept, "after": store.stats(), "payload": taken[1].decode()}

        result = _in_a_forked_child(child)
    finally:
        release.set()
        holder.join(10)
    # The child started empty, kept its batch in a folder of its own, and replayed only its own.
    assert result["before"]["batches"] == 0 and result["before"]["stored"] == 0
    assert result["kept"] is True and result["payload"] == payload(2).decode()
    assert result["after"]["dir"] != str(parent_dir)
    assert Path(result["after"]["dir"]).parent == parent_dir.parent
    # The parent's batch is untouched, still the parent's, and its folder still locked by it alone:
    # a new store (as another process would) adopts the exited child's folder, never the parent's.
    assert store.stats()["batches"] == 1 and len(list(parent_dir.glob("*.otlp"))) == 1
    other = db.BatchStore(tmp_path, "traces", max_bytes=1024 * KIB, on_drop=Drops())
    assert other.stats()["adopted_batches"] == 0  # the child replayed its batch; its empty folder went
    assert parent_dir.is_dir() and not Path(result["after"]["dir"]).exists()
    assert drain(store) == [payload(1)]
    other.close()
    store.close()


def test_a_forked_childs_replayer_gets_fresh_locks(tmp_path: Path) -> None:
    health = SignalHealth("traces")
    store = db.BatchStore(tmp_path, "traces", max_bytes=1024 * KIB, on_drop=Drops())
    sent: list[bytes] = []

    def send(data: bytes) -> tuple[bool, bool, str | None]:
        sent.append(data)
        if len(sent) == 1:
            return False, True, "Unavailable"  # the first try fails: kept on disk, replayed by a thread
        return True, False, None

    core = db._Replaying(store, send, "otlp/test", health, None, backoff_s=0.05, max_backoff_s=0.1)
    assert core._thread_lock.acquire()  # held by the parent at the fork, as by its export thread
    try:

        def child() -> dict[str, Any]:
            ok = core.export(lambda: b"from the child", 1)
            eventually(lambda: len(sent), lambda n: n == 2)
            eventually(lambda: store.stats()["replayed"], lambda n: n == 1)
            return {"ok": ok, "sent": [s.decode() for s in sent]}

        result = _in_a_forked_child(child)
    finally:
        core._thread_lock.release()
    assert result == {"ok": True, "sent": ["from the child", "from the child"]}
    assert sent == []  # nothing of the child's in the parent
    core.stop()


# --- replay through the real exporters ---------------------------------------------------------------


def make_spans(count: int, tag: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("disk-buffer-test")
    for index in range(count):
        with tracer.start_as_current_span(f"work-{index}", attributes={"test.id": f"{tag}-{index}"}):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def otlp_exporter(receiver: OTLPReceiver, protocol: str) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc(endpoint=receiver.grpc_endpoint, insecure=True, timeout=1)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http(endpoint=receiver.http_url("traces"), timeout=1)


FAST = {"first_backoff_s": 0.1, "max_backoff_s": 0.3}


@pytest.fixture
def buffered(tmp_path: Path) -> Iterator[Any]:
    made: list[SpanExporter] = []

    def make(receiver: OTLPReceiver, protocol: str, health: SignalHealth, drops: Drops) -> SpanExporter:
        config = db.BufferConfig(tmp_path, 1024 * KIB, **FAST)
        exporter = db.span_exporter(
            otlp_exporter(receiver, protocol),
            f"otlp/{protocol}",
            health,
            lambda signal, reason, n: drops(reason, n),
            config,
        )
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.shutdown()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_batches_the_backend_refused_are_replayed_byte_for_byte_when_it_is_back(
    protocol: str, otlp_receiver: OTLPReceiver, buffered: Any
) -> None:
    health, drops = SignalHealth("traces"), Drops()
    exporter = buffered(otlp_receiver, protocol, health, drops)
    assert isinstance(exporter, db.BufferedSpanExporter)
    otlp_receiver.fail_with = 503
    batches = [make_spans(5, f"b{n}") for n in range(3)]
    for batch in batches:
        assert exporter.export(batch) == SpanExportResult.SUCCESS  # kept, not lost
    on_disk = health.snapshot()["buffer"]
    assert on_disk["items"] == 15 and on_disk["batches"] == 3
    assert health.snapshot()["last_failure"] is not None and health.snapshot()["dropped"] == {}

    otlp_receiver.fail_with = None
    otlp_receiver.wait_until(lambda: len(otlp_receiver.spans()) >= 15, timeout=15, what="15 replayed spans")
    wire = [entry.request.SerializeToString() for entry in otlp_receiver.requests("traces")]
    assert sorted(wire) == sorted(encode_spans(b).SerializePartialToString() for b in batches)
    ids = sorted(s["attributes"]["test.id"] for s in otlp_receiver.spans())
    assert ids == sorted(f"b{n}-{i}" for n in range(3) for i in range(5))
    # The receiver records a request before the replay thread reads its answer.
    snapshot = eventually(health.snapshot, lambda snap: snap["buffer"]["replayed"] == 15)
    assert snapshot["exported"] == 15
    assert snapshot["buffer"]["batches"] == 0 and drops.by_reason == {}


def test_while_the_backend_is_down_new_batches_go_straight_to_disk(
    otlp_receiver: OTLPReceiver, buffered: Any
) -> None:
    health = SignalHealth("traces")
    exporter = buffered(otlp_receiver, "http/protobuf", health, Drops())
    otlp_receiver.fail_with = 503
    exporter.export(make_spans(1, "first"))
    attempts = otlp_receiver.rejected_count
    started = time.monotonic()
    for n in range(20):
        exporter.export(make_spans(2, f"later{n}"))
    assert time.monotonic() - started < 2.0
    # Only the replay thread probes (with backoff), not one attempt per batch.
    assert otlp_receiver.rejected_count - attempts < 20
    assert health.snapshot()["buffer"]["items"] == 41


def test_a_batch_the_backend_refuses_for_good_is_dropped_and_counted_not_kept(
    otlp_receiver: OTLPReceiver, buffered: Any
) -> None:
    health, drops = SignalHealth("traces"), Drops()
    exporter = buffered(otlp_receiver, "http/protobuf", health, drops)
    otlp_receiver.fail_with = 400
    assert exporter.export(make_spans(4, "bad")) == SpanExportResult.FAILURE
    assert drops.by_reason == {sc.ReasonValues.EXPORT_FAILED: 4}
    assert health.snapshot()["buffer"]["batches"] == 0


def test_what_is_on_disk_at_shutdown_is_replayed_by_the_next_process_start(
    tmp_path: Path, otlp_receiver: OTLPReceiver, buffered: Any
) -> None:
    otlp_receiver.fail_with = 503
    first = buffered(otlp_receiver, "http/protobuf", SignalHealth("traces"), Drops())
    first.export(make_spans(6, "before"))
    started = time.monotonic()
    first.shutdown()
    assert time.monotonic() - started < 2.0
    assert otlp_receiver.spans() == []
    otlp_receiver.fail_with = None
    health = SignalHealth("traces")
    buffered(otlp_receiver, "http/protobuf", health, Drops())
    otlp_receiver.wait_until(lambda: len(otlp_receiver.spans()) == 6, timeout=15, what="6 replayed spans")
    assert health.snapshot()["buffer"]["adopted_batches"] == 1


# --- settings and instrument() -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", 1048576), ("512KiB", 512 * KIB), ("64MiB", 64 * KIB * KIB), ("10MB", 10_000_000)],
)
def test_the_size_cap_is_parsed_like_a_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected
    env = {"B2B_OTEL_EXPORT_BUFFER_MAX_SIZE": text, "B2B_OTEL_LOG_DIR": "none"}
    assert resolve(environ=env).export_buffer_max_size == expected


@pytest.mark.parametrize("text", ["lots", "-1", "1KiB"])
def test_a_bad_size_cap_is_a_config_error_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"B2B_OTEL_EXPORT_BUFFER_MAX_SIZE": text, "B2B_OTEL_LOG_DIR": "none"})
    assert "B2B_OTEL_EXPORT_BUFFER_MAX_SIZE" in str(caught.value)


def test_an_unwritable_buffer_folder_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as caught:
        resolve(environ={"B2B_OTEL_EXPORT_BUFFER_DIR": str(blocker / "buffer"), "B2B_OTEL_LOG_DIR": "none"})
    assert "B2B_OTEL_EXPORT_BUFFER_DIR" in str(caught.value)


@pytest.fixture
def clean_globals() -> Iterator[None]:
    reset_otel_globals()
    yield
    reset_otel_globals()


def test_instrument_keeps_spans_and_logs_on_disk_while_the_backend_is_down(
    tmp_path: Path, otlp_receiver: OTLPReceiver, clean_globals: None
) -> None:
    import logging

    otlp_receiver.fail_with = 503
    telemetry = b2b_otel.instrument(
        otlp_endpoint=otlp_receiver.http_endpoint,
        otlp_timeout="1s",
        export_buffer_dir=str(tmp_path / "buffer"),
        log_dir="none",
        instrumentations="logging",
        metrics_exporter="none",
    )
    tracer = trace.get_tracer("app")
    for index in range(10):
        with tracer.start_as_current_span("unit", attributes={"test.id": index}):
            logging.getLogger("app").warning("unit %d", index)
    telemetry.force_flush(timeout_s=10)
    signals = telemetry.health()["signals"]
    assert signals["traces"]["buffer"]["items"] == 10, signals["traces"]
    assert signals["logs"]["buffer"]["items"] >= 10, signals["logs"]
    assert signals["traces"]["dropped"] == {} and signals["logs"]["dropped"] == {}
    assert (tmp_path / "buffer" / "traces").is_dir() and (tmp_path / "buffer" / "logs").is_dir()

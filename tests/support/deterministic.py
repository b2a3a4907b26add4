"""Deterministic trace/span ids and a fake clock, for snapshot-style unit tests."""

from __future__ import annotations

import threading

from opentelemetry.sdk.trace.id_generator import IdGenerator


class SequentialIdGenerator(IdGenerator):
    """Trace ids 1, 2, 3... and span ids 1, 2, 3..., so snapshots are stable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trace = 0
        self._span = 0

    def generate_trace_id(self) -> int:
        with self._lock:
            self._trace += 1
            return self._trace

    def generate_span_id(self) -> int:
        with self._lock:
            self._span += 1
            return self._span


class FakeClock:
    """A monotonic clock in nanoseconds that moves only when told to."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)

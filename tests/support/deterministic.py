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
    """A clock in seconds that moves only when a test moves it (``clock.now += 30``)."""

    def __init__(self, start_s: float = 1_000_000.0) -> None:
        self.now = start_s

    def __call__(self) -> float:
        return self.now

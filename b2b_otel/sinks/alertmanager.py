"""Pushing critical and warning firings to a Prometheus Alertmanager (API v2).

Asynchronous and bounded: the worker thread only enqueues; a pusher thread posts batches with
retries and exponential backoff. A dead Alertmanager costs dropped (and counted) alerts, never a
blocked application.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .. import semconv as sc
from .._internal import selflog
from .._internal.formats import iso
from .._internal.threads import start_detached
from ..derive.records import DerivedRecord
from ..derive.sink import Sink

_LABEL = re.compile(r"[^a-zA-Z0-9_]")
PUSHED_SEVERITIES = (sc.B2bAlertSeverityValues.CRITICAL, sc.B2bAlertSeverityValues.WARNING)
MAX_QUEUE = 1000  # alerts waiting for the pusher; beyond, new ones are dropped and counted
MAX_ATTEMPTS = 5  # posts of one batch, with exponential backoff between them
TIMEOUT_S = 5.0  # of one post
# The tenant of the record (b2b.tenant.id: the triggering span's, or the rule's group) is the label
# ``tenant``, beside ``service``, so that routes, inhibitions and silences can select a tenant. The
# span's user and session are annotations unless the rule groups by them: as labels, every session
# would make a distinct alert of the same firing.
TENANT_LABEL = "tenant"
_ANNOTATED = (sc.USER_ID, sc.SESSION_ID)


def label_name(key: str) -> str:
    """An attribute key as an Alertmanager label name (``client.address`` -> ``client_address``)."""
    name = _LABEL.sub("_", key)
    return name if not name[:1].isdigit() else f"_{name}"


class AlertmanagerSink(Sink):
    """Queues alerts and posts them to ``{url}/api/v2/alerts`` from a background thread."""

    name = "alertmanager"

    def __init__(
        self,
        url: str,
        service: str,
        trace_link: str,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.service = service
        self.trace_link = trace_link
        self.on_drop = on_drop
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def alert(self, record: DerivedRecord) -> dict[str, Any]:
        """The Alertmanager alert of a derived record."""
        labels = {
            "alertname": record.rule_id,
            "severity": record.severity,
            "tier": record.tier,
            "service": self.service,
            "scope": str(record.attributes.get(sc.B2B_SCOPE, sc.B2bScopeValues.PROCESS)),
        }
        tenant = record.attributes.get(sc.B2B_TENANT_ID)
        if tenant is not None:
            labels[TENANT_LABEL] = str(tenant)
        for key, value in record.attributes.items():
            if key.startswith(("b2b.", "event.", "ocsf.")):
                continue
            if key in _ANNOTATED and key not in record.group_keys:
                continue
            labels.setdefault(label_name(key), str(value))
        link = self.trace_link.format(trace_id=f"{record.trace_id:032x}") if record.trace_id else ""
        annotations = {
            "summary": record.message,
            "observed_value": f"{record.attributes.get(sc.B2B_OBSERVED_VALUE)}",
            "threshold_value": f"{record.attributes.get(sc.B2B_THRESHOLD_VALUE)}",
            "respond_within_s": f"{record.attributes.get(sc.B2B_ALERT_RESPOND_WITHIN_S)}",
        }
        for key in _ANNOTATED:
            if key in record.attributes and key not in record.group_keys:
                annotations[label_name(key)] = str(record.attributes[key])
        if link:
            annotations["trace"] = link
        alert: dict[str, Any] = {"labels": labels, "annotations": annotations, "startsAt": iso(record.time_s)}
        if link:
            alert["generatorURL"] = link
        return alert

    def write(self, record: DerivedRecord) -> None:
        """Queue the record's alert (critical and warning only; counted when the queue is full)."""
        self.push(record)

    def push(self, record: DerivedRecord) -> bool:
        """Queue a record's alert if its severity is pushed; False when it was dropped (queue full)."""
        if record.severity not in PUSHED_SEVERITIES:
            return True
        with self._lock:
            if len(self._queue) >= MAX_QUEUE:
                if self.on_drop:
                    self.on_drop(1)
                return False
            self._queue.append(self.alert(record))
            self._idle.clear()
            self._ensure_thread()
        self._wake.set()
        return True

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="b2b-otel-alertmanager", daemon=True)
            start_detached(self._thread)

    def _run(self) -> None:
        import httpx
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        with httpx.Client(timeout=TIMEOUT_S) as client:
            while not self._stop.is_set():
                self._wake.wait(0.5)
                self._wake.clear()
                while True:
                    with self._lock:
                        batch = list(self._queue)
                        self._queue.clear()
                        if not batch:
                            self._idle.set()
                            break
                    with suppress_instrumentation():  # our own pushes are not application telemetry
                        self._send(client, batch)

    def _send(self, client: Any, batch: list[dict[str, Any]]) -> None:
        delay = 0.5
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = client.post(self.url, json=batch)
                if response.status_code < 300:
                    return
                error = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # a bad request does not get better by retrying
            except Exception as exc:
                error = type(exc).__name__
            if attempt < MAX_ATTEMPTS and not self._stop.wait(delay):
                delay = min(delay * 2, 8.0)
                continue
            break
        if self.on_drop:
            self.on_drop(len(batch))
        selflog.warn_once_a_minute(
            "alertmanager", "b2b_otel: could not push %d alert(s) to Alertmanager (%s)", len(batch), error
        )

    def flush(self, timeout_s: float) -> bool:
        """Wait until the queue is sent (or given up); False on timeout."""
        if self._thread is None:
            return True
        return self._idle.wait(timeout_s)

    def close(self, timeout_s: float = 2.0) -> None:
        """Try to send what is queued, then stop."""
        self.flush(timeout_s)
        self._stop.set()
        self._wake.set()

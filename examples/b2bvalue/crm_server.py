"""The CRM/ERP system the agents integrate with, served over HTTP on loopback.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 and an ephemeral port, with JSON endpoints:

- ``GET /accounts/{id}`` - the prospect's CRM account
- ``GET /opportunities?account={id}`` - open and closed deals with that account
- ``GET /erp/financials/{id}`` - the prospect's financials from the ERP integration

Requests must carry the run's token, as ``Authorization: Bearer ...`` or (a legacy the server still
accepts, and the ``secret_in_payload`` fault uses) as ``?access_token=...``. :meth:`CrmServer.slow_down`
is the knob of the ``slow_crm`` fault: the next matching requests answer only after a delay.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Reference data. Some fields are missing on purpose: the data-integration agent scores
# completeness, and an incomplete record must lower the case's data quality.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "acc-1001": {
        "name": "Acme Manufacturing",
        "industry": "manufacturing",
        "employees": 820,
        "owner": "dana.sales",
        "region": "EMEA",
    },
    "acc-1002": {
        "name": "Globex Software",
        "industry": "software",
        "employees": 430,
        "owner": "eli.sales",
        "region": "NA",
    },
    "acc-1003": {
        "name": "Umbrella Health",
        "industry": "healthcare",
        "employees": 1900,
        "owner": "dana.sales",
        "region": "EMEA",
    },
    "acc-1004": {
        "name": "Initech Payments",
        "industry": "fintech",
        "employees": None,
        "owner": "eli.sales",
        "region": "NA",
    },
    "acc-1005": {
        "name": "Hooli Logistics",
        "industry": "logistics",
        "employees": 2600,
        "owner": "fay.sales",
        "region": "APAC",
    },
    "acc-1006": {
        "name": "Stark Farms",
        "industry": "agritech",
        "employees": 310,
        "owner": "fay.sales",
        "region": "NA",
    },
}

OPPORTUNITIES: list[dict[str, Any]] = [
    {"id": "opp-5001", "account": "acc-1001", "stage": "proposal", "amount": 480000.0},
    {"id": "opp-5002", "account": "acc-1001", "stage": "closed_lost", "amount": 180000.0},
    {"id": "opp-5003", "account": "acc-1002", "stage": "negotiation", "amount": 360000.0},
    {"id": "opp-5004", "account": "acc-1003", "stage": "proposal", "amount": 620000.0},
    {"id": "opp-5005", "account": "acc-1003", "stage": "discovery", "amount": 120000.0},
    {"id": "opp-5006", "account": "acc-1004", "stage": "proposal", "amount": 300000.0},
    {"id": "opp-5007", "account": "acc-1005", "stage": "negotiation", "amount": 840000.0},
    {"id": "opp-5008", "account": "acc-1006", "stage": "proposal", "amount": 190000.0},
]

FINANCIALS: dict[str, dict[str, Any]] = {
    "acc-1001": {"revenue": 145_000_000.0, "opex": 118_000_000.0, "dso_days": 52.0, "wacc": 0.085},
    "acc-1002": {"revenue": 64_000_000.0, "opex": 49_000_000.0, "dso_days": 41.0, "wacc": 0.105},
    "acc-1003": {"revenue": 310_000_000.0, "opex": 270_000_000.0, "dso_days": 67.0, "wacc": 0.07},
    "acc-1004": {"revenue": 38_000_000.0, "opex": 31_000_000.0, "dso_days": None, "wacc": 0.12},
    "acc-1005": {"revenue": 520_000_000.0, "opex": 470_000_000.0, "dso_days": 58.0, "wacc": 0.08},
    "acc-1006": {"revenue": 22_000_000.0, "opex": 18_500_000.0, "dso_days": 74.0, "wacc": 0.095},
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # httpx keeps connections alive; joining their handler threads on close would hang shutdown.
    block_on_close = False

    def __init__(self, crm: CrmServer) -> None:
        self.crm = crm
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API gateway
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # The access log would only clutter the demo's output; the client spans show every call.
        return

    def _send(self, status: HTTPStatus, payload: Any) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        crm = self.server.crm
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not crm.authorised(self.headers.get("Authorization"), query.get("access_token", [None])[0]):
            self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or invalid token"})
            return
        crm.wait_if_slowed(url.path)
        status, payload = crm.route(url.path, query)
        self._send(status, payload)


class CrmServer:
    """The CRM/ERP API on loopback; use as ``with CrmServer(token) as crm: crm.base_url``."""

    def __init__(self, token: str, *, billing_notes: Mapping[str, str] | None = None) -> None:
        self._token = token
        # Free-text notes sales reps typed into the CRM (the secret_in_payload fault plants one).
        self._billing_notes = dict(billing_notes or {})
        self._lock = threading.Lock()
        self._delays: list[tuple[str, float]] = []  # (path prefix, seconds), consumed in order
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._server is None:
            raise RuntimeError("CrmServer is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CrmServer:
        """Bind an ephemeral loopback port and serve on a daemon thread."""
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="crm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> CrmServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- behaviour

    def slow_down(self, path_prefix: str, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` requests under ``path_prefix`` answer after ``seconds``."""
        with self._lock:
            self._delays.extend([(path_prefix, seconds)] * times)

    def wait_if_slowed(self, path: str) -> None:
        """Sleep if a pending delay matches ``path`` (called on the request's handler thread)."""
        with self._lock:
            index = next((i for i, (prefix, _) in enumerate(self._delays) if path.startswith(prefix)), None)
            seconds = self._delays.pop(index)[1] if index is not None else 0.0
        if seconds:
            time.sleep(seconds)

    def authorised(self, header: str | None, query_token: str | None) -> bool:
        """Accept the token as a bearer header or, for legacy clients, as ``access_token``."""
        if header is not None and header.startswith("Bearer "):
            return header.removeprefix("Bearer ") == self._token
        return query_token == self._token

    def route(self, path: str, query: Mapping[str, list[str]]) -> tuple[HTTPStatus, Any]:
        """Answer one GET: the status and the JSON payload."""
        parts = [part for part in path.split("/") if part]
        if len(parts) == 2 and parts[0] == "accounts":
            account = ACCOUNTS.get(parts[1])
            if account is None:
                return HTTPStatus.NOT_FOUND, {"error": f"no account {parts[1]}"}
            note = self._billing_notes.get(parts[1])
            return HTTPStatus.OK, {"id": parts[1], **account, "billing_note": note}
        if parts == ["opportunities"]:
            account_id = query.get("account", [""])[0]
            if account_id not in ACCOUNTS:
                return HTTPStatus.NOT_FOUND, {"error": f"no account {account_id}"}
            return HTTPStatus.OK, [opp for opp in OPPORTUNITIES if opp["account"] == account_id]
        if len(parts) == 3 and parts[:2] == ["erp", "financials"]:
            financials = FINANCIALS.get(parts[2])
            if financials is None:
                return HTTPStatus.NOT_FOUND, {"error": f"no financials for {parts[2]}"}
            return HTTPStatus.OK, {"account": parts[2], "currency": "USD", **financials}
        return HTTPStatus.NOT_FOUND, {"error": f"no route {path}"}

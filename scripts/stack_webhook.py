"""The local stack's stand-in for pagers and chat: an Alertmanager webhook receiver.

Every POST is appended to a JSON-lines file, one notification a line, so that the demo and the
end-to-end tests can read what Alertmanager sent and to which receiver (the URL path names it):

    {"received_at": "2025-06-20T01:52:00.123+00:00", "path": "/security-critical", "payload": {...}}

GET /-/ready answers 200 (the readiness probe of scripts/stack.sh). Standard library only, so it runs
with any python3; it listens on loopback only.

    python3 scripts/stack_webhook.py --listen 127.0.0.1:9095 --out .cache/stack/webhook.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Alertmanager's notifications are small; anything larger is not one of them.
MAX_BODY_BYTES = 1 << 20


class WebhookHandler(BaseHTTPRequestHandler):
    server_version = "b2b-stack-webhook/1"
    out_path: Path
    write_lock = threading.Lock()

    def do_GET(self) -> None:
        if self.path == "/-/ready":
            self._answer(200, b"ready\n")
        else:
            self._answer(404, b"POST notifications to any path\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY_BYTES:
            self._answer(400, b"a JSON body of at most 1 MiB is expected\n")
            return
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw)
        except ValueError:
            self._answer(400, b"the body is not JSON\n")
            return
        line = json.dumps(
            {"received_at": datetime.now(timezone.utc).isoformat(), "path": self.path, "payload": payload},
            separators=(",", ":"),
        )
        # One write per line under a lock: concurrent notifications never interleave.
        with self.write_lock, self.out_path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
        self._answer(200, b"ok\n")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", default="127.0.0.1:9095", help="host:port (default %(default)s)")
    default_out = Path(os.environ.get("B2B_STACK_DIR", ".cache/stack")) / "webhook.jsonl"
    parser.add_argument("--out", type=Path, default=default_out, help="JSON-lines file (default %(default)s)")
    args = parser.parse_args()

    host, _, port = args.listen.rpartition(":")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    WebhookHandler.out_path = args.out
    server = ThreadingHTTPServer((host, int(port)), WebhookHandler)
    print(f"stack_webhook: listening on {args.listen}, appending to {args.out}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

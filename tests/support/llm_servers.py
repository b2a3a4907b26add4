"""Local HTTP servers that speak the OpenAI chat-completions and Anthropic messages APIs.

The real ``openai`` and ``anthropic`` clients are pointed at them (``base_url``): usage numbers in
every answer, the providers' rate-limit headers (shrinking as tokens and requests are used), JSON and
server-sent-event (streaming) answers, and 429 / 500 errors on demand. One server answers both APIs
(``/v1/chat/completions`` and ``/v1/messages``) on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_SNAPSHOT = "-2024-08-06"
ANTHROPIC_SNAPSHOT = "-20250929"


@dataclass
class Quota:
    """One provider's rate limits as the server reports them."""

    limit_tokens: int = 100_000
    remaining_tokens: int = 100_000
    limit_requests: int = 1_000
    remaining_requests: int = 1_000

    def spend(self, tokens: int) -> None:
        self.remaining_tokens = max(0, self.remaining_tokens - tokens)
        self.remaining_requests = max(0, self.remaining_requests - 1)


@dataclass
class LLMServer:
    """The servers' behaviour, set by the test; ``requests`` holds every JSON body received."""

    input_tokens: int = 120
    output_tokens: int = 30
    cached_tokens: int = 0
    reply: str = "The business case looks sound."
    openai_quota: Quota = field(default_factory=Quota)
    anthropic_quota: Quota = field(default_factory=Quota)
    failures: list[int] = field(default_factory=list)  # statuses for the next requests, first first
    # (input, output) tokens of one request, from its body; None: input_tokens / output_tokens.
    usage_of: Callable[[dict[str, Any]], tuple[int, int]] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- control

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self.failures.extend(statuses)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    # --- serving

    def start(self) -> LLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server._handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="llm-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        anthropic = handler.path.rstrip("/").endswith("/messages")
        with self._lock:
            self.requests.append(body)
            status = self.failures.pop(0) if self.failures else 200
            quota = self.anthropic_quota if anthropic else self.openai_quota
            if status == 200:
                quota.spend(self.input_tokens + self.output_tokens)
            elif status == 429:
                quota.remaining_tokens = 0
            headers = _anthropic_headers(quota) if anthropic else _openai_headers(quota)
        if status != 200:
            kind = "rate_limit_error" if status == 429 else "api_error"
            error: dict[str, Any] = (
                {"type": "error", "error": {"type": kind, "message": f"simulated {status}"}}
                if anthropic
                else {"error": {"message": f"simulated {status}", "type": kind, "code": None}}
            )
            self._send_json(handler, status, error, headers)
            return
        model = str(body.get("model", ""))
        answer = self
        if self.usage_of is not None:  # a copy with this request's usage (requests run concurrently)
            tokens_in, tokens_out = self.usage_of(body)
            answer = LLMServer(input_tokens=tokens_in, output_tokens=tokens_out, reply=self.reply)
        if anthropic:
            if body.get("stream"):
                self._send_events(handler, _anthropic_events(answer, model), headers)
            else:
                self._send_json(handler, 200, _anthropic_message(answer, model), headers)
        elif body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._send_events(handler, _openai_chunks(answer, model, usage), headers)
        else:
            self._send_json(handler, 200, _openai_completion(answer, model), headers)

    @staticmethod
    def _send_json(
        handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _send_events(
        handler: BaseHTTPRequestHandler, events: Iterator[tuple[str | None, Any]], headers: dict[str, str]
    ) -> None:
        parts: list[bytes] = []
        for event, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            prefix = f"event: {event}\n" if event else ""
            parts.append(f"{prefix}data: {text}\n\n".encode())
        payload = b"".join(parts)
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("content-length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)


def _openai_headers(quota: Quota) -> dict[str, str]:
    return {
        "x-ratelimit-limit-tokens": str(quota.limit_tokens),
        "x-ratelimit-remaining-tokens": str(quota.remaining_tokens),
        "x-ratelimit-limit-requests": str(quota.limit_requests),
        "x-ratelimit-remaining-requests": str(quota.remaining_requests),
        "x-request-id": "req-test",
    }


def _anthropic_headers(quota: Quota) -> dict[str, str]:
    return {
        "anthropic-ratelimit-tokens-limit": str(quota.limit_tokens),
        "anthropic-ratelimit-tokens-remaining": str(quota.remaining_tokens),
        "anthropic-ratelimit-input-tokens-limit": str(quota.limit_tokens),
        "anthropic-ratelimit-input-tokens-remaining": str(quota.remaining_tokens),
        "anthropic-ratelimit-requests-limit": str(quota.limit_requests),
        "anthropic-ratelimit-requests-remaining": str(quota.remaining_requests),
        "request-id": "req-test",
    }


def _openai_usage(server: LLMServer) -> dict[str, Any]:
    return {
        "prompt_tokens": server.input_tokens,
        "completion_tokens": server.output_tokens,
        "total_tokens": server.input_tokens + server.output_tokens,
        "prompt_tokens_details": {"cached_tokens": server.cached_tokens},
    }


def _openai_completion(server: LLMServer, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_750_000_000,
        "model": model + OPENAI_SNAPSHOT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": server.reply},
                "finish_reason": "stop",
            }
        ],
        "usage": _openai_usage(server),
    }


def _openai_chunks(server: LLMServer, model: str, usage: bool) -> Iterator[tuple[str | None, Any]]:
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1_750_000_000}
    base["model"] = model + OPENAI_SNAPSHOT
    words = server.reply.split(" ")
    for index, word in enumerate(words):
        delta: dict[str, Any] = {"content": word if index == 0 else " " + word}
        if index == 0:
            delta["role"] = "assistant"
        yield None, {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    yield None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if usage:
        yield None, {**base, "choices": [], "usage": _openai_usage(server)}
    yield None, "[DONE]"


def _anthropic_usage(server: LLMServer) -> dict[str, Any]:
    return {
        "input_tokens": server.input_tokens - server.cached_tokens,
        "output_tokens": server.output_tokens,
        "cache_read_input_tokens": server.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def _anthropic_message(server: LLMServer, model: str) -> dict[str, Any]:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model + ANTHROPIC_SNAPSHOT,
        "content": [{"type": "text", "text": server.reply}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(server),
    }


def _anthropic_events(server: LLMServer, model: str) -> Iterator[tuple[str | None, Any]]:
    message = _anthropic_message(server, model)
    start_usage = {**_anthropic_usage(server), "output_tokens": 1}
    started = {**message, "content": [], "usage": start_usage}
    yield "message_start", {"type": "message_start", "message": started}
    yield (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        },
    )
    for word in server.reply.split(" "):
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": word + " "},
            },
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": server.output_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}

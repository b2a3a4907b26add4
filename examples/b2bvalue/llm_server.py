"""The LLM provider the agents call: an OpenAI-compatible chat-completions API on loopback.

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 and an ephemeral port that speaks enough of OpenAI's
HTTP API for the real ``openai`` client (sync and async, plain and streaming):

- ``POST /v1/chat/completions`` - a chat completion as JSON, or with ``"stream": true`` as server-sent
  events (``chat.completion.chunk`` objects, then ``data: [DONE]``); with
  ``"stream_options": {"include_usage": true}`` a last chunk with empty ``choices`` carries the usage.

The "model" is deterministic: it answers with a short summary of the ``Key: value`` lines of the last
user message (or of its first sentence), so a test can predict every word. Token counts are derived
from the text with :func:`count_tokens` (roughly what a BPE tokenizer gives for English prose and
figures), prompt tokens with the chat format's per-message overhead.

Every answer carries OpenAI's rate-limit headers (``x-ratelimit-limit-tokens``,
``x-ratelimit-remaining-tokens``, ``x-ratelimit-reset-tokens`` and the request equivalents): one budget
of tokens and requests per window (a minute by default), used up by every call, so the remaining values
shrink as a run goes on and recover when the window resets. A call that would exceed the budget gets
a 429 with ``retry-after``, as from the real API. Requests must carry the server's API key as
``Authorization: Bearer ...``.

The knobs of the faults (see :mod:`.faults`): :meth:`LlmServer.consume` spends budget on behalf of
another workload on the same key (``llm_quota``); :meth:`LlmServer.fail_next` makes the next requests
answer with the given error statuses, 429 and 500 with ``retry-after`` (``llm_error``).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

# A key of the local server only: no provider's key format, so that no scanner mistakes it for one.
DEFAULT_API_KEY = "b2bvalue-local-llm"
# The budget of one API key per window: OpenAI's first usage tier for gpt-4o-mini.
DEFAULT_TOKEN_LIMIT = 200_000
DEFAULT_REQUEST_LIMIT = 500
DEFAULT_WINDOW_S = 60.0
# Pause between streamed chunks: a model's inter-token latency, so a stream takes measurable time.
STREAM_CHUNK_PAUSE_S = 0.002
# Words per streamed chunk.
STREAM_WORDS_PER_CHUNK = 3
# Tokens a completion may have when the request sets no limit.
DEFAULT_MAX_COMPLETION_TOKENS = 256
# The chat format's overhead: tokens framing every message, and the assistant reply's priming.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3
# What a failed request asks the client to wait, in seconds (short: the demo must not stall).
DEFAULT_RETRY_AFTER_S = 0.2

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"

_TOKEN_PIECE = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")
_FACT_LINE = re.compile(r"^\s*(?:[-*]\s*)?([A-Za-z][A-Za-z /()%-]{0,40}):\s*(\S.*?)\s*$")


def count_tokens(text: str) -> int:
    """Tokens of ``text`` as a BPE tokenizer roughly counts them: a word per 5 letters, digits in
    groups of 3, each punctuation mark one.

    Example::

        >>> count_tokens("NPV: $1,234,567")
        8
    """
    total = 0
    for piece in _TOKEN_PIECE.findall(text):
        if piece[0].isdigit():
            total += math.ceil(len(piece) / 3)
        elif piece[0].isalpha():
            total += math.ceil(len(piece) / 5)
        else:
            total += 1
    return total


def prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Prompt tokens of a chat request: each message's content and role plus the format's framing."""
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_tokens(str(message.get("role", ""))) + count_tokens(
            _content_text(message.get("content"))
        )
        if message.get("name"):
            total += 1 + count_tokens(str(message["name"]))
    return total


def _content_text(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts of which the text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def complete(messages: Sequence[dict[str, Any]]) -> str:
    """The deterministic model: a one-paragraph summary of the last user message.

    The message's ``Key: value`` lines become ``first value: key value; key value; ...``; a message
    without such lines is answered with its first sentence.

    Example::

        >>> complete([{"role": "user", "content": "Account: Acme\\nNPV: $1.2M\\nPayback: 14 months"}])
        'Acme: NPV $1.2M; payback 14 months.'
    """
    user = [m for m in messages if m.get("role") == "user"]
    text = _content_text(user[-1].get("content")) if user else ""
    facts = [match.groups() for line in text.splitlines() if (match := _FACT_LINE.match(line))]
    if facts:
        (_, subject), rest = facts[0], facts[1:]
        body = "; ".join(f"{_lower(key.strip())} {value.rstrip('.')}" for key, value in rest)
        return f"{subject.rstrip('.')}: {body}." if body else f"{subject.rstrip('.')}."
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].strip()
    return f"Noted: {first}" if first else "There is nothing to summarise."


def _lower(key: str) -> str:
    """A fact's key as it reads mid-sentence: capitalised words lowered, acronyms (``NPV``) kept."""
    return " ".join(word if word.isupper() else word.lower() for word in key.split(" "))


def _truncate(text: str, max_tokens: int) -> tuple[str, str]:
    """``text`` cut to at most ``max_tokens`` tokens (whole words), and the finish reason."""
    if count_tokens(text) <= max_tokens:
        return text, "stop"
    words: list[str] = []
    for word in text.split(" "):
        if count_tokens(" ".join([*words, word])) > max_tokens:
            break
        words.append(word)
    return " ".join(words), "length"


def format_reset(seconds: float) -> str:
    """A reset interval as OpenAI writes it: ``20ms``, ``1.5s``, ``6m0s``.

    Example::

        >>> format_reset(0.02), format_reset(1.5), format_reset(360)
        ('20ms', '1.5s', '6m0s')
    """
    seconds = max(0.0, seconds)
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60.0:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"


class ApiError(Exception):
    """An error answer: the HTTP status, OpenAI's error body fields and extra headers."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        type_: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat-completions request."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int

    @classmethod
    def parse(cls, body: bytes) -> ChatRequest:
        """Validate the JSON body; an :class:`ApiError` (400) names the bad field."""

        def invalid(message: str, param: str | None) -> ApiError:
            return ApiError(HTTPStatus.BAD_REQUEST, message, "invalid_request_error", None, param)

        try:
            payload = json.loads(body or b"null")
        except ValueError:
            raise invalid("We could not parse the JSON body of your request.", None) from None
        if not isinstance(payload, dict):
            raise invalid("The request body must be a JSON object.", None)
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise invalid("you must provide a model parameter", "model")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise invalid("'messages' must be a non-empty array of message objects.", "messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise invalid(f"'messages.{index}' must be an object with a 'role'.", f"messages.{index}")
        limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
        if limit is None:
            limit = DEFAULT_MAX_COMPLETION_TOKENS
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise invalid("'max_completion_tokens' must be a positive integer.", "max_completion_tokens")
        options = payload.get("stream_options") or {}
        if not isinstance(options, dict):
            raise invalid("'stream_options' must be an object.", "stream_options")
        return cls(
            model=model,
            messages=messages,
            stream=payload.get("stream") is True,
            include_usage=options.get("include_usage") is True,
            max_tokens=limit,
        )


class RateLimiter:
    """One API key's budget of tokens and requests per window, as the rate-limit headers report it."""

    def __init__(self, token_limit: int, request_limit: int, window_s: float) -> None:
        self.token_limit = token_limit
        self.request_limit = request_limit
        self.window_s = window_s
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._tokens = 0
        self._requests = 0

    def _roll(self, now: float) -> None:
        if now - self._window_start >= self.window_s:
            self._window_start, self._tokens, self._requests = now, 0, 0

    def consume(self, tokens: int) -> None:
        """Spend ``tokens`` of this window's budget (capped at the limit) outside any request."""
        with self._lock:
            self._roll(time.monotonic())
            self._tokens = min(self.token_limit, self._tokens + max(0, tokens))

    def admit(self, tokens: int, model: str) -> dict[str, str]:
        """Count one request of ``tokens``; its headers, or a 429 :class:`ApiError` when over budget."""
        with self._lock:
            now = time.monotonic()
            self._roll(now)
            if self._requests + 1 > self.request_limit:
                kind, limit, used, requested = "requests", self.request_limit, self._requests, 1
            elif self._tokens + tokens > self.token_limit:
                kind, limit, used, requested = "tokens", self.token_limit, self._tokens, tokens
            else:
                self._requests += 1
                self._tokens += tokens
                return self._headers(now)
            # A refused request still counts against the request limit, as with the real API.
            self._requests = min(self.request_limit, self._requests + 1)
            headers = self._headers(now)
            wait = max(1, math.ceil(self._window_start + self.window_s - now))
        raise ApiError(
            HTTPStatus.TOO_MANY_REQUESTS,
            f"Rate limit reached for {model} on {kind} per min: Limit {limit}, Used {used}, "
            f"Requested {requested}. Please try again in {wait}s.",
            kind,
            "rate_limit_exceeded",
            headers={**headers, "retry-after": str(wait)},
        )

    def headers(self) -> dict[str, str]:
        """The rate-limit headers as of now (sent with error answers too)."""
        with self._lock:
            now = time.monotonic()
            self._roll(now)
            return self._headers(now)

    def _headers(self, now: float) -> dict[str, str]:
        reset = format_reset(self._window_start + self.window_s - now)
        return {
            "x-ratelimit-limit-requests": str(self.request_limit),
            "x-ratelimit-remaining-requests": str(self.request_limit - self._requests),
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-limit-tokens": str(self.token_limit),
            "x-ratelimit-remaining-tokens": str(self.token_limit - self._tokens),
            "x-ratelimit-reset-tokens": reset,
        }


@dataclass(frozen=True)
class Served:
    """The tally of what the server answered (for the tests and the run's report)."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    statuses: dict[int, int]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # the client keeps connections alive; do not join their threads on close

    def __init__(self, llm: LlmServer) -> None:
        self.llm = llm
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops a kept-alive connection (the async client closing after an error)
        # is not a server error; anything else still gets socketserver's report on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # the client's spans show every call; an access log would clutter the demo's output

    def _send_json(self, status: HTTPStatus, payload: Any, headers: dict[str, str]) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        llm = self.server.llm
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        started = time.monotonic()
        try:
            if self.path.split("?", 1)[0] != CHAT_COMPLETIONS_PATH:
                raise ApiError(
                    HTTPStatus.NOT_FOUND, f"Invalid URL (POST {self.path})", "invalid_request_error"
                )
            if not llm.authorised(self.headers.get("Authorization")):
                raise ApiError(
                    HTTPStatus.UNAUTHORIZED,
                    "Incorrect API key provided.",
                    "invalid_request_error",
                    "invalid_api_key",
                )
            answer = llm.answer(ChatRequest.parse(body))
        except ApiError as error:
            llm.record(int(error.status), 0, 0)
            self._send_json(
                error.status,
                error.body,
                {**error.headers, "x-request-id": f"req_{secrets.token_hex(12)}"},
            )
            return
        headers = {
            **answer.headers,
            "x-request-id": f"req_{secrets.token_hex(12)}",
            "openai-processing-ms": str(max(1, round((time.monotonic() - started) * 1000))),
        }
        if not answer.request.stream:
            self._send_json(HTTPStatus.OK, answer.completion(), headers)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for event in answer.events():
                self._chunk(f"data: {event}\n\n".encode())
                time.sleep(STREAM_CHUNK_PAUSE_S)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            return  # the client stopped reading the stream; nothing to tell it


@dataclass(frozen=True)
class _Answer:
    request: ChatRequest
    id: str
    created: int
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    headers: dict[str, str]

    def _usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def completion(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self._usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_b2bvalue",
        }

    def events(self) -> Iterator[str]:
        """The stream's ``data:`` payloads (JSON), without the closing ``[DONE]``."""
        usage_field = {"usage": None} if self.request.include_usage else {}

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> str:
            return json.dumps(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.request.model,
                    "system_fingerprint": "fp_b2bvalue",
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                    ],
                    **usage_field,
                }
            )

        yield chunk({"role": "assistant", "content": "", "refusal": None}, None)
        words = self.text.split(" ")
        for start in range(0, len(words), STREAM_WORDS_PER_CHUNK):
            piece = " ".join(words[start : start + STREAM_WORDS_PER_CHUNK])
            yield chunk({"content": piece if start == 0 else " " + piece}, None)
        yield chunk({}, self.finish_reason)
        if self.request.include_usage:
            yield json.dumps(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.request.model,
                    "system_fingerprint": "fp_b2bvalue",
                    "choices": [],
                    "usage": self._usage(),
                }
            )


class LlmServer:
    """The chat-completions API on loopback; use as ``with LlmServer() as llm: llm.base_url``."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        token_limit: int = DEFAULT_TOKEN_LIMIT,
        request_limit: int = DEFAULT_REQUEST_LIMIT,
        window_s: float = DEFAULT_WINDOW_S,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
    ) -> None:
        if token_limit < 1 or request_limit < 1 or window_s <= 0:
            raise ValueError(
                f"token_limit and request_limit must be at least 1 and window_s positive, got "
                f"{token_limit}, {request_limit}, {window_s}"
            )
        self.api_key = api_key
        self.limits = RateLimiter(token_limit, request_limit, window_s)
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._failures: list[HTTPStatus] = []  # consumed in order by the next requests
        self._statuses: Counter[int] = Counter()
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._server: _Server | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what the ``openai`` client takes as ``base_url``."""
        if self._server is None:
            raise RuntimeError("LlmServer is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> LlmServer:
        """Bind an ephemeral loopback port and serve on a daemon thread."""
        self._server = _Server(self)
        threading.Thread(target=self._server.serve_forever, name="llm-server", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LlmServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- the fault knobs

    def consume(self, tokens: int) -> None:
        """Another workload on the same API key spends ``tokens`` of this window's budget."""
        self.limits.consume(tokens)

    def consume_share(self, share: float) -> int:
        """Spend ``share`` (0..1) of the token limit on behalf of another workload; the tokens spent."""
        tokens = int(self.limits.token_limit * min(1.0, max(0.0, share)))
        self.consume(tokens)
        return tokens

    def fail_next(self, *statuses: int) -> None:
        """Answer the next ``len(statuses)`` requests with these error statuses (429, 500, ...)."""
        for status in statuses:
            if status < 400:
                raise ValueError(f"fail_next takes error statuses (>= 400), got {status}")
        with self._lock:
            self._failures.extend(HTTPStatus(status) for status in statuses)

    # --- behaviour

    def authorised(self, header: str | None) -> bool:
        """Only the server's key, as a bearer token."""
        return header is not None and header.startswith("Bearer ") and secrets.compare_digest(
            header.removeprefix("Bearer "), self.api_key
        )

    def record(self, status: int, prompt: int, completion: int) -> None:
        """Tally one answer."""
        with self._lock:
            self._statuses[status] += 1
            self._prompt_tokens += prompt
            self._completion_tokens += completion

    def served(self) -> Served:
        """What the server has answered so far."""
        with self._lock:
            return Served(
                sum(self._statuses.values()),
                self._prompt_tokens,
                self._completion_tokens,
                dict(self._statuses),
            )

    def _injected_failure(self, model: str) -> ApiError | None:
        with self._lock:
            status = self._failures.pop(0) if self._failures else None
        if status is None:
            return None
        headers = {**self.limits.headers(), "retry-after": f"{self.retry_after_s:g}"}
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            return ApiError(
                status,
                f"Rate limit reached for {model}: the service is overloaded. Please try again shortly.",
                "requests",
                "rate_limit_exceeded",
                headers=headers,
            )
        return ApiError(
            status,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            headers=headers,
        )

    def answer(self, request: ChatRequest) -> _Answer:
        """Complete ``request`` within the budget; raises :class:`ApiError` for 429s and injected errors."""
        failure = self._injected_failure(request.model)
        if failure is not None:
            raise failure
        text, finish = _truncate(complete(request.messages), request.max_tokens)
        prompt, completion = prompt_tokens(request.messages), count_tokens(text)
        headers = self.limits.admit(prompt + completion, request.model)
        self.record(int(HTTPStatus.OK), prompt, completion)
        return _Answer(
            request=request,
            id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt,
            completion_tokens=completion,
            headers=headers,
        )

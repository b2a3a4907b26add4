"""The agents' language model: the real ``openai`` client pointed at the run's :mod:`.llm_server`.

Two calls per business case: the ROI agent asks ``gpt-4o-mini`` for a one-sentence headline of the
figures (sync client, plain completion), the narrative agent streams an executive summary from
``gpt-4o`` (async client, ``stream=True`` with the usage in the last chunk). Both are what an
application would write against OpenAI; only ``base_url`` and the key point elsewhere.

A failed call (the ``llm_error`` fault: a 429 and then a 500, after the client's one retry) is logged
and the case goes on without that text: a business case must not be lost because the model was
unavailable. The tokens each case used, as the responses reported them, are tallied per case so the
run's report can be checked against what the telemetry says.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import openai

log = logging.getLogger(__name__)

# The GenAI conventions' name of the provider whose API the local server speaks.
PROVIDER = "openai"
ROI_MODEL = "gpt-4o-mini"
NARRATIVE_MODEL = "gpt-4o"
# One retry, honouring the server's retry-after: a rate-limited call gets a second chance, a
# persistently failing provider does not hold the case up.
MAX_RETRIES = 1
HEADLINE_MAX_TOKENS = 80
SUMMARY_MAX_TOKENS = 160

SYSTEM_PROMPT = (
    "You are a value-selling analyst preparing business cases for B2B software deals. "
    "Write for a chief financial officer: plain words, no hype, and only the figures you are given. "
    "Never invent numbers, customers or benchmarks."
)
HEADLINE_INSTRUCTION = "Write a one-sentence headline of this business case's return on investment."
SUMMARY_INSTRUCTION = "Write a short executive summary of this business case in one paragraph."


def facts_prompt(instruction: str, facts: Mapping[str, str]) -> str:
    """The user message: the instruction, then one ``Key: value`` line per fact.

    Example::

        >>> print(facts_prompt("Summarise.", {"Account": "Acme", "NPV": "$1"}))
        Summarise.
        Account: Acme
        NPV: $1
    """
    return "\n".join([instruction, *(f"{key}: {value}" for key, value in facts.items())])


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of the LLM calls of one business case, as the provider's responses reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    failed_calls: int = 0


class Assistant:
    """The run's LLM client: where the provider is, its key, and the usage tally per case."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._usage: dict[str, Counter[str]] = {}
        self._client: openai.OpenAI | None = None

    def _sync_client(self) -> openai.OpenAI:
        # One client for the run: it is thread-safe and keeps its connections alive.
        with self._lock:
            if self._client is None:
                self._client = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=self._api_key,
                    max_retries=MAX_RETRIES,
                    timeout=self._timeout_s,
                )
            return self._client

    def _async_client(self) -> openai.AsyncOpenAI:
        # One per call: an async client is bound to the event loop it first ran on.
        return openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self._api_key, max_retries=MAX_RETRIES, timeout=self._timeout_s
        )

    def close(self) -> None:
        """Close the sync client's connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _count(self, case_id: str, input_tokens: int, output_tokens: int, failed: bool = False) -> None:
        with self._lock:
            tally = self._usage.setdefault(case_id, Counter())
            tally["input"] += input_tokens
            tally["output"] += output_tokens
            tally["calls"] += 1
            tally["failed"] += failed

    def usage(self, case_id: str) -> TokenUsage:
        """What the LLM calls of ``case_id`` used so far."""
        with self._lock:
            tally = self._usage.get(case_id, Counter())
            return TokenUsage(tally["input"], tally["output"], tally["calls"], tally["failed"])

    def headline(self, case_id: str, facts: Mapping[str, str]) -> str | None:
        """A one-sentence headline from ``gpt-4o-mini``, or None when the call failed (logged)."""
        try:
            response = self._sync_client().chat.completions.create(
                model=ROI_MODEL,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": facts_prompt(HEADLINE_INSTRUCTION, facts)},
                ],
                max_completion_tokens=HEADLINE_MAX_TOKENS,
                temperature=0.2,
            )
        except openai.APIError as exc:
            self._count(case_id, 0, 0, failed=True)
            log.warning("headline for %s: the model was unavailable (%s); going on without it", case_id, exc)
            return None
        usage = response.usage
        self._count(case_id, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)
        return response.choices[0].message.content or None

    async def stream_summary(self, case_id: str, facts: Mapping[str, str]) -> AsyncIterator[str]:
        """Stream an executive summary from ``gpt-4o``; ends early (logged) when the call fails."""
        client = self._async_client()
        input_tokens = output_tokens = 0
        failed = False
        try:
            stream = await client.chat.completions.create(
                model=NARRATIVE_MODEL,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": facts_prompt(SUMMARY_INSTRUCTION, facts)},
                ],
                max_completion_tokens=SUMMARY_MAX_TOKENS,
                temperature=0.2,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    input_tokens, output_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield choice.delta.content
        except openai.APIError as exc:
            failed = True
            log.warning("summary for %s: the model was unavailable (%s); going on without it", case_id, exc)
        finally:
            self._count(case_id, input_tokens, output_tokens, failed=failed)
            await client.close()

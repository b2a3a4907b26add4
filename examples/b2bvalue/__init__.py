"""b2bvalue: a small agentic business application, instrumented with b2b_otel.

Agents build value-based business cases for B2B deals: they pull CRM/ERP data over HTTP, read and
write memory tiers in PostgreSQL, compute NPV/payback/ROI, ask a language model (the real ``openai``
client against a local OpenAI-compatible server) for a headline and a streamed summary; users of two
tenants sign in, approve and publish. Faults can be injected to trip each monitoring rule (see
:mod:`.faults`).

Run it with ``python -m examples.b2bvalue --cases 3`` from the repository root, or call
:func:`run` in-process.

Module map: ``app`` (coordinator, :func:`run`), ``agents``, ``tools``, ``assistant`` (LLM calls),
``memory``, ``auth`` (tenants, users), ``cases``, ``finance``, ``crm_server``, ``llm_server``, ``store``
+ ``schema.sql``, ``faults``, ``demo`` (``make demo``), ``__main__`` (CLI).
"""

from .app import CaseResult, Summary, run
from .faults import ACCEPTED as ACCEPTED_FAULTS
from .faults import FaultError

__all__ = ["ACCEPTED_FAULTS", "CaseResult", "FaultError", "Summary", "run"]

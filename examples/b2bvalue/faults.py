"""The fault knob: which failures a run injects, and how each injection is made visible.

Faults come from ``--faults`` or ``B2BVALUE_FAULTS`` (comma list; ``all`` for every one, ``none``
for none). Each one exercises a rule of the
monitoring design (docs: ``seed/monitoring-and-alerting.md``) with a real cause, not a fake span:

- ``slow_agent``: the data-integration agent stalls ``B2BVALUE_SLOW_AGENT_S`` (default 3.5 s, past
  the 3 s warning) on the first case. Trips ``agent.execution.slow``.
- ``failing_memory``: the value-driver agent writes a memory ``kind`` that the database's CHECK
  constraint rejects (a deploy that ran ahead of its migration). The INSERT really fails inside the
  memory span; the agent logs it and goes on from working memory, because losing an audit-trail
  entry of an agent's reasoning must not lose the customer's business case. Trips
  ``memory.failure_rate.high``.
- ``bruteforce``: six wrong passwords for ``admin`` from one address in a burst. Trips
  ``security.login.bruteforce``.
- ``privilege_escalation``: a service account grants ``admin`` to a viewer. Trips
  ``security.privilege.escalation``.
- ``secret_in_payload``: a CRM billing note holding a card number, a password and a bearer token
  lands in a span attribute and a log line, and the CRM token travels in the URL query. Trips
  ``security.sensitive_data`` once scrubbing finds it.
- ``slow_crm``: the ERP endpoint answers after ``B2BVALUE_SLOW_CRM_S`` (default 5.5 s, past the 5 s
  warning) for the first case. Trips ``external.api.slow``.
- ``llm_quota``: before the first case's ROI step, another workload on the same API key (a nightly
  batch job) spends ``B2BVALUE_LLM_QUOTA_SHARE`` (default 85 %) of the LLM provider's token budget
  for the current minute; the rate-limit headers of every later answer in that minute report over
  80 % in use. Trips ``external.llm.quota``.
- ``llm_error``: the LLM provider answers the first case's calls with a 429 (``retry-after``) and,
  on the client's retry, a 500: both of that case's LLM calls fail (``chat`` spans with
  ``error.type``), the agents log it and the case is built without the model's text.

Every injection adds the span event ``b2bvalue.fault_injected`` (attribute ``b2bvalue.fault.name``) to
the span current at that moment, so a trace says which oddities were deliberate.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import trace

FAULTS_ENV = "B2BVALUE_FAULTS"
SLOW_AGENT_ENV = "B2BVALUE_SLOW_AGENT_S"
SLOW_CRM_ENV = "B2BVALUE_SLOW_CRM_S"
LLM_QUOTA_SHARE_ENV = "B2BVALUE_LLM_QUOTA_SHARE"

SLOW_AGENT = "slow_agent"
FAILING_MEMORY = "failing_memory"
BRUTEFORCE = "bruteforce"
PRIVILEGE_ESCALATION = "privilege_escalation"
SECRET_IN_PAYLOAD = "secret_in_payload"
SLOW_CRM = "slow_crm"
LLM_QUOTA = "llm_quota"
LLM_ERROR = "llm_error"

ACCEPTED: tuple[str, ...] = (
    SLOW_AGENT,
    FAILING_MEMORY,
    BRUTEFORCE,
    PRIVILEGE_ESCALATION,
    SECRET_IN_PAYLOAD,
    SLOW_CRM,
    LLM_QUOTA,
    LLM_ERROR,
)

# The rule of the default rules (SPEC section 5) each fault is meant to trip, for the rules that
# judge spans (their firings leave a marker span ``alert {rule id}`` in the trace).
RULE_OF_FAULT: dict[str, str] = {
    SLOW_AGENT: "agent.execution.slow",
    FAILING_MEMORY: "memory.failure_rate.high",
    BRUTEFORCE: "security.login.bruteforce",
    PRIVILEGE_ESCALATION: "security.privilege.escalation",
    SECRET_IN_PAYLOAD: "security.sensitive_data",
    SLOW_CRM: "external.api.slow",
}
# Faults whose rule judges a sampled gauge rather than a span: the derived record has no trace and
# no marker span. llm_error trips no default rule: it shows as failed ``chat`` spans (error.type).
GAUGE_RULE_OF_FAULT: dict[str, str] = {
    LLM_QUOTA: "external.llm.quota",
}

# Defaults sit just past the seed's thresholds (agent 3 s, external API 5 s) so that one
# injection is enough to cross them without making the demo tediously slow.
DEFAULT_SLOW_AGENT_S = 3.5
DEFAULT_SLOW_CRM_S = 5.5
# Past the seed's 80 % quota threshold with room for the run's own calls.
DEFAULT_LLM_QUOTA_SHARE = 0.85
# What the LLM answers the first case's calls with under llm_error: for each of its two calls a
# rate limit, then (on the client's one retry) a server error.
LLM_ERROR_STATUSES: tuple[int, ...] = (429, 500, 429, 500)

FAULT_EVENT = "b2bvalue.fault_injected"
FAULT_ATTR_PREFIX = "b2bvalue.fault."
FAULT_NAME_ATTR = FAULT_ATTR_PREFIX + "name"


class FaultError(ValueError):
    """A fault name or duration that the knob does not accept."""


def parse_faults(spec: str | Iterable[str] | None) -> frozenset[str]:
    """Parse a comma list (or an iterable of names) into a set of fault names.

    Raises:
        FaultError: naming every unknown fault and listing the accepted ones.

    Example::

        >>> sorted(parse_faults("slow_agent, bruteforce"))
        ['bruteforce', 'slow_agent']
    """
    if spec is None:
        return frozenset()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = {item.strip().lower() for item in items if item and item.strip()}
    names.discard("none")
    if "all" in names:
        names = (names - {"all"}) | set(ACCEPTED)
    unknown = sorted(names - set(ACCEPTED))
    if unknown:
        raise FaultError(
            f"unknown fault(s) {', '.join(map(repr, unknown))} (from --faults or {FAULTS_ENV}); "
            f"accepted: {', '.join(ACCEPTED)}"
        )
    return frozenset(names)


def _seconds(env: str, default: float) -> float:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = float(raw.removesuffix("s"))
    except ValueError:
        raise FaultError(f"{env}={raw!r} is not a duration in seconds (e.g. 3.5 or 3.5s)") from None
    if value < 0:
        raise FaultError(f"{env}={raw!r} must not be negative")
    return value


def _share(env: str, default: float) -> float:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise FaultError(f"{env}={raw!r} is not a share (e.g. 0.85 or 85%)") from None
    if not 0.0 <= value <= 1.0:
        raise FaultError(f"{env}={raw!r} must be between 0 and 1 (0 % and 100 %)")
    return value


@dataclass
class Faults:
    """The faults of one run plus a tally of the injections actually made."""

    enabled: frozenset[str] = frozenset()
    slow_agent_s: float = DEFAULT_SLOW_AGENT_S
    slow_crm_s: float = DEFAULT_SLOW_CRM_S
    llm_quota_share: float = DEFAULT_LLM_QUOTA_SHARE
    injected: Counter[str] = field(default_factory=Counter)
    # Agents run on worker threads (asyncio.to_thread); the tally is shared.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls, names: Iterable[str] | str | None = None) -> Faults:
        """Build from explicit names (CLI or caller) or else ``B2BVALUE_FAULTS``; durations from env."""
        enabled = parse_faults(os.environ.get(FAULTS_ENV) if names is None else names)
        return cls(
            enabled=enabled,
            slow_agent_s=_seconds(SLOW_AGENT_ENV, DEFAULT_SLOW_AGENT_S),
            slow_crm_s=_seconds(SLOW_CRM_ENV, DEFAULT_SLOW_CRM_S),
            llm_quota_share=_share(LLM_QUOTA_SHARE_ENV, DEFAULT_LLM_QUOTA_SHARE),
        )

    def __contains__(self, name: object) -> bool:
        return name in self.enabled

    @contextmanager
    def injecting(self, name: str, **attributes: str | int | float | bool) -> Iterator[None]:
        """Mark the code inside as the deliberate injection of fault ``name``.

        The current span gets the event; outside any span (a burst of logins, a role change) a span
        ``inject_fault {name}`` is started around the injected activity so the event has a home.
        ``attributes`` become ``b2bvalue.fault.<key>`` (never a semantic-convention key that a rule
        might match, such as ``client.address``).
        """
        with self._lock:
            self.injected[name] += 1
        event_attributes = {
            FAULT_NAME_ATTR: name,
            **{f"{FAULT_ATTR_PREFIX}{k}": v for k, v in attributes.items()},
        }
        current = trace.get_current_span()
        if current.is_recording():
            current.add_event(FAULT_EVENT, event_attributes)
            yield
            return
        tracer = trace.get_tracer(__name__)
        with tracer.start_as_current_span(f"inject_fault {name}", attributes=event_attributes) as span:
            span.add_event(FAULT_EVENT, event_attributes)
            yield

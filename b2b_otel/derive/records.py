"""What a firing becomes: one derived record, the same for every sink."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .. import semconv as sc
from .._internal.formats import fmt_seconds, hex_ids, iso, seed_time
from ..rules.engine import Firing
from ..scrub import Scrubber

_SEVERITY = sc.B2bAlertSeverityValues
_KIND = sc.RuleKindValues
# The log level word of each severity in the local files (and the OTel severity text).
LEVEL_BY_SEVERITY = {_SEVERITY.CRITICAL: "CRITICAL", _SEVERITY.WARNING: "WARNING", _SEVERITY.INFO: "INFO"}
# The seed's line codes where it names one; other rules use their id upper-cased.
# The ids of b2b_otel.context(), the tenant first; and the rule kinds one span makes fire.
CONTEXT_KEYS = (sc.B2B_TENANT_ID, sc.USER_ID, sc.SESSION_ID)
_PER_SPAN_KINDS = frozenset({_KIND.LATENCY, _KIND.EVENT, _KIND.GAUGE})
SEED_CODES = {sc.RULE_AGENT_EXECUTION_SLOW: "AGENT_SLOW", sc.RULE_AGENT_EXECUTION_CRITICAL: "AGENT_SLOW"}


@dataclass(frozen=True)
class DerivedRecord:
    """A firing as data: attributes of SPEC section 5, already scrubbed."""

    rule_id: str
    event_name: str
    severity: str
    tier: str
    attributes: dict[str, Any]
    message: str
    trace_id: int
    span_id: int
    time_s: float
    group_keys: tuple[str, ...] = ()
    """The attribute keys the rule grouped by (the other attributes describe the firing)."""

    @property
    def severity_number(self) -> int:
        return sc.SEVERITY_NUMBER[self.severity]

    @property
    def is_security(self) -> bool:
        return self.event_name == sc.EVENT_B2B_SECURITY_EVENT

    @property
    def code(self) -> str:
        return SEED_CODES.get(self.rule_id, self.rule_id.upper().replace(".", "_"))

    def json_line(self) -> dict[str, Any]:
        """The JSON object written to the local files."""
        return {
            "ts": iso(self.time_s),
            "level": LEVEL_BY_SEVERITY[self.severity],
            "event": self.code,
            "event_name": self.event_name,
            "message": self.message,
            **dict(zip(("trace_id", "span_id"), hex_ids(self.trace_id, self.span_id), strict=True)),
            "attributes": self.attributes,
        }

    def text_line(self) -> str:
        """The seed's line format: ``2025-06-20 01:52:00,124 WARNING AGENT_SLOW: <message>``."""
        return f"{seed_time(self.time_s)} {LEVEL_BY_SEVERITY[self.severity]} {self.code}: {self.message}"


def _message(firing: Firing, group: dict[str, Any]) -> str:
    rule = firing.rule
    subject = ", ".join(f"{k}={v}" for k, v in group.items()) or (firing.facts.name if firing.facts else "")
    if rule.kind == _KIND.LATENCY:
        name = group.get(sc.GEN_AI_AGENT_NAME) or subject
        return f"{name} exceeded {fmt_seconds(firing.threshold)} threshold ({fmt_seconds(firing.observed)})"
    if rule.kind == _KIND.RATIO:
        what = "success rate" if rule.observed == "success_rate" else "failure rate"
        return f"{subject or rule.id}: {what} {firing.observed:.1%} against threshold {firing.threshold:.1%}"
    if rule.kind == _KIND.COUNT:
        # The count first, the group after it: "secret_key: 3" (a group value, then a number) would read
        # as a secret's key and value to the scrubber, which this message passes through.
        within = fmt_seconds(rule.window or 0)
        return f"{firing.observed:.0f} matching events within {within} ({subject})" if subject else (
            f"{firing.observed:.0f} matching events within {within}"
        )
    if rule.kind == _KIND.GAUGE:
        return f"{subject or rule.id}: value {firing.observed:g} against threshold {firing.threshold:g}"
    return f"{rule.description} ({subject})" if subject else rule.description


def build(firing: Firing, scrubber: Scrubber) -> DerivedRecord:
    """The derived record of a firing (judged in this process); group values and the message are scrubbed."""
    rule = firing.rule
    group = {k: scrubber.value(k, v) for k, v in firing.group.items()}
    attributes: dict[str, Any] = {
        sc.B2B_RULE_ID: rule.id,
        sc.B2B_ALERT_SEVERITY: rule.severity,
        sc.B2B_ALERT_TIER: rule.tier,
        sc.B2B_ALERT_RESPOND_WITHIN_S: sc.RESPOND_WITHIN_S[rule.severity],
        sc.B2B_OBSERVED_VALUE: float(firing.observed),
        sc.B2B_THRESHOLD_VALUE: float(firing.threshold),
        sc.B2B_SCOPE: sc.B2bScopeValues.PROCESS,
        **group,
    }
    info = sc.RULES.get(rule.id)
    security = info.security if info is not None else None
    if security is not None:
        attributes[sc.EVENT_CATEGORY] = security.event_category
        attributes[sc.EVENT_TYPE] = security.event_type
        attributes[sc.EVENT_OUTCOME] = security.event_outcome
        attributes[sc.OCSF_CLASS_UID] = security.ocsf_class_uid
        attributes[sc.OCSF_ACTIVITY_ID] = security.ocsf_activity_id
    if firing.facts is not None:
        for key in (sc.B2B_SCRUB_FIELD, sc.B2B_SCRUB_PATTERN):
            if key in firing.facts.attributes:
                attributes[key] = firing.facts.attributes[key]
        # Whom the triggering span worked for (b2b_otel.context). A per-span rule's record is about
        # that one span: its tenant, user and session. A window rule's record is about a group of
        # spans: their user and session would name one of many, so only the tenant of the span that
        # made it fire is kept (a window not grouped by tenant may hold other tenants' spans too).
        keys = CONTEXT_KEYS if rule.kind in _PER_SPAN_KINDS else CONTEXT_KEYS[:1]
        for key in keys:
            value = firing.facts.attributes.get(key)
            if value is not None and key not in attributes:
                attributes[key] = scrubber.value(key, value)
    return DerivedRecord(
        rule_id=rule.id,
        event_name=rule.event_name,
        severity=rule.severity,
        tier=rule.tier,
        attributes=attributes,
        message=scrubber.text(_message(firing, group)),
        trace_id=firing.trace_id,
        span_id=firing.span_id,
        time_s=firing.at_s or time.time(),
        group_keys=tuple(group),
    )

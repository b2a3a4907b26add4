"""LLM calls: the price table that makes ``b2b.llm.cost``, the sums on agent and workflow spans, and
the providers' rate-limit quotas (``b2b.llm.quota.utilization``).

The calls themselves are traced by the OpenTelemetry GenAI instrumentations (``chat {model}`` spans);
this package only reads what they record, so it works with any instrumentation that follows the
GenAI conventions.
"""

"""The tools the agents call: CRM/ERP reads over HTTP (httpx) and the financial model.

Each is a ``b2b_otel.tool``, so it shows as ``execute_tool {name}`` with the httpx client span of
its request underneath.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry import trace

import b2b_otel

from . import finance

# Free-text CRM notes are copied onto the tool span so that support can see what the rep wrote.
# That is exactly how card numbers end up in telemetry; the SDK's scrubbing has to catch it.
BILLING_NOTE_ATTR = "b2bvalue.crm.billing_note"


@dataclass(frozen=True)
class CrmConnection:
    """Where the CRM/ERP API is and how to authenticate to it."""

    base_url: str
    token: str
    # A legacy client setting: the token as ``?access_token=`` instead of a bearer header
    # (the secret_in_payload fault turns it on; the token then shows in every URL).
    token_in_query: bool = False
    timeout_s: float = 10.0

    def client(self) -> httpx.AsyncClient:
        """A new async client; one per agent invocation, because it is bound to that event loop."""
        if self.token_in_query:
            return httpx.AsyncClient(
                base_url=self.base_url, params={"access_token": self.token}, timeout=self.timeout_s
            )
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=self.timeout_s,
        )


@b2b_otel.tool("crm_get_account")
async def crm_get_account(client: httpx.AsyncClient, account_id: str) -> dict[str, Any]:
    """The CRM account record (``GET /accounts/{id}``)."""
    response = await client.get(f"/accounts/{account_id}")
    response.raise_for_status()
    account: dict[str, Any] = response.json()
    if account.get("billing_note"):
        trace.get_current_span().set_attribute(BILLING_NOTE_ATTR, account["billing_note"])
    return account


@b2b_otel.tool("crm_list_opportunities")
async def crm_list_opportunities(client: httpx.AsyncClient, account_id: str) -> list[dict[str, Any]]:
    """The account's deals (``GET /opportunities?account={id}``)."""
    response = await client.get("/opportunities", params={"account": account_id})
    response.raise_for_status()
    opportunities: list[dict[str, Any]] = response.json()
    return opportunities


@b2b_otel.tool("erp_get_financials")
async def erp_get_financials(client: httpx.AsyncClient, account_id: str) -> dict[str, Any]:
    """The prospect's financials from the ERP integration (``GET /erp/financials/{id}``)."""
    response = await client.get(f"/erp/financials/{account_id}")
    response.raise_for_status()
    financials: dict[str, Any] = response.json()
    return financials


@b2b_otel.tool("financial_model")
def financial_model(annual_benefit: float, subscription: float, discount_rate: float) -> finance.RoiResult:
    """Cash flows, NPV, payback and ROI of the proposed deal (see :mod:`.finance`)."""
    result = finance.evaluate(annual_benefit, subscription, discount_rate)
    span = trace.get_current_span()
    span.set_attribute("b2bvalue.roi.npv", round(result.npv, 2))
    span.set_attribute("b2bvalue.roi.pct", round(result.roi_pct, 2))
    if result.payback_months is not None:
        span.set_attribute("b2bvalue.roi.payback_months", result.payback_months)
    return result

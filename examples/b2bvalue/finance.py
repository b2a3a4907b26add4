"""The arithmetic of a business case: value drivers to cash flows, NPV, payback and ROI.

Pure functions on plain numbers, so the numbers the demo prints can be checked by hand.
Year 0 is the implementation (a one-off cost); years 1..N carry the ramped benefit minus the
subscription.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Benefits arrive gradually while the customer adopts the product: the share of the full
# annual benefit realised in year 1, 2, 3 (a common, conservative ramp in value selling).
DEFAULT_RAMP: tuple[float, ...] = (0.4, 0.85, 1.0)
# Implementation services priced as a share of the first-year subscription.
IMPLEMENTATION_SHARE = 0.6


@dataclass(frozen=True)
class RoiResult:
    """The figures a business case is approved on."""

    annual_benefit: float
    subscription: float
    implementation: float
    cash_flows: tuple[float, ...]
    discount_rate: float
    npv: float
    payback_months: float | None  # None: the investment does not pay back within the horizon
    roi_pct: float


def npv(rate: float, cash_flows: Sequence[float]) -> float:
    """Net present value of yearly ``cash_flows`` (index 0 = today, undiscounted).

    Example::

        >>> round(npv(0.1, [-100.0, 60.0, 60.0]), 2)
        4.13
    """
    if rate <= -1.0:
        raise ValueError(f"discount rate must be > -100 %, got {rate!r}")
    return sum(cf / (1.0 + rate) ** year for year, cf in enumerate(cash_flows))


def payback_months(cash_flows: Sequence[float]) -> float | None:
    """Months until the cumulative (undiscounted) cash flow turns non-negative, or None if never.

    Within the year that crosses zero, the cash is assumed to arrive evenly, so the crossing is
    interpolated linearly.

    Example::

        >>> payback_months([-100.0, 60.0, 60.0])
        20.0
    """
    cumulative = 0.0
    for year, cf in enumerate(cash_flows):
        before = cumulative
        cumulative += cf
        if cumulative >= 0.0:
            # Past year 0, `before` was negative: the crossing lies inside this year.
            return 0.0 if year == 0 else 12.0 * (year - 1) + 12.0 * (-before / cf)
    return None


def roi_pct(total_benefit: float, total_cost: float) -> float:
    """Return on investment in percent: (benefit - cost) / cost.

    Example::

        >>> roi_pct(300.0, 100.0)
        200.0
    """
    if total_cost <= 0.0:
        raise ValueError(f"total cost must be positive, got {total_cost!r}")
    return 100.0 * (total_benefit - total_cost) / total_cost


def evaluate(
    annual_benefit: float,
    subscription: float,
    discount_rate: float,
    ramp: Sequence[float] = DEFAULT_RAMP,
    implementation_share: float = IMPLEMENTATION_SHARE,
) -> RoiResult:
    """Turn a full annual benefit and a yearly subscription into the case's cash flows and figures.

    Example::

        >>> r = evaluate(annual_benefit=1000.0, subscription=200.0, discount_rate=0.1)
        >>> r.cash_flows
        (-120.0, 200.0, 650.0, 800.0)
        >>> r.payback_months
        7.2
    """
    implementation = subscription * implementation_share
    benefits = [annual_benefit * share for share in ramp]
    flows = (-implementation, *(benefit - subscription for benefit in benefits))
    total_cost = implementation + subscription * len(ramp)
    payback = payback_months(flows)
    return RoiResult(
        annual_benefit=annual_benefit,
        subscription=subscription,
        implementation=implementation,
        cash_flows=flows,
        discount_rate=discount_rate,
        npv=npv(discount_rate, flows),
        payback_months=None if payback is None else round(payback, 1),
        roi_pct=roi_pct(sum(benefits), total_cost),
    )

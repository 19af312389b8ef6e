"""The metric definitions, written once. Pure: no Django.

- conversion rate = conversions / views; 0 when there are no views (never an error).
- ROI (%) = (revenue - cost) / cost x 100; ``None`` with a reason when cost is 0.
- Wilson score interval (95 % by default) for a conversion rate: sensible at 0 and 1 and for
  small samples, unlike the normal (Wald) interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from statistics import NormalDist

ROI_NO_COST = "cost is 0, so ROI is undefined"


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Roi:
    percentage: float | None
    reason: str | None  # why percentage is None


def conversion_rate(conversions: int, views: int) -> float:
    """conversions / views, 0.0 when there are no views."""
    if views <= 0:
        return 0.0
    return conversions / views


@lru_cache(maxsize=16)
def z_score(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (1.959964 for 0.95); cached: the API computes many intervals."""
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion; (0, 0) when there are no trials.

    Conversions can exceed views in raw data (a conversion without a logged view); the count of
    successes is capped at the number of trials so the interval stays inside [0, 1].
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if trials <= 0:
        return Interval(0.0, 0.0)
    successes = max(0, min(successes, trials))
    z = z_score(confidence)
    p = successes / trials
    z2 = z * z
    denom = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    # At 0 or all successes the bound is exactly 0 or 1; rounding would leave a 1e-21 residue.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(low, high)


def roi(revenue: Decimal, cost: Decimal) -> Roi:
    """(revenue - cost) / cost x 100, rounded to 2 places; undefined (None + reason) when cost is 0."""
    revenue, cost = Decimal(revenue), Decimal(cost)
    if cost == 0:
        return Roi(None, ROI_NO_COST)
    return Roi(float(round((revenue - cost) / cost * 100, 2)), None)

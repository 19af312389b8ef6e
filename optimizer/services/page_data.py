"""The /optimize/ page's event aggregates, written by the daily ``campaign_optimizations`` job.

Grouping every open of 90 days by time zone and hour, and every send and conversion by segment and
offer, took the page 2-9 s per request; the job computes both once a day (it reads the second anyway)
and the page reads two small rows (``optimizer.selectors.open_heatmap`` / ``offer_curves``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from optimizer import recommend, selectors
from optimizer.models import PageSnapshot


def refresh(*, population: dict[str, list[recommend.OfferOutcome]], now: dt.datetime) -> None:
    """Replace the page's two snapshots: opens by weekday x local hour, and the population's offer outcomes."""
    counts = selectors.open_heatmap_counts(days=selectors.HEATMAP_DAYS, now=now)
    PageSnapshot.objects.update_or_create(
        name=selectors.HEATMAP_SNAPSHOT,
        defaults={"data": {"counts": counts.tolist(), "days": selectors.HEATMAP_DAYS}, "computed_at": now},
    )
    outcomes = {segment: [dataclasses.asdict(o) for o in rows] for segment, rows in sorted(population.items())}
    PageSnapshot.objects.update_or_create(
        name=selectors.OFFER_OUTCOMES_SNAPSHOT, defaults={"data": {"segments": outcomes}, "computed_at": now}
    )

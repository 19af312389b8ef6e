"""Reads for the optimisation API and page. They read precomputed rows (proposals, send times,
affinities, the model registry); the segment ranking and the page's charts aggregate events set-based.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.core.cache import cache
from django.db.models import Avg, Count, Max, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from campaigns import selectors as campaign_selectors
from campaigns.models import Campaign, Customer, Event
from marketing_ai.api import NotFound
from optimizer import recommend
from optimizer.models import CampaignOptimization, MLModel, UserMerchantAffinity, UserSendTime
from optimizer.services import recommendations as reco

Opt = CampaignOptimization
DEFAULT_LOCAL_HOUR = 19  # the population hour before any send time is computed (evening peak)
HEATMAP_DAYS = 90
# The page's two event aggregates take seconds on millions of events: above this many events they are
# cached for PAGE_CACHE_SECONDS, keyed by the newest event id (new events give a new key).
PAGE_CACHE_MIN_EVENTS = 200_000
PAGE_CACHE_SECONDS = 600
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def campaign_by_id(campaign_id: str) -> Campaign:
    campaign = (
        Campaign.objects.select_related("current_offer", "merchant").prefetch_related("target_segments").filter(campaign_id=campaign_id).first()
    )
    if campaign is None:
        raise NotFound(f"No campaign with campaign_id {campaign_id!r}.")
    return campaign


def customer_by_id(customer_id: str) -> Customer:
    customer = Customer.objects.select_related("segment").filter(customer_id=customer_id).first()
    if customer is None:
        raise NotFound(f"No customer with customer_id {customer_id!r}.")
    return customer


def optimization_list(
    *, campaign_id: str | None = None, kind: str | None = None, status: str | None = None, target: str | None = None
) -> QuerySet[CampaignOptimization]:
    qs = Opt.objects.select_related("campaign", "applied_by").order_by("priority", "-expected_impact", "pk")
    if campaign_id:
        qs = qs.filter(campaign__campaign_id=campaign_id)
    if kind:
        qs = qs.filter(recommendation_type=kind)
    if status:
        qs = qs.filter(status=status)
    if target is not None:
        qs = qs.filter(target=target)
    return qs


def campaign_recommendations(campaign: Campaign) -> QuerySet[CampaignOptimization]:
    """The campaign's live history: proposed, applied and dismissed (superseded ones are hidden)."""
    return optimization_list(campaign_id=campaign.campaign_id).exclude(status=Opt.Status.SUPERSEDED)


IMPACT_UNITS = {
    Opt.Type.OFFER: "% change in expected profit per send vs the segment's current offer",
    Opt.Type.TIMING: "% open-rate gain, mean over the campaign's audience",
    Opt.Type.SEGMENT: "percentage points of the campaign's expected ROI",
    Opt.Type.MERCHANT: "% more likely to favour the partner (co-affinity lift)",
}


def optimization_preview(opt: CampaignOptimization) -> dict[str, Any]:
    """What applying ``opt`` would do now: from -> to (live value, not the stored one), reach, expected
    impact with its interval when the model gives one, and whether apply would be refused (stale)."""
    campaign = opt.campaign
    field, segment = reco.setting_of(opt)
    valid, live, message = reco.check_live(campaign, opt)
    to = reco.planned_value(campaign, opt, create=False)
    interval = (opt.details or {}).get("impact_interval")
    label = campaign_selectors.setting_label
    if opt.status != Opt.Status.PROPOSED:
        message = message or f"recommendation {opt.pk} is {opt.status}; only a proposed recommendation can be applied"
    return {
        "optimization_id": opt.pk,
        "campaign_id": campaign.campaign_id,
        "recommendation_type": opt.recommendation_type,
        "field": field,
        "segment": segment,
        "status": opt.status,
        "from_value": live,
        "to_value": to,
        "from_label": label(field, live, segment=segment),
        "to_label": label(field, to, segment=segment),
        "computed_against": reco._computed_against(campaign, opt, live),
        "stale": not valid,
        "can_apply": valid and opt.status == Opt.Status.PROPOSED,
        "message": message,
        "reach": opt.affected_users,
        "expected_impact": opt.expected_impact,
        "impact_unit": IMPACT_UNITS[opt.recommendation_type],
        "impact_interval": interval,
        "interval_note": "" if interval else "This model gives a point estimate only; no interval is available for it yet.",
        "confidence": opt.confidence,
        "rationale": opt.rationale,
    }


def offer_answer(campaign: Campaign) -> list[dict[str, Any]]:
    """One row per segment: the latest offer recommendation, or "keep" (with the offer the segment gets now:
    its own, else the campaign default) when the last run proposed no change.

    A "keep" row says why, from the same posterior the job uses (``reco.offer_recommendations``): the
    current offer is the best (``decided``), or the data cannot separate it from a better-looking offer
    yet (``decided: false``, ``sends_needed`` more sends of the two offers would decide).
    """
    latest: dict[str, CampaignOptimization] = {}
    for row in Opt.objects.filter(campaign=campaign, recommendation_type=Opt.Type.OFFER).exclude(status=Opt.Status.SUPERSEDED).order_by("created_at", "pk"):
        latest[row.target] = row
    segments = sorted(s.name for s in campaign.target_segments.all()) or sorted(set(reco.users_by_segment()) | set(latest))
    users = reco.users_by_segment()
    keep_segments = [s for s in segments if s not in latest]
    evidence = {r.segment: r for r in reco.offer_recommendations(campaign, offer_population(), keep_segments)} if keep_segments else {}
    current_offers = campaign_selectors.offers_by_segment(campaign, segments)
    out = []
    for segment in segments:
        row = latest.get(segment)
        current_value = reco.percent_value(current_offers[segment])
        if row is not None:
            out.append(
                {
                    "segment": segment,
                    "current_offer": _number(row.current_value),
                    "recommended_offer": _number(row.recommended_value),
                    "expected_lift": round(row.expected_impact, 2),
                    "affected_users": row.affected_users,
                    "confidence": row.confidence,
                    "status": row.status,
                    "recommendation_id": row.pk,
                    "decided": True,
                    "sends_needed": 0,
                    "reason": row.rationale,
                }
            )
            continue
        rec = evidence.get(segment)
        if rec is None:
            reason = "keep: no sends of this segment yet"
        elif rec.decided and not rec.changes_offer:
            reason = f"keep: the current offer is the best (P = {rec.confidence:.1%})"
        elif rec.decided:
            reason = "keep: a change is decided and will be proposed by the next run"
        else:
            more = f"about {rec.sends_needed:,} more sends of {rec.recommended_offer:g}% and {rec.challenger:g}% would decide" if rec.sends_needed else "the offers are practically equal"
            reason = f"keep, not enough evidence: P({rec.recommended_offer:g}% beats {rec.challenger:g}%) = {rec.prob_beats_challenger:.1%}; {more}"
        out.append(
            {
                "segment": segment,
                "current_offer": current_value,
                "recommended_offer": current_value,
                "expected_lift": 0.0,
                "affected_users": users.get(segment, 0),
                "confidence": None,
                "status": "keep",
                "recommendation_id": None,
                "decided": bool(rec is not None and rec.decided),
                "sends_needed": rec.sends_needed if rec is not None else None,
                "reason": reason,
            }
        )
    return out


def offer_population() -> dict[str, list[recommend.OfferOutcome]]:
    """Every campaign's percent-offer outcomes per segment over the job's look-back window (cached like the charts)."""
    since = timezone.now() - dt.timedelta(days=reco.LOOKBACK_DAYS)
    return _cached("offer_population", lambda: reco.offer_outcomes(reco.outcome_frame(since=since)))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def segment_answer(campaign: Campaign) -> list[dict[str, Any]]:
    return [
        {
            "rank": r.rank,
            "segment": r.segment,
            "users_count": r.users_count,
            "expected_conversion_rate": round(r.expected_conversion_rate, 6),
            "expected_roi": round(r.expected_roi, 4),
            "probability_profitable": round(r.prob_profitable, 4),
            "sends": r.sends,
            "conversions": r.conversions,
        }
        for r in reco.segment_ranking(campaign)
    ]


# --- Send time ------------------------------------------------------------------------------------
def population_local_hour() -> int:
    """The most common personal best local hour (the fallback for customers without enough history)."""
    hours = Counter(t.hour for t in UserSendTime.objects.filter(method=UserSendTime.Method.PERSONAL).values_list("local_send_time", flat=True))
    return hours.most_common(1)[0][0] if hours else DEFAULT_LOCAL_HOUR


def local_to_utc(local: dt.time, tz_name: str, day: dt.date | None = None) -> dt.time:
    day = day or timezone.now().date()
    moment = dt.datetime.combine(day, local, tzinfo=zoneinfo.ZoneInfo(tz_name))
    return moment.astimezone(dt.UTC).time().replace(tzinfo=None)


def send_time_answer(customer: Customer) -> dict[str, Any]:
    row = UserSendTime.objects.filter(customer=customer).first()
    if row is not None:
        local, utc = row.local_send_time, row.utc_send_time
        answer = {
            "expected_improvement": round(row.expected_improvement, 2),
            "method": row.method,
            "events_used": row.events_used,
            "confidence": row.confidence,
            "last_updated": row.last_updated,
        }
    else:  # not computed yet (a new customer): the population's hour, marked as a fallback
        local = dt.time(population_local_hour(), 0)
        utc = local_to_utc(local, customer.timezone)
        answer = {"expected_improvement": 0.0, "method": UserSendTime.Method.FALLBACK, "events_used": 0, "confidence": 0.0, "last_updated": None}
    return {
        "customer_id": customer.customer_id,
        "optimal_send_time": local.strftime("%H:%M"),
        "timezone": customer.timezone,
        "optimal_send_time_utc": utc.strftime("%H:%M"),
        **answer,
    }


# --- Affinity -------------------------------------------------------------------------------------
def affinity_answer(customer: Customer, *, limit: int = 10) -> list[dict[str, Any]]:
    rows = list(UserMerchantAffinity.objects.filter(customer=customer).select_related("merchant").order_by("rank", "-affinity_score")[:limit])
    if rows:
        return [
            {
                "rank": r.rank,
                "merchant_id": r.merchant.merchant_id,
                "merchant_name": r.merchant.name,
                "affinity_score": round(r.affinity_score, 4),
                "engagement_level": r.engagement_level,
                "avg_purchase_value": r.avg_purchase_value,
                "confidence": round(r.confidence, 4),
                "method": "personal",
            }
            for r in rows
        ]
    return popular_merchants(limit=limit)


def popular_merchants(*, limit: int = 10) -> list[dict[str, Any]]:
    """The fallback for a customer without affinities: merchants most often in customers' top lists."""
    rows = (
        UserMerchantAffinity.objects.values("merchant__merchant_id", "merchant__name")
        .annotate(customers=Count("id"), score=Avg("affinity_score"), value=Avg("avg_purchase_value"))
        .order_by("-customers", "-score", "merchant__merchant_id")[:limit]
    )
    total = UserMerchantAffinity.objects.values("customer_id").distinct().count() or 1
    return [
        {
            "rank": i + 1,
            "merchant_id": r["merchant__merchant_id"],
            "merchant_name": r["merchant__name"],
            "affinity_score": round(r["customers"] / total, 4),  # share of customers who favour it
            "engagement_level": "low",
            "avg_purchase_value": round(r["value"] or 0, 2),
            "confidence": 0.0,
            "method": "fallback",
        }
        for i, r in enumerate(rows)
    ]


# --- Page data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Heatmap:
    counts: np.ndarray  # 7 weekdays (Mon..Sun) x 24 local hours
    recommended_hour: int
    total_opens: int


def _cached(name: str, compute):
    """``compute()``, cached while no new event arrives when the event table is big (see PAGE_CACHE_MIN_EVENTS)."""
    newest = Event.objects.aggregate(newest=Max("id"))["newest"] or 0
    if newest < PAGE_CACHE_MIN_EVENTS:
        return compute()
    key = f"optimizer:{name}:{newest}:{timezone.now().date()}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, PAGE_CACHE_SECONDS)
    return value


def open_heatmap(*, days: int = HEATMAP_DAYS) -> Heatmap:
    """Opens by weekday x hour in each customer's own time zone (grouped by zone and UTC hour in SQL)."""
    return _cached(f"heatmap:{days}", lambda: _open_heatmap(days))


def _open_heatmap(days: int) -> Heatmap:
    since = timezone.now() - dt.timedelta(days=days)
    rows = list(
        Event.objects.filter(type=Event.Type.NOTIFICATION_OPENED, occurred_at__gte=since, customer__isnull=False)
        .annotate(hour=TruncHour("occurred_at", tzinfo=dt.UTC))
        .values("customer__timezone", "hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = np.zeros((7, 24), dtype=int)
    if rows:
        df = pd.DataFrame(rows)
        for tz_name, group in df.groupby("customer__timezone"):
            local = pd.DatetimeIndex(pd.to_datetime(group["hour"], utc=True)).tz_convert(tz_name)
            np.add.at(counts, (local.weekday.to_numpy(), local.hour.to_numpy()), group["n"].to_numpy())
    return Heatmap(counts=counts, recommended_hour=population_local_hour(), total_opens=int(counts.sum()))


def offer_curves() -> dict[str, recommend.OfferRecommendation]:
    """Per segment, the posterior the offer proposals come from (the page's chart draws it)."""
    return reco.offer_response_curves(population=offer_population())


def top_merchants(customer_id: str | None) -> tuple[Customer | None, list[dict[str, Any]]]:
    if not customer_id:
        return None, []
    customer = Customer.objects.filter(customer_id=customer_id).first()
    return (customer, affinity_answer(customer)) if customer else (None, [])


def model_versions() -> QuerySet[MLModel]:
    return MLModel.objects.order_by("model_type", "version")

"""Reads for the optimisation API and page. They read precomputed rows (proposals, send times,
affinities, the model registry); the segment ranking and the page's charts aggregate events set-based.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.core.cache import cache
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.utils import timezone

from campaigns import selectors as campaign_selectors
from campaigns.models import Campaign, Customer, Event
from marketing_ai.errors import NotFound
from optimizer import features, recommend
from optimizer.models import CampaignOptimization, MLModel, PageSnapshot, UserMerchantAffinity, UserSendTime
from optimizer.services import recommendations as reco

Opt = CampaignOptimization
DEFAULT_LOCAL_HOUR = 19  # the population hour before any send time is computed (evening peak)
HEATMAP_DAYS = 90
# The page's two event aggregates take seconds on millions of events: above this many events they are
# cached for PAGE_CACHE_SECONDS, keyed by the newest event id (new events give a new key).
PAGE_CACHE_MIN_EVENTS = 200_000
PAGE_CACHE_SECONDS = 600
HEATMAP_SNAPSHOT = "open_heatmap"
OFFER_OUTCOMES_SNAPSHOT = "offer_outcomes"
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


def optimization_list(*, campaign_id: str | None = None, status: str | None = None) -> QuerySet[CampaignOptimization]:
    """Proposals best first; the API's list filters are optimizer/filters.py."""
    qs = Opt.objects.select_related("campaign", "applied_by").order_by("priority", "-expected_impact", "pk")
    if campaign_id:
        qs = qs.filter(campaign__campaign_id=campaign_id)
    if status:
        qs = qs.filter(status=status)
    return qs


@dataclass(frozen=True)
class ProposalFilters:
    """The /optimize/ page's filters: status ("all" = every status but superseded), type and campaign."""

    status: str
    kind: str | None
    campaign_id: str | None

    @classmethod
    def from_query(cls, query, *, statuses) -> ProposalFilters:
        """From the page's query string; an unknown value falls back to the default (a page never fails on it)."""
        status = query.get("status", Opt.Status.PROPOSED)
        kind = query.get("type") or None
        campaign_id = (query.get("campaign") or "").strip()[:64] or None
        return cls(
            status=status if status in (*statuses, "all") else Opt.Status.PROPOSED,
            kind=kind if kind in Opt.Type.values else None,
            campaign_id=campaign_id,
        )

    def queryset(self) -> QuerySet[CampaignOptimization]:
        qs = optimization_list(status=None if self.status == "all" else self.status, campaign_id=self.campaign_id)
        return qs.exclude(status=Opt.Status.SUPERSEDED) if self.status == "all" else qs

    def query_string(self, **extra: str) -> str:
        """The filters as a query string (for page links that keep them)."""
        from urllib.parse import urlencode

        params = {"status": self.status, "type": self.kind or "", "campaign": self.campaign_id or "", **extra}
        return urlencode({k: v for k, v in params.items() if v})


def proposal_counts(filters: ProposalFilters) -> dict[str, int]:
    """Proposals per type under ``filters`` (one grouped query)."""
    rows = filters.queryset().order_by().values("recommendation_type").annotate(n=Count("id"))
    return {r["recommendation_type"]: r["n"] for r in rows}


def proposal_rows(filters: ProposalFilters, kind: str) -> QuerySet[CampaignOptimization]:
    """One type's proposals under ``filters``, best first, for paging (the page reads one slice of it)."""
    return filters.queryset().filter(recommendation_type=kind).defer("details")


def proposal_campaigns() -> list[tuple[str, str]]:
    """(campaign_id, name) of the campaigns with a live proposal, for the page's campaign filter."""
    live = Opt.objects.exclude(status=Opt.Status.SUPERSEDED).values("campaign_id")
    return list(Campaign.objects.filter(pk__in=live).values_list("campaign_id", "name").order_by("campaign_id"))


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
    current_values = reco.current_offers(campaign, segments)  # the one reading of a segment's live offer
    out = []
    for segment in segments:
        row = latest.get(segment)
        current_value = current_values[segment]
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
# A notification service asks for at most this many customers in one batch look-up (bounded work per request).
MAX_SEND_TIME_LOOKUP = 1000


def population_local_hour() -> int:
    """The hour customers without enough history get (the send-time model's population hour).

    The job writes it on every "fallback" row; before any fallback row exists, the most common personal
    best local hour; before any send time at all, DEFAULT_LOCAL_HOUR. Two indexed or grouped queries at most.
    """
    fallback = UserSendTime.objects.filter(method=UserSendTime.Method.FALLBACK).values_list("local_send_time", flat=True).first()
    if fallback is not None:
        return fallback.hour
    common = (
        UserSendTime.objects.filter(method=UserSendTime.Method.PERSONAL)
        .values("local_send_time").annotate(n=Count("id")).order_by("-n", "local_send_time").first()
    )
    return common["local_send_time"].hour if common else DEFAULT_LOCAL_HOUR


def local_to_utc(local: dt.time, tz_name: str, day: dt.date | None = None) -> dt.time:
    day = day or timezone.now().date()
    moment = dt.datetime.combine(day, local, tzinfo=zoneinfo.ZoneInfo(tz_name))
    return moment.astimezone(dt.UTC).time().replace(tzinfo=None)


def _send_time_of(customer: Customer, row: UserSendTime | None, population_hour: int) -> dict[str, Any]:
    """The answer for one customer from their ``user_send_times`` row, or the population hour without one."""
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
        local = dt.time(population_hour, 0)
        utc = local_to_utc(local, customer.timezone)
        answer = {"expected_improvement": 0.0, "method": UserSendTime.Method.FALLBACK, "events_used": 0, "confidence": 0.0, "last_updated": None}
    return {
        "customer_id": customer.customer_id,
        "optimal_send_time": local.strftime("%H:%M"),
        "timezone": customer.timezone,
        "optimal_send_time_utc": utc.strftime("%H:%M"),
        **answer,
    }


def send_time_answer(customer: Customer) -> dict[str, Any]:
    row = UserSendTime.objects.filter(customer=customer).first()
    return _send_time_of(customer, row, population_local_hour() if row is None else DEFAULT_LOCAL_HOUR)


def send_time_answers(customer_ids: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Batch look-up: (answers in the order asked, ids with no such customer). Two queries, whatever the size."""
    if len(customer_ids) > MAX_SEND_TIME_LOOKUP:
        raise ValueError(f"at most {MAX_SEND_TIME_LOOKUP} customers per look-up, got {len(customer_ids)}")
    found = {c.customer_id: c for c in Customer.objects.filter(customer_id__in=set(customer_ids)).select_related("send_time")}
    rows = {cid: getattr(c, "send_time", None) for cid, c in found.items()}
    population_hour = population_local_hour() if any(r is None for r in rows.values()) else DEFAULT_LOCAL_HOUR
    answers, missing, seen = [], [], set()
    for cid in customer_ids:
        if cid in seen:
            continue
        seen.add(cid)
        if cid in found:
            answers.append(_send_time_of(found[cid], rows[cid], population_hour))
        else:
            missing.append(cid)
    return answers, missing


def campaign_audience(campaign: Campaign) -> QuerySet[Customer]:
    """The customers a campaign targets: its target segments, or everyone when it names none."""
    segments = [s.pk for s in campaign.target_segments.all()]
    qs = Customer.objects.all()
    return qs.filter(segment_id__in=segments) if segments else qs


def _local_hour_in_window(start: dt.datetime, tz_name: str) -> int:
    """The whole local hour that falls within the UTC hour starting at ``start`` in zone ``tz_name``.

    Send times are whole local hours; in a zone offset by 30 or 45 minutes the one inside the UTC window
    is the next whole hour after the window's local start.
    """
    local = start.astimezone(zoneinfo.ZoneInfo(tz_name))
    whole = local.replace(minute=0, second=0, microsecond=0)
    return (whole + dt.timedelta(hours=1)).hour if local != whole else whole.hour


def campaign_due(campaign: Campaign, start: dt.datetime) -> tuple[QuerySet[Customer], str]:
    """Who should get ``campaign`` in the UTC hour starting at ``start``, and the policy that decided it.

    ``personal``: customers of the audience whose best local hour (``user_send_times``; the population hour
    for sparse histories and customers without a row) falls in that hour, on that date in their own zone
    (daylight saving included). ``fixed``: the whole audience when the campaign's UTC send time is in that
    hour, nobody otherwise. Ordered by customer_id, for paging. One query per page whatever the audience size
    (plus one listing the audience's zones).
    """
    start = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    audience = campaign_audience(campaign).select_related("send_time").order_by("customer_id")
    if campaign.send_time_policy != Campaign.SendTimePolicy.PERSONAL:
        due = campaign.send_time is not None and campaign.send_time.hour == start.hour
        return (audience if due else audience.none()), Campaign.SendTimePolicy.FIXED
    population_hour = population_local_hour()
    match = Q(pk__in=[])
    for tz_name in audience.order_by().values_list("timezone", flat=True).distinct():
        try:
            hour = _local_hour_in_window(start, tz_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # an unknown zone cannot be scheduled by local time
            continue
        zone = Q(timezone=tz_name, send_time__local_send_time=dt.time(hour, 0))
        if hour == population_hour:
            zone |= Q(timezone=tz_name, send_time__isnull=True)
        match |= zone
    return audience.filter(match), Campaign.SendTimePolicy.PERSONAL


def due_row(customer: Customer, campaign: Campaign, start: dt.datetime, population_hour: int) -> dict[str, Any]:
    """One customer of ``campaign_due``: when to send (UTC and local) and why."""
    if campaign.send_time_policy == Campaign.SendTimePolicy.PERSONAL:
        row = getattr(customer, "send_time", None)
        local = row.local_send_time if row is not None else dt.time(population_hour, 0)
        tz = zoneinfo.ZoneInfo(customer.timezone)
        day = start.astimezone(tz).date()
        moment = dt.datetime.combine(day, local, tzinfo=tz).astimezone(dt.UTC)
        if moment < start:  # the window's local start is late in the day: the whole hour is on the next date
            moment = dt.datetime.combine(day + dt.timedelta(days=1), local, tzinfo=tz).astimezone(dt.UTC)
        method = row.method if row is not None else UserSendTime.Method.FALLBACK
    else:
        moment = start.replace(minute=campaign.send_time.minute)
        method = Campaign.SendTimePolicy.FIXED
    return {
        "customer_id": customer.customer_id,
        "timezone": customer.timezone,
        "send_at": moment,
        "local_send_time": moment.astimezone(zoneinfo.ZoneInfo(customer.timezone)).strftime("%H:%M"),
        "method": method,
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
    computed_at: dt.datetime | None = None  # when the daily job computed it; None: computed for this request


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


def page_snapshot(name: str) -> PageSnapshot | None:
    return PageSnapshot.objects.filter(name=name).first()


def open_heatmap(*, days: int = HEATMAP_DAYS) -> Heatmap:
    """Opens by weekday x local hour: the daily job's snapshot; before its first run, computed now."""
    snapshot = page_snapshot(HEATMAP_SNAPSHOT) if days == HEATMAP_DAYS else None
    if snapshot is not None:
        counts, computed_at = np.asarray(snapshot.data["counts"], dtype=int), snapshot.computed_at
    else:
        counts, computed_at = _cached(f"heatmap:{days}", lambda: open_heatmap_counts(days=days)), None
    return Heatmap(counts=counts, recommended_hour=population_local_hour(), total_opens=int(counts.sum()), computed_at=computed_at)


def open_heatmap_counts(*, days: int = HEATMAP_DAYS, now: dt.datetime | None = None) -> np.ndarray:
    """Opens of the last ``days`` by weekday x hour in each customer's own time zone (grouped by zone and UTC hour in SQL)."""
    since = (now or timezone.now()) - dt.timedelta(days=days)
    rows = features.fetch(
        Event.objects.filter(type=Event.Type.NOTIFICATION_OPENED, occurred_at__gte=since, customer__isnull=False)
        .annotate(hour=features.utc_hour(), quarter=features.utc_quarter())  # quarters: zones offset by 30 or 45 min
        .values("customer__timezone", "hour", "quarter")
        .annotate(n=Count("id"))
        .order_by(),
        ["timezone", "hour", "quarter", "n"],
    )
    counts = np.zeros((7, 24), dtype=int)
    for tz_name, group in rows.groupby("timezone"):
        moments = features.parse_moments(group["hour"]) + pd.to_timedelta(group["quarter"].astype(int) * 15, unit="m")
        local = pd.DatetimeIndex(moments).tz_convert(tz_name)
        np.add.at(counts, (local.weekday.to_numpy(), local.hour.to_numpy()), group["n"].to_numpy(dtype=int))
    return counts


def offer_curves() -> dict[str, recommend.OfferRecommendation]:
    """Per segment, the posterior the offer proposals come from (the page's chart draws it).

    The outcomes come from the daily job's snapshot (``page_data.refresh``) when there is one, else they
    are read now (cached like the charts); either way the curves are ``reco.offer_response_curves``.
    """
    snapshot = page_snapshot(OFFER_OUTCOMES_SNAPSHOT)
    if snapshot is None:
        return reco.offer_response_curves(population=offer_population())
    population = {segment: [recommend.OfferOutcome(**o) for o in rows] for segment, rows in snapshot.data["segments"].items()}
    return reco.offer_response_curves(population=population)


def top_merchants(customer_id: str | None) -> tuple[Customer | None, list[dict[str, Any]]]:
    if not customer_id:
        return None, []
    customer = Customer.objects.filter(customer_id=customer_id).first()
    return (customer, affinity_answer(customer)) if customer else (None, [])


def model_versions() -> QuerySet[MLModel]:
    return MLModel.objects.order_by("model_type", "version")

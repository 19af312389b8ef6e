"""Campaign optimisation proposals: the daily ``campaign_optimizations`` job, apply and dismiss.

The job reads the event stream once, set-based (sends, conversions and revenue grouped by campaign
x segment x offer; spend grouped by campaign), plus the precomputed ``user_send_times`` and
``user_merchant_affinity`` tables, and writes one proposal per (campaign, kind, target):

- ``offer`` (target = segment): the offer with the largest expected profit per send
  (``optimizer.recommend.recommend_offer``); the campaign's own outcomes are pooled with the
  population's (all campaigns) for that segment and offer, or with the offer-response model's
  prediction when an active model exists. Proposed only when the data decide (``enough_data``).
- ``timing`` (target = ""): switch a fixed-time campaign to personal send hours (each customer at their
  best local hour from ``user_send_times``) when the send-time model expects more opens from the campaign's
  audience, with a 90 % interval above zero (``optimizer.ml.send_time.policy_gain``).
- ``segment`` (target = ""): the segments with positive expected ROI (``recommend_targeting``).
- ``merchant`` (target = ""): a cross-promotion partner for the campaign's merchant, from affinities.

Idempotent: a re-run that reaches the same recommendation updates that proposal in place; a
different recommendation supersedes the older proposal of the same campaign, kind and target; a
proposal whose key no longer yields a recommendation is superseded too. Applied and dismissed
rows are history and never change, and a value dismissed in the last DISMISS_MEMORY_DAYS days is
not proposed again.
"""

from __future__ import annotations

import datetime as dt
import logging
import zlib
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from celery.schedules import crontab
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from campaigns.models import Campaign, Customer, Event, Offer, Segment
from marketing_ai.api import Conflict
from marketing_ai.jobs import NullProgress, Progress, job
from optimizer import recommend
from optimizer.ml import send_time as send_time_model
from optimizer.models import CampaignOptimization, UserMerchantAffinity
from optimizer.services import page_data
from optimizer.services import send_times as send_times_service

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 90  # outcomes older than this do not inform today's proposals
# The population prior of a campaign's offer rate weighs as much as the other campaigns' sends of that
# offer (the response to an offer is mostly a property of the segment), up to this many pseudo-sends.
POPULATION_PRIOR_SENDS = 20_000
DISMISS_MEMORY_DAYS = 30
SEED = 20240605  # Thompson draws are seeded: a re-run gives the same numbers
ACTIVE_STATUSES = (Campaign.Status.ACTIVE, Campaign.Status.PAUSED, Campaign.Status.DRAFT)

Opt = CampaignOptimization


# --- Set-based reads ----------------------------------------------------------------------------
def outcome_frame(*, since: dt.datetime, campaign_pks: list[int] | None = None) -> pd.DataFrame:
    """Sends, conversions and revenue grouped by campaign x segment x offer (one grouped query).

    Columns: campaign, segment, offer_value, offer_kind, sends, conversions, revenue (float).
    Rows without a customer segment get segment "" (kept for campaign totals, not for offers).
    """
    qs = Event.objects.filter(
        occurred_at__gte=since, type__in=[Event.Type.NOTIFICATION_SENT, Event.Type.CONVERSION]
    )
    if campaign_pks is not None:
        qs = qs.filter(campaign_id__in=campaign_pks)
    rows = list(
        qs.values("campaign_id", "customer__segment__name", "offer__value", "offer__kind", "type")
        .annotate(n=Count("id"), revenue=Sum("amount"))
        .order_by()
    )
    columns = ["campaign", "segment", "offer_value", "offer_kind", "sends", "conversions", "revenue"]
    if not rows:
        return pd.DataFrame(columns=columns)
    df = pd.DataFrame(rows).rename(
        columns={"campaign_id": "campaign", "customer__segment__name": "segment", "offer__value": "offer_value", "offer__kind": "offer_kind"}
    )
    df["segment"] = df["segment"].fillna("")
    df["offer_kind"] = df["offer_kind"].fillna("")
    df["offer_value"] = df["offer_value"].astype(float)
    df["revenue"] = df["revenue"].fillna(0).astype(float)
    df["sends"] = np.where(df["type"] == Event.Type.NOTIFICATION_SENT, df["n"], 0)
    df["conversions"] = np.where(df["type"] == Event.Type.CONVERSION, df["n"], 0)
    df["revenue"] = np.where(df["type"] == Event.Type.CONVERSION, df["revenue"], 0.0)
    keys = ["campaign", "segment", "offer_value", "offer_kind"]
    return df.groupby(keys, dropna=False, as_index=False)[["sends", "conversions", "revenue"]].sum()[columns]


def spend_by_campaign(*, since: dt.datetime, campaign_pks: list[int] | None = None) -> dict[int, float]:
    qs = Event.objects.filter(occurred_at__gte=since, type=Event.Type.SPEND)
    if campaign_pks is not None:
        qs = qs.filter(campaign_id__in=campaign_pks)
    return {r["campaign_id"]: float(r["cost"] or 0) for r in qs.values("campaign_id").annotate(cost=Sum("amount")).order_by()}


def users_by_segment() -> dict[str, int]:
    rows = Customer.objects.filter(segment__isnull=False).values("segment__name").annotate(n=Count("id")).order_by()
    return {r["segment__name"]: r["n"] for r in rows}


def offer_outcomes(frame: pd.DataFrame) -> dict[str, list[recommend.OfferOutcome]]:
    """Percent-offer outcomes per segment of an outcome frame (any subset of campaigns)."""
    rows = frame[(frame["segment"] != "") & (frame["offer_kind"] == Offer.Kind.PERCENT)]
    grouped = rows.groupby(["segment", "offer_value"], as_index=False)[["sends", "conversions", "revenue"]].sum()
    out: dict[str, list[recommend.OfferOutcome]] = defaultdict(list)
    for r in grouped.itertuples(index=False):
        # A conversion attributed to an offer the customer was never sent (e.g. outside the window) is capped.
        out[r.segment].append(recommend.OfferOutcome(float(r.offer_value), int(r.sends), int(min(r.conversions, r.sends)), float(r.revenue)))
    return dict(out)


def segment_outcomes(frame: pd.DataFrame, cost: float, users: dict[str, int]) -> list[recommend.SegmentOutcome]:
    """One campaign's outcomes per segment; its spend is shared out by each segment's share of sends."""
    rows = frame[frame["segment"] != ""].groupby("segment", as_index=False)[["sends", "conversions", "revenue"]].sum()
    total_sends = float(frame["sends"].sum())
    return [
        recommend.SegmentOutcome(
            segment=r.segment,
            users_count=int(users.get(r.segment, 0)),
            sends=int(r.sends),
            conversions=int(r.conversions),
            revenue=float(r.revenue),
            cost=cost * r.sends / total_sends if total_sends else 0.0,
        )
        for r in rows.itertuples(index=False)
    ]


def _offer_model():
    """The active offer-response model, or None (then the population pools the campaign's outcomes)."""
    try:
        from optimizer.services.training import load_active

        loaded = load_active("offer_response")
        return loaded.artifact if loaded is not None else None
    except Exception as exc:  # no model yet, or an artifact that fails its checks: the bandit still works
        log.info("offer-response model unavailable (%s); using population priors", exc)
        return None


def offer_recommendations(
    campaign: Campaign, frame: pd.DataFrame, population: dict[str, list[recommend.OfferOutcome]], segments: list[str], model=None
) -> list[recommend.OfferRecommendation]:
    """Offer per segment of one campaign (``frame`` holds that campaign's outcome rows)."""
    own = offer_outcomes(frame)
    own_by_value = {s: {o.offer_value: o for o in rows} for s, rows in own.items()}
    current = campaign.current_offer
    current_value = float(current.value) if current is not None and current.kind == Offer.Kind.PERCENT else None
    out = []
    for i, segment in enumerate(segments):
        pop = population.get(segment, [])
        if not pop and not own.get(segment):
            continue
        mine = own_by_value.get(segment, {})
        # Leave this campaign out of the population, so its own outcomes are not counted twice.
        others = {
            o.offer_value: (o.sends - getattr(mine.get(o.offer_value), "sends", 0), o.conversions - getattr(mine.get(o.offer_value), "conversions", 0))
            for o in pop
        }
        strength = {v: float(min(max(n, 0), POPULATION_PRIOR_SENDS)) for v, (n, _) in others.items()}
        ladder = sorted(set(others) | set(mine))
        if model is not None:
            from optimizer.ml.offer_response import predict_conversion

            prior = recommend.model_prior(lambda v, s=segment: predict_conversion(model, s, v), ladder + ([current_value] if current_value is not None else []))
            method = "model"
        else:
            prior = {v: (max(c, 0) + 0.5) / (max(n, 0) + 1.0) for v, (n, c) in others.items()}
            method = "bandit"
        # Every offer of the ladder is a candidate, scored from the pooled prior when this campaign never sent it.
        candidates = own.get(segment, []) + [recommend.OfferOutcome(v, 0, 0, 0.0) for v in ladder if v not in mine]
        out.append(
            recommend.recommend_offer(
                segment,
                candidates,
                current_offer=current_value,
                order_value=recommend.order_value_of(pop + own.get(segment, []), default=50.0),
                prior_rates=prior,
                prior_strength=strength,
                method=method,
                seed=SEED + campaign.pk * 31 + i,
            )
        )
    return out


def offer_response_curves(
    *, since: dt.datetime | None = None, population: dict[str, list[recommend.OfferOutcome]] | None = None
) -> dict[str, recommend.OfferRecommendation]:
    """Population offer response per segment (observed rate, expected profit, recommended offer): for the page.

    ``population``: the outcomes per segment when already at hand (the page's snapshot); else read since ``since``.
    """
    if population is None:
        since = since or timezone.now() - dt.timedelta(days=LOOKBACK_DAYS)
        population = offer_outcomes(outcome_frame(since=since))
    return {
        segment: recommend.recommend_offer(segment, outcomes, current_offer=None, prior_strength=1.0, seed=SEED)
        for segment, outcomes in sorted(population.items())
        if outcomes
    }


def segment_ranking(campaign: Campaign, *, since: dt.datetime | None = None) -> list[recommend.SegmentRank]:
    """Segments ranked for one campaign by expected ROI and conversion rate (its own events only)."""
    since = since or timezone.now() - dt.timedelta(days=LOOKBACK_DAYS)
    frame = outcome_frame(since=since, campaign_pks=[campaign.pk])
    cost = spend_by_campaign(since=since, campaign_pks=[campaign.pk]).get(campaign.pk, 0.0)
    users = users_by_segment()
    outcomes = segment_outcomes(frame, cost, users)
    seen = {o.segment for o in outcomes}
    outcomes += [recommend.SegmentOutcome(name, users.get(name, 0), 0, 0, 0.0, 0.0) for name in sorted(users) if name not in seen]
    return recommend.rank_segments(outcomes)


# --- Proposals ------------------------------------------------------------------------------------
@dataclass
class Proposal:
    campaign: Campaign
    kind: str
    target: str
    current_value: str
    recommended_value: str
    expected_impact: float
    confidence: float
    affected_users: int
    rationale: str
    details: dict[str, Any]

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.campaign.pk, self.kind, self.target)


def _fmt_offer(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _offer_proposals(campaign, frame, population, users, model) -> list[Proposal]:
    segments = sorted(s.name for s in campaign.target_segments.all()) or sorted(population)
    out = []
    for rec in offer_recommendations(campaign, frame, population, segments, model):
        if not (rec.enough_data and rec.changes_offer):
            continue
        out.append(
            Proposal(
                campaign=campaign,
                kind=Opt.Type.OFFER,
                target=rec.segment,
                current_value=_fmt_offer(rec.current_offer),
                recommended_value=_fmt_offer(rec.recommended_offer),
                expected_impact=rec.expected_lift,
                confidence=rec.confidence,
                affected_users=users.get(rec.segment, 0),
                rationale=(
                    f"{rec.recommended_offer:g}% off has the highest expected profit per send for {rec.segment} "
                    f"({rec.method}; P(best) {max(s.prob_best for s in rec.scores):.0%})."
                ),
                details={
                    "method": rec.method,
                    "order_value": round(rec.order_value, 2),
                    "expected_conversion_lift": round(rec.expected_conversion_lift, 2),
                    "offers": [
                        {
                            "offer": s.offer_value,
                            "sends": s.sends,
                            "conversions": s.conversions,
                            "observed_rate": s.observed_rate,
                            "conversion_rate": s.conversion_rate,
                            "expected_profit": s.expected_profit,
                            "prob_best": s.prob_best,
                        }
                        for s in rec.scores
                    ],
                },
            )
        )
    return out


def _timing_proposal(campaign, inputs) -> Proposal | None:
    """Personal send hours instead of one fixed UTC time, when the model expects more opens with them.

    Proposed only when the 90 % interval of the relative gain in opens lies above zero; a campaign that already
    sends at personal hours, or has no fixed time to compare with, gets no timing proposal.
    """
    if inputs is None or campaign.send_time is None or campaign.send_time_policy == Campaign.SendTimePolicy.PERSONAL:
        return None
    segments = {s.name for s in campaign.target_segments.all()}
    # Seeded by what the answer depends on (audience and time), so campaigns with the same data get the same words.
    seed = SEED + zlib.crc32(f"{sorted(segments)}{campaign.send_time}".encode())
    gain, audience = send_times_service.campaign_policy_gain(inputs, segments, campaign.send_time, seed=seed)
    if gain is None or gain.interval[0] <= 0:
        return None
    fixed = campaign.send_time.strftime("%H:%M")
    personal_hours = inputs.personal_hours[audience & inputs.personal]
    top_hours = np.bincount(personal_hours, minlength=24).argsort()[::-1][:3] if len(personal_hours) else []
    peaks = ", ".join(f"{h:02d}:00" for h in top_hours)
    sparse_count = int(np.sum(audience & ~inputs.personal))
    rationale = (
        f"{gain.moved:,} of {gain.customers:,} targeted customers open best at another local hour than {fixed} UTC gives them "
        f"(most common best hours: {peaks or 'none yet'}). Expected opens per send to the whole audience: "
        f"{gain.opens_current:,.1f} at {fixed} UTC vs {gain.opens_personal:,.1f} at personal hours "
        f"({gain.relative_gain:+.1f} %, 90 % interval {gain.interval[0]:+.1f} % to {gain.interval[1]:+.1f} %); "
        f"{sparse_count:,} customers with fewer than {send_time_model.MIN_EVENTS} opens get the population hour "
        f"{inputs.population_hour:02d}:00 local."
    )
    return Proposal(
        campaign=campaign,
        kind=Opt.Type.TIMING,
        target="",
        current_value=f"fixed {fixed}",
        recommended_value=Campaign.SendTimePolicy.PERSONAL,
        expected_impact=gain.relative_gain,
        confidence=gain.prob_gain,
        affected_users=gain.moved,
        rationale=rationale,
        details={
            "audience": gain.customers,
            "expected_opens_current": round(gain.opens_current, 3),
            "expected_opens_personal": round(gain.opens_personal, 3),
            "relative_gain_interval": [round(gain.interval[0], 3), round(gain.interval[1], 3)],
            "interval_level": send_time_model.INTERVAL,
            "fallback_customers": sparse_count,
            "population_local_hour": inputs.population_hour,
        },
    )


def _segment_proposal(campaign, frame, cost, users) -> Proposal | None:
    outcomes = segment_outcomes(frame, cost, users)
    ranks = recommend.rank_segments(outcomes)
    current = sorted(s.name for s in campaign.target_segments.all())
    rec = recommend.recommend_targeting(ranks, outcomes, current)
    if rec is None or rec.expected_impact <= 0:
        return None
    return Proposal(
        campaign=campaign,
        kind=Opt.Type.SEGMENT,
        target="",
        current_value=",".join(current),
        recommended_value=",".join(rec.recommended),
        expected_impact=rec.expected_impact,
        confidence=rec.confidence,
        affected_users=rec.affected_users,
        rationale=f"Target the segments with positive expected ROI: expected ROI {rec.expected_roi_current:.0%} -> {rec.expected_roi_recommended:.0%}.",
        details={
            "expected_roi_current": rec.expected_roi_current,
            "expected_roi_recommended": rec.expected_roi_recommended,
            "ranking": [
                {"segment": r.segment, "expected_conversion_rate": r.expected_conversion_rate, "expected_roi": r.expected_roi, "users_count": r.users_count}
                for r in ranks
            ],
        },
    )


def _merchant_proposal(campaign, co_affinity: recommend.CoAffinity | None, merchant_names: dict[str, str]) -> Proposal | None:
    if campaign.merchant is None or co_affinity is None:
        return None
    rec = co_affinity.partner(campaign.merchant.merchant_id)
    if rec is None or rec.lift <= 0:
        return None
    return Proposal(
        campaign=campaign,
        kind=Opt.Type.MERCHANT,
        target="",
        current_value=campaign.merchant.merchant_id,
        recommended_value=rec.partner,
        expected_impact=rec.lift,
        confidence=rec.confidence,
        affected_users=rec.support,
        rationale=(
            f"Customers with {campaign.merchant.name} among their top merchants are {rec.lift:.0f}% more likely "
            f"to also favour {merchant_names.get(rec.partner, rec.partner)}: a cross-promotion partner."
        ),
        details={"partner_name": merchant_names.get(rec.partner, rec.partner), "support": rec.support},
    )


def _affinity_frame() -> pd.DataFrame:
    rows = UserMerchantAffinity.objects.values_list("customer_id", "merchant__merchant_id")
    return pd.DataFrame(list(rows), columns=["customer", "merchant"])


def _save(proposals: list[Proposal], campaigns: list[Campaign], now: dt.datetime) -> int:
    """Upsert today's proposals; supersede what they replace. Returns rows created or updated."""
    written = 0
    wanted = {p.key: p for p in proposals}
    campaign_pks = [c.pk for c in campaigns]
    open_rows = defaultdict(list)
    for row in Opt.objects.select_for_update().filter(campaign_id__in=campaign_pks, status=Opt.Status.PROPOSED):
        open_rows[(row.campaign_id, row.recommendation_type, row.target)].append(row)
    recently_dismissed = set(
        Opt.objects.filter(
            campaign_id__in=campaign_pks, status=Opt.Status.DISMISSED, created_at__gte=now - dt.timedelta(days=DISMISS_MEMORY_DAYS)
        ).values_list("campaign_id", "recommendation_type", "target", "recommended_value")
    )
    to_supersede: list[int] = []
    for key, rows in open_rows.items():
        p = wanted.get(key)
        keep = next((r for r in rows if p is not None and r.recommended_value == p.recommended_value), None)
        to_supersede += [r.pk for r in rows if r is not keep]
        if keep is not None:
            _fill(keep, p)
            keep.save()
            written += 1
            wanted.pop(key)
    for key, p in wanted.items():
        if (*key, p.recommended_value) in recently_dismissed:
            continue
        row = Opt(campaign=p.campaign, recommendation_type=p.kind, target=p.target, created_at=now)
        _fill(row, p)
        row.save()
        written += 1
    # Only rows still proposed: one applied or dismissed meanwhile keeps its state.
    Opt.objects.filter(pk__in=to_supersede, status=Opt.Status.PROPOSED).update(status=Opt.Status.SUPERSEDED)
    return written


def _fill(row: CampaignOptimization, p: Proposal) -> None:
    row.current_value = p.current_value[:200]
    row.recommended_value = p.recommended_value[:200]
    row.expected_impact = round(float(p.expected_impact), 4)
    row.confidence = round(float(np.clip(p.confidence, 0.0, 1.0)), 4)
    row.affected_users = int(p.affected_users)
    row.priority = recommend.priority(p.expected_impact, p.confidence)
    row.rationale = p.rationale
    row.details = p.details


@job(
    "campaign_optimizations",
    schedule=crontab(hour=5, minute=0),
    after=("daily_analytics", "model_retraining", "send_times", "merchant_affinity"),
)
def generate_optimizations(*, progress: Progress | None = None, now: dt.datetime | None = None) -> int:
    """Write today's offer, timing, segment and merchant proposals for every live campaign."""
    progress = progress or NullProgress()
    now = now or timezone.now()
    since = now - dt.timedelta(days=LOOKBACK_DAYS)
    campaigns = list(
        Campaign.objects.filter(status__in=ACTIVE_STATUSES).select_related("current_offer", "merchant").prefetch_related("target_segments").order_by("pk")
    )
    progress.total(len(campaigns) + 1)
    frame = outcome_frame(since=since)
    spend = spend_by_campaign(since=since)
    users = users_by_segment()
    population = offer_outcomes(frame)
    send_time_inputs = send_times_service.policy_inputs(now=now, since=since)
    affinity = _affinity_frame()
    co_affinity = recommend.CoAffinity(affinity["customer"].to_numpy(), affinity["merchant"].to_numpy()) if len(affinity) else None
    merchant_names = dict(
        UserMerchantAffinity.objects.values_list("merchant__merchant_id", "merchant__name").distinct()
    ) if co_affinity is not None else {}
    model = _offer_model()
    by_campaign = {pk: g for pk, g in frame.groupby("campaign")}
    empty = frame.iloc[0:0]
    progress.advance()

    proposals: list[Proposal] = []
    for campaign in campaigns:
        own = by_campaign.get(campaign.pk, empty)
        proposals += _offer_proposals(campaign, own, population, users, model)
        proposals += filter(None, [
            _timing_proposal(campaign, send_time_inputs),
            _segment_proposal(campaign, own, spend.get(campaign.pk, 0.0), users),
            _merchant_proposal(campaign, co_affinity, merchant_names),
        ])
        progress.advance()
    with transaction.atomic():
        written = _save(proposals, campaigns, now)
        page_data.refresh(population=population, now=now)
    return written


# --- Apply and dismiss ----------------------------------------------------------------------------
def _offer_for(value: Decimal) -> Offer:
    """The percent offer of this value (the oldest if several ids share it), created when missing."""
    existing = Offer.objects.filter(kind=Offer.Kind.PERCENT, value=value).order_by("pk").first()
    if existing is not None:
        return existing
    offer, _ = Offer.objects.get_or_create(offer_id=f"off_{value:g}pct", defaults={"kind": Offer.Kind.PERCENT, "value": value})
    return offer


def _change_campaign(opt: CampaignOptimization) -> None:
    campaign = Campaign.objects.select_for_update().get(pk=opt.campaign_id)
    kind = opt.recommendation_type
    if kind == Opt.Type.OFFER:
        campaign.current_offer = _offer_for(Decimal(opt.recommended_value))
        campaign.save(update_fields=["current_offer", "updated_at"])
    elif kind == Opt.Type.TIMING and opt.recommended_value in Campaign.SendTimePolicy.values:
        campaign.send_time_policy = opt.recommended_value
        campaign.save(update_fields=["send_time_policy", "updated_at"])
    elif kind == Opt.Type.TIMING:  # a proposal of one UTC hour (before send-time policies)
        campaign.send_time = dt.time.fromisoformat(opt.recommended_value)
        campaign.save(update_fields=["send_time", "updated_at"])
    elif kind == Opt.Type.SEGMENT:
        names = [n for n in opt.recommended_value.split(",") if n]
        segments = list(Segment.objects.filter(name__in=names))
        missing = set(names) - {s.name for s in segments}
        if missing:
            raise Conflict(f"segments {sorted(missing)} no longer exist; this recommendation cannot be applied")
        campaign.target_segments.set(segments)
        campaign.save(update_fields=["updated_at"])
    # MERCHANT: a cross-promotion partner is a decision for the marketer's next campaign; nothing on
    # this campaign changes, applying records that it was acted on.


def apply_optimization(opt: CampaignOptimization, user) -> CampaignOptimization:
    """Make the campaign follow the recommendation; record who and when. Applying twice is a no-op."""
    with transaction.atomic():
        opt = Opt.objects.select_for_update().get(pk=opt.pk)
        if opt.status == Opt.Status.APPLIED:
            return opt
        if opt.status != Opt.Status.PROPOSED:
            raise Conflict(f"recommendation {opt.pk} is {opt.status}; only a proposed recommendation can be applied")
        _change_campaign(opt)
        opt.status = Opt.Status.APPLIED
        opt.applied_by = user if user is not None and user.is_authenticated else None
        opt.applied_at = timezone.now()
        opt.save(update_fields=["status", "applied_by", "applied_at"])
    return opt


def dismiss_optimization(opt: CampaignOptimization, user) -> CampaignOptimization:
    """Set a proposal aside (it is not proposed again for DISMISS_MEMORY_DAYS). Dismissing twice is a no-op."""
    with transaction.atomic():
        opt = Opt.objects.select_for_update().get(pk=opt.pk)
        if opt.status == Opt.Status.DISMISSED:
            return opt
        if opt.status != Opt.Status.PROPOSED:
            raise Conflict(f"recommendation {opt.pk} is {opt.status}; only a proposed recommendation can be dismissed")
        opt.status = Opt.Status.DISMISSED
        opt.save(update_fields=["status"])
    log.info("recommendation %s dismissed by %s", opt.pk, getattr(user, "username", None))
    return opt

"""Campaign optimisation proposals: the daily ``campaign_optimizations`` job, apply and dismiss.

The job reads the event stream once, set-based (sends, conversions and revenue grouped by campaign
x segment x offer; spend grouped by campaign), plus the precomputed ``user_send_times`` and
``user_merchant_affinity`` tables, and writes one proposal per (campaign, kind, target):

- ``offer`` (target = segment): the offer with the largest expected profit per send under the
  segment's posterior (``optimizer.recommend.campaign_offer_recommendations``: every campaign's sends
  and conversions of that segment and offer, each counted once). Proposed only when the data decide
  (P(beats the current offer) >= ``recommend.DECISION_PROBABILITY``); otherwise the answer is "keep".
- ``timing`` (target = ""): switch a fixed-time campaign to personal send hours (each customer at their
  best local hour from ``user_send_times``) when the held-out sends show more opens near customers' own hours
  than at the campaign's fixed time, with a 90 % interval above zero (``optimizer.ml.send_time.policy_gain``).
  Applying it sets the campaign's ``send_time_policy`` setting (logged like every setting change).
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
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from campaigns import configuration
from campaigns import selectors as campaign_selectors
from campaigns.configuration import SettingChange
from campaigns.models import Campaign, CampaignChange, Customer, Event, Merchant, Offer
from marketing_ai.errors import Conflict, StaleValue
from marketing_ai.jobs import NullProgress, Progress
from optimizer import features, recommend
from optimizer.ml import send_time as send_time_model
from optimizer.models import CampaignOptimization, UserMerchantAffinity
from optimizer.services import page_data
from optimizer.services import send_times as send_times_service

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 90  # outcomes older than this do not inform today's proposals
DISMISS_MEMORY_DAYS = 30
SEED = 20240605  # Thompson draws are seeded: a re-run gives the same numbers
ACTIVE_STATUSES = (Campaign.Status.ACTIVE, Campaign.Status.PAUSED, Campaign.Status.DRAFT)

Opt = CampaignOptimization
Field = CampaignChange.Field
# Which campaign setting each kind of proposal changes (an offer proposal: its target segment's offer).
FIELD_OF_KIND: dict[str, str] = {
    Opt.Type.OFFER: Field.OFFER,
    Opt.Type.TIMING: Field.SEND_TIME_POLICY,  # rows from before send-time policies proposed a send_time
    Opt.Type.SEGMENT: Field.TARGET_SEGMENTS,
    Opt.Type.MERCHANT: Field.PROMOTED_MERCHANTS,
}


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
    # Decimal or None per row (an object column): convert first, then fill, so pandas need not downcast.
    df["revenue"] = pd.to_numeric(df["revenue"], errors="raise").astype(float).fillna(0.0)
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


def current_offers(campaign: Campaign, segments: list[str]) -> dict[str, float | None]:
    """The percent offer each segment gets now: its own offer, else the campaign default (None: no offer,
    or not a percent)."""
    return {segment: percent_value(offer) for segment, offer in campaign_selectors.offers_by_segment(campaign, segments).items()}


def percent_value(offer: Offer | None) -> float | None:
    """The percent-off of an offer; None for no offer or an amount-off offer (outside the percent ladder)."""
    return float(offer.value) if offer is not None and offer.kind == Offer.Kind.PERCENT else None


def offer_recommendations(
    campaign: Campaign, population: dict[str, list[recommend.OfferOutcome]], segments: list[str]
) -> list[recommend.OfferRecommendation]:
    """Offer per segment of one campaign: the segment's posterior over every campaign's outcomes (``population``)."""
    return recommend.campaign_offer_recommendations(population, segments, current_offers(campaign, segments), seed=SEED)


def offer_response_curves(
    *, since: dt.datetime | None = None, population: dict[str, list[recommend.OfferOutcome]] | None = None
) -> dict[str, recommend.OfferRecommendation]:
    """Offer response per segment (observed rate, expected profit, recommended offer): for the page.

    The same posterior and the same draws as the proposals (``campaign_offer_recommendations``), so the
    chart's starred offer is the offer proposed to every campaign of that segment. ``population``: the
    outcomes per segment when already at hand (the page's snapshot); else read since ``since``.
    """
    if population is None:
        since = since or timezone.now() - dt.timedelta(days=LOOKBACK_DAYS)
        population = offer_outcomes(outcome_frame(since=since))
    recs = recommend.campaign_offer_recommendations(population, sorted(population), {}, seed=SEED)
    return {rec.segment: rec for rec in recs}


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
    live_value: str = ""  # the campaign's live value (canonical) this proposal was computed against

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.campaign.pk, self.kind, self.target)


def _fmt_offer(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _interval(bounds: tuple[float, float] | None, level: float = 0.9) -> dict | None:
    """``details["impact_interval"]``: the interval of ``expected_impact`` that the preview shows."""
    return None if bounds is None else {"low": round(bounds[0], 2), "high": round(bounds[1], 2), "level": level}


def _own_offer_outcome(own: pd.DataFrame | None, segment: str, offer: float | None) -> str:
    """The campaign's own sends of ``segment`` at ``offer`` and their conversion rate, for the rationale: two
    campaigns with the same segment and current offer share the pooled evidence, not their own."""
    if own is None or offer is None:
        return ""
    mine = own[(own["segment"] == segment) & np.isclose(own["offer_value"], offer)]
    sends, conversions = int(mine["sends"].sum()), int(mine["conversions"].sum())
    if not sends:
        return f" This campaign has not sent {segment} the current {offer:g}% yet."
    return f" This campaign sent {segment} the current {offer:g}% {sends:,} times ({conversions / sends:.1%} converted)."


def _offer_proposals(campaign, population, users, own: pd.DataFrame | None = None) -> list[Proposal]:
    segments = sorted(s.name for s in campaign.target_segments.all()) or sorted(population)
    current_offers = campaign_selectors.offers_by_segment(campaign, segments)
    out = []
    for rec in offer_recommendations(campaign, population, segments):
        if not (rec.decided and rec.changes_offer):
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
                    f"{rec.recommended_offer:g}% off has the highest expected profit per send for {rec.segment}: "
                    + (f"P(it beats the current {rec.current_offer:g}%) = {rec.confidence:.1%}"
                       if rec.current_offer is not None else f"P(best) = {rec.confidence:.1%}")
                    + f", from {sum(s.sends for s in rec.scores):,} sends of this segment over all campaigns."
                    + _own_offer_outcome(own, rec.segment, rec.current_offer)
                ),
                live_value=configuration.canonical(Field.OFFER, current_offers.get(rec.segment)),
                details={
                    "method": rec.method,
                    "decided": rec.decided,
                    "challenger": rec.challenger,
                    "impact_interval": _interval(rec.lift_interval),
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
    """Personal send hours instead of one fixed UTC time, when held-out sends show more opens near customers' own hours.

    Proposed only when the 90 % interval of the relative gain in opens lies above zero; a campaign that already
    sends at personal hours, or has no fixed time to compare with, gets no timing proposal.
    """
    if inputs is None or campaign.send_time is None or campaign.send_time_policy == Campaign.SendTimePolicy.PERSONAL:
        return None
    segments = {s.name for s in campaign.target_segments.all()}
    # Seeded by what the answer depends on (audience and time), so campaigns with the same data get the same words.
    seed = SEED + zlib.crc32(f"{sorted(segments)}{campaign.send_time}".encode())
    gain, audience = send_times_service.campaign_policy_gain(inputs, campaign.pk, segments, campaign.send_time, seed=seed)
    if gain is None or gain.interval[0] <= 0:
        return None
    fixed = campaign.send_time.strftime("%H:%M")
    personal_hours = inputs.personal_hours[audience & inputs.personal]
    top_hours = np.bincount(personal_hours, minlength=24).argsort()[::-1][:3] if len(personal_hours) else np.zeros(0, dtype=np.int64)
    peaks = ", ".join(f"{h:02d}:00" for h in top_hours)
    sparse_count = int(np.sum(audience & ~inputs.personal))
    response = gain.response
    rationale = (
        f"{gain.moved:,} of {gain.customers:,} targeted customers open best at another local hour than {fixed} UTC gives them "
        f"(most common best hours: {peaks or 'none yet'}). Of this campaign's sends since {inputs.heldout_since:%Y-%m-%d} "
        f"(held out from the hours learnt before), {response[0]:.1%} of those at a customer's own hour were opened and "
        f"{response[1]:.1%} of those at {fixed} UTC ({gain.heldout_sends:,} sends). Expected opens per send to the whole audience: "
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
        live_value=configuration.canonical(Field.SEND_TIME_POLICY, campaign.send_time_policy),
        details={
            "audience": gain.customers,
            "expected_opens_current": round(gain.opens_current, 3),
            "expected_opens_personal": round(gain.opens_personal, 3),
            "relative_gain_interval": [round(gain.interval[0], 3), round(gain.interval[1], 3)],
            "interval_level": send_time_model.INTERVAL,
            "heldout_since": inputs.heldout_since.isoformat(),
            "heldout_sends": gain.heldout_sends,
            "open_rate_personal_hour": round(response[0], 4),
            "open_rate_fixed_time": round(response[1], 4),
            "fallback_customers": sparse_count,
            "population_local_hour": inputs.population_hour,
            "impact_interval": _interval(gain.interval, send_time_model.INTERVAL),
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
        rationale=_targeting_rationale(rec),
        live_value=",".join(current),
        details={
            "still_negative": rec.expected_roi_recommended < 0,
            "dropped": sorted(set(rec.current) - set(rec.recommended)),
            "expected_roi_current": rec.expected_roi_current,
            "expected_roi_recommended": rec.expected_roi_recommended,
            "ranking": [
                {"segment": r.segment, "expected_conversion_rate": r.expected_conversion_rate, "expected_roi": r.expected_roi, "users_count": r.users_count}
                for r in ranks
            ],
        },
    )


def _targeting_rationale(rec: recommend.TargetingRecommendation) -> str:
    """Never call a result that still loses money an improvement: say it is a smaller loss."""
    roi = f"expected ROI {rec.expected_roi_current:.0%} -> {rec.expected_roi_recommended:.0%}"
    if rec.expected_roi_recommended < 0:
        return (
            f"Every targeting loses money on the current data ({roi}): this one loses less, but the campaign would "
            f"still lose money. Consider pausing it or changing its offer rather than only its segments."
        )
    return f"Target the segments with positive expected ROI: {roi}."


def _merchant_proposal(campaign, co_affinity: recommend.CoAffinity | None, merchant_names: dict[str, str]) -> Proposal | None:
    if campaign.merchant is None or co_affinity is None:
        return None
    rec = co_affinity.partner(campaign.merchant.merchant_id)
    promoted = configuration.canonical(Field.PROMOTED_MERCHANTS, campaign.promoted_merchants.all())
    if rec is None or rec.lift <= 0 or rec.partner in promoted.split(","):
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
            f"to also favour {merchant_names.get(rec.partner, rec.partner)}: a cross-promotion partner. "
            f"Applying adds it to the campaign's promoted merchants."
        ),
        live_value=promoted,
        details={"partner_name": merchant_names.get(rec.partner, rec.partner), "support": rec.support},
    )


def _co_affinity() -> tuple[recommend.CoAffinity | None, dict[str, str]]:
    """Which merchants share customers' top lists (None before the affinity job ran), and every merchant's
    name by its external id.

    The top lists are read as integer pairs (4.3 M rows at a million customers: 70 MB of arrays, where a
    list of (customer, merchant id) tuples took 800 MB and their text sort 35 s); the merchants table gives
    each key its external id.
    """
    pairs = features.fetch(UserMerchantAffinity.objects.values_list("customer_id", "merchant_id").order_by(),
                           ["customer", "merchant"])
    if pairs.empty:
        return None, {}
    merchants = list(Merchant.objects.values_list("pk", "merchant_id", "name"))
    co_affinity = recommend.CoAffinity(
        pairs["customer"].to_numpy(np.int64), pairs["merchant"].to_numpy(np.int64),
        merchant_labels={pk: merchant_id for pk, merchant_id, _ in merchants},
    )
    return co_affinity, {merchant_id: name for _, merchant_id, name in merchants}


def _recently_declined(campaign_pks: list[int], now: dt.datetime) -> set[tuple[int, str, str, str]]:
    """(campaign, kind, target, value) dismissed, or applied and then undone, in the last DISMISS_MEMORY_DAYS
    days: the marketer said no to that value, so it is not proposed again for a while."""
    return set(
        Opt.objects.filter(
            campaign_id__in=campaign_pks, status__in=[Opt.Status.DISMISSED, Opt.Status.UNDONE],
            created_at__gte=now - dt.timedelta(days=DISMISS_MEMORY_DAYS),
        ).values_list("campaign_id", "recommendation_type", "target", "recommended_value")
    )


def _save(proposals: list[Proposal], campaigns: list[Campaign], now: dt.datetime) -> int:
    """Upsert today's proposals; supersede what they replace. Returns rows created or updated."""
    written = 0
    wanted = {p.key: p for p in proposals}
    campaign_pks = [c.pk for c in campaigns]
    open_rows = defaultdict(list)
    for row in Opt.objects.select_for_update().filter(campaign_id__in=campaign_pks, status=Opt.Status.PROPOSED):
        open_rows[(row.campaign_id, row.recommendation_type, row.target)].append(row)
    recently_dismissed = _recently_declined(campaign_pks, now)
    to_supersede: list[int] = []
    for key, rows in open_rows.items():
        p = wanted.get(key)
        # Kept only when it proposes the same value against the same live value (else it is another proposal).
        keep = next(
            (r for r in rows if p is not None and r.recommended_value == p.recommended_value and r.live_value == p.live_value),
            None,
        )
        to_supersede += [r.pk for r in rows if r is not keep]
        if keep is not None and p is not None:  # (keep is only found for a wanted proposal)
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
    row.live_value = p.live_value


def generate_optimizations(
    *, progress: Progress | None = None, now: dt.datetime | None = None, campaign_pks: list[int] | None = None
) -> int:
    """Write today's offer, timing, segment and merchant proposals for every live campaign (or those given)."""
    progress = progress or NullProgress()
    now = now or timezone.now()
    since = now - dt.timedelta(days=LOOKBACK_DAYS)
    live = Campaign.objects.filter(status__in=ACTIVE_STATUSES)
    if campaign_pks is not None:
        live = live.filter(pk__in=campaign_pks)
    campaigns = list(
        live.select_related("current_offer", "merchant")
        .prefetch_related("target_segments", "promoted_merchants", "segment_offers__segment", "segment_offers__offer")
        .order_by("pk")
    )
    progress.total(len(campaigns) + 1)
    frame = outcome_frame(since=since)
    spend = spend_by_campaign(since=since)
    users = users_by_segment()
    population = offer_outcomes(frame)
    send_time_inputs = send_times_service.policy_inputs(now=now, since=since)
    co_affinity, merchant_names = _co_affinity()
    by_campaign = {pk: g for pk, g in frame.groupby("campaign")}
    empty = frame.iloc[0:0]
    progress.advance()

    declined = _recently_declined([c.pk for c in campaigns], now)
    proposals: list[Proposal] = []
    for campaign in campaigns:
        own = by_campaign.get(campaign.pk, empty)
        targeting = _segment_proposal(campaign, own, spend.get(campaign.pk, 0.0), users)
        if targeting is not None and (*targeting.key, targeting.recommended_value) in declined:
            targeting = None
        # Dropping a segment and changing its offer contradict each other: while the targeting proposal is
        # open, the dropped segments get no offer proposal (they come back if it is dismissed).
        dropped = set(targeting.details["dropped"]) if targeting is not None else set()
        proposals += [p for p in _offer_proposals(campaign, population, users, own) if p.target not in dropped]
        proposals += filter(None, [
            _timing_proposal(campaign, send_time_inputs),
            targeting,
            _merchant_proposal(campaign, co_affinity, merchant_names),
        ])
        progress.advance()
    with transaction.atomic():
        written = _save(proposals, campaigns, now)
        page_data.refresh(population=population, now=now)
    return written


# --- Apply, undo, dismiss ------------------------------------------------------------------------
# Applying goes through campaigns.configuration.change_settings (the one settings writer, which logs the
# change with source "recommendation"); undo reverts that logged change. Every proposal records the live
# value it was computed against (``live_value``): apply is refused with 409 when the value is no longer
# that, naming the current value and the change that made it.
def _offer_for(value: Decimal, *, create: bool = True) -> Offer | None:
    """The percent offer of this value (the oldest if several ids share it), created when missing."""
    existing = Offer.objects.filter(kind=Offer.Kind.PERCENT, value=value).order_by("pk").first()
    if existing is not None or not create:
        return existing
    offer, _ = Offer.objects.get_or_create(offer_id=f"off_{value:g}pct", defaults={"kind": Offer.Kind.PERCENT, "value": value})
    return offer


def setting_of(opt: CampaignOptimization) -> tuple[str, str]:
    """(field, segment) of the campaign setting this proposal changes."""
    field = FIELD_OF_KIND[opt.recommendation_type]
    if opt.recommendation_type == Opt.Type.TIMING and opt.recommended_value not in Campaign.SendTimePolicy.values:
        field = Field.SEND_TIME  # a proposal of one UTC hour (rows from before send-time policies)
    return field, (opt.target if field == Field.OFFER else "")


def live_value_of(campaign: Campaign, opt: CampaignOptimization) -> str:
    """The campaign's live canonical value of the setting ``opt`` is about (the offer a segment gets, for offers)."""
    field, segment = setting_of(opt)
    if field == Field.OFFER and segment:
        return campaign_selectors.effective_offer_id(campaign, segment)
    return campaign_selectors.setting_value(campaign, field, segment)


def _computed_against(campaign: Campaign, opt: CampaignOptimization, live: str) -> str:
    """What the proposal was computed against. Rows from before ``live_value`` was recorded hold only the
    display value (``current_value``): it is matched against the live value's display form."""
    if opt.live_value is not None:
        return opt.live_value
    if opt.recommendation_type == Opt.Type.OFFER:
        offer = Offer.objects.filter(offer_id=live).first() if live else None
        return live if opt.current_value == _fmt_offer(percent_value(offer)) else opt.current_value
    if opt.recommendation_type == Opt.Type.SEGMENT:
        return ",".join(sorted(n for n in opt.current_value.split(",") if n))
    if opt.recommendation_type == Opt.Type.TIMING and opt.recommended_value in Campaign.SendTimePolicy.values:
        return opt.current_value.split(" ")[0]  # "fixed 09:00": the policy it was computed against
    if opt.recommendation_type == Opt.Type.TIMING:
        return opt.current_value
    return live  # merchant rows recorded the campaign's merchant, not the promoted list: nothing to compare


def planned_value(campaign: Campaign, opt: CampaignOptimization, *, create: bool = True) -> str:
    """The canonical value applying ``opt`` would write. With ``create=False`` (preview) no offer row is created;
    an offer that does not exist yet is named by the id apply would give it."""
    kind = opt.recommendation_type
    if kind == Opt.Type.OFFER:
        value = Decimal(opt.recommended_value)
        offer = _offer_for(value, create=create)
        return offer.offer_id if offer is not None else f"off_{value:g}pct"
    if kind == Opt.Type.TIMING and opt.recommended_value in Campaign.SendTimePolicy.values:
        return opt.recommended_value
    if kind == Opt.Type.TIMING:  # a proposal of one UTC hour (rows from before send-time policies)
        return dt.time.fromisoformat(opt.recommended_value).strftime("%H:%M")
    if kind == Opt.Type.SEGMENT:
        return ",".join(sorted(n for n in opt.recommended_value.split(",") if n))
    promoted = set(n for n in campaign_selectors.setting_value(campaign, Field.PROMOTED_MERCHANTS).split(",") if n)
    return ",".join(sorted(promoted | {opt.recommended_value}))


def check_live(campaign: Campaign, opt: CampaignOptimization) -> tuple[bool, str, str]:
    """(still valid, live value, message): is the live value still the one ``opt`` was computed against?"""
    live = live_value_of(campaign, opt)
    expected = _computed_against(campaign, opt, live)
    if live == expected:
        return True, live, ""
    field, segment = setting_of(opt)
    return False, live, configuration.stale_message(
        campaign, field, segment, expected=expected, live=live, what=f"Recommendation {opt.pk}"
    )


def apply_optimization(opt: CampaignOptimization, user) -> CampaignOptimization:
    """Make the campaign follow the recommendation (logged); record who and when. Applying twice is a no-op.

    409 when the proposal is not open, or when the live value changed since it was computed. Applying
    supersedes the other open proposals it makes moot (see ``_supersede_after``).
    """
    with transaction.atomic():
        # Lock order everywhere: the campaign row, then its proposals (two applies on one campaign queue up
        # on the campaign instead of deadlocking on each other's proposals).
        campaign = configuration.lock(opt.campaign)
        opt = Opt.objects.select_for_update().get(pk=opt.pk)
        if opt.status == Opt.Status.APPLIED:
            return opt
        if opt.status != Opt.Status.PROPOSED:
            raise Conflict(f"recommendation {opt.pk} is {opt.status}; only a proposed recommendation can be applied")
        valid, _, message = check_live(campaign, opt)
        if not valid:
            raise StaleValue(message)
        field, segment = setting_of(opt)
        written = configuration.change_settings(
            campaign, [SettingChange(field, planned_value(campaign, opt), segment)], user=user,
            source=CampaignChange.Source.RECOMMENDATION, note=f"recommendation {opt.pk} ({opt.recommendation_type})",
        )
        opt.status = Opt.Status.APPLIED
        opt.applied_by = user if user is not None and user.is_authenticated else None
        opt.applied_at = timezone.now()
        opt.applied_change = written[0] if written else None
        opt.save(update_fields=["status", "applied_by", "applied_at", "applied_change"])
        _supersede_after(opt, campaign)
    return opt


def _supersede_after(applied: CampaignOptimization, campaign: Campaign) -> int:
    """After an apply: supersede the open proposals of the same campaign that it made moot.

    - the same field and segment (one decision per setting);
    - any whose live value no longer matches (computed against a value that is gone);
    - offer proposals for segments the new targeting dropped, and targeting proposals that would drop
      a segment whose offer was just chosen (contradictory decisions are not both open).
    """
    others = list(Opt.objects.select_for_update().filter(campaign=campaign, status=Opt.Status.PROPOSED).exclude(pk=applied.pk))
    targeted = set(n for n in campaign_selectors.setting_value(campaign, Field.TARGET_SEGMENTS).split(",") if n)
    moot = []
    for other in others:
        same_setting = setting_of(other) == setting_of(applied)
        contradicts = (
            applied.recommendation_type == Opt.Type.SEGMENT and other.recommendation_type == Opt.Type.OFFER
            and targeted and other.target not in targeted
        ) or (
            applied.recommendation_type == Opt.Type.OFFER and other.recommendation_type == Opt.Type.SEGMENT
            and applied.target in (other.details or {}).get("dropped", [])
        )
        if same_setting or contradicts or not check_live(campaign, other)[0]:
            moot.append(other.pk)
    return Opt.objects.filter(pk__in=moot).update(status=Opt.Status.SUPERSEDED)


def undo_optimization(opt: CampaignOptimization, user) -> CampaignOptimization:
    """Revert an applied recommendation to the value before it (logged as an undo). Undoing twice is a no-op.

    409 when it is not applied, when applying it changed nothing, or when the value changed since.
    """
    with transaction.atomic():
        configuration.lock(opt.campaign)  # campaign first, as in apply
        opt = Opt.objects.select_for_update().get(pk=opt.pk)
        if opt.status == Opt.Status.UNDONE:
            return opt
        if opt.status != Opt.Status.APPLIED:
            raise Conflict(f"recommendation {opt.pk} is {opt.status}; only an applied recommendation can be undone")
        if opt.applied_change is None:
            raise Conflict(f"recommendation {opt.pk} changed nothing when it was applied (the value was already live); nothing to undo")
        configuration.undo_change(opt.applied_change, user=user, note=f"undo of recommendation {opt.pk}")
        opt.status = Opt.Status.UNDONE
        opt.save(update_fields=["status"])
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


def regenerate_for_campaign(campaign: Campaign) -> int:
    """Recompute one campaign's proposals now (against its live values); the population still pools every campaign."""
    return generate_optimizations(campaign_pks=[campaign.pk])

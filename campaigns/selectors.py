"""Reads of the shared domain: external id -> primary key look-ups and the API's filtered lists.

Ingestion resolves each kind of id with one query per batch (``marketing_ai.db.rows_by_keys_all``: one
array parameter each, all in one round trip on PostgreSQL; chunked ``IN`` lists elsewhere), never one
query per event. Customers and merchants are looked up where they are locked (``campaigns.ingest.store``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from campaigns.models import Campaign, CampaignChange, CampaignSegmentOffer, Customer, Merchant, Offer, Segment
from marketing_ai.db import rows_by_keys_all


def prefer_index_lookups() -> None:
    """PostgreSQL: price index probes as cached pages for the rest of the current transaction.

    The default random_page_cost (4.0) prices an index probe like a disk seek, so with 5,000 keys the
    planner prefers reading the whole table once it is large: measured on 1M events, a batch's duplicate
    check became a parallel sequential scan (56 ms, growing with the table) even with fresh statistics.
    At 1.1, the usual setting for SSDs and cached data, it is a bitmap index scan (20 ms), while small
    tables still get the sequential scan that suits them. Ingestion calls this at the start of its
    transactions (SET LOCAL: nothing outlives them).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL random_page_cost = 1.1")


def campaign_and_offer_pks(campaign_ids: Iterable[str], offer_ids: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """{campaign_id: pk} and {offer_id: pk} of the ids that exist: one round trip on PostgreSQL (``rows_by_keys_all``)."""
    quote = connection.ops.quote_name
    campaigns, offers = rows_by_keys_all([
        (quote(model._meta.db_table), quote(field), f"{quote(field)}, id", sorted(set(ids)), False)
        for model, field, ids in ((Campaign, "campaign_id", campaign_ids), (Offer, "offer_id", offer_ids))
    ])
    return dict(campaigns), dict(offers)


# The API's list filters are campaigns/filters.py (django-filter FilterSets over these querysets).
def campaign_list() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("merchant", "current_offer").prefetch_related(
        "target_segments", "promoted_merchants", "segment_offers__segment", "segment_offers__offer"
    )


def merchant_list() -> QuerySet[Merchant]:
    return Merchant.objects.all()


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.select_related("segment")


# --- A campaign's configuration (written by campaigns.configuration) ------------------------------
def setting_value(campaign: Campaign, field: str, segment: str = "") -> str:
    """The stored canonical value of one setting (see ``campaigns.configuration``), read from the database.

    For ``offer`` with a segment this is the segment's own offer ("" when it follows the default); the
    offer a segment actually gets is ``effective_offer_id``.
    """
    F = CampaignChange.Field
    if field == F.OFFER and segment:
        return (
            CampaignSegmentOffer.objects.filter(campaign=campaign, segment__name=segment)
            .values_list("offer__offer_id", flat=True).first() or ""
        )
    if field in (F.OFFER, F.SEND_TIME, F.SEND_TIME_POLICY, F.STATUS):
        # From the row, not the instance: a caller's instance may predate a change made elsewhere.
        offer_id, send_time, policy, status = Campaign.objects.filter(pk=campaign.pk).values_list(
            "current_offer__offer_id", "send_time", "send_time_policy", "status"
        ).get()
        return {
            F.OFFER: offer_id or "",
            F.SEND_TIME: send_time.strftime("%H:%M") if send_time else "",
            F.SEND_TIME_POLICY: policy,
            F.STATUS: status,
        }[field]
    if field == F.TARGET_SEGMENTS:
        return ",".join(sorted(campaign.target_segments.values_list("name", flat=True)))
    if field == F.PROMOTED_MERCHANTS:
        return ",".join(sorted(campaign.promoted_merchants.values_list("merchant_id", flat=True)))
    raise ValueError(f"unknown setting {field!r}")


def effective_offer_id(campaign: Campaign, segment: str) -> str:
    """The offer id a segment gets: its own offer, else the campaign default ("" when neither is set)."""
    return setting_value(campaign, CampaignChange.Field.OFFER, segment) or setting_value(campaign, CampaignChange.Field.OFFER)


def segment_offer_overrides(campaign: Campaign) -> dict[str, str]:
    """{segment name: offer id} of the segments with their own offer."""
    return dict(
        CampaignSegmentOffer.objects.filter(campaign=campaign).values_list("segment__name", "offer__offer_id")
    )


def offers_by_segment(campaign: Campaign, segments: Iterable[str] | None = None) -> dict[str, Offer | None]:
    """{segment name: the Offer it gets} for ``segments`` (default: every segment).

    The one model of a campaign's offers: a segment's own offer, else the campaign default. The
    optimiser's "current offer" of a segment, the API and the campaign page all read it here. Uses
    ``segment_offers`` / ``current_offer`` as prefetched by the caller when they are.
    """
    prefetched = "segment_offers" in getattr(campaign, "_prefetched_objects_cache", {})
    rows = campaign.segment_offers.all() if prefetched else campaign.segment_offers.select_related("segment", "offer")
    own = {r.segment.name: r.offer for r in rows}
    names = sorted(segments) if segments is not None else list(Segment.objects.order_by("name").values_list("name", flat=True))
    default = campaign.current_offer if campaign.current_offer_id else None
    return {name: own.get(name, default) for name in names}


def campaign_changes(campaign: Campaign, *, fields: Iterable[str] | None = None, limit: int | None = None) -> QuerySet[CampaignChange]:
    """The campaign's change log, newest first."""
    qs = CampaignChange.objects.filter(campaign=campaign).select_related("changed_by", "reverts").order_by("-changed_at", "-pk")
    if fields is not None:
        qs = qs.filter(field__in=list(fields))
    return qs[:limit] if limit is not None else qs


def last_change(campaign: Campaign, field: str, segments: Iterable[str]) -> CampaignChange | None:
    """The newest logged change of ``field`` for any of ``segments`` ("" = the campaign-wide value)."""
    return (
        CampaignChange.objects.filter(campaign=campaign, field=field, segment__in=list(segments))
        .select_related("changed_by").order_by("-changed_at", "-pk").first()
    )


def setting_label(field: str, value: str, *, segment: str = "") -> str:
    """A setting's canonical value as a marketer reads it: "25% off (off_25pct)", "all segments", "none"."""
    F = CampaignChange.Field
    if field == F.OFFER:
        if not value:
            return "the campaign default" if segment else "no offer"
        offer = Offer.objects.filter(offer_id=value).first()
        if offer is None:
            return value
        amount = f"{offer.value.normalize():f}"
        return f"{amount}% off ({value})" if offer.kind == Offer.Kind.PERCENT else f"{amount} off ({value})"
    if field == F.TARGET_SEGMENTS:
        return value.replace(",", ", ") if value else "all segments"
    if field == F.PROMOTED_MERCHANTS:
        return value.replace(",", ", ") if value else "none"
    if field == F.SEND_TIME:
        return f"{value} UTC" if value else "not set"
    if field == F.SEND_TIME_POLICY:
        if value == Campaign.SendTimePolicy.PERSONAL:
            return "personal (each customer at their own best local hour)"
        if value == Campaign.SendTimePolicy.FIXED:
            return "fixed (everyone at the send time)"
    return value or "none"

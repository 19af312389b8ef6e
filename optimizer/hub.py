"""The campaign as the hub: what the campaign page shows besides its analytics, and its buttons.

``hub_context`` gathers the configuration (offer per segment, send time, target segments, promoted
merchants), the campaign's A/B tests, its proposals (with a preview of one), its change log and the
markers of those changes for the trend chart. ``hub_action`` is the page's Apply / Undo / Dismiss /
Regenerate buttons: the same services as the API, redirecting back to the campaign page.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from abtests import selectors as ab_selectors
from campaigns import selectors as campaign_selectors
from campaigns.models import Campaign, CampaignChange
from marketing_ai.api import is_marketer
from marketing_ai.errors import DomainError
from marketing_ai.validation import row_number
from optimizer import selectors
from optimizer.models import CampaignOptimization
from optimizer.services import recommendations as services

Opt = CampaignOptimization
CHANGES_SHOWN = 50


def configuration(campaign: Campaign) -> dict:
    """The campaign's live settings as the page shows them."""
    targeted = list(campaign.target_segments.order_by("name").values_list("name", flat=True))
    offers = campaign_selectors.offers_by_segment(campaign, targeted or None)
    own = campaign_selectors.segment_offer_overrides(campaign)
    label = campaign_selectors.setting_label
    return {
        "default_offer": label(CampaignChange.Field.OFFER, campaign_selectors.setting_value(campaign, "offer")),
        "offers": [
            {"segment": name, "offer": label(CampaignChange.Field.OFFER, offer.offer_id if offer else ""), "own": name in own}
            for name, offer in offers.items()
        ],
        "send_time_policy": label(
            CampaignChange.Field.SEND_TIME_POLICY, campaign_selectors.setting_value(campaign, "send_time_policy")
        ),
        "send_time": label(CampaignChange.Field.SEND_TIME, campaign_selectors.setting_value(campaign, "send_time")),
        "target_segments": targeted,
        "promoted_merchants": list(campaign.promoted_merchants.order_by("merchant_id").values_list("merchant_id", "name")),
    }


def trend_markers(changes: list[CampaignChange], start: dt.date, end: dt.date) -> list[tuple[dt.datetime, str]]:
    """(when, label) of each logged change inside the page's range, for the trend chart."""
    out = []
    for c in changes:
        if start <= c.changed_at.date() <= end:
            where = f" {c.segment}" if c.segment else ""
            out.append((c.changed_at, f"{c.field}{where}: {c.new_value or '-'} ({c.get_source_display()})"))
    return out


def hub_context(request: HttpRequest, campaign: Campaign) -> dict:
    rows = selectors.optimization_list(campaign_id=campaign.campaign_id)
    open_rows = list(rows.filter(status=Opt.Status.PROPOSED))
    for row in open_rows:
        row.stale_message = services.check_live(campaign, row)[2]
    decided = list(rows.filter(status__in=[Opt.Status.APPLIED, Opt.Status.UNDONE]).order_by("-applied_at", "-pk")[:20])
    preview = None
    wanted = row_number(request.GET.get("preview"))
    if wanted is not None:
        row = rows.filter(pk=wanted).first()
        preview = selectors.optimization_preview(row) if row is not None else None
    changes = list(campaign_selectors.campaign_changes(campaign, limit=CHANGES_SHOWN))
    return {
        "hub_config": configuration(campaign),
        "hub_tests": list(ab_selectors.abtest_list(campaign_id=campaign.campaign_id)[:20]),
        "hub_open": open_rows,
        "hub_applied": decided,
        "hub_preview": preview,
        "hub_changes": changes,
        "hub_can_act": is_marketer(request.user),
    }


@login_required
@require_POST
def hub_action(request: HttpRequest, campaign_id: str, verb: str) -> HttpResponse:
    """Apply / undo / dismiss one proposal, or regenerate the campaign's proposals; back to the campaign page."""
    if not is_marketer(request.user):
        raise PermissionDenied("Changing a campaign needs the marketer role.")
    campaign = get_object_or_404(Campaign, campaign_id=campaign_id)
    back = reverse("analytics-campaign-page", args=[campaign.campaign_id]) + "#hub"
    try:
        if verb == "regenerate":
            services.regenerate_for_campaign(campaign)
            messages.success(request, "Recommendations recomputed against the campaign's live settings.")
            return redirect(back)
        wanted = row_number(request.POST.get("optimization"))
        opt = get_object_or_404(Opt, pk=wanted, campaign=campaign) if wanted is not None else None
        action = {"apply": services.apply_optimization, "undo": services.undo_optimization,
                  "dismiss": services.dismiss_optimization}.get(verb)
        if action is None or opt is None:
            messages.error(request, f"Unknown action {verb!r} or no recommendation given.")
            return redirect(back)
        opt = action(opt, request.user)
    except DomainError as exc:  # Conflict / StaleValue: the message says what changed and what to do
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Recommendation {opt.pk} ({opt.recommendation_type} {opt.target or ''} -> {opt.recommended_value}): {opt.status}.")
    return redirect(back)

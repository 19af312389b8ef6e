"""The campaign page in a real browser: preview a recommendation, apply it, undo it, and read the change log."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.services import aggregate_days
from campaigns import selectors as campaign_selectors
from campaigns.models import CampaignChange
from optimizer.models import CampaignOptimization
from tests.factories import CampaignFactory, EventFactory, OfferFactory, SegmentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _a_week_of_views(campaign) -> None:
    """Events on the trend's days (a campaign without any shows "no data yet" instead of a chart)."""
    today = timezone.now().date()
    for days_ago in range(1, 4):
        EventFactory(campaign=campaign, type="view", occurred_at=timezone.now() - dt.timedelta(days=days_ago))
    aggregate_days(start=today - dt.timedelta(days=7), end=today)


def test_preview_then_apply_then_undo_on_the_campaign_page(logged_in_page):
    page, base = logged_in_page
    ten = OfferFactory(offer_id="off_10pct", value=Decimal(10))
    OfferFactory(offer_id="off_40pct", value=Decimal(40))
    campaign = CampaignFactory(campaign_id="camp_browser", current_offer=ten, send_time=dt.time(9))
    campaign.target_segments.set([SegmentFactory(name="new_users"), SegmentFactory(name="returning_users")])
    _a_week_of_views(campaign)
    opt = CampaignOptimization.objects.create(
        campaign=campaign, recommendation_type="offer", target="new_users", current_value="10", recommended_value="40",
        live_value="off_10pct", expected_impact=22.0, confidence=0.95, affected_users=321, priority=1,
        details={"impact_interval": {"low": 8.0, "high": 35.5, "level": 0.9}},
    )

    page.goto(f"{base}/analytics/campaign/camp_browser/")
    page.locator(f"a[data-hub-preview='{opt.pk}']").click()
    preview = page.locator(f"[data-preview='{opt.pk}']")
    preview.wait_for()
    assert preview.locator("[data-preview-from]").inner_text() == "10% off (off_10pct)"
    assert preview.locator("[data-preview-to]").inner_text() == "40% off (off_40pct)"
    assert preview.locator("[data-preview-reach]").inner_text() == "321"
    assert "90% interval 8.0 to 35.5" in preview.locator("[data-preview-interval]").inner_text()
    assert not CampaignChange.objects.exists()  # previewing wrote nothing

    preview.locator(f"button[data-hub-apply='{opt.pk}']").click()
    page.wait_for_selector(".messages .msg")
    assert "applied" in page.locator(".messages").inner_text()
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_40pct"
    assert campaign_selectors.effective_offer_id(campaign, "returning_users") == "off_10pct"  # one segment only
    assert "40% off (off_40pct)" in page.locator("tr[data-segment-offer='new_users']").inner_text()
    assert page.locator("tr[data-change-source='recommendation']").count() == 1
    page.wait_for_selector("#chart-trend .main-svg")
    assert "offer new_users: off_40pct" in page.locator("#chart-trend").inner_text()  # the change marked on the chart

    page.locator(f"button[data-hub-undo='{opt.pk}']").click()
    page.wait_for_selector(f"tr[data-hub-applied='{opt.pk}'] .badge.undone")
    assert "undone" in page.locator(".messages").inner_text()
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_10pct"
    assert "the default" in page.locator("tr[data-segment-offer='new_users']").inner_text()
    assert page.locator("tr[data-change-source='undo']").count() == 1
    opt.refresh_from_db()
    assert opt.status == "undone"

"""The /optimize/ page in a real browser: apply a recommendation and see the campaign change."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Event
from optimizer.models import CampaignOptimization, MLModel, UserMerchantAffinity, UserSendTime
from tests.factories import CampaignFactory, CustomerFactory, MerchantFactory, OfferFactory, SegmentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_apply_on_the_page_changes_the_campaign_send_time(logged_in_page):
    page, base = logged_in_page
    campaign = CampaignFactory(campaign_id="camp_page", send_time=dt.time(3, 0))
    timing = CampaignOptimization.objects.create(
        campaign=campaign, recommendation_type="timing", current_value="03:00", recommended_value="19:00",
        expected_impact=12.5, confidence=0.97, affected_users=120, priority=1,
    )
    offer = CampaignOptimization.objects.create(
        campaign=campaign, recommendation_type="offer", target="new_users", current_value="0", recommended_value="20",
        expected_impact=30, confidence=0.9, affected_users=50, priority=2,
    )

    page.goto(f"{base}/optimize/")
    row = page.locator(f"tr[data-recommendation='{timing.pk}']")
    assert "19:00" in row.locator("[data-recommended]").inner_text()
    assert page.locator(f"#recommendations-offer tr[data-recommendation='{offer.pk}']").count() == 1
    row.locator("button[data-apply]").click()
    page.wait_for_selector(".messages .msg")  # the POST redirected back with a message

    campaign.refresh_from_db()
    timing.refresh_from_db()
    assert campaign.send_time == dt.time(19, 0)
    assert (timing.status, timing.applied_by.username) == ("applied", "browser-marketer")
    assert "applied" in page.locator(".messages").inner_text()
    # The default view lists proposed ones only; the applied one shows under "applied".
    assert page.locator(f"tr[data-recommendation='{timing.pk}']").count() == 0
    page.goto(f"{base}/optimize/?status=applied")
    assert page.locator(f"tr[data-recommendation='{timing.pk}'] [data-status]").inner_text() == "applied"


def test_page_draws_heatmap_offer_chart_registry_and_a_customer_top_merchants(logged_in_page):
    page, base = logged_in_page
    customer = CustomerFactory(customer_id="user_page", timezone="Europe/Berlin")
    merchant = MerchantFactory(merchant_id="m_page", name="Corner Bakery")
    UserMerchantAffinity.objects.create(customer=customer, merchant=merchant, affinity_score=0.8, engagement_level="high")
    UserSendTime.objects.create(customer=customer, local_send_time=dt.time(19), utc_send_time=dt.time(18),
                                expected_improvement=10, events_used=25, method="personal")
    campaign = CampaignFactory()
    twenty = OfferFactory(offer_id="off_20pct", value=Decimal(20))
    now = timezone.now() - dt.timedelta(days=1)
    for i in range(30):
        Event.objects.create(event_id=f"p{i}", type="notification_sent", occurred_at=now, customer=customer, campaign=campaign, offer=twenty)
    Event.objects.create(event_id="p-open", type="notification_opened", occurred_at=now, customer=customer, campaign=campaign)
    Event.objects.create(event_id="p-conv", type="conversion", occurred_at=now, customer=customer, campaign=campaign, offer=twenty, amount=Decimal("32"))
    MLModel.objects.create(model_type="conversion", version=1, accuracy=0.7, primary_metric="roc_auc")
    MLModel.objects.create(model_type="conversion", version=2, accuracy=0.72, primary_metric="roc_auc", is_active=True)

    page.goto(f"{base}/optimize/?customer_id=user_page")
    page.wait_for_selector("#open-heatmap .main-svg")
    page.wait_for_selector("#offer-response .main-svg")
    page.wait_for_selector("#model-metrics .main-svg")
    assert "recommended 19:00" in page.locator("#open-heatmap").inner_text()
    assert "Corner Bakery" in page.locator("#top-merchants tr[data-merchant='m_page']").inner_text()
    assert page.locator("#model-registry .badge.active").count() == 1
    assert Campaign.objects.count() == 1


def test_on_a_phone_the_apply_button_is_on_screen_without_scrolling_the_table(logged_in_page):
    page, base = logged_in_page
    ten = OfferFactory(offer_id="off_10pct", value=Decimal(10))
    campaign = CampaignFactory(campaign_id="camp_phone", name="A campaign with a long name", current_offer=ten)
    campaign.target_segments.set([SegmentFactory(name="returning_users")])
    rec = CampaignOptimization.objects.create(  # computed against the live offer (else apply is refused as stale)
        campaign=campaign, recommendation_type="offer", target="returning_users", current_value="10", live_value="off_10pct",
        recommended_value="25", rationale="converts better at 25 % than at 10 % in this segment",
        expected_impact=12.5, confidence=0.9, affected_users=1200, priority=1,
    )
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/optimize/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    button = page.locator(f"button[data-apply='{rec.pk}']").bounding_box()
    assert button["x"] >= 0 and button["x"] + button["width"] <= 390
    page.locator(f"button[data-apply='{rec.pk}']").click()  # reachable: the click lands, nothing covers it
    page.wait_for_selector(".messages .msg")
    assert "A campaign with a long name: offer 10 → 25 (applied)." in page.locator(".messages").inner_text()


def overflow(page) -> dict:
    """How far the page and each proposal table reach past their boxes, in CSS pixels (0 = fits)."""
    return page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth - window.innerWidth,
            tables: [...document.querySelectorAll('table.proposals')].map(t => t.scrollWidth - t.clientWidth),
            cells: [...document.querySelectorAll('table.proposals td')].filter(td => td.scrollWidth > td.clientWidth + 1).length,
        })"""
    )


@pytest.fixture
def many_proposals():
    """45 offer proposals over 3 campaigns (3 pages of 20), 2 timing ones, long rationales and ids."""
    campaigns = [CampaignFactory(campaign_id=f"camp_long_identifier_{i:02d}", name=f"Spring reactivation push number {i}") for i in range(3)]
    offers = []
    for i in range(45):
        offers.append(CampaignOptimization.objects.create(
            campaign=campaigns[i % 3], recommendation_type="offer", target=f"segment_with_a_long_name_{i}",
            current_value="10", recommended_value=str(20 + i), expected_impact=100 - i, confidence=0.95, affected_users=1000 + i,
            priority=1, rationale="The expected profit per send is highest at this offer for this segment; " * 3,
        ))
    timing = [CampaignOptimization.objects.create(
        campaign=campaigns[i], recommendation_type="timing", current_value="fixed 09:00", recommended_value="personal",
        expected_impact=4.0, confidence=0.9, affected_users=500, priority=2, rationale=f"Campaign {i}: personal hours.",
    ) for i in range(2)]
    return campaigns, offers, timing


@pytest.mark.parametrize("width, height", [(1440, 900), (390, 844)])
def test_proposals_are_paged_filtered_and_fit_the_screen(logged_in_page, many_proposals, width, height):
    page, base = logged_in_page
    campaigns, offers, timing = many_proposals
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{base}/optimize/")

    offer_rows = page.locator("#recommendations-offer tbody tr")
    assert offer_rows.count() == 20
    assert "(45)" in page.locator("#recommendations-offer [data-count]").inner_text()
    assert "page 1 of 3" in page.locator("[data-pager=offer]").inner_text()
    assert overflow(page) == {"page": 0, "tables": [0, 0], "cells": 0}
    if width < 640:  # a phone: one card per proposal, each value labelled, the header row hidden
        assert not page.locator("#recommendations-offer thead").is_visible()
        assert page.locator("#recommendations-offer tbody tr").first.evaluate("tr => getComputedStyle(tr).display") == "block"
    assert page.locator(f"button[data-apply='{offers[0].pk}']").is_visible()

    page.locator("[data-pager=offer] a[rel=next]").click()
    page.wait_for_url(lambda url: "page_offer=2" in url)
    shown = {int(pk) for pk in page.locator("#recommendations-offer tbody tr").evaluate_all("rows => rows.map(r => r.dataset.recommendation)")}
    assert shown == {o.pk for o in offers[20:40]}  # best first: the second 20 by expected impact

    # Filters: one type and one campaign.
    page.select_option("#proposal-filters select[name=type]", "timing")
    page.select_option("#proposal-filters select[name=campaign]", campaigns[1].campaign_id)
    page.locator("#proposal-filters button[type=submit]").click()
    page.wait_for_url(lambda url: "type=timing" in url)
    assert page.locator("#recommendations-offer").count() == 0
    rows = page.locator("#recommendations-timing tbody tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-recommendation") == str(timing[1].pk)
    assert overflow(page)["page"] == 0

"""The dashboard in a real browser: the charts are drawn, and the range filter changes the figures."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from analytics import services
from tests.factories import CampaignFactory, EventFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dashboard_draws_its_charts_and_the_range_changes_the_numbers(logged_in_page):
    today = timezone.now().date()
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC)
    campaign = CampaignFactory(campaign_id="camp_browser", name="Browser campaign")
    for days_ago in (0, 1, 2, 20, 21, 60):
        EventFactory(campaign=campaign, type="view", occurred_at=noon - dt.timedelta(days=days_ago))
    services.aggregate_days(start=today - dt.timedelta(days=89), end=today)

    page, base = logged_in_page
    page.goto(f"{base}/analytics/?days=7")
    for chart in ("#chart-trend", "#chart-segments", "#chart-funnel"):
        page.wait_for_selector(f"{chart} .main-svg")
    assert page.locator("#chart-trend .scatterlayer .trace").count() == 3
    assert page.locator("[data-kpi=views] .value").inner_text() == "3"

    page.click("a[data-range='30']")
    page.wait_for_url("**/analytics/?days=30*")
    page.wait_for_selector("#chart-trend .main-svg")
    assert page.locator("[data-kpi=views] .value").inner_text() == "5"

    page.click("a[data-range='90']")
    page.wait_for_url("**/analytics/?days=90*")
    assert page.locator("[data-kpi=views] .value").inner_text() == "6"

    # Weekly interval, then to the campaign's own page through the picker.
    page.click("a[data-interval='weekly']")
    page.wait_for_selector("#chart-trend .main-svg")
    page.select_option("select[name=campaign_id]", "camp_browser")
    page.click("form[action='/analytics/campaign/'] button[type=submit]")
    page.wait_for_url("**/analytics/campaign/camp_browser/*")
    page.wait_for_selector("#chart-funnel .main-svg")
    assert page.locator("[data-kpi=views] .value").inner_text() == "6"

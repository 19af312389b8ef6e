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
    # Views and conversions, each solid over complete days and dotted into today (partial); revenue as bars.
    assert page.locator("#chart-trend .scatterlayer .trace").count() == 4
    assert page.locator("#chart-trend .barlayer .trace").count() == 1
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


def _events(campaign, today, spec):
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC)
    for days_ago, kind, n in spec:
        for _ in range(n):
            EventFactory(campaign=campaign, type=kind, occurred_at=noon - dt.timedelta(days=days_ago))


def test_trend_shades_today_as_partial_and_overlays_the_previous_period_on_click(logged_in_page):
    today = timezone.now().date()
    campaign = CampaignFactory(campaign_id="camp_partial", name="Partial campaign")
    _events(campaign, today, [(0, "view", 2), (1, "view", 9), (2, "view", 8), (8, "view", 6), (9, "view", 7)])
    services.aggregate_days(start=today - dt.timedelta(days=20), end=today)

    page, base = logged_in_page
    page.goto(f"{base}/analytics/campaign/camp_partial/?days=7")
    page.wait_for_selector("#chart-trend .main-svg")
    assert page.locator("#chart-trend .annotation-text", has_text="today so far").count() == 1
    assert page.locator("#chart-trend .shapelayer path").count() >= 1  # the shaded band
    # The views change compares yesterday and the 5 days before it (17) with the 6 days before those (13).
    assert page.locator("[data-kpi=views] [data-change]").inner_text() == "▲ 30.8 %"
    legend = page.locator("#chart-trend .legend .traces", has_text="Views, previous period")
    before = page.locator("#chart-trend .scatterlayer .trace").count()
    legend.click()
    # A selector wait, not wait_for_function: the Content-Security-Policy forbids evaluating strings.
    page.wait_for_selector(f"#chart-trend .scatterlayer .trace >> nth={before}", state="attached")


def test_empty_campaign_shows_no_data_yet_on_desktop_and_phone(logged_in_page):
    CampaignFactory(campaign_id="camp_none", name="Nothing yet", status="draft")
    page, base = logged_in_page
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}/analytics/campaign/camp_none/?days=30")
        assert page.locator("[data-empty-state] h2").inner_text() == "No data yet"
        assert page.locator("[data-kpi=conversion_rate] .value").inner_text() == "no views yet"
        assert page.locator(".chart").count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_segment_table_sorts_and_highlights_the_best_segment(logged_in_page):
    from tests.factories import CustomerFactory, SegmentFactory

    today = timezone.now().date()
    campaign = CampaignFactory(campaign_id="camp_seg")
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC) - dt.timedelta(days=1)
    for name, views, conversions in (("new_users", 50, 2), ("returning_users", 40, 10), ("high_value_users", 60, 30)):
        customer = CustomerFactory(segment=SegmentFactory(name=name))
        for kind, n in (("view", views), ("conversion", conversions)):
            for _ in range(n):
                EventFactory(campaign=campaign, customer=customer, type=kind, occurred_at=noon)
    services.aggregate_days(start=today - dt.timedelta(days=3), end=today)

    page, base = logged_in_page
    page.goto(f"{base}/analytics/campaign/camp_seg/?days=7")
    assert page.locator("tr.best").get_attribute("data-segment") == "high_value_users"
    assert "high_value_users" in page.locator("[data-best-segment]").inner_text()
    names = lambda: [r.get_attribute("data-segment") for r in page.locator("table[data-segments] tbody tr").all()]  # noqa: E731
    assert names() == ["high_value_users", "new_users", "returning_users"]  # by name, as served
    page.click("table[data-segments] th:has-text('Views')")
    assert names() == ["high_value_users", "new_users", "returning_users"]  # 60, 50, 40: largest first
    page.click("table[data-segments] th:has-text('Views')")
    assert names() == ["returning_users", "new_users", "high_value_users"]
    page.click("table[data-segments] th:has-text('Conv. rate')")
    assert names() == ["high_value_users", "returning_users", "new_users"]  # 50 %, 25 %, 4 %


def test_analytics_pages_fit_a_390px_phone(logged_in_page):
    today = timezone.now().date()
    campaign = CampaignFactory(campaign_id="camp_phone_with_a_long_identifier", name="A campaign with a rather long name for a phone")
    _events(campaign, today, [(0, "view", 2), (1, "view", 3), (1, "notification_sent", 9)])
    services.aggregate_days(start=today - dt.timedelta(days=3), end=today)
    page, base = logged_in_page
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/analytics/?days=7", f"/analytics/campaign/{campaign.campaign_id}/?days=7"):
        page.goto(base + path)
        page.wait_for_selector("#chart-trend .main-svg")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        # The mode bar (top right) and the chart title do not overlap.
        page.hover("#chart-trend .nsewdrag")
        bar = page.locator("#chart-trend .modebar").bounding_box()
        title = page.locator("#chart-trend .gtitle").bounding_box()
        assert bar["y"] + bar["height"] <= title["y"] or bar["x"] >= title["x"] + title["width"], (bar, title)


def test_a_marketer_subscribes_to_alerts_on_a_phone_and_a_failed_job_is_mailed(logged_in_page):
    from django.core import mail

    from analytics import alerts
    from marketing_ai.models import JobRun

    page, base = logged_in_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/analytics/?days=7")
    page.click("a[href='/analytics/alerts/']")
    page.fill("input[name=email]", "marketer@example.com")
    page.check("input[value=job_failed]")
    page.click("form[data-alerts-form] button[type=submit]")
    page.wait_for_selector(".messages .msg")
    assert "Alerts for every campaign to marketer@example.com" in page.locator(".messages").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("input[value=job_failed]").is_checked()

    JobRun.objects.create(job="daily_analytics", status="failed", error="boom")
    assert alerts.send_due() == 1 and mail.outbox[-1].to == ["marketer@example.com"]
    page.reload()
    assert "Job daily_analytics failed" in page.locator(".card", has_text="Last alerts sent").inner_text()

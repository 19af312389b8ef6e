"""The analytics pages render the selectors' figures (server side) and guard their one write."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics import services
from analytics.models import CampaignAnalyticsDaily
from tests.factories import CampaignFactory, EventFactory

TODAY = timezone.now().date()


@pytest.fixture
def campaign(db):
    c = CampaignFactory(campaign_id="camp_page", name="Page campaign")
    noon = dt.datetime.combine(TODAY, dt.time(12), tzinfo=dt.UTC)
    for days_ago, n in ((0, 3), (20, 7)):
        for _ in range(n):
            EventFactory(campaign=c, type="view", occurred_at=noon - dt.timedelta(days=days_ago))
    EventFactory(campaign=c, type="conversion", occurred_at=noon, amount=Decimal("30"))
    services.aggregate_days(start=TODAY - dt.timedelta(days=30), end=TODAY)
    return c


def _kpi(html: str, name: str) -> str:
    start = html.index(f'data-kpi="{name}"')
    value = html.index('class="value">', start) + len('class="value">')
    return html[value : html.index("</div>", value)]


def test_pages_need_login(client, db):
    assert client.get("/analytics/").status_code == 302


def test_portfolio_page_shows_kpis_charts_table_and_csv_links(client, marketer, campaign):
    client.force_login(marketer)
    html = client.get("/analytics/?days=7").content.decode()
    assert _kpi(html, "views") == "3" and _kpi(html, "roi") == "n/a"
    for chart in ("chart-trend", "chart-segments", "chart-funnel"):
        assert f'id="{chart}"' in html
    assert 'data-campaign="camp_page"' in html
    assert "/api/analytics/portfolio?days=7&amp;format=csv" in html
    assert _kpi(client.get("/analytics/?days=30").content.decode(), "views") == "10"


def test_campaign_page_and_its_csv_links(client, marketer, campaign):
    client.force_login(marketer)
    html = client.get("/analytics/campaign/camp_page/?days=30&interval=weekly").content.decode()
    assert "Page campaign" in html and _kpi(html, "conversion_rate") == "10.00%"
    assert "/api/analytics/campaign/camp_page/trends?days=30&amp;format=csv&amp;interval=weekly" in html


def test_bad_range_on_a_page_falls_back_with_a_message(client, marketer, campaign):
    client.force_login(marketer)
    html = client.get("/analytics/?days=12").content.decode()
    assert "Invalid range" in html and "7, 30, 90" in html


def test_hourly_switch_asks_for_the_days_it_covers_and_draws_hours(client, marketer, campaign):
    client.force_login(marketer)
    html = client.get("/analytics/campaign/camp_page/?days=30").content.decode()
    assert 'href="?days=7&amp;interval=hourly"' in html  # the hourly link narrows a 30-day range to 7
    html = client.get("/analytics/campaign/camp_page/?days=7&interval=hourly").content.decode()
    assert "Invalid interval" not in html and "Performance trend (hourly" in html
    assert f"{TODAY.isoformat()}T12:00:00+00:00" in html  # the noon events' hour is a point of the chart
    assert 'href="?days=30&amp;interval=daily"' in html  # a longer range switches back to daily
    html = client.get("/analytics/campaign/camp_page/?days=90&interval=hourly").content.decode()
    assert "Invalid interval" in html and "last 7 days" in html


def test_picker_goes_to_the_campaign_page_keeping_the_range(client, marketer, campaign):
    client.force_login(marketer)
    response = client.get("/analytics/campaign/?campaign_id=camp_page&days=7&interval=daily")
    assert response.status_code == 302 and response["Location"] == "/analytics/campaign/camp_page/?days=7&interval=daily"


def test_unknown_campaign_page_returns_to_the_portfolio(client, marketer, db):
    client.force_login(marketer)
    assert client.get("/analytics/campaign/nope/")["Location"] == "/analytics/"


def test_marketer_can_reaggregate_now_and_viewer_cannot(client, marketer, viewer, campaign):
    CampaignAnalyticsDaily.objects.all().delete()
    client.force_login(viewer)
    assert client.post("/analytics/refresh", {"next": "/analytics/"}).status_code == 403
    assert not CampaignAnalyticsDaily.objects.exists()
    client.force_login(marketer)
    response = client.post("/analytics/refresh", {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/analytics/"
    assert CampaignAnalyticsDaily.objects.filter(date=TODAY).exists()

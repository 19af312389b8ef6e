"""What the dashboard tells a marketer: partial periods, comparisons, empty states, the best segment."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.utils import timezone
from statsmodels.stats.proportion import proportion_confint

from analytics import selectors, services
from analytics.selectors import Period
from campaigns.models import Segment
from tests.factories import CampaignFactory, CustomerFactory, EventFactory, SegmentFactory


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def _kpi_block(html: str, name: str) -> str:
    start = html.index(f'data-kpi="{name}"')
    ends = [i for i in (html.find("data-kpi=", start + 1), html.find("</section>", start)) if i > 0]
    return html[start : min(ends)]


@pytest.mark.parametrize("now, interval, expected", [
    (dt.datetime(2026, 12, 2, 6, 40, tzinfo=dt.UTC), "hourly", dt.datetime(2026, 12, 2, 6, tzinfo=dt.UTC)),
    (dt.datetime(2026, 12, 2, 6, 40, tzinfo=dt.UTC), "daily", dt.date(2026, 12, 2)),
    (dt.datetime(2026, 12, 2, 6, 40, tzinfo=dt.UTC), "weekly", dt.date(2026, 11, 30)),  # a Wednesday: Monday 30 Nov
    (dt.datetime(2026, 12, 2, 6, 40, tzinfo=dt.UTC), "monthly", dt.date(2026, 12, 1)),
    (dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC), "weekly", dt.date(2026, 11, 30)),  # Monday midnight starts a week
])
def test_current_period_start_is_the_period_under_way(now, interval, expected):
    assert selectors.current_period_start(interval, now) == expected


@pytest.mark.django_db
@pytest.mark.parametrize("interval", ["daily", "weekly", "monthly"])
def test_only_the_period_under_way_is_marked_partial(interval):
    campaign = CampaignFactory()
    today = timezone.now().date()
    for days_ago in (0, 3, 9, 40):
        EventFactory(campaign=campaign, type="view", occurred_at=_noon(today - dt.timedelta(days=days_ago)))
    services.aggregate_days(start=today - dt.timedelta(days=89), end=today)
    points = selectors.trends(Period.from_query({"days": "90"}), interval, campaign)
    current = {"daily": today, "weekly": today - dt.timedelta(days=today.weekday()), "monthly": today.replace(day=1)}[interval]
    assert [p.date for p in points if p.partial] == [current]
    assert points[-1].partial and not any(p.partial for p in points[:-1])
    # A range that ended before today has no partial point at all.
    past = Period(today - dt.timedelta(days=60), today - dt.timedelta(days=40))
    if interval == "daily":
        assert not any(p.partial for p in selectors.trends(past, interval, campaign))


@pytest.mark.django_db
def test_comparison_leaves_today_out_and_uses_the_same_number_of_days_before():
    campaign = CampaignFactory()
    other = CampaignFactory()
    today = timezone.now().date()
    rng = random.Random(7)
    views_by_day = {today - dt.timedelta(days=d): rng.randrange(0, 5) for d in range(0, 20)}
    conversions_by_day = {day: rng.randrange(0, 2) for day in views_by_day}
    for day, n in views_by_day.items():
        for _ in range(n):
            EventFactory(campaign=campaign, type="view", occurred_at=_noon(day))
        for _ in range(conversions_by_day[day]):
            EventFactory(campaign=campaign, type="conversion", occurred_at=_noon(day), amount=Decimal("10"))
        EventFactory(campaign=other, type="view", occurred_at=_noon(day))  # not this campaign's
    services.aggregate_days(start=today - dt.timedelta(days=19), end=today)

    c = selectors.comparison(Period.from_query({"days": "7"}), campaign)
    assert c.today_left_out
    assert (c.current.start, c.current.end) == (today - dt.timedelta(days=6), today - dt.timedelta(days=1))
    assert (c.previous.start, c.previous.end) == (today - dt.timedelta(days=12), today - dt.timedelta(days=7))
    now = sum(views_by_day[today - dt.timedelta(days=d)] for d in range(1, 7))
    before = sum(views_by_day[today - dt.timedelta(days=d)] for d in range(7, 13))
    assert (c.current_totals.views, c.previous_totals.views) == (now, before)
    change = c.change("views")
    if before:
        assert change.value == pytest.approx((now - before) / before * 100) and change.unit == "%"
    else:
        assert change.value is None and change.reason
    conv_now = sum(conversions_by_day[today - dt.timedelta(days=d)] for d in range(1, 7))
    conv_before = sum(conversions_by_day[today - dt.timedelta(days=d)] for d in range(7, 13))
    rate = c.change("conversion_rate")
    if now and before:
        assert rate.unit == "pp" and rate.value == pytest.approx((conv_now / now - conv_before / before) * 100)
    # A range of only today cannot be compared.
    assert selectors.comparison(Period(today, today), campaign) is None


@pytest.mark.django_db
def test_change_is_undefined_not_infinite_when_the_previous_period_had_nothing():
    campaign = CampaignFactory()
    today = timezone.now().date()
    EventFactory(campaign=campaign, type="view", occurred_at=_noon(today - dt.timedelta(days=1)))
    services.aggregate_days(start=today - dt.timedelta(days=20), end=today)
    c = selectors.comparison(Period.from_query({"days": "7"}), campaign)
    assert c.change("views").value is None and c.change("views").reason == "none in the previous period"
    assert c.change("conversions").reason == "none in either period"
    assert c.change("conversion_rate").value is None


@pytest.mark.django_db
def test_best_segment_is_the_highest_rate_and_says_whether_the_intervals_separate():
    campaign = CampaignFactory()
    today = timezone.now().date()
    planted = {Segment.HIGH_VALUE_USERS: (400, 120), Segment.NEW_USERS: (400, 40), Segment.RETURNING_USERS: (5, 1)}
    for name, (views, conversions) in planted.items():
        customer = CustomerFactory(segment=SegmentFactory(name=name))
        for i in range(views):
            EventFactory(campaign=campaign, customer=customer, type="view", occurred_at=_noon(today - dt.timedelta(days=1 + i % 5)))
        for i in range(conversions):
            EventFactory(campaign=campaign, customer=customer, type="conversion", occurred_at=_noon(today - dt.timedelta(days=1 + i % 5)))
    services.aggregate_days(start=today - dt.timedelta(days=10), end=today)
    rows = selectors.segments(Period.from_query({"days": "7"}), campaign)
    best = selectors.best_segment(rows)
    assert best.row.segment_name == Segment.HIGH_VALUE_USERS and best.runner_up.segment_name == Segment.RETURNING_USERS
    # 30 % of 400 against 1 of 5 (20 %): statsmodels' Wilson intervals overlap, so the page must not rank them.
    low_best, _ = proportion_confint(120, 400, method="wilson")
    _, high_runner = proportion_confint(1, 5, method="wilson")
    assert best.separated == (low_best > high_runner) and not best.separated

    two = [r for r in rows if r.segment_name != Segment.RETURNING_USERS]
    best = selectors.best_segment(two)
    assert best.runner_up.segment_name == Segment.NEW_USERS and best.separated
    assert selectors.best_segment([r for r in rows if False]) is None


@pytest.mark.django_db
def test_a_campaign_without_data_says_no_data_yet_instead_of_zero_rates(client, marketer):
    CampaignFactory(campaign_id="camp_empty", name="Empty", status="draft")
    client.force_login(marketer)
    html = client.get("/analytics/campaign/camp_empty/?days=30").content.decode()
    rate = _kpi_block(html, "conversion_rate")
    assert "no views yet" in rate and "0.00%" not in rate and "CI" not in rate
    assert "data-empty-state" in html and "No data yet" in html and "draft" in html
    for chart in ("chart-trend", "chart-segments", "chart-funnel"):
        assert f'id="{chart}"' not in html
    assert "No segment activity in this range yet." in html
    assert "0.00–0.00" not in html


@pytest.mark.django_db
def test_page_shows_the_change_against_the_previous_days_and_says_what_it_compares(client, marketer):
    campaign = CampaignFactory(campaign_id="camp_cmp")
    today = timezone.now().date()
    for days_ago, n in ((1, 6), (8, 4), (0, 50)):  # today's 50 views count in the total, not in the change
        for _ in range(n):
            EventFactory(campaign=campaign, type="view", occurred_at=_noon(today - dt.timedelta(days=days_ago)))
    services.aggregate_days(start=today - dt.timedelta(days=20), end=today)
    client.force_login(marketer)
    html = client.get("/analytics/campaign/camp_cmp/?days=7").content.decode()
    views = _kpi_block(html, "views")
    assert '<div class="value">56</div>' in views
    assert "▲ 50.0 %" in views  # 6 against 4 over the complete days; today's 50 are left out
    assert "today is still under way, so it is left out of both" in html
    assert "conversions / views" in html and "of sends" in html


@pytest.mark.django_db
def test_trend_chart_shades_and_labels_today_and_offers_the_previous_period(client, marketer):
    campaign = CampaignFactory(campaign_id="camp_trend")
    today = timezone.now().date()
    EventFactory(campaign=campaign, type="view", occurred_at=_noon(today))
    services.aggregate_days(start=today - dt.timedelta(days=20), end=today)
    client.force_login(marketer)
    html = client.get("/analytics/campaign/camp_trend/?days=7").content.decode()
    assert "today so far" in html and '"dash":"dot"' in html.replace(" ", "")
    assert "Views, previous period" in html and '"visible":"legendonly"' in html.replace(" ", "")
    assert "revenue ($)" in html and "$" in html


@pytest.mark.django_db
def test_campaign_page_shows_the_optimisers_segment_ranking_as_the_api_answers_it(client, marketer):
    campaign = CampaignFactory(campaign_id="camp_rank")
    rng = random.Random(3)
    for name in (Segment.NEW_USERS, Segment.HIGH_VALUE_USERS):
        for _ in range(3):
            customer = CustomerFactory(segment=SegmentFactory(name=name))
            for _ in range(rng.randrange(2, 6)):
                EventFactory(campaign=campaign, customer=customer, type="notification_sent",
                             occurred_at=timezone.now() - dt.timedelta(days=2))
            if name == Segment.HIGH_VALUE_USERS:
                EventFactory(campaign=campaign, customer=customer, type="conversion", amount=Decimal("20"),
                             occurred_at=timezone.now() - dt.timedelta(days=1))
    client.force_login(marketer)
    answer = client.get("/api/optimize/segments/camp_rank").json()
    html = client.get("/analytics/campaign/camp_rank/").content.decode()
    assert "data-optimizer-segments" in html and "of <strong>sends</strong>" in html
    rows = [html.index(f'data-rank-segment="{r["segment"]}"') for r in answer]
    assert rows == sorted(rows) and len(rows) >= 2  # the page lists the API's rows in the API's order
    top = answer[0]
    assert top["segment"] == Segment.HIGH_VALUE_USERS
    assert f'{top["expected_conversion_rate"] * 100:.1f}%' in html


@pytest.mark.django_db
def test_campaign_without_sends_says_there_is_nothing_to_rank(client, marketer):
    CampaignFactory(campaign_id="camp_norank")
    client.force_login(marketer)
    html = client.get("/analytics/campaign/camp_norank/").content.decode()
    assert "nothing to rank segments by" in html


@pytest.mark.parametrize("query, field, words", [
    ({"from": "2026-11-01", "to": "2026-12-03"}, "to", "must not be after today (2026-12-02, UTC)"),
    ({"from": "2027-01-01"}, "from", "must not be after today"),
    ({"from": "2024-01-01", "to": "2026-12-01"}, "from", "at most 366 days (one year); this one spans 1066"),
])
def test_future_and_multi_year_ranges_are_refused_with_the_reason(query, field, words):
    from marketing_ai.api import BadRequest

    with pytest.raises(BadRequest) as caught:
        Period.from_query(query, today=dt.date(2026, 12, 2))
    assert words in " ".join(map(str, caught.value.fields[field]))


def test_a_leap_year_is_within_the_bound():
    period = Period.from_query({"from": "2024-01-01", "to": "2024-12-31"}, today=dt.date(2026, 12, 2))
    assert period.length == 366


@pytest.mark.django_db
def test_page_and_api_refuse_a_future_range_with_a_message(client, marketer, api):
    tomorrow = (timezone.now().date() + dt.timedelta(days=1)).isoformat()
    client.force_login(marketer)
    html = client.get(f"/analytics/?from=2026-01-01&to={tomorrow}").content.decode()
    assert "Invalid range (to: must not be after today" in html and "showing the last 30 days" in html
    response = api.get(f"/api/analytics/portfolio?from=2026-01-01&to={tomorrow}")
    assert response.status_code == 400 and response.json()["error"]["fields"]["to"]


@pytest.mark.django_db
def test_portfolio_row_of_a_campaign_without_views_says_so(client, marketer):
    CampaignFactory(campaign_id="camp_quiet")
    client.force_login(marketer)
    html = client.get("/analytics/?days=7").content.decode()
    row = html[html.index('data-campaign="camp_quiet"'):]
    row = row[: row.index("</tr>")]
    assert "no views" in row and "0.00%" not in row


def test_a_figure_with_panel_titles_keeps_its_title_above_them():
    import json
    import re

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from marketing_ai.charts import embed

    fig = make_subplots(rows=1, cols=2, subplot_titles=["left panel", "right panel"])
    fig.add_trace(go.Bar(x=[1], y=[1]), row=1, col=1)
    fig.update_layout(title="Overall")
    layout = json.loads(re.search(r">(\{.*\})<", embed(fig)).group(1))["layout"]
    assert layout["title"]["yref"] == "container" and layout["margin"]["t"] >= 96
    single = go.Figure(go.Bar(x=[1], y=[1]))
    single.update_layout(title="Alone")
    layout = json.loads(re.search(r">(\{.*\})<", embed(single)).group(1))["layout"]
    assert layout["title"]["yref"] == "paper" and layout["title"]["xanchor"] == "left"

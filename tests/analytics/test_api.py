"""The analytics API: seed fields, v1 and seed paths, CSV, range validation, 404s."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.utils import timezone
from statsmodels.stats.proportion import proportion_confint

from analytics import services
from campaigns.models import Campaign, Segment
from tests.factories import CampaignFactory, CustomerFactory, EventFactory

TODAY = timezone.now().date()


def at(days_ago: int) -> dt.datetime:
    return dt.datetime.combine(TODAY - dt.timedelta(days=days_ago), dt.time(12), tzinfo=dt.UTC)


@pytest.fixture
def data(db):
    """camp_a: 20 views, 4 conversions (revenue 100 + 50 + 25 + 25) and spend 40 within the last 7 days,
    plus 10 views and 1 conversion (revenue 10) 20 days ago; camp_b: views only, no cost; camp_c: paused, nothing."""
    a = CampaignFactory(campaign_id="camp_a", name="Alpha", status=Campaign.Status.ACTIVE)
    b = CampaignFactory(campaign_id="camp_b", name="Beta", status=Campaign.Status.ACTIVE)
    CampaignFactory(campaign_id="camp_c", name="Gamma", status=Campaign.Status.PAUSED)
    new = CustomerFactory(segment=Segment.objects.get(name="new_users"))
    returning = CustomerFactory(segment=Segment.objects.get(name="returning_users"))
    for i in range(20):
        EventFactory(campaign=a, type="view", occurred_at=at(i % 5), customer=new if i < 12 else returning)
    for amount, who in [("100", new), ("50", new), ("25", returning), ("25", returning)]:
        EventFactory(campaign=a, type="conversion", occurred_at=at(1), customer=who, amount=Decimal(amount))
    EventFactory(campaign=a, type="spend", occurred_at=at(2), customer=None, amount=Decimal("40"))
    for _ in range(10):
        EventFactory(campaign=a, type="view", occurred_at=at(20), customer=new)
    EventFactory(campaign=a, type="conversion", occurred_at=at(20), customer=new, amount=Decimal("10"))
    for _ in range(3):
        EventFactory(campaign=b, type="view", occurred_at=at(0), customer=new)
    services.aggregate_days(start=TODAY - dt.timedelta(days=30), end=TODAY)
    return a


@pytest.mark.parametrize("path", ["/api/analytics/campaign/camp_a/metrics", "/api/analytics/campaign/camp_a/metrics/",
                                  "/api/v1/analytics/campaigns/camp_a/metrics/"])
def test_metrics_has_the_seed_fields_with_independent_values(api, data, path):
    body = api.get(path + "?days=7").json()
    low, high = proportion_confint(4, 20, alpha=0.05, method="wilson")
    assert body["campaign_id"] == "camp_a"
    assert body["views"] == 20 and body["conversions"] == 4
    assert body["conversion_rate"] == pytest.approx(4 / 20)
    assert body["revenue"] == 200.0 and body["cost"] == 40.0
    assert body["roi"] == body["roi_percentage"] == pytest.approx((200 - 40) / 40 * 100)
    assert body["conversion_rate_ci"]["low"] == pytest.approx(low, abs=1e-6)
    assert body["conversion_rate_ci"]["high"] == pytest.approx(high, abs=1e-6)
    assert body["period"] == {"from": str(TODAY - dt.timedelta(days=6)), "to": str(TODAY), "days": 7}


def test_a_longer_range_includes_older_days(api, data):
    body = api.get("/api/analytics/campaign/camp_a/metrics?days=30").json()
    assert body["views"] == 30 and body["conversions"] == 5 and body["revenue"] == 210.0


def test_explicit_from_to_range(api, data):
    day = TODAY - dt.timedelta(days=20)
    body = api.get(f"/api/analytics/campaign/camp_a/metrics?from={day}&to={day}").json()
    assert (body["views"], body["conversions"], body["revenue"], body["cost"]) == (10, 1, 10.0, 0.0)
    assert body["roi"] is None and "cost is 0" in body["roi_reason"]


def test_zero_views_give_zero_conversion_rate(api, data):
    body = api.get("/api/analytics/campaign/camp_c/metrics?days=90").json()
    assert body["views"] == 0 and body["conversion_rate"] == 0 and body["roi"] is None


def test_segments_have_the_seed_fields(api, data):
    rows = {r["segment_name"]: r for r in api.get("/api/analytics/campaign/camp_a/segments?days=7").json()}
    assert set(rows) == {"new_users", "returning_users", "high_value_users"}
    # new: 12 views over days 0-4 (customer active on 5 days), conversions 150 on day 1
    assert rows["new_users"]["users_count"] == 5
    assert rows["new_users"]["views"] == 12 and rows["new_users"]["conversions"] == 2
    assert rows["new_users"]["conversion_rate"] == pytest.approx(2 / 12, abs=1e-6)
    assert rows["new_users"]["revenue"] == 150.0
    assert rows["returning_users"]["conversion_rate"] == pytest.approx(2 / 8, abs=1e-6)
    assert rows["high_value_users"]["users_count"] == 0 and rows["high_value_users"]["conversion_rate"] == 0


def test_trends_daily_are_zero_filled_and_sum_to_the_metrics(api, data):
    rows = api.get("/api/analytics/campaign/camp_a/trends?days=7&interval=daily").json()
    assert [r["date"] for r in rows] == [str(TODAY - dt.timedelta(days=6 - i)) for i in range(7)]
    assert sum(r["views"] for r in rows) == 20 and sum(r["revenue"] for r in rows) == 200.0
    assert {"date", "views", "conversions", "revenue"} <= set(rows[0])


@pytest.mark.parametrize("interval", ["weekly", "monthly"])
def test_trends_weekly_and_monthly_buckets_start_on_monday_or_the_first(api, data, interval):
    rows = api.get(f"/api/analytics/campaign/camp_a/trends?days=30&interval={interval}").json()
    starts = [dt.date.fromisoformat(r["date"]) for r in rows]
    assert all(d.weekday() == 0 for d in starts) if interval == "weekly" else all(d.day == 1 for d in starts)
    assert sum(r["views"] for r in rows) == 30


def test_portfolio_has_the_seed_fields(api, data):
    body = api.get("/api/analytics/portfolio?days=7").json()
    assert body["total_campaigns"] == 3 and body["active_campaigns"] == 2
    assert body["total_views"] == 23
    assert body["overall_conversion_rate"] == pytest.approx(4 / 23, abs=1e-6)
    assert body["overall_roi"] == pytest.approx(400.0)
    by_id = {c["campaign_id"]: c for c in body["campaigns"]}
    assert by_id["camp_c"]["status"] == "paused" and by_id["camp_b"]["roi"] is None


def test_v1_portfolio_is_the_same_view(api, data):
    assert api.get("/api/v1/analytics/portfolio?days=7").json() == api.get("/api/analytics/portfolio?days=7").json()


def test_metrics_as_csv(api, data):
    response = api.get("/api/analytics/campaign/camp_a/metrics?days=7&format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 1 and rows[0]["views"] == "20" and rows[0]["revenue"] == "200.00"
    assert float(rows[0]["conversion_rate_ci_low"]) == pytest.approx(proportion_confint(4, 20, method="wilson")[0], abs=1e-6)


@pytest.mark.parametrize("path,count", [("/api/analytics/campaign/camp_a/segments", 3),
                                        ("/api/analytics/campaign/camp_a/trends", 7),
                                        ("/api/analytics/portfolio", 3)])
def test_lists_as_csv_have_one_row_per_item(api, data, path, count):
    response = api.get(f"{path}?days=7&format=csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == count


@pytest.mark.parametrize("query,field", [
    ("days=14", "days"), ("days=abc", "days"), ("days=-7", "days"), ("from=2025-13-01", "from"),
    ("from=2025-03-10&to=2025-03-01", "to"), ("to=2025-03-01", "from"), ("days=7&from=2025-03-01", "days"),
    ("from=2020-01-01&to=2025-01-01", "from"), ("format=xml", "format"),
])
def test_bad_ranges_answer_400_naming_the_field(api, query, field):  # checked before the campaign is looked up
    response = api.get(f"/api/analytics/campaign/camp_a/metrics?{query}")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid" and field in body["fields"]


def test_trends_hourly_give_every_utc_hour_of_the_range_so_far_zero_filled(api, data):
    rows = api.get("/api/analytics/campaign/camp_a/trends?days=7&interval=hourly").json()
    first = dt.datetime.combine(TODAY - dt.timedelta(days=6), dt.time.min, tzinfo=dt.UTC)
    # Up to the current hour, or to the fixture's noon events if that is later: later hours are to come.
    hours_so_far = 6 * 24 + max(timezone.now().hour, 12) + 1
    assert [dt.datetime.fromisoformat(r["date"].replace("Z", "+00:00")) for r in rows] == [
        first + dt.timedelta(hours=h) for h in range(hours_so_far)]
    busy = {r["date"][:13]: r for r in rows if r["views"] or r["conversions"] or r["cost"]}
    # The fixture's events all happen at 12:00 UTC: 20 views over 5 days, 4 conversions and the spend.
    assert {key[11:13] for key in busy} == {"12"}
    assert sum(r["views"] for r in rows) == 20 and sum(r["revenue"] for r in rows) == 200.0
    assert sum(r["cost"] for r in rows) == 40.0


def test_hourly_trends_stop_at_the_current_hour_when_nothing_is_later(api, db):
    CampaignFactory(campaign_id="camp_quiet")
    before = timezone.now().replace(minute=0, second=0, microsecond=0)
    rows = api.get("/api/analytics/campaign/camp_quiet/trends?days=7&interval=hourly").json()
    last = dt.datetime.fromisoformat(rows[-1]["date"].replace("Z", "+00:00"))
    assert before <= last <= timezone.now() and all(r["views"] == 0 for r in rows)


def test_hourly_trends_beyond_the_retention_are_400_saying_why(api, data):
    response = api.get("/api/analytics/campaign/camp_a/trends?days=30&interval=hourly")
    assert response.status_code == 400
    reason = response.json()["error"]["fields"]["interval"][0]
    assert "last 7 days" in reason and "days=7" in reason


def test_bad_days_says_what_is_allowed(api):
    body = api.get("/api/analytics/portfolio?days=14").json()["error"]
    assert "7, 30, 90" in body["fields"]["days"][0]


def test_bad_interval_is_400(api):
    response = api.get("/api/analytics/campaign/camp_a/trends?interval=yearly")
    assert response.status_code == 400 and "interval" in response.json()["error"]["fields"]


@pytest.mark.parametrize("what", ["metrics", "segments", "trends"])
def test_unknown_campaign_is_404_in_the_error_shape(api, db, what):
    response = api.get(f"/api/analytics/campaign/nope/{what}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found" and "nope" in response.json()["error"]["message"]


def test_anonymous_is_refused_and_viewers_may_read(anon_api, viewer_api, data):
    assert anon_api.get("/api/analytics/portfolio").status_code in (401, 403)
    assert viewer_api.get("/api/analytics/portfolio").status_code == 200


def test_api_reads_only_the_aggregate_tables(api, data):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        api.get("/api/analytics/campaign/camp_a/metrics?days=7")
        api.get("/api/analytics/portfolio?days=7")
        api.get("/api/analytics/campaign/camp_a/segments?days=7")
        api.get("/api/analytics/campaign/camp_a/trends?days=7")
    assert not [q["sql"] for q in ctx.captured_queries if "campaigns_event" in q["sql"]]


def test_a_new_aggregation_run_is_seen_at_once_despite_the_cache(api, data):
    first = api.get("/api/analytics/campaign/camp_a/metrics?days=7").json()
    assert api.get("/api/analytics/campaign/camp_a/metrics?days=7").json() == first  # served from the cache
    EventFactory(campaign=data, type="view", occurred_at=at(0))
    services.aggregate_days(start=TODAY, end=TODAY)
    assert api.get("/api/analytics/campaign/camp_a/metrics?days=7").json()["views"] == first["views"] + 1

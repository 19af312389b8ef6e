"""The daily_analytics job against an independent pandas computation over the raw events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from analytics import services
from analytics.models import CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData
from campaigns.models import Event, Segment
from marketing_ai import jobs
from tests.analytics.factories import FIRST_DAY, create_random_events, event_rows, occurred, reference_frames
from tests.factories import CampaignFactory, CustomerFactory, EventFactory

LAST_DAY = FIRST_DAY + dt.timedelta(days=40)


def daily_table() -> pd.DataFrame:
    rows = CampaignAnalyticsDaily.objects.values(
        "campaign_id", "date", "sends", "opens", "views", "clicks", "conversions", "revenue", "cost"
    )
    return pd.DataFrame(list(rows), columns=["campaign_id", "date", "sends", "opens", "views", "clicks",
                                             "conversions", "revenue", "cost"])


def segment_table() -> pd.DataFrame:
    rows = CampaignSegmentAnalytics.objects.values(
        "campaign_id", "segment_id", "date", "users", "views", "conversions", "revenue", "cost"
    )
    return pd.DataFrame(list(rows), columns=["campaign_id", "segment_id", "date", "users", "views", "conversions",
                                             "revenue", "cost"])


def canonical(df: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """Rows as tuples of Python values (Decimal money, int counts), sorted by key, for exact comparison."""
    out = []
    for rec in df.to_dict("records"):
        out.append(tuple(
            Decimal(str(v)).quantize(Decimal("0.01")) if k in ("revenue", "cost") else (int(v) if k not in ("date",) else v)
            for k, v in sorted(rec.items())
        ))
    return sorted(out, key=lambda r: tuple(str(x) for x in r))


def raw_events() -> list[dict]:
    return [
        {"campaign_id": e.campaign_id, "customer_id": e.customer_id,
         "segment_id": e.customer.segment_id if e.customer else None,
         "type": e.type, "occurred_at": e.occurred_at, "amount": e.amount}
        for e in Event.objects.select_related("customer")
    ]


def trend_reference(daily: pd.DataFrame, interval: str) -> dict[tuple, Decimal]:
    """Trend points from the reference daily frame: sums per campaign, period start and metric."""
    if daily.empty:
        return {}
    d = daily.copy()
    if interval == "daily":
        d["period"] = d["date"]
    elif interval == "weekly":
        d["period"] = [day - dt.timedelta(days=day.weekday()) for day in d["date"]]
    else:
        d["period"] = [day.replace(day=1) for day in d["date"]]
    metrics = ["sends", "opens", "views", "clicks", "conversions", "revenue", "cost"]
    grouped = d.groupby(["campaign_id", "period"])[metrics].sum().reset_index()
    return {
        (r["campaign_id"], r["period"], m): Decimal(str(r[m])).quantize(Decimal("0.01"))
        for r in grouped.to_dict("records") for m in metrics
    }


class AggregationMatchesPandas(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.campaigns = [CampaignFactory() for _ in range(3)]
        segments = list(Segment.objects.order_by("name")) + [None]
        # Six customers: two segments twice, one without a segment.
        cls.customers = [CustomerFactory(segment=segments[i % 4]) for i in range(6)]

    def _insert(self, rows, prefix: str) -> None:
        Event.objects.bulk_create([
            Event(
                event_id=f"{prefix}{i}", type=type_, occurred_at=occurred(day, second),
                campaign=self.campaigns[c], customer=None if cust is None else self.customers[cust],
                amount=Decimal(cents) / 100 if type_ in (Event.Type.CONVERSION, Event.Type.SPEND) else None,
            )
            for i, (c, cust, type_, day, second, cents) in enumerate(rows)
        ])

    def _assert_tables_match_reference(self) -> None:
        ref_daily, ref_segment = reference_frames(raw_events())
        assert canonical(daily_table(), []) == canonical(ref_daily, [])
        assert canonical(segment_table(), []) == canonical(ref_segment, [])
        for interval in ("daily", "weekly", "monthly"):
            stored = {
                (p.campaign_id, p.period_start, p.metric_type): p.value
                for p in CampaignTrendData.objects.filter(interval=interval)
            }
            assert stored == trend_reference(ref_daily, interval), interval

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(first=event_rows, late=event_rows, drop_every=st.integers(2, 5))
    def test_tables_equal_pandas_after_late_events_and_deletions(self, first, late, drop_every):
        self._insert(first, "a")
        services.aggregate_days(start=FIRST_DAY, end=LAST_DAY, chunk_days=4)
        self._assert_tables_match_reference()

        # Late events (occurred on old days, arrive after the first run) and some events withdrawn:
        # re-aggregating the range must count the former and forget the latter, leaving empty days empty.
        self._insert(late, "b")
        Event.objects.filter(pk__in=[e.pk for i, e in enumerate(Event.objects.order_by("pk")) if i % drop_every == 0]).delete()
        services.aggregate_days(start=FIRST_DAY, end=LAST_DAY, chunk_days=7)
        self._assert_tables_match_reference()


@pytest.fixture
def campaign(db):
    return CampaignFactory()


def _event(campaign, day: dt.date, type_: str, amount: str | None = None, **extra):
    return EventFactory(campaign=campaign, type=type_, occurred_at=occurred((day - FIRST_DAY).days, 3600),
                        amount=Decimal(amount) if amount else None, **extra)


def test_rerun_of_a_day_gives_the_same_rows(campaign):
    for t in ("view", "view", "conversion", "spend"):
        _event(campaign, FIRST_DAY, t, "12.50" if t in ("conversion", "spend") else None)
    services.aggregate_days(start=FIRST_DAY, end=FIRST_DAY)
    first = {
        model: list(model.objects.order_by("pk").values())
        for model in (CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData)
    }
    services.aggregate_days(start=FIRST_DAY, end=FIRST_DAY)
    for model, rows in first.items():
        again = list(model.objects.order_by("pk").values())
        drop = lambda rs: [{k: v for k, v in r.items() if k != "computed_at"} for r in rs]  # noqa: E731
        assert drop(again) == drop(rows), model.__name__
    assert CampaignAnalyticsDaily.objects.get().views == 2


def test_backfill_touches_only_its_range(campaign):
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(5)]
    for day in days:
        _event(campaign, day, "view")
    services.aggregate_days(start=days[0], end=days[4])
    assert sorted(CampaignAnalyticsDaily.objects.values_list("date", flat=True)) == days

    # A late view for day 0 and the removal of day 4's events; re-aggregating days 1-3 only
    # leaves day 0 and day 4 as they were (stale until their range is re-run).
    _event(campaign, days[0], "view")
    Event.objects.filter(occurred_at__date=days[4]).delete()
    services.aggregate_days(start=days[1], end=days[3])
    by_day = dict(CampaignAnalyticsDaily.objects.values_list("date", "views"))
    assert by_day == {days[0]: 1, days[1]: 1, days[2]: 1, days[3]: 1, days[4]: 1}

    services.aggregate_days(start=days[0], end=days[4])
    by_day = dict(CampaignAnalyticsDaily.objects.values_list("date", "views"))
    assert by_day == {days[0]: 2, days[1]: 1, days[2]: 1, days[3]: 1}


def test_event_at_utc_midnight_belongs_to_the_new_day(campaign):
    EventFactory(campaign=campaign, type="view", occurred_at=dt.datetime.combine(FIRST_DAY, dt.time.min, tzinfo=dt.UTC))
    EventFactory(campaign=campaign, type="view",
                 occurred_at=dt.datetime.combine(FIRST_DAY, dt.time.min, tzinfo=dt.UTC) - dt.timedelta(microseconds=1))
    services.aggregate_days(start=FIRST_DAY - dt.timedelta(days=1), end=FIRST_DAY)
    assert dict(CampaignAnalyticsDaily.objects.values_list("date", "views")) == {
        FIRST_DAY - dt.timedelta(days=1): 1, FIRST_DAY: 1
    }


def test_job_runs_through_the_registry_with_its_default_window_and_progress(campaign):
    from django.utils import timezone

    today = timezone.now().date()
    _event(campaign, today, "view")
    _event(campaign, today - dt.timedelta(days=10), "view")  # outside the default 3-day window

    class Recorder:
        def __init__(self):
            self.expected, self.done = 0, 0

        def total(self, n):
            self.expected = n

        def advance(self, n=1):
            self.done += n

    progress = Recorder()
    record = jobs.run("daily_analytics", progress=progress)
    assert record.status == "succeeded" and record.rows_written > 0
    assert record.arguments["start"] == (today - dt.timedelta(days=2)).isoformat()
    assert list(CampaignAnalyticsDaily.objects.values_list("date", flat=True)) == [today]
    assert progress.expected == progress.done == 3 + 1  # one step per day, then the trends


def test_job_is_scheduled_at_two_utc():
    j = jobs.get("daily_analytics")
    assert j.schedule_text().startswith("0 2 * * *") and j.window_days == 3


def _snapshot() -> dict[str, list[tuple]]:
    return {
        model.__name__: sorted(model.objects.values_list(*fields))
        for model, fields in (
            (CampaignAnalyticsDaily, ("campaign_id", "date", "sends", "opens", "views", "clicks", "conversions", "revenue", "cost")),
            (CampaignSegmentAnalytics, ("campaign_id", "segment_id", "date", "users", "views", "conversions", "revenue", "cost")),
            (CampaignTrendData, ("campaign_id", "interval", "period_start", "metric_type", "value")),
        )
    }


def test_postgres_insert_select_and_python_upsert_write_the_same_rows(postgres):
    customers = [CustomerFactory(segment=seg) for seg in [*Segment.objects.all(), None]]
    create_random_events(400, seed=5, days=40, campaigns=[CampaignFactory() for _ in range(3)],
                         customers=[*customers, None], prefix="r")
    services.aggregate_days(start=FIRST_DAY, end=LAST_DAY, native=True)
    in_database = _snapshot()
    for model in (CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData):
        model.objects.all().delete()
    services.aggregate_days(start=FIRST_DAY, end=LAST_DAY, native=False)
    assert _snapshot() == in_database
    assert all(in_database.values())


@pytest.mark.django_db
def test_chunk_size_of_a_backfill_does_not_change_the_rows():
    """A backfill in one-day chunks, week chunks or one whole-range statement writes the same rows
    (chunking is a speed choice only: a customer seen on two days counts once per day either way)."""
    customers = [CustomerFactory(segment=seg) for seg in [*Segment.objects.all(), None]]
    create_random_events(300, seed=9, days=41, campaigns=[CampaignFactory() for _ in range(2)],
                         customers=[*customers, None], prefix="k")
    snapshots = []
    for chunk_days in (1, 7, 41):
        for model in (CampaignTrendData, CampaignSegmentAnalytics, CampaignAnalyticsDaily):
            model.objects.all().delete()
        services.aggregate_days(start=FIRST_DAY, end=LAST_DAY, chunk_days=chunk_days)
        snapshots.append(_snapshot())
    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert all(snapshots[0].values())

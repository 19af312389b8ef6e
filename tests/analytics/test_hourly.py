"""Hourly trend points: per campaign and UTC hour from the events, for the recent days only, against pandas."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pandas as pd
import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from analytics import services
from analytics.models import CampaignTrendData
from campaigns.models import Event
from tests.analytics.factories import COUNT_TYPES, TYPES
from tests.factories import CampaignFactory, CustomerFactory

HOURLY = CampaignTrendData.Interval.HOURLY


def today() -> dt.date:
    return timezone.now().date()


def at(days_ago: int, second: int) -> dt.datetime:
    return dt.datetime.combine(today() - dt.timedelta(days=days_ago), dt.time.min, tzinfo=dt.UTC) + dt.timedelta(
        seconds=second
    )


def hourly_reference(first_kept: dt.date) -> dict[tuple, Decimal]:
    """{(campaign, day, hour, metric): value} from the raw events with pandas, non-zero values only."""
    rows = list(Event.objects.values("campaign_id", "type", "occurred_at", "amount"))
    if not rows:
        return {}
    df = pd.DataFrame(rows)
    stamp = pd.to_datetime(df["occurred_at"], utc=True)
    df["day"], df["hour"] = stamp.dt.date, stamp.dt.hour
    df = df[df["day"] >= first_kept]
    for name, type_ in COUNT_TYPES.items():
        df[name] = (df["type"] == type_).astype(int)
    amount = df["amount"].map(lambda a: Decimal(0) if a is None else Decimal(a))
    df["revenue"] = [a if t == Event.Type.CONVERSION else Decimal(0) for a, t in zip(amount, df["type"], strict=True)]
    df["cost"] = [a if t == Event.Type.SPEND else Decimal(0) for a, t in zip(amount, df["type"], strict=True)]
    metrics = [*COUNT_TYPES, "revenue", "cost"]
    grouped = df.groupby(["campaign_id", "day", "hour"])[metrics].sum().reset_index()
    return {
        (r["campaign_id"], r["day"], r["hour"], m): Decimal(str(r[m])).quantize(Decimal("0.01"))
        for r in grouped.to_dict("records") for m in metrics if r[m] != 0
    }


def stored_hourly() -> dict[tuple, Decimal]:
    return {
        (p.campaign_id, p.period_start, p.hour, p.metric_type): p.value
        for p in CampaignTrendData.objects.filter(interval=HOURLY)
    }


# (campaign index, customer index or None, type, days ago 0..12, second of the day, cents)
recent_events = st.lists(
    st.tuples(st.integers(0, 1), st.one_of(st.none(), st.integers(0, 3)), st.sampled_from(TYPES),
              st.integers(0, 12), st.integers(0, 86399), st.integers(0, 500_00)),
    max_size=50,
)


class HourlyPointsMatchPandas(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.campaigns = [CampaignFactory() for _ in range(2)]
        cls.customers = [CustomerFactory() for _ in range(4)]

    def _insert(self, rows, prefix: str) -> None:
        Event.objects.bulk_create([
            Event(event_id=f"{prefix}{i}", type=type_, occurred_at=min(at(ago, second), timezone.now()),
                  campaign=self.campaigns[c], customer=None if cust is None else self.customers[cust],
                  amount=Decimal(cents) / 100 if type_ in (Event.Type.CONVERSION, Event.Type.SPEND) else None)
            for i, (c, cust, type_, ago, second, cents) in enumerate(rows)
        ])

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(first=recent_events, late=recent_events, drop_every=st.integers(2, 4))
    def test_hourly_points_equal_pandas_within_the_retention(self, first, late, drop_every):
        start, end = today() - dt.timedelta(days=12), today()
        first_kept = services.hourly_first_day()
        self._insert(first, "a")
        services.aggregate_days(start=start, end=end)
        assert stored_hourly() == hourly_reference(first_kept)
        # Late events and withdrawn ones: a re-run of the range counts the first and forgets the second.
        self._insert(late, "b")
        Event.objects.filter(pk__in=list(Event.objects.order_by("pk").values_list("pk", flat=True))[::drop_every]).delete()
        services.aggregate_days(start=start, end=end)
        assert stored_hourly() == hourly_reference(first_kept)
        assert all(p.period_start >= first_kept for p in CampaignTrendData.objects.filter(interval=HOURLY))


@pytest.mark.django_db
def test_points_older_than_the_retention_are_dropped_by_the_next_run(settings):
    campaign = CampaignFactory()
    Event.objects.bulk_create([
        Event(event_id=f"o{i}", type="view", occurred_at=at(ago, 3600 * 5), campaign=campaign, customer=CustomerFactory())
        for i, ago in enumerate([1, 5, 9])
    ])
    settings.ANALYTICS_HOURLY_DAYS = 14
    services.aggregate_days(start=today() - dt.timedelta(days=10), end=today())
    assert sorted(p.period_start for p in CampaignTrendData.objects.filter(interval=HOURLY)) == [
        today() - dt.timedelta(days=d) for d in (9, 5, 1)]
    settings.ANALYTICS_HOURLY_DAYS = 7  # the nightly run (last 3 days) also drops what fell out of the retention
    services.aggregate_days(start=today() - dt.timedelta(days=2), end=today())
    points = sorted((p.period_start, p.hour, p.metric_type, p.value) for p in CampaignTrendData.objects.filter(interval=HOURLY))
    assert points == [(today() - dt.timedelta(days=5), 5, "views", 1), (today() - dt.timedelta(days=1), 5, "views", 1)]


def test_database_and_python_paths_write_the_same_hourly_points(postgres):
    rng = random.Random(8)
    campaigns = [CampaignFactory() for _ in range(2)]
    Event.objects.bulk_create([
        Event(event_id=f"h{i}", type=rng.choice(TYPES), occurred_at=min(at(rng.randrange(9), rng.randrange(86400)), timezone.now()),
              campaign=rng.choice(campaigns), customer=CustomerFactory() if i % 3 else None,
              amount=Decimal(rng.randrange(10000)) / 100)
        for i in range(300)
    ])
    start, end = today() - dt.timedelta(days=9), today()
    services.aggregate_days(start=start, end=end, native=True)
    in_database = stored_hourly()
    CampaignTrendData.objects.all().delete()
    services.aggregate_days(start=start, end=end, native=False)
    assert stored_hourly() == in_database
    assert in_database == hourly_reference(services.hourly_first_day())
    assert in_database and all(v != 0 for v in in_database.values())

"""The overview page's data: events per UTC day and type, compared with pandas over the raw events."""

from __future__ import annotations

import datetime as dt
import random

import pandas as pd
import pytest

from campaigns.models import Event
from marketing_ai import selectors
from tests.factories import CampaignFactory, EventFactory

pytestmark = pytest.mark.django_db


def test_events_per_day_by_type_matches_pandas_over_the_raw_events():
    rng = random.Random(11)
    today = dt.date(2026, 3, 31)
    campaign = CampaignFactory()
    base = dt.datetime(2026, 2, 10, tzinfo=dt.UTC)
    types = ["notification_sent", "view", "click", "conversion"]
    for _ in range(400):
        # From 50 days before `today` to just before its end, so events fall on both sides of the window.
        occurred = base + dt.timedelta(seconds=rng.randrange(0, 50 * 86400))
        EventFactory(type=rng.choice(types), occurred_at=occurred, campaign=campaign, customer=None)

    daily = selectors.events_per_day_by_type(days=30, today=today)

    frame = pd.DataFrame(list(Event.objects.values("type", "occurred_at")))
    frame["day"] = pd.to_datetime(frame["occurred_at"], utc=True).dt.date
    window = frame[(frame["day"] > today - dt.timedelta(days=30)) & (frame["day"] <= today)]
    expected = window.groupby(["type", "day"]).size()
    assert daily.days == [today - dt.timedelta(days=29 - i) for i in range(30)]
    assert daily.total == len(window)
    for event_type, per_day in daily.counts.items():
        for day, count in zip(daily.days, per_day, strict=True):
            assert count == expected.get((event_type, day), 0), (event_type, day)
    assert set(daily.counts) == set(window["type"])
    assert list(daily.counts) == [t for t in Event.Type.values if t in daily.counts]  # funnel order


def test_an_event_just_before_midnight_utc_counts_on_that_day():
    today = dt.date(2026, 3, 31)
    EventFactory(type="view", occurred_at=dt.datetime(2026, 3, 30, 23, 59, 59, tzinfo=dt.UTC))
    EventFactory(type="view", occurred_at=dt.datetime(2026, 3, 31, 0, 0, 0, tzinfo=dt.UTC))
    daily = selectors.events_per_day_by_type(days=2, today=today)
    assert daily.counts == {"view": [1, 1]}


def test_the_overview_page_embeds_the_chart_and_job_tables(client, marketer):
    from tests.factories import EventFactory

    client.force_login(marketer)
    html = client.get("/").content.decode()
    assert 'id="events-per-day"' not in html and "No events in the last 30 days yet" in html  # not a flat zero line
    EventFactory(type="view")
    html = client.get("/").content.decode()
    assert 'id="events-per-day"' in html and 'data-chart-for="events-per-day"' in html
    assert "Scheduled jobs" in html and "Latest job runs" in html

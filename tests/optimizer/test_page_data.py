"""The /optimize/ page reads the daily job's snapshots: same numbers as the live aggregates, a fixed number of queries."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from campaigns.models import Event
from marketing_ai import jobs
from optimizer import selectors
from optimizer.models import CampaignOptimization, PageSnapshot
from tests.factories import CampaignFactory, CustomerFactory, OfferFactory, SegmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    campaign = CampaignFactory(send_time=dt.time(9))
    offer = OfferFactory(offer_id="off_20pct", value=Decimal(20))
    zones = ["Europe/Berlin", "Asia/Kolkata", "America/New_York"]
    rng = np.random.default_rng(5)
    rows, expected = [], np.zeros((7, 24), dtype=int)
    now = timezone.now()
    for i in range(30):
        customer = CustomerFactory(timezone=zones[i % 3], segment=SegmentFactory(name="new_users"))
        for j in range(5):
            when = now - dt.timedelta(days=int(rng.integers(1, 80)), minutes=int(rng.integers(0, 1440)))
            rows.append(Event(event_id=f"o{i}_{j}", type="notification_opened", occurred_at=when, customer=customer, campaign=campaign))
            local = when.astimezone(zoneinfo.ZoneInfo(customer.timezone))
            expected[local.weekday(), local.hour] += 1
            rows.append(Event(event_id=f"s{i}_{j}", type="notification_sent", occurred_at=when, customer=customer, campaign=campaign, offer=offer))
    Event.objects.bulk_create(rows)
    return expected


def test_job_snapshot_equals_the_opens_counted_in_each_customers_zone(events):
    jobs.run("campaign_optimizations")
    snapshot = PageSnapshot.objects.get(name=selectors.HEATMAP_SNAPSHOT)
    assert np.array_equal(np.asarray(snapshot.data["counts"]), events)
    heatmap = selectors.open_heatmap()
    assert heatmap.computed_at == snapshot.computed_at and heatmap.total_opens == 150
    # The offer outcomes: every send of the 20 % offer to new users.
    outcomes = PageSnapshot.objects.get(name=selectors.OFFER_OUTCOMES_SNAPSHOT).data["segments"]
    assert outcomes["new_users"] == [{"offer_value": 20.0, "sends": 150, "conversions": 0, "revenue": 0.0}]
    assert selectors.offer_curves()["new_users"].scores[0].sends == 150


def test_the_page_does_not_aggregate_events_once_the_snapshots_exist(events, client, marketer, django_assert_max_num_queries):
    jobs.run("campaign_optimizations")
    campaign = CampaignFactory()
    for i in range(60):
        CampaignOptimization.objects.create(campaign=campaign, recommendation_type="offer", target=f"s{i}", recommended_value="20",
                                            expected_impact=i, confidence=0.9)
    client.force_login(marketer)
    client.get("/optimize/")  # charts drawn once per data version
    with django_assert_max_num_queries(16) as queries:
        response = client.get("/optimize/?status=all&page_offer=3")
    assert response.status_code == 200
    assert not [q for q in queries.captured_queries if "campaigns_event" in q["sql"]]
    page = response.context["groups"][0]["page"]
    assert (page.number, len(page.object_list), page.paginator.count) == (3, 20, 60)
    assert [r.expected_impact for r in page.object_list] == list(range(19, -1, -1))


@pytest.mark.parametrize("query", ["?status=bogus", "?type=bogus", "?campaign=" + "x" * 200, "?page_offer=-1", "?page_offer=abc"])
def test_bad_filters_fall_back_instead_of_failing(client, marketer, query):
    client.force_login(marketer)
    assert client.get("/optimize/" + query).status_code == 200


def test_a_nul_in_a_filter_is_refused_before_the_page_runs(client, marketer):
    # The request guard (marketing_ai.middleware.RequestGuardMiddleware) answers 400 for NUL anywhere in the
    # query string, for pages and the API alike: the page never sees it, and it is never a 500.
    client.force_login(marketer)
    assert client.get("/optimize/?campaign=%00" + "x" * 200).status_code == 400

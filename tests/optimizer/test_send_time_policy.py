"""Per-customer send times for a notification service: batch look-up and "who gets this campaign this hour"."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from campaigns.models import Campaign
from optimizer import selectors
from optimizer.models import UserSendTime
from tests.factories import CampaignFactory, CustomerFactory, SegmentFactory

pytestmark = pytest.mark.django_db
LOOKUP = "/api/v1/optimize/send-time-lookup"


def send_time(customer, local_hour: int, method: str = "personal", events: int = 20) -> UserSendTime:
    return UserSendTime.objects.create(
        customer=customer, local_send_time=dt.time(local_hour), utc_send_time=dt.time(0), expected_improvement=5.0,
        confidence=0.5, events_used=events, method=method,
    )


# --- batch look-up --------------------------------------------------------------------------------
def test_batch_lookup_answers_in_the_order_asked_with_missing_ids_and_the_population_hour(api):
    tokyo = CustomerFactory(customer_id="u_tokyo", timezone="Asia/Tokyo")
    sparse = CustomerFactory(customer_id="u_sparse", timezone="UTC")
    new = CustomerFactory(customer_id="u_new", timezone="America/New_York")
    send_time(tokyo, 21)
    send_time(sparse, 18, method="fallback", events=2)  # the job wrote the population hour (18) for a sparse history

    resp = api.post(LOOKUP, {"customer_ids": ["u_new", "u_tokyo", "nobody", "u_tokyo", "u_sparse"]}, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert [r["customer_id"] for r in body["results"]] == ["u_new", "u_tokyo", "u_sparse"]
    assert body["missing"] == ["nobody"]
    by_id = {r["customer_id"]: r for r in body["results"]}
    assert (by_id["u_tokyo"]["optimal_send_time"], by_id["u_tokyo"]["method"]) == ("21:00", "personal")
    assert (by_id["u_sparse"]["optimal_send_time"], by_id["u_sparse"]["method"]) == ("18:00", "fallback")
    # No row yet: the population hour (the fallback rows' hour), converted with the customer's own zone today.
    expected_utc = dt.datetime.combine(dt.date.today(), dt.time(18), tzinfo=zoneinfo.ZoneInfo("America/New_York")).astimezone(dt.UTC)
    assert (by_id["u_new"]["optimal_send_time"], by_id["u_new"]["method"]) == ("18:00", "fallback")
    assert by_id["u_new"]["optimal_send_time_utc"] == expected_utc.strftime("%H:%M")
    assert new.customer_id == "u_new"


def test_batch_lookup_reads_a_fixed_number_of_queries_whatever_the_batch_size(api, django_assert_max_num_queries):
    customers = CustomerFactory.create_batch(60)
    for i, c in enumerate(customers[:40]):
        send_time(c, i % 24)
    ids = [c.customer_id for c in customers]
    with django_assert_max_num_queries(8):  # auth (token, groups) + customers with their rows + the population hour
        resp = api.post(LOOKUP, {"customer_ids": ids}, format="json")
    assert resp.status_code == 200 and len(resp.json()["results"]) == 60


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"customer_ids": []}, "customer_ids"),
        ({"customer_ids": "u_1"}, "customer_ids"),
        ({"customer_ids": ["x" * 65]}, "customer_ids"),
        ({"customer_ids": [f"u_{i}" for i in range(selectors.MAX_SEND_TIME_LOOKUP + 1)]}, "customer_ids"),
        ({}, "customer_ids"),
        ({"customer_ids": [7, 1e7]}, "customer_ids"),  # numbers are not ids (not turned into "7")
    ],
)
def test_batch_lookup_refuses_bad_input_with_the_error_shape(api, payload, field):
    resp = api.post(LOOKUP, payload, format="json")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert field in error["fields"] and error["message"]


def test_batch_lookup_is_a_read_for_viewers_but_not_for_ingest_accounts_or_anonymous(viewer_api, anon_api, make_user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    CustomerFactory(customer_id="u_1")
    assert viewer_api.post(LOOKUP, {"customer_ids": ["u_1"]}, format="json").status_code == 200
    assert anon_api.post(LOOKUP, {"customer_ids": ["u_1"]}, format="json").status_code in (401, 403)
    ingest = APIClient()
    ingest.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user('svc', 'ingest')).key}")
    assert ingest.post(LOOKUP, {"customer_ids": ["u_1"]}, format="json").status_code == 403


# --- who gets the campaign in an hour ---------------------------------------------------------------
ZONES = ["UTC", "Asia/Tokyo", "Europe/Berlin", "Asia/Kolkata", "America/New_York", "Australia/Adelaide"]


@pytest.fixture
def personal_campaign():
    campaign = CampaignFactory(campaign_id="camp_personal", send_time=dt.time(9), send_time_policy=Campaign.SendTimePolicy.PERSONAL)
    campaign.target_segments.set([SegmentFactory(name="new_users")])
    return campaign


def expected_send_moment(local_hour: int, tz_name: str, day: dt.date) -> dt.datetime:
    """Independent reference: the customer's local hour on ``day`` in their zone, in UTC."""
    return dt.datetime.combine(day, dt.time(local_hour), tzinfo=zoneinfo.ZoneInfo(tz_name)).astimezone(dt.UTC)


@pytest.mark.parametrize("day", [dt.date(2026, 1, 15), dt.date(2026, 7, 15)])  # winter and summer time
def test_personal_policy_sends_each_customer_once_a_day_at_their_own_local_hour(personal_campaign, day):
    new_users, returning = SegmentFactory(name="new_users"), SegmentFactory(name="returning_users")
    expected = {}
    for i, tz_name in enumerate(ZONES * 3):
        customer = CustomerFactory(timezone=tz_name, segment=new_users)
        hour = (7 * i + 3) % 24
        if i % 5 == 4:  # no row yet: the population hour
            hour = 18
        else:
            send_time(customer, hour, method="fallback" if hour == 18 else "personal")
        expected[customer.customer_id] = expected_send_moment(hour, tz_name, day)
    send_time(CustomerFactory(timezone="UTC", segment=returning), 10)  # outside the campaign's audience
    send_time(CustomerFactory(customer_id="u_sparse", timezone="UTC", segment=new_users), 18, method="fallback", events=1)
    expected["u_sparse"] = expected_send_moment(18, "UTC", day)

    # Over the 24 UTC hours of the local dates around ``day``, every customer is due exactly at their moment.
    got: dict[str, list[dt.datetime]] = {}
    start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC) - dt.timedelta(hours=14)
    for h in range(24 + 28):
        window = start + dt.timedelta(hours=h)
        queryset, policy = selectors.campaign_due(personal_campaign, window)
        assert policy == "personal"
        for customer in queryset:
            row = selectors.due_row(customer, personal_campaign, window, selectors.population_local_hour())
            assert window <= row["send_at"] < window + dt.timedelta(hours=1)
            got.setdefault(customer.customer_id, []).append(row["send_at"])
    for customer_id, moment in expected.items():
        assert moment in got[customer_id], (customer_id, moment, got.get(customer_id))
    assert set(got) == set(expected)


def test_due_api_pages_the_customers_of_one_hour_with_their_send_moment(api, personal_campaign):
    berlin = [CustomerFactory(customer_id=f"b_{i}", timezone="Europe/Berlin", segment=SegmentFactory(name="new_users")) for i in range(3)]
    for c in berlin:
        send_time(c, 20)
    send_time(CustomerFactory(customer_id="t_1", timezone="Asia/Tokyo", segment=SegmentFactory(name="new_users")), 20)

    # 20:00 in Berlin in January is 19:00 UTC.
    resp = api.get("/api/v1/optimize/campaigns/camp_personal/due", {"hour": "2026-01-15T19:00:00Z", "page_size": 2})
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    first = body["results"][0]
    assert first == {"customer_id": "b_0", "timezone": "Europe/Berlin", "send_at": "2026-01-15T19:00:00Z",
                     "local_send_time": "20:00", "method": "personal"}
    assert api.get(body["next"]).json()["results"][0]["customer_id"] == "b_2"


def test_fixed_policy_sends_the_whole_audience_in_the_campaigns_hour_only(api):
    campaign = CampaignFactory(campaign_id="camp_fixed", send_time=dt.time(9, 30))
    CustomerFactory.create_batch(3, timezone="Asia/Tokyo")
    due = api.get("/api/v1/optimize/campaigns/camp_fixed/due", {"hour": "2026-03-01T09:00:00Z"}).json()
    assert due["count"] == 3
    assert {r["send_at"] for r in due["results"]} == {"2026-03-01T09:30:00Z"}
    assert {(r["method"], r["local_send_time"]) for r in due["results"]} == {("fixed", "18:30")}
    assert api.get("/api/v1/optimize/campaigns/camp_fixed/due", {"hour": "2026-03-01T10:00:00Z"}).json()["count"] == 0
    assert campaign.send_time_policy == "fixed"


@pytest.mark.parametrize("hour", ["tomorrow", "2026-13-01T00:00:00Z", "2026-01-01T25:00"])
def test_due_api_refuses_a_bad_hour_and_an_unknown_campaign(api, personal_campaign, hour):
    resp = api.get("/api/v1/optimize/campaigns/camp_personal/due", {"hour": hour})
    assert resp.status_code == 400 and "hour" in resp.json()["error"]["fields"]
    assert api.get("/api/v1/optimize/campaigns/nope/due").status_code == 404

"""POST /api/v1/events/: validation of every field, all-or-nothing batches, idempotency, roles.

Runs on SQLite and on PostgreSQL (the COPY path): set DATABASE_URL=postgres://... to exercise the latter.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal

import pandas as pd
import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.models import Customer, Event, Merchant
from tests.factories import CampaignFactory, CustomerFactory, EventFactory, OfferFactory

URL = "/api/v1/events/"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The role fixtures create users; PBKDF2 would cost most of each test's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def campaign():
    return CampaignFactory(campaign_id="camp_1")


@pytest.fixture
def offer():
    return OfferFactory(offer_id="off_25pct", value=Decimal("25"))


def wire(n: int = 0, **overrides) -> dict:
    event = {
        "event_id": f"evt_{n}",
        "type": "view",
        "occurred_at": "2025-03-01T09:15:00+01:00",
        "customer_id": f"user_{n}",
        "campaign_id": "camp_1",
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}  # ... drops a key


def rows_of(response) -> list[dict]:
    return response.json()["error"]["fields"]["rows"]


def test_valid_batch_is_stored_with_its_values(api, campaign, offer):
    batch = [
        wire(1, type="notification_opened", variant="B"),
        wire(2, type="conversion", merchant_id="m_new", offer_id="off_25pct", amount="19.90",
             occurred_at="2025-03-01T23:30:00-05:00"),
        wire(3, type="spend", customer_id=..., amount=120.5, occurred_at="2025-03-02T00:00:00Z"),
    ]
    response = api.post(URL, batch, format="json")

    assert response.status_code == 201, response.content
    assert response.json() == {"stored": 3, "duplicates": 0, "customers_created": 2, "merchants_created": 1}
    opened, conversion, spend = (Event.objects.get(event_id=f"evt_{n}") for n in (1, 2, 3))
    assert opened.type == "notification_opened" and opened.variant == "B" and opened.amount is None
    assert opened.occurred_at == dt.datetime(2025, 3, 1, 8, 15, tzinfo=dt.UTC)
    # 23:30 at UTC-5 is 04:30 the next day in UTC.
    assert conversion.occurred_at == dt.datetime(2025, 3, 2, 4, 30, tzinfo=dt.UTC)
    assert conversion.amount == Decimal("19.90")
    assert conversion.offer == offer and conversion.campaign == campaign
    assert conversion.merchant.merchant_id == "m_new"
    assert spend.customer is None and spend.amount == Decimal("120.50")
    assert spend.occurred_at == dt.datetime(2025, 3, 2, tzinfo=dt.UTC)
    assert abs(opened.received_at - timezone.now()) < dt.timedelta(minutes=1)


def test_customers_and_merchants_are_created_on_first_sight_only(api, campaign):
    existing = CustomerFactory(customer_id="user_1", timezone="Europe/Paris")
    api.post(URL, [wire(1, merchant_id="m_9"), wire(2, merchant_id="m_9"), wire(3, customer_id="user_2")],
             format="json")

    assert Customer.objects.get(customer_id="user_1") == existing
    assert Customer.objects.get(customer_id="user_1").timezone == "Europe/Paris"
    created = Customer.objects.get(customer_id="user_2")
    assert created.timezone == "UTC" and created.segment is None
    assert Merchant.objects.filter(merchant_id="m_9").count() == 1
    assert set(Event.objects.values_list("customer__customer_id", flat=True)) == {"user_1", "user_2"}


def test_batch_may_be_wrapped_in_an_events_key(api, campaign):
    response = api.post(URL, {"events": [wire(1), wire(2)]}, format="json")
    assert response.status_code == 201
    assert response.json()["stored"] == 2


def test_resending_a_batch_stores_nothing_and_counts_duplicates(api, campaign):
    batch = [wire(n) for n in range(5)]
    first = api.post(URL, batch, format="json")
    again = api.post(URL, batch, format="json")

    assert first.json()["stored"] == 5
    assert again.status_code == 200
    assert again.json() == {"stored": 0, "duplicates": 5, "customers_created": 0, "merchants_created": 0}
    assert Event.objects.count() == 5


def test_partly_new_batch_stores_only_the_new_ids(api, campaign):
    EventFactory(event_id="evt_1", campaign=campaign)
    response = api.post(URL, [wire(0), wire(1), wire(2)], format="json")
    assert response.json()["stored"] == 2 and response.json()["duplicates"] == 1
    assert Event.objects.count() == 3


def test_duplicate_ids_inside_one_batch_count_once_and_first_wins(api, campaign):
    batch = [wire(1, type="view"), wire(1, type="click"), wire(2), wire(1, type="conversion", amount="5")]
    response = api.post(URL, batch, format="json")

    assert response.json()["stored"] == 2 and response.json()["duplicates"] == 2
    assert Event.objects.get(event_id="evt_1").type == "view"


def test_a_bad_row_rejects_the_whole_batch_listing_every_bad_row(api, campaign):
    batch = [
        wire(0),
        wire(1, occurred_at="2025-03-01T09:15:00"),
        wire(2),
        wire(3, type="conversion", amount="-3", campaign_id="camp_missing"),
        wire(4, merchant_id="m_should_not_exist"),
    ]
    response = api.post(URL, batch, format="json")

    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "invalid"
    assert {(r["index"], r["field"]) for r in body["fields"]["rows"]} == {
        (1, "occurred_at"), (3, "amount"), (3, "campaign_id"),
    }
    assert all(isinstance(r["index"], int) and r["reason"] for r in body["fields"]["rows"])
    assert "2 bad row(s)" in body["message"]
    assert Event.objects.count() == 0
    assert not Customer.objects.exists()
    assert not Merchant.objects.filter(merchant_id="m_should_not_exist").exists()


# (field, bad value, words the reason must contain). `...` removes the key.
BAD_VALUES = [
    ("event_id", ..., "required"),
    ("event_id", "", "required"),
    ("event_id", 42, "string"),
    ("event_id", "e" * 65, "longer than 64"),
    ("event_id", " evt_1", "whitespace"),
    ("type", ..., "required"),
    ("type", "purchase", "not one of"),
    ("type", 3, "not one of"),
    ("type", ["view"], "not one of"),
    ("occurred_at", ..., "required"),
    ("occurred_at", "2025-03-01T09:15:00", "no UTC offset"),
    ("occurred_at", "2025-03-01", "no UTC offset"),
    ("occurred_at", "yesterday", "not an ISO 8601"),
    ("occurred_at", "2025-02-30T10:00:00Z", "not an ISO 8601"),
    ("occurred_at", 1740820500, "ISO 8601 string"),
    ("occurred_at", "2999-01-01T00:00:00+00:00", "future"),
    ("customer_id", ..., "required"),
    ("customer_id", 42, "string"),
    ("customer_id", "u" * 65, "longer than 64"),
    ("campaign_id", ..., "required"),
    ("campaign_id", "camp_unknown", "unknown campaign"),
    ("campaign_id", {"id": 1}, "string"),
    ("merchant_id", 7, "string"),
    ("merchant_id", "m" * 65, "longer than 64"),
    ("offer_id", "off_unknown", "unknown offer"),
    ("offer_id", 25, "string"),
    ("variant", "v" * 65, "longer than 64"),
    ("variant", True, "string"),
    ("channel", "Email", "not a channel"),  # lower case only: a breakdown must not split Email from email
    ("channel", "e-mail", "not a channel"),
    ("channel", "1sms", "not a channel"),
    ("channel", "c" * 33, "longer than 32"),
    ("channel", 3, "string"),
    ("amount", "12.5", "only conversion"),  # a view carries no amount
    ("colour", "red", "unknown field"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_VALUES, ids=[f"{f}={v!r:.20}" for f, v, _ in BAD_VALUES])
def test_bad_field_value_is_a_row_error(api, campaign, field, value, reason):
    response = api.post(URL, [wire(0), wire(1, **{field: value})], format="json")

    assert response.status_code == 400, response.content
    rows = rows_of(response)
    assert [(r["index"], r["field"]) for r in rows] == [(1, field)]
    assert reason in rows[0]["reason"]
    assert Event.objects.count() == 0


BAD_AMOUNTS = [
    ("conversion", ..., "required for conversion"),
    ("spend", ..., "required for spend"),
    ("conversion", "", "required for conversion"),
    ("conversion", "-0.01", ">= 0"),
    ("spend", -5, ">= 0"),
    ("conversion", "12.345", "more than 2 decimal"),
    ("conversion", 0.001, "more than 2 decimal"),
    ("conversion", "abc", "not a decimal"),
    ("conversion", "NaN", "finite"),
    ("conversion", "Infinity", "finite"),
    ("conversion", True, "decimal string or a number"),
    ("conversion", ["1"], "decimal string or a number"),
    ("conversion", "1000000000000.00", "<="),
]


@pytest.mark.parametrize(("event_type", "amount", "reason"), BAD_AMOUNTS, ids=[f"{t}:{a!r}" for t, a, _ in BAD_AMOUNTS])
def test_bad_amount_is_a_row_error(api, campaign, event_type, amount, reason):
    response = api.post(URL, [wire(1, type=event_type, amount=amount)], format="json")

    assert response.status_code == 400, response.content
    rows = rows_of(response)
    assert [(r["index"], r["field"]) for r in rows] == [(0, "amount")]
    assert reason in rows[0]["reason"]


def test_every_bad_field_of_one_row_is_listed(api, campaign):
    response = api.post(URL, [{"type": "conversion", "occurred_at": "now", "campaign_id": 5}], format="json")
    assert {r["field"] for r in rows_of(response)} == {"event_id", "occurred_at", "customer_id", "campaign_id", "amount"}


def test_a_row_that_is_not_an_object_is_a_row_error(api, campaign):
    response = api.post(URL, [wire(0), "evt_1", None], format="json")
    assert [(r["index"], r["field"]) for r in rows_of(response)] == [(1, "event"), (2, "event")]


@pytest.mark.parametrize(
    ("amount", "stored"),
    [("19.9", Decimal("19.90")), (19.9, Decimal("19.90")), (7, Decimal("7.00")), ("0", Decimal("0.00")),
     ("10.500", Decimal("10.50")), ("999999999999.99", Decimal("999999999999.99"))],
)
def test_amount_as_string_or_number_is_stored_exactly(api, campaign, amount, stored):
    response = api.post(URL, [wire(1, type="conversion", amount=amount)], format="json")
    assert response.status_code == 201, response.content
    assert Event.objects.get().amount == stored


def test_spend_needs_no_customer_but_may_name_one(api, campaign):
    response = api.post(
        URL, [wire(1, type="spend", customer_id=..., amount="10"), wire(2, type="spend", amount="1.5")], format="json"
    )
    assert response.status_code == 201
    assert Event.objects.get(event_id="evt_1").customer is None
    assert Event.objects.get(event_id="evt_2").customer.customer_id == "user_2"


def test_channel_is_optional_and_stored_when_given(api, campaign):
    """The channel was added to the event format later: a sender without it keeps working."""
    response = api.post(URL, [wire(1), wire(2, channel="email"), wire(3, channel="in_app"), wire(4, channel=None),
                              wire(5, channel="")], format="json")

    assert response.status_code == 201, response.content
    assert dict(Event.objects.values_list("event_id", "channel")) == {
        "evt_1": "", "evt_2": "email", "evt_3": "in_app", "evt_4": "", "evt_5": ""}


def test_null_optional_fields_are_treated_as_absent(api, campaign):
    response = api.post(URL, [wire(1, merchant_id=None, offer_id=None, variant=None, amount=None)], format="json")
    assert response.status_code == 201, response.content
    event = Event.objects.get()
    assert event.merchant is None and event.offer is None and event.variant == "" and event.amount is None


def test_5000_rows_with_longest_values_are_accepted_and_5001_rejected(api, campaign, offer):
    long_campaign = CampaignFactory(campaign_id="c" * 64)
    OfferFactory(offer_id="o" * 64, value=Decimal("5"))
    batch = [
        wire(n, event_id=f"{n:064d}", type="conversion", occurred_at="2025-03-01T09:15:00.123456+01:00",
             customer_id=f"{n % 50:x>64}", campaign_id=long_campaign.campaign_id, merchant_id="m" * 64,
             offer_id="o" * 64, variant="v" * 64, amount="999999999999.99")
        for n in range(5001)
    ]
    too_big = api.post(URL, batch, format="json")
    assert too_big.status_code == 400
    assert "5000" in too_big.json()["error"]["message"]
    assert Event.objects.count() == 0

    ok = api.post(URL, batch[:5000], format="json")
    assert ok.status_code == 201
    assert ok.json()["stored"] == 5000 and Event.objects.count() == 5000


@pytest.mark.parametrize("body", [{}, {"events": "nope"}, [], "text", {"events": []}])
def test_a_body_that_is_not_a_batch_is_rejected(api, campaign, body):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert "events" in response.json()["error"]["fields"]


def test_anonymous_gets_401(anon_api, campaign):
    assert anon_api.post(URL, [wire(1)], format="json").status_code == 401
    assert Event.objects.count() == 0


def test_viewer_may_not_send_events(viewer_api, campaign):
    response = viewer_api.post(URL, [wire(1)], format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_ingest_account_may_send_events_but_not_read_campaigns(make_user, campaign):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    service = make_user("notifications-service", "ingest")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=service).key}")

    assert client.post(URL, [wire(1)], format="json").status_code == 201
    assert client.get("/api/v1/campaigns/").status_code == 403
    assert client.get("/api/v1/customers/").status_code == 403


def test_event_wire_format_is_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    post = schema["paths"]["/api/v1/events/"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    component = body["items"]["$ref"].rsplit("/", 1)[-1]
    properties = schema["components"]["schemas"][component]["properties"]
    assert set(properties) == {
        "event_id", "type", "occurred_at", "customer_id", "campaign_id", "merchant_id", "offer_id", "variant", "amount",
        "channel",
    }
    assert set(schema["components"]["schemas"][component]["required"]) == {"event_id", "type", "occurred_at", "campaign_id"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_with_the_same_ids_store_each_id_once(postgres, marketer):
    """Two clients racing with overlapping batches: ON CONFLICT makes the total exact, and each new
    customer is reported created by exactly one of them (the other's insert of it was skipped)."""
    from campaigns.services import ingest_events

    CampaignFactory(campaign_id="camp_1")
    batches = [[wire(n, customer_id=f"user_{n % 150}") for n in range(k, k + 400)] for k in (0, 200)]
    results = []

    def send(batch):
        try:
            results.append(ingest_events(batch))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert Event.objects.count() == 600
    assert sum(r.stored for r in results) == 600
    assert sum(r.duplicates for r in results) == 200
    assert Customer.objects.count() == 150
    assert sum(r.customers_created for r in results) == 150


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    instant=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2026, 1, 1)),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
    cents=st.integers(min_value=0, max_value=99_999_999_999_999),
    as_number=st.booleans(),
)
def test_any_valid_time_and_amount_is_stored_exactly(campaign, instant, offset_minutes, cents, as_number):
    """Property: the stored instant and amount equal an independent parse (pandas, Decimal) of the wire text."""
    from campaigns.services import ingest_events

    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    text = instant.replace(tzinfo=zone).isoformat()
    amount_text = f"{cents // 100}.{cents % 100:02d}"
    amount = float(amount_text) if as_number else amount_text
    event_id = f"evt_{uuid.uuid4().hex}"

    result = ingest_events([wire(0, event_id=event_id, type="conversion", occurred_at=text, amount=amount)])

    stored = Event.objects.get(event_id=event_id)
    assert result.stored == 1
    assert stored.occurred_at == pd.Timestamp(text).tz_convert("UTC").to_pydatetime()
    assert stored.amount == Decimal(amount_text)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=0, max_value=10**6)
       .filter(lambda d: d != d.quantize(Decimal("0.01"))))
def test_any_amount_with_a_third_decimal_is_refused(campaign, amount):
    from campaigns.services import InvalidRows, ingest_events

    with pytest.raises(InvalidRows) as refused:
        ingest_events([wire(0, type="conversion", amount=str(amount))])
    assert [(e.field, e.reason) for e in refused.value.errors] == [("amount", "has more than 2 decimal places")]


# --- the fast path of the row validator, and references without database foreign keys ------------

_ID_VALUES = st.one_of(
    st.none(), st.just(""), st.just("camp_1"), st.just(" padded"), st.just("x" * 64), st.just("x" * 65),
    st.integers(0, 9), st.text(max_size=3),
)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    event_id=_ID_VALUES, customer_id=_ID_VALUES, campaign_id=_ID_VALUES, merchant_id=_ID_VALUES,
    variant=_ID_VALUES,
    channel=st.one_of(_ID_VALUES, st.sampled_from(["email", "in_app", "Email", "c" * 32, "c" * 33])),
    event_type=st.one_of(st.sampled_from(Event.Type.values), st.just("nope"), st.none(), st.just(["view"])),
    occurred_at=st.sampled_from(["2025-03-01T09:15:00+01:00", "2025-03-01T09:15:00Z", "2025-03-01T09:15:00",
                                 "2025-03-01", "soon", "2999-01-01T00:00:00+00:00", None, 7]),
    amount=st.one_of(st.none(), st.sampled_from(["", "19.90", "19.905", "-1", "1e3", "NaN", "abc"]),
                     st.floats(allow_nan=True), st.integers(-5, 5)),
    extra=st.booleans(),
)
def test_fast_row_check_accepts_exactly_what_the_detailed_checks_accept(
    event_id, customer_id, campaign_id, merchant_id, variant, channel, event_type, occurred_at, amount, extra
):
    from campaigns.ingest.validation import _detailed_row, _fast_row

    raw = {"event_id": event_id, "type": event_type, "occurred_at": occurred_at, "customer_id": customer_id,
           "campaign_id": campaign_id, "merchant_id": merchant_id, "variant": variant, "amount": amount,
           "channel": channel}
    if extra:
        raw["ammount"] = "1"
    now = timezone.now()
    fast = _fast_row(raw, now)
    detailed, errors = _detailed_row(raw, now)
    if fast is not None:  # the fast path may pass a row on, but never decide differently
        assert errors == [] and detailed == fast


_ROW = st.fixed_dictionaries({
    "event_id": st.one_of(_ID_VALUES, st.sampled_from(["evt_1", "evt_2"])),
    "type": st.one_of(st.sampled_from(Event.Type.values), st.just("nope"), st.none(), st.just("")),
    "occurred_at": st.sampled_from(["2025-03-01T09:15:00+01:00", "2025-03-01T09:15:00Z", "2025-03-01T09:15:00",
                                    "soon", "2999-01-01T00:00:00+00:00", "9999-12-31T23:59:59-01:00", "", None, 7]),
    "customer_id": _ID_VALUES, "campaign_id": st.one_of(_ID_VALUES, st.just("camp_1")),
    "merchant_id": _ID_VALUES, "offer_id": st.one_of(st.none(), st.just(""), st.just("off_1"), st.just("o/1")),
    "variant": _ID_VALUES,
    "amount": st.one_of(st.none(), st.sampled_from(["", "19.90", "19.905", "-1", "1e3", " 2 ", "NaN"]), st.integers(0, 5)),
    "channel": st.one_of(st.none(), st.sampled_from(["", "email", "Email", "c" * 33]), st.integers(0, 1)),
})
_VALID_ROW = st.builds(
    lambda n, kind, customer, merchant, amount, channel: {
        "event_id": f"evt_{n}", "type": kind, "occurred_at": "2025-03-01T09:15:00+01:00", "campaign_id": "camp_1",
        "customer_id": customer, "merchant_id": merchant, "variant": "B",
        "amount": amount if kind in ("conversion", "spend") else "", "channel": channel},
    st.integers(0, 3), st.sampled_from(Event.Type.values), st.sampled_from(["user_1", "user_2"]),
    st.sampled_from(["", "m_1"]), st.sampled_from(["19.90", "0", "5"]), st.sampled_from(["", "email"]),
)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.one_of(_VALID_ROW, _VALID_ROW, _ROW), min_size=1, max_size=6), drop=st.booleans())
def test_a_batch_checked_column_by_column_gives_what_row_by_row_gives(rows, drop):
    """check_rows (and check_csv_rows for cells) try the whole batch column by column first: same rows,
    errors and references as checking every row alone, valid batches or not."""
    from campaigns.ingest.validation import WIRE_FIELDS, _check_each_row, check_csv_rows, check_rows

    now = timezone.now()
    if drop:  # keys not given at all, as in JSON
        rows = [{k: v for k, v in row.items() if v is not None} for row in rows]
    assert check_rows(rows, now=now) == _check_each_row(rows, now)
    header = list(WIRE_FIELDS)  # CSV cells are text: a missing key or a non-string value is an empty cell here
    cells = [[row.get(name) if isinstance(row.get(name), str) else "" for name in header] for row in rows]
    as_dicts = [dict(zip(header, values, strict=True)) for values in cells]
    assert check_csv_rows(header, cells, now=now) == _check_each_row(as_dicts, now)


def test_a_valid_batch_takes_the_column_path(monkeypatch):
    from campaigns.ingest import validation

    monkeypatch.setattr(validation, "_check_each_row", lambda *a: pytest.fail("went row by row"))
    rows = [wire(n) for n in range(3)]
    checked = validation.check_rows(rows, now=timezone.now())
    assert [i for i, _ in checked.valid] == [0, 1, 2] and not checked.errors


def test_database_refuses_to_delete_a_campaign_customer_or_merchant_with_events(postgres, campaign):
    from django.db import IntegrityError, transaction

    from campaigns.services import ingest_events

    ingest_events([wire(1, merchant_id="m_1")])
    event = Event.objects.get()
    for table, pk in [("campaigns_campaign", event.campaign_id), ("campaigns_customer", event.customer_id),
                      ("campaigns_merchant", event.merchant_id)]:
        with pytest.raises(IntegrityError, match="still referenced"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"DELETE FROM {table} WHERE id = %s", [pk])
    # Without events the same delete goes through.
    Event.objects.all().delete()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM campaigns_merchant WHERE id = %s", [event.merchant_id])
    assert not Merchant.objects.filter(pk=event.merchant_id).exists()


@pytest.mark.parametrize("expect_duplicates", [False, True], ids=["copy-first", "look-up-first"])
def test_partly_known_batch_counts_exactly_whichever_way_it_is_written(campaign, monkeypatch, expect_duplicates):
    from campaigns import services
    from campaigns.ingest import store

    services.ingest_events([wire(n) for n in range(0, 10, 2)])  # evt_0, evt_2, ... evt_8
    monkeypatch.setattr(store.duplicate_hint(), "expected", expect_duplicates)
    result = services.ingest_events([wire(n) for n in range(10)] + [wire(3)])

    assert (result.stored, result.duplicates) == (5, 6)  # 5 known ids + evt_3 twice in the batch
    assert sorted(Event.objects.values_list("event_id", flat=True)) == sorted(f"evt_{n}" for n in range(10))

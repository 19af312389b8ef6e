"""Segment rules (campaigns.segments) against an independent pandas evaluation of the documented rules."""

from __future__ import annotations

import datetime as dt
import io
import random
from decimal import Decimal

import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns import segments
from campaigns.models import Customer, Event
from campaigns.segments import recompute_segments
from tests.factories import CampaignFactory, CustomerFactory, EventFactory

pytestmark = pytest.mark.django_db
AS_OF = dt.date(2025, 6, 30)


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def segment_of(customer_id: str) -> str | None:
    customer = Customer.objects.select_related("segment").get(customer_id=customer_id)
    return customer.segment.name if customer.segment else None


def test_each_rule_on_hand_made_customers():
    campaign = CampaignFactory()
    threshold = segments.HIGH_VALUE_MIN_REVENUE
    cases = {
        # customer: (signup date, [(days before AS_OF, type, amount)])
        "fresh": (AS_OF - dt.timedelta(days=segments.NEW_USER_DAYS - 1), [(0, "view", None)]),
        "fresh_today": (AS_OF, []),
        "stale": (AS_OF - dt.timedelta(days=segments.NEW_USER_DAYS), [(1, "click", None)]),
        "one_buy": (AS_OF - dt.timedelta(days=400), [(300, "conversion", Decimal("9.99"))]),
        "new_buyer": (AS_OF - dt.timedelta(days=2), [(1, "conversion", Decimal("5.00"))]),
        "big_spender": (AS_OF - dt.timedelta(days=400), [(10, "conversion", threshold - 1), (179, "conversion", Decimal("1"))]),
        "big_but_old": (AS_OF - dt.timedelta(days=400), [(10, "conversion", threshold - 1), (180, "conversion", Decimal("1"))]),
        "just_short": (AS_OF - dt.timedelta(days=400), [(0, "conversion", threshold - Decimal("0.01"))]),
        "after_as_of": (AS_OF - dt.timedelta(days=400), [(-1, "conversion", threshold)]),
    }
    for customer_id, (signup, events) in cases.items():
        customer = CustomerFactory(customer_id=customer_id, signup_date=signup, segment=None)
        for days_before, kind, amount in events:
            EventFactory(customer=customer, campaign=campaign, type=kind, amount=amount,
                         occurred_at=at(AS_OF - dt.timedelta(days=days_before)))

    recompute_segments(as_of=AS_OF)

    assert {c: segment_of(c) for c in cases} == {
        "fresh": "new_users",
        "fresh_today": "new_users",
        "stale": None,
        "one_buy": "returning_users",
        "new_buyer": "returning_users",
        "big_spender": "high_value_users",
        "big_but_old": "returning_users",  # the 180-day window ends before the oldest conversion
        "just_short": "returning_users",
        "after_as_of": None,  # its only conversion comes after the as-of day
    }


def test_unknown_signup_date_falls_back_to_when_we_created_the_customer():
    CustomerFactory(customer_id="seen_recently", signup_date=None, created_at=at(AS_OF - dt.timedelta(days=3)))
    CustomerFactory(customer_id="seen_long_ago", signup_date=None, created_at=at(AS_OF - dt.timedelta(days=90)))
    recompute_segments(as_of=AS_OF)
    assert segment_of("seen_recently") == "new_users"
    assert segment_of("seen_long_ago") is None


def test_spend_rows_without_a_customer_do_not_empty_the_segments():
    """A NULL customer in the converted-customers subquery must not turn NOT IN into 'nobody'."""
    campaign = CampaignFactory()
    EventFactory(customer=None, campaign=campaign, type="spend", amount=Decimal("10"), occurred_at=at(AS_OF))
    EventFactory(customer=None, campaign=campaign, type="conversion", amount=Decimal("10"), occurred_at=at(AS_OF))
    CustomerFactory(customer_id="fresh", signup_date=AS_OF, segment=None)
    recompute_segments(as_of=AS_OF)
    assert segment_of("fresh") == "new_users"


def expected_segments(customers: pd.DataFrame, conversions: pd.DataFrame, as_of: dt.date) -> dict[str, str | None]:
    """The documented rules, evaluated with pandas."""
    until = pd.Timestamp(as_of + dt.timedelta(days=1), tz="UTC")
    since = until - pd.Timedelta(days=segments.HIGH_VALUE_WINDOW_DAYS)
    conversions = conversions[conversions.occurred_at < until]
    counts = conversions.groupby("customer_id").size()
    window = conversions[conversions.occurred_at >= since]
    revenue = window.groupby("customer_id")["amount"].sum()
    high = set(revenue[revenue >= segments.HIGH_VALUE_MIN_REVENUE].index)
    returning = set(counts[counts >= segments.RETURNING_MIN_CONVERSIONS].index)
    first_new_day = as_of - dt.timedelta(days=segments.NEW_USER_DAYS - 1)
    out = {}
    for row in customers.itertuples():
        if row.customer_id in high:
            out[row.customer_id] = "high_value_users"
        elif row.customer_id in returning:
            out[row.customer_id] = "returning_users"
        elif first_new_day <= row.signup_date <= as_of:
            out[row.customer_id] = "new_users"
        else:
            out[row.customer_id] = None
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_random_population_matches_a_pandas_evaluation_of_the_rules(seed):
    rng = random.Random(seed)
    campaign = CampaignFactory()
    customers, conversions = [], []
    for n in range(80):
        signup = AS_OF - dt.timedelta(days=rng.randint(-3, 400))
        customer = CustomerFactory(customer_id=f"user_{n}", signup_date=signup, segment=None)
        customers.append({"customer_id": customer.customer_id, "signup_date": signup})
        for _ in range(rng.choice([0, 0, 1, 2, 4])):
            when = at(AS_OF - dt.timedelta(days=rng.randint(-5, 250)), rng.randint(0, 23))
            amount = Decimal(rng.randint(1, 40000)) / 100
            kind = rng.choice(["conversion", "conversion", "click"])
            EventFactory(customer=customer, campaign=campaign, type=kind, occurred_at=when,
                         amount=amount if kind == "conversion" else None)
            if kind == "conversion":
                conversions.append({"customer_id": customer.customer_id, "occurred_at": when, "amount": amount})
    conversion_frame = pd.DataFrame(conversions, columns=["customer_id", "occurred_at", "amount"])
    conversion_frame["occurred_at"] = pd.to_datetime(conversion_frame["occurred_at"], utc=True)

    counts = recompute_segments(as_of=AS_OF)

    expected = expected_segments(pd.DataFrame(customers), conversion_frame, AS_OF)
    assert {c.customer_id: (c.segment.name if c.segment else None)
            for c in Customer.objects.select_related("segment")} == expected
    tally = pd.Series([v or "none" for v in expected.values()]).value_counts().to_dict()
    assert {k: v for k, v in counts.items() if v} == tally
    assert len(set(expected.values())) >= 3  # the random population really exercises the rules


def test_recompute_is_set_based_not_a_query_per_customer():
    campaign = CampaignFactory()
    for n in range(30):
        customer = CustomerFactory(customer_id=f"u{n}", signup_date=AS_OF)
        if n % 2:
            EventFactory(customer=customer, campaign=campaign, type="conversion", amount=Decimal("20"),
                         occurred_at=at(AS_OF))
    with CaptureQueriesContext(connection) as queries:
        recompute_segments(as_of=AS_OF)
    assert len(queries) <= 8
    assert Event.objects.count() == 15


def test_command_prints_counts_and_rejects_a_bad_date():
    CustomerFactory(customer_id="u1", signup_date=AS_OF, segment=None)
    out = io.StringIO()
    call_command("compute_segments", "--as-of", AS_OF.isoformat(), stdout=out)
    assert "new_users: 1 customers" in out.getvalue()
    assert segment_of("u1") == "new_users"
    with pytest.raises(CommandError, match="not a date"):
        call_command("compute_segments", "--as-of", "30/06/2025")

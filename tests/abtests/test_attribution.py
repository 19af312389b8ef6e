"""Which conversions count for a test, compared with a pandas computation over the raw rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from abtests import selectors
from abtests.models import ABTestAssignment
from campaigns.models import Customer, Event
from tests.abtests.factories import ABTestFactory
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def conversion(n, customer, campaign, at, amount="10.00"):
    return Event(event_id=f"evt_{n}", type=Event.Type.CONVERSION, occurred_at=at, customer=customer,
                 campaign=campaign, amount=Decimal(amount))


def test_only_conversions_after_assignment_in_the_tests_campaign_count():
    test = ABTestFactory()
    other_campaign = CampaignFactory()
    a, b = test.ordered_variants
    cust = [Customer.objects.create(customer_id=f"user_{i}") for i in range(5)]
    for i, c in enumerate(cust):
        ABTestAssignment.objects.create(test=test, customer=c, variant=a if i % 2 == 0 else b, assigned_at=T0)
    outsider = Customer.objects.create(customer_id="not_in_test")
    Event.objects.bulk_create([
        conversion(1, cust[0], test.campaign, T0 - dt.timedelta(minutes=1)),  # before assignment: no
        conversion(2, cust[1], other_campaign, T0 + dt.timedelta(hours=1)),  # other campaign: no
        conversion(3, cust[2], test.campaign, T0 + dt.timedelta(hours=1), "5.00"),  # counts
        conversion(4, cust[2], test.campaign, T0 + dt.timedelta(hours=2), "7.50"),  # same user: revenue adds
        conversion(5, cust[3], test.campaign, T0, "3.00"),  # exactly at assignment: counts
        conversion(6, outsider, test.campaign, T0 + dt.timedelta(hours=1)),  # not assigned: no
        Event(event_id="evt_7", type=Event.Type.CLICK, occurred_at=T0 + dt.timedelta(hours=1), customer=cust[4],
              campaign=test.campaign),  # not a conversion
    ])
    arm_a, arm_b = selectors.arm_totals(test=test)
    assert (arm_a.users, arm_a.conversions, arm_a.revenue) == (3, 1, 12.5)  # users 0, 2, 4; only user_2
    assert (arm_b.users, arm_b.conversions, arm_b.revenue) == (2, 1, 3.0)  # users 1, 3; only user_3


def test_conversions_after_the_test_ended_do_not_count():
    test = ABTestFactory(ended_at=T0 + dt.timedelta(days=1))
    a, _ = test.ordered_variants
    c = Customer.objects.create(customer_id="user_1")
    ABTestAssignment.objects.create(test=test, customer=c, variant=a, assigned_at=T0)
    Event.objects.bulk_create([conversion(1, c, test.campaign, T0 + dt.timedelta(days=2))])
    assert selectors.arm_totals(test=test)[0].conversions == 0
    Event.objects.bulk_create([conversion(2, c, test.campaign, T0 + dt.timedelta(hours=3))])
    assert selectors.arm_totals(test=test)[0].conversions == 1


def test_arm_totals_equal_a_pandas_computation_on_random_data():
    rng = np.random.default_rng(11)
    test = ABTestFactory(variants=[("A", 0.4), ("B", 0.3), ("C", 0.3)])
    other = CampaignFactory()
    variants = test.ordered_variants
    n_customers = 400
    Customer.objects.bulk_create([Customer(customer_id=f"user_{i}") for i in range(n_customers)])
    pk = dict(Customer.objects.values_list("customer_id", "pk"))
    assigned = rng.random(n_customers) < 0.8
    arm = rng.integers(0, 3, n_customers)
    assigned_at = [T0 + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 600, n_customers)]
    ABTestAssignment.objects.bulk_create([
        ABTestAssignment(test=test, customer_id=pk[f"user_{i}"], variant=variants[arm[i]], assigned_at=assigned_at[i])
        for i in range(n_customers) if assigned[i]
    ])
    n_events = 1500
    ev = pd.DataFrame({
        "customer": rng.integers(0, n_customers, n_events),
        "minute": rng.integers(-300, 900, n_events),
        "cents": rng.integers(100, 10000, n_events),
        "own_campaign": rng.random(n_events) < 0.8,
        "is_conversion": rng.random(n_events) < 0.7,
    })
    Event.objects.bulk_create([
        Event(event_id=f"evt_{i}", type=Event.Type.CONVERSION if r.is_conversion else Event.Type.VIEW,
              occurred_at=T0 + dt.timedelta(minutes=int(r.minute)), customer_id=pk[f"user_{r.customer}"],
              campaign=test.campaign if r.own_campaign else other, amount=Decimal(int(r.cents)) / 100)
        for i, r in enumerate(ev.itertuples())
    ])

    # Reference: the rule written with pandas over the raw rows.
    people = pd.DataFrame({"customer": np.arange(n_customers), "arm": arm, "assigned": assigned,
                           "assigned_minute": [(t - T0).total_seconds() / 60 for t in assigned_at]})
    people = people[people.assigned]
    counted = ev[ev.own_campaign & ev.is_conversion].merge(people, on="customer")
    counted = counted[counted.minute >= counted.assigned_minute]
    revenue = counted.groupby("customer").cents.sum() / 100
    people = people.assign(revenue=people.customer.map(revenue).fillna(0.0),
                           converted=people.customer.isin(revenue.index))
    expected = people.groupby("arm").agg(users=("customer", "size"), conversions=("converted", "sum"),
                                         revenue=("revenue", "sum"), mean=("revenue", "mean"),
                                         var=("revenue", "var"))

    got = selectors.arm_totals(test=test)
    for i, totals in enumerate(got):
        row = expected.loc[i]
        assert totals.users == row.users
        assert totals.conversions == row.conversions
        assert totals.revenue == pytest.approx(row.revenue, rel=1e-12)
        assert totals.revenue_mean == pytest.approx(row["mean"], rel=1e-12)
        assert totals.revenue_variance == pytest.approx(row["var"], rel=1e-9)


def test_a_variant_with_nobody_yet_reports_zeros():
    test = ABTestFactory()
    assert [(t.name, t.users, t.conversions) for t in selectors.arm_totals(test=test)] == [("A", 0, 0), ("B", 0, 0)]

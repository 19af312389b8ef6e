"""The analysis' one grouped pass (``selectors.arm_sums`` / ``metric_arms``): every per-arm sum, in-test and
pre-period (CUPED), for conversions, opens and clicks, compared with pandas over the raw rows, on several
seeds, with a test that has ended (later events do not count) and one still running. The same SQL runs on
SQLite and PostgreSQL: the suite runs on both."""

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

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
TYPES = ["conversion", "notification_opened", "click", "view"]
DAY = 24 * 60


@pytest.mark.parametrize(("seed", "ended"), [(1, False), (2, True), (3, False), (4, True)])
def test_arm_sums_equal_a_pandas_computation_over_the_raw_rows(seed, ended):
    rng = np.random.default_rng(seed)
    end_minute = 3 * DAY
    test = ABTestFactory(variants=[("A", 0.5), ("B", 0.25), ("C", 0.25)], started_at=START,
                         ended_at=START + dt.timedelta(minutes=end_minute) if ended else None)
    other = CampaignFactory()
    n_customers = 300
    Customer.objects.bulk_create([Customer(customer_id=f"u{seed}_{i}") for i in range(n_customers)])
    pk = dict(Customer.objects.values_list("customer_id", "pk"))
    people = pd.DataFrame({"customer": np.arange(n_customers), "arm": rng.integers(0, 3, n_customers),
                           "assigned": rng.random(n_customers) < 0.85,
                           "assigned_minute": rng.integers(0, 2 * DAY, n_customers)})
    people = people[people.assigned]
    variants = test.ordered_variants
    ABTestAssignment.objects.bulk_create([
        ABTestAssignment(test=test, customer_id=pk[f"u{seed}_{r.customer}"], variant=variants[r.arm],
                         assigned_at=START + dt.timedelta(minutes=int(r.assigned_minute)))
        for r in people.itertuples()
    ])
    n_events = 2500
    # Minutes from 40 days before the start (older than the pre-period too) to after the end.
    ev = pd.DataFrame({"customer": rng.integers(0, n_customers, n_events),
                       "minute": rng.integers(-40 * DAY, 5 * DAY, n_events),
                       "cents": rng.integers(0, 10000, n_events),
                       "own": rng.random(n_events) < 0.85,
                       "type": rng.choice(TYPES, n_events)})
    ev["amount"] = np.where(ev.type == "conversion", ev.cents / 100, np.nan)
    Event.objects.bulk_create([
        Event(event_id=f"e{seed}_{i}", type=r.type, occurred_at=START + dt.timedelta(minutes=int(r.minute)),
              customer_id=pk[f"u{seed}_{r.customer}"], campaign=test.campaign if r.own else other,
              amount=None if np.isnan(r.amount) else Decimal(int(r.cents)) / 100)
        for i, r in enumerate(ev.itertuples())
    ])

    # Reference: the attribution rule and the pre-period written with pandas.
    joined = ev[ev.own].merge(people, on="customer")
    joined["amount"] = joined.amount.fillna(0.0)
    last = end_minute if ended else np.inf
    in_test = joined[(joined.minute >= joined.assigned_minute) & (joined.minute <= last)]
    pre = joined[(joined.minute >= -selectors.PRE_PERIOD_DAYS * DAY) & (joined.minute < 0)
                 & (joined.minute < joined.assigned_minute)]
    got = selectors.arm_sums(test=test, event_types=["notification_opened", "click"])
    assert [s.variant_pk for s in got] == [v.pk for v in variants]
    checked = 0
    for event_type in ("conversion", "notification_opened", "click"):
        y = in_test[in_test.type == event_type].groupby("customer").amount.sum()
        x = pre[pre.type == event_type].groupby("customer").amount.sum()
        frame = people.assign(y=people.customer.map(y).fillna(0.0), y_any=people.customer.isin(y.index).astype(int),
                              x=people.customer.map(x).fillna(0.0), x_any=people.customer.isin(x.index).astype(int))
        for i, arm in enumerate(got):
            rows = frame[frame.arm == i]
            s = arm.by_type[event_type]
            assert arm.users == len(rows)
            assert s.customers == rows.y_any.sum()
            assert s.x_customers == rows.x_any.sum()
            assert s.xy_customers == (rows.x_any * rows.y_any).sum()
            assert s.y == pytest.approx(rows.y.sum(), rel=1e-12, abs=1e-9)
            assert s.y_sq == pytest.approx((rows.y ** 2).sum(), rel=1e-12, abs=1e-9)
            assert s.x == pytest.approx(rows.x.sum(), rel=1e-12, abs=1e-9)
            assert s.x_sq == pytest.approx((rows.x ** 2).sum(), rel=1e-12, abs=1e-9)
            assert s.xy == pytest.approx((rows.x * rows.y).sum(), rel=1e-12, abs=1e-9)
            checked += s.customers + s.x_customers
    assert checked > 100  # the random data exercised the sums

    # The metrics read from the same pass: binary metrics count customers, revenue sums amounts.
    by_metric = selectors.metric_arms(test=test, names=["open_rate", "revenue_per_user"])
    for i, arm in enumerate(got):
        opens, revenue = by_metric["open_rate"][i], by_metric["revenue_per_user"][i]
        o, c = arm.by_type["notification_opened"], arm.by_type["conversion"]
        assert (opens.users, opens.total, opens.x_total, opens.xy) == (arm.users, o.customers, o.x_customers,
                                                                       o.xy_customers)
        assert (revenue.total, revenue.total_sq, revenue.x_total, revenue.x_sq, revenue.xy) == (
            c.y, c.y_sq, c.x, c.x_sq, c.xy)


def test_a_test_not_started_has_an_empty_pre_period():
    test = ABTestFactory(started_at=None)
    customer = Customer.objects.create(customer_id="u_only")
    ABTestAssignment.objects.create(test=test, customer=customer, variant=test.ordered_variants[0],
                                    assigned_at=START)
    Event.objects.create(event_id="e_pre", type="conversion", occurred_at=START - dt.timedelta(days=1),
                         customer=customer, campaign=test.campaign, amount=Decimal("5.00"))
    Event.objects.create(event_id="e_in", type="conversion", occurred_at=START + dt.timedelta(days=1),
                         customer=customer, campaign=test.campaign, amount=Decimal("7.00"))
    control, _ = selectors.arm_sums(test=test, event_types=())
    s = control.by_type["conversion"]
    assert (control.users, s.customers, s.y, s.x_customers, s.x) == (1, 1, 7.0, 0, 0.0)

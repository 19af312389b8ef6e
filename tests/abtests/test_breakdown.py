"""Breakdowns: the goal metric by segment and time zone, equal to a pandas count and statsmodels' tests,
with the p-values adjusted across every slice comparison (statsmodels' multipletests)."""

from __future__ import annotations

import datetime as dt
import gc
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from abtests import breakdown, rollup
from abtests.models import ABTestAssignment
from campaigns.models import Customer, Event, Segment
from tests.abtests.factories import ABTestFactory

pytestmark = pytest.mark.django_db

SEGMENTS = ["new_users", "loyal", "at_risk"]


def build(test, rng, n: int = 900) -> pd.DataFrame:
    """Customers in three segments (and some in none), two time zones; conversion rates differ by segment,
    and arm B lifts only the loyal customers."""
    segments = {name: Segment.objects.get_or_create(name=name)[0] for name in SEGMENTS}
    variants = test.ordered_variants
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    rows = []
    for j in range(n):
        seg = SEGMENTS[j % 3] if j % 10 else None
        arm = int(rng.random() < 0.5)
        rate = {"new_users": 0.1, "loyal": 0.3, "at_risk": 0.05, None: 0.1}[seg] * (1.6 if arm and seg == "loyal" else 1)
        rows.append({"customer_id": f"{test.test_id}_{j}", "segment": seg or "(no segment)", "seg": seg, "arm": arm,
                     "timezone": "Europe/Paris" if j % 4 == 0 else "UTC", "converted": rng.random() < rate})
    frame = pd.DataFrame(rows)
    Customer.objects.bulk_create([Customer(customer_id=r.customer_id, timezone=r.timezone,
                                           segment=segments[r.seg] if r.seg else None) for r in frame.itertuples()])
    pk = dict(Customer.objects.filter(customer_id__startswith=test.test_id).values_list("customer_id", "pk"))
    ABTestAssignment.objects.bulk_create([ABTestAssignment(test=test, customer_id=pk[r.customer_id], variant=variants[r.arm],
                                                           assigned_at=at) for r in frame.itertuples()])
    Event.objects.bulk_create([Event(event_id=f"c_{pk[r.customer_id]}", type="conversion", occurred_at=at + dt.timedelta(hours=1),
                                     customer_id=pk[r.customer_id], campaign_id=test.campaign_id, amount=Decimal("10"))
                               for r in frame.itertuples() if r.converted])
    return frame


@pytest.mark.parametrize("kept", [False, True], ids=["raw-events", "kept-rollup"])
@pytest.mark.parametrize("by, column, correction, reference", [
    ("segment", "segment", "holm", "holm"), ("timezone", "timezone", "bh", "fdr_bh")])
def test_breakdown_equals_pandas_statsmodels_and_multipletests(api, monkeypatch, by, column, correction, reference, kept):
    """The same answer whether the slices come from the raw events or from a kept test's rollup (which
    the breakdown then reads instead of the events)."""
    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # multipletests collects garbage on every call
    test = ABTestFactory(multiple_testing=correction)
    frame = build(test, np.random.default_rng(8))
    if kept:
        rollup.rebuild(test=test)
    with CaptureQueriesContext(connection) as queries:
        body = api.get(f"/api/v1/ab-tests/{test.test_id}/breakdown", {"by": by}).json()
    read_events = any(Event._meta.db_table in q["sql"] for q in queries.captured_queries)
    assert read_events is not kept
    assert body["by"] == by and "adjusted across all of them" in body["note"]
    expected_slices = frame.groupby(column).size().sort_values(ascending=False)
    assert [r["slice"] for r in body["slices"]] == list(expected_slices.index)
    raw = []
    for r in body["slices"]:
        part = frame[frame[column] == r["slice"]]
        a, b = part[part.arm == 0], part[part.arm == 1]
        assert (r["control_users"], r["users"]) == (len(a), len(b))
        assert r["value"] == pytest.approx(b.converted.mean()) and r["control_value"] == pytest.approx(a.converted.mean())
        _, p = proportions_ztest([b.converted.sum(), a.converted.sum()], [len(b), len(a)])
        assert r["p_value"] == pytest.approx(p, rel=1e-9)
        assert r["lift"] == pytest.approx(100 * (b.converted.mean() / a.converted.mean() - 1))
        raw.append(p)
    reject, adjusted, _, _ = multipletests(raw, method=reference)
    assert [r["p_value_adjusted"] for r in body["slices"]] == pytest.approx(list(adjusted), rel=1e-9)
    assert [r["significant"] for r in body["slices"]] == list(reject)


def test_small_slices_are_listed_without_statistics_and_many_slices_fold_into_other():
    arms = {f"s{i}": [breakdown.metrics.MetricArm(100 + i, 10, 10), breakdown.metrics.MetricArm(100, 12, 12)]
            for i in range(30)}
    arms["tiny"] = [breakdown.metrics.MetricArm(5, 1, 1), breakdown.metrics.MetricArm(500, 50, 50)]
    rows, _ = breakdown.slices(names=["A", "B"], metric="conversion_rate", by_slice=arms, confidence_level=0.95)
    assert len(rows) == breakdown.MAX_SLICES and rows[-1].slice == breakdown.OTHER
    # The largest first ("tiny" has 505 users in all); the 7 smallest (s0 to s6) are added up.
    assert rows[0].slice == "tiny" and rows[0].p_value is None
    assert rows[-1].control_users == sum(100 + i for i in range(7)) and rows[-1].users == 700
    small, _ = breakdown.slices(names=["A", "B"], metric="conversion_rate", by_slice={"tiny": arms["tiny"]},
                                confidence_level=0.95)
    assert small[0].p_value is None and "fewer than 30 users" in small[0].note


def test_an_unknown_dimension_is_a_400(api):
    test = ABTestFactory()
    response = api.get(f"/api/v1/ab-tests/{test.test_id}/breakdown", {"by": "merchant"})
    assert response.status_code == 400 and "by" in response.json()["error"]["fields"]


def test_the_test_page_shows_the_segment_breakdown_with_its_note(client, marketer):
    test = ABTestFactory()
    build(test, np.random.default_rng(2))
    client.force_login(marketer)
    html = client.get(f"/ab-tests/{test.test_id}/").content.decode()
    assert "By segment" in html and "loyal" in html and "(no segment)" in html
    assert "a lead to confirm with its own test" in html


# --- by channel: a property of the events, so each slice splits the goal over all the arm's users ----------

CHANNELS = ["email", "push", "sms", ""]  # "" = an event sent without a channel


def build_channels(test, rng, n: int = 1200) -> pd.DataFrame:
    """Each customer converts through 0, 1 or 2 channels; B lifts conversions through email only. Events that
    must not count: before the assignment, in another campaign, of another type."""
    variants = test.ordered_variants
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    other = ABTestFactory().campaign
    Customer.objects.bulk_create([Customer(customer_id=f"{test.test_id}_{j}") for j in range(n)])
    pk = dict(Customer.objects.filter(customer_id__startswith=f"{test.test_id}_").values_list("customer_id", "pk"))
    arm = (rng.random(n) < 0.5).astype(int)
    ABTestAssignment.objects.bulk_create([ABTestAssignment(test=test, customer_id=pk[f"{test.test_id}_{j}"],
                                                           variant=variants[arm[j]], assigned_at=at) for j in range(n)])
    rate = {"email": 0.12, "push": 0.08, "sms": 0.05, "": 0.04}
    rows, events = [], []
    for j in range(n):
        customer = pk[f"{test.test_id}_{j}"]
        for channel in CHANNELS:
            p = rate[channel] * (1.8 if arm[j] and channel == "email" else 1.0)
            times = int(rng.random() < p) + int(rng.random() < p / 3)  # some convert twice through one channel
            for t in range(times):
                amount = Decimal(int(rng.integers(100, 5000))).scaleb(-2)
                events.append(Event(event_id=f"c_{customer}_{channel}_{t}", type="conversion", channel=channel,
                                    occurred_at=at + dt.timedelta(hours=1 + t), customer_id=customer,
                                    campaign_id=test.campaign_id, amount=amount))
                rows.append({"customer": customer, "arm": arm[j], "channel": channel or "(no channel)",
                             "amount": float(amount)})
        if j % 7 == 0:  # not counted: before assignment, other campaign, a click
            for k, (kind, when, campaign) in enumerate([("conversion", at - dt.timedelta(hours=1), test.campaign_id),
                                                        ("conversion", at + dt.timedelta(hours=1), other.pk),
                                                        ("click", at + dt.timedelta(hours=1), test.campaign_id)]):
                events.append(Event(event_id=f"x_{customer}_{k}", type=kind, channel="email", occurred_at=when,
                                    customer_id=customer, campaign_id=campaign,
                                    amount=Decimal("5") if kind == "conversion" else None))
    Event.objects.bulk_create(events)
    users = pd.Series(arm).value_counts().sort_index()
    return pd.DataFrame(rows), users


@pytest.mark.parametrize("metric", ["conversion_rate", "revenue_per_user"])
def test_breakdown_by_channel_equals_pandas_and_references_over_all_users(api, monkeypatch, metric):
    from scipy import stats as scipy_stats

    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    test = ABTestFactory(primary_metric=metric)
    frame, users = build_channels(test, np.random.default_rng(11))
    body = api.get(f"/api/v1/ab-tests/{test.test_id}/breakdown", {"by": "channel"}).json()
    assert body["by"] == "channel" and "per assigned user" in body["note"]
    assert {r["slice"] for r in body["slices"]} == {"email", "push", "sms", "(no channel)"}
    per_customer = frame.groupby(["channel", "arm", "customer"])["amount"].sum()
    raw = []
    for r in body["slices"]:
        assert (r["control_users"], r["users"]) == (users[0], users[1])  # every slice holds all the users
        values = []
        for a in (0, 1):
            got = per_customer.loc[r["slice"], a] if (r["slice"], a) in per_customer.index.droplevel(2) else []
            x = np.zeros(users[a])
            x[: len(got)] = (np.asarray(got) > 0) if metric == "conversion_rate" else np.asarray(got)
            values.append(x)
        assert r["control_value"] == pytest.approx(values[0].mean()) and r["value"] == pytest.approx(values[1].mean())
        if metric == "conversion_rate":
            _, p = proportions_ztest([values[1].sum(), values[0].sum()], [users[1], users[0]])
        else:
            p = scipy_stats.ttest_ind(values[1], values[0], equal_var=False).pvalue
        assert r["p_value"] == pytest.approx(p, rel=1e-6)
        raw.append(p)
    _, adjusted, _, _ = multipletests(raw, method="holm")
    assert [r["p_value_adjusted"] for r in body["slices"]] == pytest.approx(list(adjusted), rel=1e-6)
    # The planted effect is found in email, and only there.
    assert [r["slice"] for r in body["slices"] if r["significant"]] == ["email"]


def test_many_channels_fold_into_other_counting_each_customer_once(api):
    test = ABTestFactory()
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    variants = test.ordered_variants
    n_channels = breakdown.MAX_SLICES + 5
    customers = Customer.objects.bulk_create([Customer(customer_id=f"fold_{j}") for j in range(200)])
    ABTestAssignment.objects.bulk_create([ABTestAssignment(test=test, customer=c, variant=variants[j % 2], assigned_at=at)
                                          for j, c in enumerate(customers)])
    # Customer j converts through channels ch00..ch{j % n}: lower-numbered channels have more converters.
    events = [Event(event_id=f"f_{j}_{k}", type="conversion", channel=f"ch{k:02d}", occurred_at=at + dt.timedelta(hours=1),
                    customer=c, campaign_id=test.campaign_id, amount=Decimal("1"))
              for j, c in enumerate(customers) for k in range(j % n_channels + 1)]
    Event.objects.bulk_create(events)
    body = api.get(f"/api/v1/ab-tests/{test.test_id}/breakdown", {"by": "channel"}).json()
    slices = list(dict.fromkeys(r["slice"] for r in body["slices"]))
    assert len(slices) == breakdown.MAX_SLICES and slices[-1] == breakdown.OTHER
    assert slices[:-1] == [f"ch{k:02d}" for k in range(breakdown.MAX_SLICES - 1)]
    # (other) = customers with any conversion through a folded channel, once each, over all users.
    folded = [j for j in range(200) if j % n_channels + 1 > breakdown.MAX_SLICES - 1]
    other = body["slices"][-1]
    assert other["control_users"] == other["users"] == 100
    assert other["control_value"] == pytest.approx(sum(1 for j in folded if j % 2 == 0) / 100)
    assert other["value"] == pytest.approx(sum(1 for j in folded if j % 2 == 1) / 100)


def test_the_test_page_shows_the_channel_breakdown_or_says_there_is_none(client, marketer):
    client.force_login(marketer)
    with_channels = ABTestFactory()
    build_channels(with_channels, np.random.default_rng(3), n=300)
    html = client.get(f"/ab-tests/{with_channels.test_id}/").content.decode()
    assert "By channel" in html and "<td>email</td>" in html and "per assigned user" in html

    without = ABTestFactory()
    build(without, np.random.default_rng(4), n=120)
    html = client.get(f"/ab-tests/{without.test_id}/").content.decode()
    assert "By channel" in html and "No conversion of this test carries a channel yet" in html

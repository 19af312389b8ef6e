"""Breakdowns: the goal metric by segment and time zone, equal to a pandas count and statsmodels' tests,
with the p-values adjusted across every slice comparison (statsmodels' multipletests)."""

from __future__ import annotations

import datetime as dt
import gc
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from abtests import breakdown
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


@pytest.mark.parametrize("by, column, correction, reference", [
    ("segment", "segment", "holm", "holm"), ("timezone", "timezone", "bh", "fdr_bh")])
def test_breakdown_equals_pandas_statsmodels_and_multipletests(api, monkeypatch, by, column, correction, reference):
    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # multipletests collects garbage on every call
    test = ABTestFactory(multiple_testing=correction)
    frame = build(test, np.random.default_rng(8))
    body = api.get(f"/api/v1/ab-tests/{test.test_id}/breakdown", {"by": by}).json()
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

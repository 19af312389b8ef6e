"""Deterministic assignment: stable, equal to the published hash, weights respected, stored once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from abtests import assignment
from abtests.models import ABTestAssignment, ABTestVariant
from campaigns.models import Customer
from tests.abtests.factories import ABTestFactory

pytestmark = pytest.mark.django_db


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit, written here from the spec (offset basis 2166136261, prime 16777619)."""
    h = 2166136261
    for ch in text:
        h = ((h ^ ord(ch)) * 16777619) % 2**32
    return h


def expected_variant(seed: str, customer_id: str, weights: list[float]) -> int:
    bucket = fnv1a32(str(fnv1a32(seed + customer_id))) % 10000 / 10000
    edge = 0.0
    for i, w in enumerate(weights):
        edge += w
        if bucket < edge:
            return i
    return len(weights) - 1


def customers(n: int, prefix: str = "user_") -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    Customer.objects.bulk_create([Customer(customer_id=c) for c in ids])
    return ids


def test_the_published_growthbook_buckets():
    # Values given in the issue (GrowthBook hash v2).
    assert fnv1a32(str(fnv1a32("seed" + "a"))) % 10000 / 10000 == 0.0505
    assert expected_variant("foo", "ab", [0.25, 0.75]) == 1  # bucket 0.2575 falls past 0.25


def test_assigned_variant_is_the_hash_bucket_mapped_by_weights(api):
    test = ABTestFactory(hashing_seed="exp-seed", variants=[("A", 0.2), ("B", 0.3), ("C", 0.5)])
    ids = customers(300)
    answer = api.post(f"/api/v1/ab-tests/{test.test_id}/assign", {"customer_ids": ids}, format="json").json()
    names = ["A", "B", "C"]
    got = {row["customer_id"]: row["variant"] for row in answer["assignments"]}
    assert got == {c: names[expected_variant("exp-seed", c, [0.2, 0.3, 0.5])] for c in ids}


def test_asking_again_returns_the_stored_variant_even_after_the_weights_change(api):
    test = ABTestFactory(variants=[("A", 0.5), ("B", 0.5)])
    ids = customers(200)
    first = api.post(f"/api/ab-tests/{test.test_id}/assign", {"customer_ids": ids}, format="json").json()
    assert first["new"] == 200
    # Change the split: the stored assignment wins, nobody moves.
    ABTestVariant.objects.filter(test=test, name="A").update(weight=0.1)
    ABTestVariant.objects.filter(test=test, name="B").update(weight=0.9)
    again = api.post(f"/api/ab-tests/{test.test_id}/assign", {"customer_ids": ids}, format="json").json()
    assert again["new"] == 0
    assert [r["variant"] for r in again["assignments"]] == [r["variant"] for r in first["assignments"]]
    assert ABTestAssignment.objects.filter(test=test).count() == 200


def test_single_customer_assignment_is_stable_and_reports_new_once(api):
    test = ABTestFactory()
    customers(1)
    one = api.post(f"/api/ab-tests/{test.test_id}/assign", {"customer_id": "user_0"}, format="json").json()
    two = api.post(f"/api/ab-tests/{test.test_id}/assign", {"customer_id": "user_0"}, format="json").json()
    assert one["new"] is True and two["new"] is False
    assert one["variant"] == two["variant"] and one["assigned_at"] == two["assigned_at"]
    assert assignment.assigned_variant(test=test, customer_id="user_0") == one["variant"]


def test_batch_assignment_is_idempotent_with_duplicates_and_overlap(api):
    test = ABTestFactory()
    ids = customers(50)
    api.post(f"/api/ab-tests/{test.test_id}/assign", {"customer_ids": ids[:30]}, format="json")
    body = api.post(f"/api/ab-tests/{test.test_id}/assign", {"customer_ids": ids + ids[:5]}, format="json").json()
    assert body["new"] == 20
    assert len(body["assignments"]) == 55
    assert ABTestAssignment.objects.filter(test=test).count() == 50


def test_weights_are_respected_over_many_customers():
    test = ABTestFactory(variants=[("A", 0.5), ("B", 0.3), ("C", 0.2)])
    ids = customers(9000)
    for start in range(0, len(ids), 3000):
        assignment.assign(test=test, customer_ids=ids[start:start + 3000])
    counts = [ABTestAssignment.objects.filter(test=test, variant__name=n).count() for n in "ABC"]
    assert sum(counts) == 9000
    # A fair hash gives a split that fits the weights (goodness of fit, scipy as the reference).
    p = scipy_stats.chisquare(counts, [9000 * 0.5, 9000 * 0.3, 9000 * 0.2]).pvalue
    assert p > 0.001, counts
    assert abs(counts[0] / 9000 - 0.5) < 0.03 and abs(counts[2] / 9000 - 0.2) < 0.03


def test_zero_weight_variant_gets_nobody():
    test = ABTestFactory(variants=[("A", 0.5), ("off", 0.0), ("B", 0.5)])
    ids = customers(500)
    rows = assignment.assign(test=test, customer_ids=ids)
    assert {r.variant for r in rows} == {"A", "B"}


def test_unknown_customers_are_a_400_listing_them(api):
    test = ABTestFactory()
    customers(1)
    response = api.post(f"/api/ab-tests/{test.test_id}/assign", {"customer_ids": ["user_0", "ghost_1"]},
                        format="json")
    assert response.status_code == 400
    assert "ghost_1" in str(response.json()["error"]["fields"]["customer_ids"])
    assert ABTestAssignment.objects.count() == 0  # all or nothing


def test_assign_without_customers_is_a_400(api):
    test = ABTestFactory()
    response = api.post(f"/api/ab-tests/{test.test_id}/assign", {}, format="json")
    assert response.status_code == 400
    assert "customer_ids" in response.json()["error"]["fields"]


def test_viewer_may_not_assign(viewer_api):
    test = ABTestFactory()
    customers(1)
    assert viewer_api.post(f"/api/ab-tests/{test.test_id}/assign", {"customer_id": "user_0"},
                           format="json").status_code == 403


@given(customer_id=st.text(min_size=1, max_size=40), seed=st.text(max_size=20),
       weights=st.lists(st.integers(min_value=0, max_value=10), min_size=2, max_size=5).filter(lambda w: sum(w) > 0))
@settings(max_examples=300, deadline=None)
def test_variant_for_any_id_seed_and_weights_matches_the_spec(customer_id, seed, weights):
    # Weights that are exact in binary floating point sums, so the cumulative edges agree exactly.
    total = sum(weights)
    normalised = [w / total for w in weights]
    if abs(sum(normalised) - 1.0) > 1e-12:
        return
    got = assignment.variant_index_for(seed, customer_id, normalised)
    assert normalised[got] > 0
    bucket = fnv1a32(str(fnv1a32(seed + customer_id))) % 10000 / 10000
    edges = [sum(normalised[: i + 1]) for i in range(len(normalised))]
    lower = edges[got] - normalised[got]
    assert lower - 1e-12 <= bucket < edges[got] + 1e-12 or got == max(i for i, w in enumerate(normalised) if w > 0)


@pytest.mark.django_db(transaction=True)
def test_asking_again_does_not_wait_for_the_campaign_lock_that_new_assignments_take(postgres):
    """Under load, assignments in one campaign took turns on its row lock even when nothing was new; a
    repeated ask (the usual call) now reads the stored rows. Another connection holds the lock here."""
    from django.db import OperationalError, connection

    from tests.db_sessions import other_session

    test = ABTestFactory()
    customers(3)
    first = assignment.assign(test=test, customer_ids=["user_0", "user_1"])
    holder = other_session(autocommit=False)  # its transaction holds the lock until rolled back
    try:
        holder.execute("SELECT id FROM campaigns_campaign WHERE id = %s FOR UPDATE", [test.campaign_id])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        again = assignment.assign(test=test, customer_ids=["user_1", "user_0", "user_1"])
        assert [(a.customer_id, a.variant, a.new) for a in again] == [
            ("user_1", first[1].variant, False), ("user_0", first[0].variant, False), ("user_1", first[1].variant, False)]
        with pytest.raises(OperationalError, match="lock timeout"):  # a new customer does need the lock
            assignment.assign(test=test, customer_ids=["user_0", "user_2"])
    finally:
        holder.rollback()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert not ABTestAssignment.objects.filter(customer__customer_id="user_2").exists()
    assert assignment.assign(test=test, customer_ids=["user_2"])[0].new is True

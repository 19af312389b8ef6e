"""The demo's planted A/B tests: written with the real hashing, and their planted lifts recovered."""

from __future__ import annotations

import json

import pytest

from abtests import assignment, selectors
from abtests.models import ABTest, ABTestAssignment
from campaigns.demo_load import seed_demo

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(tmp_path):
    truth_file = tmp_path / "truth.json"
    truth = seed_demo(customers=4000, merchants=6, campaigns=2, days=20, seed=11, truth_out=truth_file,
                      sends_per_day=0.2)
    return truth, json.loads(truth_file.read_text())


def test_truth_file_lists_every_planted_test_and_assignments_follow_the_hashing(demo):
    truth, written = demo
    planted = written["ab_tests"]
    assert planted == truth["ab_tests"]
    assert len(planted) == 4
    for name, row in planted.items():
        test = ABTest.objects.get(test_id=row["test_id"])
        assert test.test_name == name
        assert test.status == row["status"]
    assert sorted(r["true_lift"] for r in planted.values()) == [0.0, 0.0, 0.15, 0.30]

    # Assignments follow the real hashing.
    test = ABTest.objects.get(test_id=truth["ab_tests"]["Demo: evening send time"]["test_id"])
    weights = [v.weight for v in test.ordered_variants]
    names = [v.name for v in test.ordered_variants]
    rows = ABTestAssignment.objects.filter(test=test).values_list("customer__customer_id", "variant__name")[:500]
    assert rows
    for customer_id, variant in rows:
        assert variant == names[assignment.variant_index_for(test.hashing_seed, customer_id, weights)]


def test_the_real_lift_is_declared_the_aa_test_is_not_and_running_tests_wait(demo):
    truth, _ = demo
    real = ABTest.objects.get(test_id=truth["ab_tests"]["Demo: 20% off beats 10% off"]["test_id"])
    aa = ABTest.objects.get(test_id=truth["ab_tests"]["Demo: A/A check"]["test_id"])
    assert real.winner == "B"
    result = selectors.latest_result(test=real)
    assert result.lift_ci_low <= 30.0 <= result.lift_ci_high  # the interval covers the planted +30 %
    assert aa.winner == ""
    assert selectors.latest_result(test=aa).decision == "inconclusive"

    for name in ("Demo: evening send time", "Demo: new push copy (A/A, sequential)"):
        test = ABTest.objects.get(test_id=truth["ab_tests"][name]["test_id"])
        status = selectors.abtest_status(test=test)
        assert status["status"] == "running"
        assert 0 < status["users_assigned"] < test.sample_size_target
        assert status["decision"] != "winner"

"""Every A/B answer is rendered by the serializer the OpenAPI schema names, and that serializer describes
every key the selector or service produces (a key it lacked would vanish from the answer and the schema).

The status answer is still the selector's dict: ``StatusOutput`` lacks some of its keys (being added
elsewhere); until it names them all, rendering through it would drop them from the wire."""

from __future__ import annotations

import pytest

from abtests import selectors
from abtests.api import (
    STATUS_INCLUDES,
    AssignManyOutput,
    AssignOneOutput,
    EndOutput,
    SampleSizeOutput,
    StatusOutput,
    StatusVariantOutput,
)
from tests.factories import CampaignFactory, CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_test(api):
    CampaignFactory(campaign_id="camp_ab")
    for i in range(6):
        CustomerFactory(customer_id=f"user_{i}")
    body = api.post("/api/ab-tests/create", {"campaign_id": "camp_ab", "test_name": "Subject", "variant_a_name": "a",
                                             "variant_b_name": "b", "sample_size_target": 100}, format="json").json()
    assert api.post(f"/api/ab-tests/{body['test_id']}/start").status_code == 200
    return body["test_id"]


def test_status_answer_has_the_selectors_keys_and_the_serializer_names_them(api, running_test):
    api.post(f"/api/v1/ab-tests/{running_test}/assign", {"customer_ids": [f"user_{i}" for i in range(6)]}, format="json")
    from abtests.models import ABTest

    computed = selectors.abtest_status(test=ABTest.objects.get(test_id=running_test))
    answer = api.get(f"/api/ab-tests/{running_test}/status").json()
    # Without ?include= the optional parts (results over time, breakdowns) are left out; with it, they are there.
    assert set(answer) == set(computed) == set(StatusOutput().fields) - set(STATUS_INCLUDES)
    full = api.get(f"/api/ab-tests/{running_test}/status?include={','.join(STATUS_INCLUDES)}").json()
    assert set(full) == set(StatusOutput().fields)
    assert set(answer["variants"][0]) == set(computed["variants"][0]) == set(StatusVariantOutput().fields)
    assert answer["users_assigned"] == computed["users_assigned"] == 6


def test_assign_answers_one_or_many_in_their_documented_shapes(api, running_test):
    one = api.post(f"/api/ab-tests/{running_test}/assign", {"customer_id": "user_0"}, format="json").json()
    many = api.post(f"/api/ab-tests/{running_test}/assign", {"customer_ids": ["user_0", "user_1"]}, format="json").json()
    assert set(one) == set(AssignOneOutput().fields) and one["new"] is True
    assert set(many) == set(AssignManyOutput().fields) and many["new"] == 1
    assert [(a["customer_id"], a["new"]) for a in many["assignments"]] == [("user_0", False), ("user_1", True)]


def test_end_answer_is_the_documented_shape(api, running_test):
    api.post(f"/api/ab-tests/{running_test}/assign", {"customer_ids": ["user_0", "user_1"]}, format="json")
    answer = api.post(f"/api/ab-tests/{running_test}/end", {}, format="json").json()
    assert set(answer) == set(EndOutput().fields)
    assert answer["status"] == "completed" and answer["result"]["test_id"] == running_test


def test_sample_size_answer_has_exactly_the_plans_keys(api):
    query = {"baseline_rate": 0.05, "mde": 0.1, "daily_traffic": 1000}
    plan = selectors.sample_size_plan(baseline_rate=0.05, mde=0.1, confidence_level=0.95, power=0.8, arms=2,
                                      daily_traffic=1000)
    answer = api.get("/api/v1/ab-tests/sample-size", query).json()
    assert set(answer) == set(plan) == set(SampleSizeOutput().fields)
    assert answer["users_per_arm"] == plan["users_per_arm"] > 0

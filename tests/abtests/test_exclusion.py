"""No overlapping tests: a customer is in at most one running test per campaign, and per namespace range."""

from __future__ import annotations

import pytest

from abtests import assignment
from abtests.models import ABTest, ABTestAssignment
from campaigns.models import Customer
from tests.abtests.factories import ABTestFactory
from tests.abtests.test_assignment import fnv1a32
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def customers(n: int, prefix: str = "user_") -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    Customer.objects.bulk_create([Customer(customer_id=c) for c in ids])
    return ids


def assign(api, test: ABTest, ids: list[str]):
    return api.post(f"/api/v1/ab-tests/{test.test_id}/assign", {"customer_ids": ids}, format="json")


def test_a_customer_in_one_running_test_of_a_campaign_is_a_409_in_another_and_nothing_is_stored(api):
    campaign = CampaignFactory()
    first, second = ABTestFactory(campaign=campaign), ABTestFactory(campaign=campaign)
    ids = customers(5)
    assert assign(api, first, ids[:2]).status_code == 200

    response = assign(api, second, ids)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert "at most one running test per campaign" in error["message"]
    listed = str(error["fields"]["customer_ids"])
    assert "user_0 (in " + first.test_id + ")" in listed and "user_1" in listed and "user_2" not in listed
    assert ABTestAssignment.objects.filter(test=second).count() == 0  # all or nothing

    # The free customers can join the second test; asking the first test again still answers.
    assert assign(api, second, ids[2:]).status_code == 200
    assert assign(api, first, ids[:2]).status_code == 200
    assert ABTestAssignment.objects.filter(test=second).count() == 3


def test_single_customer_conflict_is_a_409_too(api):
    campaign = CampaignFactory()
    first, second = ABTestFactory(campaign=campaign), ABTestFactory(campaign=campaign)
    customers(1)
    assert api.post(f"/api/ab-tests/{first.test_id}/assign", {"customer_id": "user_0"}, format="json").status_code == 200
    response = api.post(f"/api/ab-tests/{second.test_id}/assign", {"customer_id": "user_0"}, format="json")
    assert response.status_code == 409
    assert first.test_id in str(response.json()["error"]["fields"]["customer_ids"])


def test_ended_tests_and_other_campaigns_do_not_exclude(api):
    campaign = CampaignFactory()
    ended = ABTestFactory(campaign=campaign)
    other_campaign = ABTestFactory()
    ids = customers(4)
    assert assign(api, ended, ids).status_code == 200
    assert assign(api, other_campaign, ids).status_code == 200
    ABTest.objects.filter(pk=ended.pk).update(status=ABTest.Status.COMPLETED)
    later = ABTestFactory(campaign=campaign)
    assert assign(api, later, ids).status_code == 200


def namespace_bucket(namespace: str, customer_id: str) -> float:
    """The namespace hash, from the spec: the variant hash salted with ``namespace:<name>``."""
    return fnv1a32(str(fnv1a32(f"namespace:{namespace}" + customer_id))) % 10000 / 10000


def create(api, campaign_id: str, **extra) -> dict:
    body = {"campaign_id": campaign_id, "test_name": "ns", "sample_size_target": 100, **extra}
    return api.post("/api/v1/ab-tests/", body, format="json")


def test_namespace_ranges_split_customers_across_campaigns(api):
    ids = customers(400)
    left = create(api, CampaignFactory().campaign_id, namespace="home", namespace_start=0, namespace_end=0.5)
    right = create(api, CampaignFactory().campaign_id, namespace="home", namespace_start=0.5, namespace_end=1)
    assert left.status_code == right.status_code == 201
    assert left.json()["namespace"] == "home" and left.json()["namespace_end"] == 0.5
    tests = {}
    for name, created in (("left", left), ("right", right)):
        test_id = created.json()["test_id"]
        assert api.post(f"/api/v1/ab-tests/{test_id}/start").status_code == 200
        tests[name] = ABTest.objects.get(test_id=test_id)

    in_left = [c for c in ids if namespace_bucket("home", c) < 0.5]
    in_right = [c for c in ids if namespace_bucket("home", c) >= 0.5]
    assert 150 < len(in_left) < 250  # the hash spreads customers evenly
    assert assign(api, tests["left"], in_left).status_code == 200
    assert assign(api, tests["right"], in_right).status_code == 200
    assert all(assignment.in_namespace_range(tests["left"], c) for c in in_left)

    response = assign(api, tests["left"], in_left[:3] + in_right[:2])
    assert response.status_code == 409
    fields = str(response.json()["error"]["fields"]["customer_ids"])
    assert "outside this test's traffic range 0-0.5 of namespace 'home' (2)" in fields
    assert in_right[0] in fields and in_left[0] not in fields


def test_starting_a_test_whose_range_overlaps_a_running_one_is_a_409(api):
    a = create(api, CampaignFactory().campaign_id, namespace="ns1", namespace_start=0, namespace_end=0.6).json()
    b = create(api, CampaignFactory().campaign_id, namespace="ns1", namespace_start=0.5, namespace_end=1).json()
    c = create(api, CampaignFactory().campaign_id, namespace="ns2", namespace_start=0.5, namespace_end=1).json()
    assert api.post(f"/api/v1/ab-tests/{a['test_id']}/start").status_code == 200
    response = api.post(f"/api/v1/ab-tests/{b['test_id']}/start")
    assert response.status_code == 409
    assert a["test_id"] in response.json()["error"]["message"]
    assert "namespace_start" in response.json()["error"]["fields"]
    assert ABTest.objects.get(test_id=b["test_id"]).status == ABTest.Status.DRAFT
    assert api.post(f"/api/v1/ab-tests/{c['test_id']}/start").status_code == 200  # another namespace


@pytest.mark.parametrize("extra, field", [
    ({"namespace": "x", "namespace_start": 0.7, "namespace_end": 0.3}, "namespace_end"),
    ({"namespace": "x", "namespace_start": -0.1}, "namespace_start"),
    ({"namespace": "x", "namespace_end": 1.5}, "namespace_end"),
    ({"namespace": "bad name!"}, "namespace"),
    ({"namespace_start": 0.2}, "namespace"),
])
def test_bad_namespace_ranges_are_a_400_naming_the_field(api, extra, field):
    response = create(api, CampaignFactory().campaign_id, **extra)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]

"""The test lifecycle through the API: v1 viewset and the seed's paths, status codes and fields."""

from __future__ import annotations

import pytest

from abtests.models import ABTest
from tests.abtests.factories import ABTestFactory
from tests.factories import CampaignFactory, CustomerFactory

pytestmark = pytest.mark.django_db

SEED_CREATE = {
    "campaign_id": "camp_ab",
    "test_name": "Subject line",
    "variant_a_name": "variant_a",
    "variant_b_name": "variant_b",
    "sample_size_target": 100,
    "confidence_level": 0.95,
}


@pytest.fixture
def campaign():
    return CampaignFactory(campaign_id="camp_ab")


def create(api, **overrides) -> dict:
    response = api.post("/api/ab-tests/create", {**SEED_CREATE, **overrides}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_seed_create_answers_test_id_status_draft_and_campaign(api, campaign):
    body = create(api)
    assert body["test_id"].startswith("test_")
    assert body["status"] == "draft"
    assert body["campaign_id"] == "camp_ab"
    assert [v["name"] for v in body["variants"]] == ["variant_a", "variant_b"]
    assert [v["weight"] for v in body["variants"]] == [0.5, 0.5]
    assert ABTest.objects.get(test_id=body["test_id"]).variants.count() == 2


def test_create_with_trailing_slash_and_v1_address_are_the_same_view(api, campaign):
    assert api.post("/api/ab-tests/create/", SEED_CREATE, format="json").status_code == 201
    assert api.post("/api/v1/ab-tests/", SEED_CREATE, format="json").status_code == 201
    assert ABTest.objects.count() == 2


def test_create_with_a_list_of_weighted_variants(api, campaign):
    body = create(api, variant_a_name=None, variant_b_name=None,
                  variants=[{"name": "control", "weight": 0.5}, {"name": "b", "weight": 0.25},
                            {"name": "c", "weight": 0.25}])
    assert [(v["name"], v["weight"]) for v in body["variants"]] == [("control", 0.5), ("b", 0.25), ("c", 0.25)]
    assert body["variant_a_name"] == "control" and body["variant_b_name"] == "b"


@pytest.mark.parametrize("level", [0.5, 1.0, 0.79, 0.9991, "x"])
def test_confidence_level_outside_080_0999_is_a_400_naming_the_field(api, campaign, level):
    response = api.post("/api/ab-tests/create", {**SEED_CREATE, "confidence_level": level}, format="json")
    assert response.status_code == 400
    assert "confidence_level" in response.json()["error"]["fields"]


@pytest.mark.parametrize("variants, reason", [
    ([{"name": "only", "weight": 1.0}], "at least 2"),
    ([{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.4}], "sum to 1"),
    ([{"name": "a", "weight": 0.5}, {"name": "a", "weight": 0.5}], "different"),
])
def test_bad_variants_are_a_400_with_the_reason(api, campaign, variants, reason):
    payload = {k: v for k, v in SEED_CREATE.items() if not k.startswith("variant_")}
    response = api.post("/api/ab-tests/create", {**payload, "variants": variants}, format="json")
    assert response.status_code == 400
    assert reason in str(response.json()["error"]["fields"]["variants"])


def test_unknown_campaign_is_a_400(api, campaign):
    response = api.post("/api/ab-tests/create", {**SEED_CREATE, "campaign_id": "camp_nope"}, format="json")
    assert response.status_code == 400
    assert "camp_nope" in str(response.json()["error"]["fields"]["campaign_id"])


def test_viewer_may_read_but_not_create(viewer_api, campaign):
    assert viewer_api.post("/api/ab-tests/create", SEED_CREATE, format="json").status_code == 403
    assert viewer_api.get("/api/ab-tests/history").status_code == 200


def test_anonymous_is_401(anon_api, campaign):
    assert anon_api.get("/api/v1/ab-tests/").status_code == 401


def test_start_twice_is_a_409_and_end_of_a_draft_is_a_409(api, campaign):
    test_id = create(api)["test_id"]
    end_draft = api.post(f"/api/ab-tests/{test_id}/end", format="json")
    assert end_draft.status_code == 409
    assert "draft" in end_draft.json()["error"]["message"]
    assert api.post(f"/api/ab-tests/{test_id}/start").json()["status"] == "running"
    again = api.post(f"/api/ab-tests/{test_id}/start")
    assert again.status_code == 409
    assert "already running" in again.json()["error"]["message"]


def test_analyze_a_draft_or_a_test_without_users_is_a_409_not_a_500(api, campaign):
    test_id = create(api)["test_id"]
    assert api.post(f"/api/ab-tests/{test_id}/analyze").status_code == 409
    api.post(f"/api/ab-tests/{test_id}/start")
    response = api.post(f"/api/ab-tests/{test_id}/analyze")
    assert response.status_code == 409
    assert "no customers assigned" in response.json()["error"]["message"]


def test_assigning_to_a_draft_or_completed_test_is_a_409(api, campaign):
    CustomerFactory(customer_id="user_1")
    test_id = create(api)["test_id"]
    draft = api.post(f"/api/ab-tests/{test_id}/assign", {"customer_id": "user_1"}, format="json")
    assert draft.status_code == 409 and "running" in draft.json()["error"]["message"]
    api.post(f"/api/ab-tests/{test_id}/start")
    api.post(f"/api/ab-tests/{test_id}/end")
    done = api.post(f"/api/ab-tests/{test_id}/assign", {"customer_id": "user_1"}, format="json")
    assert done.status_code == 409


def test_unknown_test_is_a_404_in_the_error_shape(api):
    response = api.get("/api/ab-tests/test_missing/status")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_whole_lifecycle_on_the_seed_paths_answers_the_seed_fields(api, campaign):
    customers = [CustomerFactory(customer_id=f"user_{i}").customer_id for i in range(40)]
    test_id = create(api)["test_id"]
    api.post(f"/api/ab-tests/{test_id}/start")
    assigned = api.post(f"/api/ab-tests/{test_id}/assign", {"customer_ids": customers}, format="json").json()
    assert len(assigned["assignments"]) == 40

    status = api.get(f"/api/ab-tests/{test_id}/status").json()
    for field in ("test_id", "status", "users_assigned", "variant_a_conversions", "variant_b_conversions",
                  "statistical_significance"):
        assert field in status
    assert status["status"] == "running" and status["users_assigned"] == 40
    assert status["progress"] == pytest.approx(40 / 100)
    assert sum(v["users"] for v in status["variants"]) == 40

    analysis = api.post(f"/api/ab-tests/{test_id}/analyze").json()
    for field in ("winner", "lift", "statistical_significance", "p_value", "confidence_interval", "srm",
                  "chance_to_beat_control", "recommended_action", "users_still_needed"):
        assert field in analysis
    assert analysis["winner"] is None  # 40 of 100 planned users: never a winner
    assert analysis["users_still_needed"] == 60

    ended = api.post(f"/api/ab-tests/{test_id}/end", {"apply_winner": True}, format="json").json()
    assert ended["status"] == "completed"
    history = api.get("/api/ab-tests/history").json()
    assert [t["test_id"] for t in history["results"]] == [test_id]
    assert history["results"][0]["outcome"]["decision"] == "inconclusive"
    assert api.post(f"/api/ab-tests/{test_id}/end").status_code == 409


def test_list_filters_by_status_and_campaign_and_paginates(api):
    ABTestFactory.create_batch(3, status=ABTest.Status.RUNNING)
    other = ABTestFactory(status=ABTest.Status.DRAFT)
    body = api.get("/api/v1/ab-tests/?status=running&page_size=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2
    body = api.get(f"/api/v1/ab-tests/?campaign_id={other.campaign.campaign_id}").json()
    assert [t["test_id"] for t in body["results"]] == [other.test_id]
    assert api.get("/api/v1/ab-tests/?status=paused").status_code == 400


def test_detail_and_stored_results(api):
    test = ABTestFactory()
    assert api.get(f"/api/v1/ab-tests/{test.test_id}/").json()["test_id"] == test.test_id
    assert api.get(f"/api/v1/ab-tests/{test.test_id}/results").json()["count"] == 0


def test_every_seed_path_answers_with_and_without_a_trailing_slash(api, campaign):
    test_id = create(api)["test_id"]
    assert api.post(f"/api/ab-tests/{test_id}/start/").status_code == 200
    for path in (f"/api/ab-tests/{test_id}/status", f"/api/ab-tests/{test_id}/status/", "/api/ab-tests/history/",
                 f"/api/v1/ab-tests/{test_id}/status/"):
        assert api.get(path).status_code == 200, path
    assert api.post(f"/api/ab-tests/{test_id}/end/").json()["status"] == "completed"


def test_history_shows_each_tests_latest_analysis_and_users_in_the_same_queries_for_one_test_or_three(api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.abtests.factories import populate
    from tests.abtests.test_metrics import create

    def completed(users: list[int], conversions: list[int]) -> str:
        test_id = create(api)
        populate(ABTest.objects.get(test_id=test_id), users=users, conversions=conversions)
        api.post(f"/api/v1/ab-tests/{test_id}/analyze")
        assert api.post(f"/api/v1/ab-tests/{test_id}/end", {}, format="json").status_code == 200
        return test_id

    def history() -> tuple[dict, int]:
        with CaptureQueriesContext(connection) as queries:
            body = api.get("/api/v1/ab-tests/history/").json()
        return {t["test_id"]: t for t in body["results"]}, len(queries.captured_queries)

    first = completed([300, 300], [30, 60])
    one, queries_for_one = history()
    others = [completed([200, 250], [20, 20]), completed([500, 400], [50, 90])]
    three, queries_for_three = history()

    assert queries_for_three == queries_for_one  # no query per test
    assert set(three) == {first, *others} and three[first] == one[first]
    for test_id, users in ((first, 600), (others[0], 450), (others[1], 900)):
        newest = api.get(f"/api/v1/ab-tests/{test_id}/results/").json()["results"][0]  # the end's analysis
        outcome = three[test_id]["outcome"]
        assert three[test_id]["users_assigned"] == users
        assert {k: outcome[k] for k in ("decision", "lift", "p_value", "reason")} == \
            {k: newest[k] for k in ("decision", "lift", "p_value", "reason")}

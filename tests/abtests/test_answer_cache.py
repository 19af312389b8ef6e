"""The A/B read answers (status, results, over-time, history) come from the process cache under the test's
data version (abtests/answers.py): a repeat costs at most one query, each kind of write (a conversion
through the ingestion API, an assignment, a status change, a stored result from analyze and from the
hourly job, a variant edit) changes the answer at once, and every cached answer equals the one computed
afresh (the cache emptied). Runs on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from abtests import answers, services
from abtests.models import ABTest, ABTestVariant
from campaigns.models import Customer
from tests.abtests.factories import ABTestFactory, populate
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

STATUS = "/api/v1/ab-tests/{}/status/"
RESULTS = "/api/v1/ab-tests/{}/results/"
OVER_TIME = "/api/v1/ab-tests/{}/over-time/"
HISTORY = "/api/v1/ab-tests/history/"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()  # on SQLite a rolled-back test's pk can come back: start from nothing
    yield
    cache.clear()


def _get(api, url: str) -> dict:
    response = api.get(url)
    assert response.status_code == 200, response.content
    return response.json()


def _fresh_and_cached(api, url: str) -> dict:
    """The answer now; asserts a repeat costs at most one query and equals the answer computed afresh."""
    first = _get(api, url)
    with CaptureQueriesContext(connection) as queries:
        again = _get(api, url)
    assert len(queries) <= 1, [q["sql"] for q in queries]
    assert again == first
    cache.clear()
    assert _get(api, url) == first  # the cached answer is the uncached one
    return first


def _started(api, n_customers: int = 6) -> str:
    campaign = CampaignFactory()
    Customer.objects.bulk_create([Customer(customer_id=f"ac_{campaign.campaign_id}_{i}") for i in range(n_customers)])
    body = {"campaign_id": campaign.campaign_id, "test_name": "cached", "sample_size_target": 100}
    test_id = api.post("/api/v1/ab-tests/", body, format="json").json()["test_id"]
    assert api.post(f"/api/v1/ab-tests/{test_id}/start").status_code == 200
    return test_id


def _assign(api, test_id: str, customer_ids: list[str]) -> None:
    response = api.post(f"/api/v1/ab-tests/{test_id}/assign/", {"customer_ids": customer_ids}, format="json")
    assert response.status_code == 200, response.content


def _convert(api, test: ABTest, customer_id: str, event_id: str, amount: str = "25.00") -> None:
    event = {"event_id": event_id, "type": "conversion", "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
             "customer_id": customer_id, "campaign_id": test.campaign.campaign_id, "amount": amount}
    response = api.post("/api/v1/events/", [event], format="json")
    assert response.status_code in (200, 201, 202), response.content


def _converted(status: dict) -> int:
    return sum(v["conversions"] for v in status["variants"])


def test_each_write_changes_the_cached_answers_at_once(api):
    test_id = _started(api)
    test = ABTest.objects.select_related("campaign").get(test_id=test_id)
    customers = [f"ac_{test.campaign.campaign_id}_{i}" for i in range(6)]
    _assign(api, test_id, customers[:4])
    status = _fresh_and_cached(api, STATUS.format(test_id))
    over_time = _fresh_and_cached(api, OVER_TIME.format(test_id))
    assert status["users_assigned"] == 4 and _converted(status) == 0

    # A new assignment.
    _assign(api, test_id, customers[4:5])
    status = _fresh_and_cached(api, STATUS.format(test_id))
    assert status["users_assigned"] == 5

    # A new conversion through the ingestion API.
    _convert(api, test, customers[0], "ac_conv_1")
    status = _fresh_and_cached(api, STATUS.format(test_id))
    assert _converted(status) == 1
    changed = _fresh_and_cached(api, OVER_TIME.format(test_id))
    assert changed != over_time and sum(changed["days"][-1]["conversions"]) == 1

    # A second conversion of a converted customer with no amount: the sums stay, the rows' versions move.
    before = _fresh_and_cached(api, STATUS.format(test_id))
    version = answers.test_version(test_id=test_id)
    _convert(api, test, customers[0], "ac_conv_2", amount="0")
    assert answers.test_version(test_id=test_id) != version
    assert _fresh_and_cached(api, STATUS.format(test_id)) == before  # same figures
    # A re-sent event changes nothing and the answers stay equal to the uncached ones.
    _convert(api, test, customers[0], "ac_conv_1")
    assert _fresh_and_cached(api, STATUS.format(test_id)) == before

    # A new stored result (analyze).
    results = _fresh_and_cached(api, RESULTS.format(test_id))
    assert results["count"] == 0
    assert api.post(f"/api/v1/ab-tests/{test_id}/analyze/").status_code == 200
    results = _fresh_and_cached(api, RESULTS.format(test_id))
    assert results["count"] == 1 and results["results"][0]["users_total"] == 5

    # A new stored result from the hourly job (after another conversion changed the counts).
    _convert(api, test, customers[1], "ac_conv_3")
    assert services.refresh_running_results() == 1
    results = _fresh_and_cached(api, RESULTS.format(test_id))
    assert results["count"] == 2 and results["results"][0]["variant_a_conversions"] \
        + results["results"][0]["variant_b_conversions"] == 2

    # A status change: ending the test (and its final analysis) shows in status, results and history.
    history = _fresh_and_cached(api, HISTORY)
    assert test_id not in [t["test_id"] for t in history["results"]]
    assert api.post(f"/api/v1/ab-tests/{test_id}/end/", {}, format="json").status_code == 200
    status = _fresh_and_cached(api, STATUS.format(test_id))
    assert status["status"] == "completed" and status["ended_at"] is not None
    assert _fresh_and_cached(api, RESULTS.format(test_id))["count"] == 3
    history = _fresh_and_cached(api, HISTORY)
    ours = [t for t in history["results"] if t["test_id"] == test_id]
    assert ours and ours[0]["users_assigned"] == 5 and ours[0]["outcome"] is not None


def test_a_variant_edit_and_a_new_result_change_the_history_and_a_draft(api):
    campaign = CampaignFactory()
    body = {"campaign_id": campaign.campaign_id, "test_name": "draft", "sample_size_target": 100}
    test_id = api.post("/api/v1/ab-tests/", body, format="json").json()["test_id"]
    status = _fresh_and_cached(api, STATUS.format(test_id))
    assert [v["name"] for v in status["variants"]] == ["A", "B"]

    variant = ABTestVariant.objects.get(test__test_id=test_id, position=1)
    variant.name = "B2"
    variant.save()
    status = _fresh_and_cached(api, STATUS.format(test_id))
    assert [v["name"] for v in status["variants"]] == ["A", "B2"]

    test = ABTest.objects.get(test_id=test_id)
    test.sample_size_target = 300  # an edit of the row (the admin's save)
    test.save()
    assert _fresh_and_cached(api, STATUS.format(test_id))["sample_size_target"] == 300


def test_a_completed_tests_new_result_changes_the_history(api):
    test_id = _started(api, n_customers=4)
    test = ABTest.objects.select_related("campaign").get(test_id=test_id)
    _assign(api, test_id, [f"ac_{test.campaign.campaign_id}_{i}" for i in range(4)])
    assert api.post(f"/api/v1/ab-tests/{test_id}/end/", {}, format="json").status_code == 200
    history = _fresh_and_cached(api, HISTORY)
    before = next(t for t in history["results"] if t["test_id"] == test_id)["outcome"]

    _convert(api, test, f"ac_{test.campaign.campaign_id}_0", "ac_late")  # after the end: not counted
    services.abtest_analyze(test=ABTest.objects.get(test_id=test_id))  # a re-analysis stores a new row
    history = _fresh_and_cached(api, HISTORY)
    assert next(t for t in history["results"] if t["test_id"] == test_id)["outcome"] == before  # same figures
    assert _fresh_and_cached(api, RESULTS.format(test_id))["count"] == 2


def test_a_test_analysed_from_raw_events_is_not_cached_and_stays_current(api):
    """Without a kept rollup (rows bulk-written past the services) nothing versions the raw events: each
    answer is computed afresh, so bulk-written events show at once."""
    test = ABTestFactory()
    populate(test, users=[20, 20], conversions=[2, 3])
    first = _get(api, STATUS.format(test.test_id))
    with CaptureQueriesContext(connection) as queries:
        assert _get(api, STATUS.format(test.test_id)) == first
    assert len(queries) > 1  # computed again
    populate(test, users=[0, 5], conversions=[0, 5], prefix=f"{test.test_id}_more_")
    assert _get(api, STATUS.format(test.test_id))["users_assigned"] == 45


def test_unknown_test_is_still_a_404(api):
    response = api.get(STATUS.format("test_nope"))
    assert response.status_code == 404 and "test_nope" in str(response.json())


def test_renamed_ids_change_the_cached_history(api):
    """``manage.py fix_external_ids --apply`` renames a campaign's and an offer's public id in place: the
    history shows both, so its cached copy must go."""
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    from tests.factories import OfferFactory

    offer = OfferFactory(offer_id="off 25%")
    test = ABTestFactory(campaign=CampaignFactory(campaign_id="camp/9"), status=ABTest.Status.COMPLETED,
                         ended_at=timezone.now())
    ABTestVariant.objects.filter(test=test, position=1).update(offer=offer)
    ours = next(t for t in _fresh_and_cached(api, HISTORY)["results"] if t["test_id"] == test.test_id)
    assert ours["campaign_id"] == "camp/9" and ours["variants"][1]["offer_id"] == "off 25%"

    call_command("fix_external_ids", "--apply", stdout=StringIO())
    ours = next(t for t in _fresh_and_cached(api, HISTORY)["results"] if t["test_id"] == test.test_id)
    assert ours["campaign_id"] != "camp/9" and ours["campaign_id"].startswith("camp")
    assert ours["variants"][1]["offer_id"] not in ("off 25%", None)


def test_the_results_list_of_a_raw_events_test_is_cached_and_kept_by_assignments(api):
    """The results list reads only the test and its stored analyses: cached for any test, and a new stored
    analysis (not a new assignment or event) changes it."""
    test = ABTestFactory()
    populate(test, users=[20, 20], conversions=[2, 3])
    assert _fresh_and_cached(api, RESULTS.format(test.test_id))["count"] == 0
    services.abtest_analyze(test=ABTest.objects.get(pk=test.pk))
    assert _fresh_and_cached(api, RESULTS.format(test.test_id))["count"] == 1

"""The status API answers what the test's card and page show, through a serializer, and its OpenAPI schema is
true: every answer validates against the schema's StatusOutput (jsonschema), and its figures equal the other
endpoints' (analyze, over-time, breakdown)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import jsonschema
import pytest

from abtests.models import ABTest
from campaigns.models import Customer, Event
from tests.abtests.factories import ABTestFactory, populate
from tests.abtests.test_metrics import add_events, create

pytestmark = pytest.mark.django_db


def _json_schema(node):
    """OpenAPI 3.0 -> JSON Schema: ``nullable: true`` becomes a null alternative."""
    if isinstance(node, dict):
        out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable"):
            out = {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    return node


def validate_status(api, body: dict) -> dict:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    op = schema["paths"]["/api/v1/ab-tests/{test_id}/status/"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    # No key outside the schema, no required key missing, every value of its declared type.
    assert set(body) <= set(component["properties"]), set(body) - set(component["properties"])
    jsonschema.validate(body, _json_schema({"$ref": ref, "components": schema["components"]}))
    return component


def test_status_carries_the_cards_metrics_cuped_and_risk_as_the_schema_says(api):
    test_id = create(api, secondary_metrics=["open_rate", "revenue_per_user"], guardrail_metrics=["click_rate"],
                     multiple_testing="bh")
    test = ABTest.objects.get(test_id=test_id)
    populate(test, users=[2000, 2000], conversions=[160, 224])
    add_events(test, "notification_opened", [900, 920])
    add_events(test, "click", [400, 300])
    analyzed = api.post(f"/api/v1/ab-tests/{test_id}/analyze").json()

    status = api.get(f"/api/v1/ab-tests/{test_id}/status").json()

    component = validate_status(api, status)
    assert {"metrics", "cuped", "multiple_testing", "over_time", "breakdowns"} <= set(component["properties"])
    assert "over_time" not in status and "breakdowns" not in status  # only on request
    assert status["metrics"] == analyzed["metrics"]
    assert status["multiple_testing"] == "bh"
    assert status["cuped"]["applied"] is False and "no pre-period data" in status["cuped"]["reason"]
    b = status["variants"][1]
    assert b["expected_loss"] is not None and b["expected_loss_pp"] == pytest.approx(100 * b["expected_loss"])
    assert b["control_expected_loss_pp"] == pytest.approx(100 * b["control_expected_loss"])
    guardrail = [m for m in status["metrics"] if m["role"] == "guardrail"]
    assert guardrail and guardrail[0]["guardrail_failed"] is True
    assert "click rate got significantly worse" in status["reason"]


def test_status_shows_the_variance_cuped_removed(api):
    test = ABTestFactory(started_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    populate(test, users=[400, 400], conversions=[60, 80], assigned_at=test.started_at + dt.timedelta(hours=1))
    # Pre-period conversions by the same customers who convert in the test: a covariate that correlates.
    customers = Customer.objects.filter(customer_id__startswith=f"{test.test_id}_")
    converters = {e.customer_id for e in Event.objects.filter(campaign=test.campaign, type="conversion")}
    Event.objects.bulk_create([Event(event_id=f"pre_{c.pk}", type="conversion", customer=c, campaign=test.campaign,
                                     occurred_at=test.started_at - dt.timedelta(days=3), amount=Decimal("5"))
                               for c in customers if c.pk in converters or c.pk % 9 == 0])

    status = api.get(f"/api/v1/ab-tests/{test.test_id}/status").json()

    validate_status(api, status)
    assert status["cuped"]["applied"] is True and 0 < status["cuped"]["variance_reduction"] < 1
    goal = [m for m in status["metrics"] if m["role"] == "goal"][0]
    assert goal["cuped_variance_reduction"] == pytest.approx(status["cuped"]["variance_reduction"])


def test_status_embeds_over_time_and_breakdowns_on_request_equal_to_their_endpoints(api):
    test = ABTestFactory()
    populate(test, users=[300, 300], conversions=[30, 45])
    Event.objects.filter(campaign=test.campaign, type="conversion", customer__customer_id__endswith="_1").update(
        channel="email")

    status = api.get(f"/api/v1/ab-tests/{test.test_id}/status", {"include": "over_time,breakdowns"}).json()

    validate_status(api, status)
    assert status["over_time"] == api.get(f"/api/v1/ab-tests/{test.test_id}/over-time").json()
    assert status["breakdowns"] == [
        api.get(f"/api/v1/ab-tests/{test.test_id}/breakdown", {"by": by}).json() for by in ("segment", "channel")]
    assert {r["slice"] for r in status["breakdowns"][1]["slices"]} == {"email", "(no channel)"}
    only = api.get(f"/api/ab-tests/{test.test_id}/status", {"include": "breakdowns"}).json()  # the seed's path too
    assert "breakdowns" in only and "over_time" not in only


@pytest.mark.parametrize("include", ["everything", "over_time,nope", "x" * 65])
def test_an_unknown_include_is_a_400_in_the_error_shape(api, include):
    test = ABTestFactory()
    response = api.get(f"/api/v1/ab-tests/{test.test_id}/status", {"include": include})
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "fields"} and "include" in response.json()["error"]["fields"]


def test_a_drafts_status_is_true_to_the_schema_too(api):
    test = ABTestFactory(status=ABTest.Status.DRAFT, started_at=None)
    status = api.get(f"/api/v1/ab-tests/{test.test_id}/status", {"include": "over_time,breakdowns"}).json()
    validate_status(api, status)
    assert status["metrics"] == [] and status["cuped"] == {} and status["decision"] is None


def test_status_after_new_conversions_shows_them_and_equals_an_evaluation_from_scratch(api):
    """``selectors.evaluate`` is kept per process under a digest of all its inputs: data that arrives after a
    read is a new key (the next read shows it), and a kept answer equals one computed with nothing kept."""
    from django.core.cache import cache

    test_id = create(api)
    test = ABTest.objects.get(test_id=test_id)
    populate(test, users=[2000, 2000], conversions=[160, 224])
    before = api.get(f"/api/v1/ab-tests/{test_id}/status").json()
    assert before["variant_b_conversions"] == 224
    assert api.get(f"/api/v1/ab-tests/{test_id}/status").json() == before  # read again: the kept evaluation

    add_events(test, Event.Type.CONVERSION, [0, 300])  # 76 more converters in B (the first 224 convert again)
    after = api.get(f"/api/v1/ab-tests/{test_id}/status").json()

    assert after["variant_b_conversions"] == 300 and after["variant_a_conversions"] == 160
    assert after["variants"][1]["conversion_rate"] == pytest.approx(300 / 2000)
    assert after["p_value"] < before["p_value"]  # a larger lift on the same users
    cache.clear()
    assert api.get(f"/api/v1/ab-tests/{test_id}/status").json() == after

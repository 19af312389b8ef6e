"""The back office cannot corrupt facts: events read-only, A/B tests frozen as they progress, campaigns via services."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from abtests.models import ABTest
from campaigns.models import Campaign, Event
from tests.abtests.factories import ABTestFactory
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(make_user) -> Client:
    client = Client()
    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    return client


def test_events_cannot_be_added_changed_or_deleted_in_the_admin(admin_client_):
    event = EventFactory(type="conversion", amount="10.00")
    change = f"/admin/campaigns/event/{event.pk}/change/"
    page = admin_client_.get(change)
    assert page.status_code == 200 and b'name="_save"' not in page.content  # a view, not a form
    posted = admin_client_.post(change, {"type": "view", "amount": "9999.00", "event_id": event.event_id})
    assert posted.status_code == 403
    assert admin_client_.get("/admin/campaigns/event/add/").status_code == 403
    assert admin_client_.post(f"/admin/campaigns/event/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert (event.type, str(event.amount)) == ("conversion", "10.00") and Event.objects.count() == 1


def _form(test: ABTest, **changes) -> dict:
    data = {"test_name": test.test_name, "hypothesis": test.hypothesis, "notes": test.notes,
            "campaign": test.campaign_id, "primary_metric": test.primary_metric, "guardrail_metrics": "[]",
            "sample_size_target": test.sample_size_target, "confidence_level": test.confidence_level,
            "hashing_seed": test.hashing_seed, "status": test.status, "winner": test.winner,
            "variants-TOTAL_FORMS": "0", "variants-INITIAL_FORMS": "0"}
    data.update(changes)
    return data


def test_a_completed_test_is_read_only_except_its_notes(admin_client_):
    test = ABTestFactory(status=ABTest.Status.COMPLETED, winner="B", ended_at=timezone.now())
    before = ABTest.objects.filter(pk=test.pk).values().get()
    url = f"/admin/abtests/abtest/{test.pk}/change/"
    page = admin_client_.get(url).content.decode()
    assert 'name="notes"' in page and 'name="status"' not in page and 'name="hashing_seed"' not in page
    assert 'name="variants-0-weight"' not in page
    response = admin_client_.post(url, _form(test, notes="Learned: B's copy wins on mobile.", status="running",
                                             winner="A", hashing_seed="other", test_name="renamed",
                                             sample_size_target=5))
    assert response.status_code == 302, response.content[:500]
    after = ABTest.objects.filter(pk=test.pk).values().get()
    assert after["notes"] == "Learned: B's copy wins on mobile."
    # Every save of the row moves its answers' cache version (abtests/answers.py); nothing else changes.
    assert after["data_version"] > before["data_version"]
    unchanged = {"notes", "data_version"}
    assert {k: v for k, v in after.items() if k not in unchanged} == {k: v for k, v in before.items() if k not in unchanged}
    assert [(v.name, v.weight) for v in test.ordered_variants] == [("A", 0.5), ("B", 0.5)]
    assert admin_client_.post(f"/admin/abtests/abtest/{test.pk}/delete/", {"post": "yes"}).status_code == 403


def test_a_running_test_keeps_its_design_and_status(admin_client_):
    test = ABTestFactory(status=ABTest.Status.RUNNING)
    page = admin_client_.get(f"/admin/abtests/abtest/{test.pk}/change/").content.decode()
    for field in ("status", "hashing_seed", "winner", "sample_size_target", "variants-0-weight"):
        assert f'name="{field}"' not in page, field
    assert 'name="test_name"' in page and 'name="notes"' in page


def test_a_draft_test_is_still_editable(admin_client_):
    test = ABTestFactory(status=ABTest.Status.DRAFT, started_at=None)
    page = admin_client_.get(f"/admin/abtests/abtest/{test.pk}/change/").content.decode()
    assert 'name="hashing_seed"' in page and 'name="variants-0-weight"' in page and 'name="status"' not in page


# Admin changes to a campaign go through campaigns.configuration (and its change log):
# tests/campaigns/test_configuration.py::test_admin_save_goes_through_the_service_and_the_log_is_read_only


def test_the_admin_refuses_an_external_id_outside_the_alphabet(admin_client_):
    response = admin_client_.post("/admin/campaigns/merchant/add/", {"merchant_id": "m/1", "name": "x"})
    assert response.status_code == 200 and b"external id" in response.content
    assert not Campaign.objects.exists()

"""What the A/B pages say once a test is over, before it has users, and in their flash messages."""

from __future__ import annotations

import pytest

from abtests.models import ABTest, ABTestVariant
from tests.abtests.factories import ABTestFactory, populate
from tests.factories import OfferFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


def test_a_completed_test_shows_its_outcome_not_a_recommendation_and_its_final_analysis_once(marketer_client):
    test = ABTestFactory(test_name="Copy test", sample_size_target=2000)
    populate(test, users=[1000, 1000], conversions=[50, 120])
    marketer_client.post(f"/ab-tests/{test.test_id}/analyze", {"next": f"/ab-tests/{test.test_id}/"})
    response = marketer_client.post(f"/ab-tests/{test.test_id}/end", {"next": f"/ab-tests/{test.test_id}/"}, follow=True)
    html = response.content.decode()
    test.refresh_from_db()
    assert test.status == ABTest.Status.COMPLETED and test.winner == "B" and test.results.count() == 2
    assert "Recommended:" not in html and "data-final" in html and "B won" in html
    assert html.count("data-result") == 1 and "same figures 2 times" in html  # Analyze and End saw the same counts
    assert "Ended Copy test: B won." in html


def test_ending_with_apply_says_what_changed_from_and_to_not_a_dict(marketer_client):
    test = ABTestFactory(test_name="Offer test")
    test.campaign.current_offer = OfferFactory(value=10)
    test.campaign.save()
    ABTestVariant.objects.filter(test=test, name="B").update(offer=OfferFactory(value=25))
    populate(test, users=[1000, 1000], conversions=[50, 120])
    html = marketer_client.post(f"/ab-tests/{test.test_id}/end", {"next": "/ab-tests/", "apply_winner": "on"},
                                follow=True).content.decode()
    assert f"Applied to {test.campaign.name}: current offer off_10pct → off_25pct." in html
    assert "{" not in html[html.index('class="messages"'):html.index("</ul>", html.index('class="messages"'))]


def test_a_variant_without_users_says_so_instead_of_a_zero_rate(marketer_client):
    test = ABTestFactory(test_name="Fresh")
    populate(test, users=[12, 0], conversions=[3, 0])
    html = marketer_client.get(f"/ab-tests/{test.test_id}/").content.decode()
    assert "25.00%" in html and "no users yet" in html and "0.00%" not in html

"""The admin refuses to delete a campaign with events on a short page that counts them."""

import pytest

from campaigns.models import Campaign, Event
from tests.factories import CampaignFactory, EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_deleting_a_campaign_with_events_shows_counts_not_every_event(admin_client):
    campaign = CampaignFactory(name="Busy")
    Event.objects.bulk_create([Event(event_id=f"e{i}", type="view", campaign=campaign,
                                     occurred_at=EventFactory.build().occurred_at) for i in range(500)])
    url = f"/admin/campaigns/campaign/{campaign.pk}/delete/"
    response = admin_client.get(url)
    html = response.content.decode()
    assert response.status_code == 200 and "500 events" in html and "end the campaign" in html
    assert len(response.content) < 30_000 and "e499" not in html
    admin_client.post(url, {"post": "yes"})
    assert Campaign.objects.filter(pk=campaign.pk).exists()


def test_bulk_delete_action_counts_across_the_selected_campaigns(admin_client):
    a, b = CampaignFactory(), CampaignFactory()
    for c, n in ((a, 3), (b, 4)):
        for _ in range(n):
            EventFactory(campaign=c)
    html = admin_client.post("/admin/campaigns/campaign/", {"action": "delete_selected", "_selected_action": [a.pk, b.pk]}).content.decode()
    assert "7 events" in html


def test_a_campaign_without_events_can_still_be_deleted(admin_client):
    campaign = CampaignFactory()
    html = admin_client.get(f"/admin/campaigns/campaign/{campaign.pk}/delete/").content.decode()
    assert "Are you sure" in html
    admin_client.post(f"/admin/campaigns/campaign/{campaign.pk}/delete/", {"post": "yes"})
    assert not Campaign.objects.filter(pk=campaign.pk).exists()

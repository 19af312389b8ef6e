"""The campaign page as the hub: configuration, A/B tests, proposals with preview/apply/undo, change log, chart markers."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.services import aggregate_days
from campaigns import configuration
from campaigns import selectors as campaign_selectors
from campaigns.configuration import SettingChange
from optimizer.models import CampaignOptimization
from tests.abtests.factories import ABTestFactory
from tests.factories import CampaignFactory, EventFactory, MerchantFactory, OfferFactory, SegmentFactory

pytestmark = pytest.mark.django_db
Opt = CampaignOptimization


def _a_week_of_views(campaign) -> None:
    """Events on the trend's days (a campaign without any shows "no data yet" instead of a chart)."""
    today = timezone.now().date()
    for days_ago in range(1, 4):
        EventFactory(campaign=campaign, type="view", occurred_at=timezone.now() - dt.timedelta(days=days_ago))
    aggregate_days(start=today - dt.timedelta(days=7), end=today)


@pytest.fixture
def campaign():
    offers = {v: OfferFactory(offer_id=f"off_{v}pct", value=Decimal(v)) for v in (10, 25)}
    c = CampaignFactory(campaign_id="camp_hub", current_offer=offers[10], send_time=dt.time(8))
    c.target_segments.set([SegmentFactory(name="new_users"), SegmentFactory(name="returning_users")])
    configuration.change_settings(c, [SettingChange("offer", "off_25pct", "returning_users")], source="api")
    c.promoted_merchants.add(MerchantFactory(merchant_id="m_friend", name="Friendly Cafe"))
    return c


@pytest.fixture
def proposal(campaign):
    return Opt.objects.create(
        campaign=campaign, recommendation_type="offer", target="new_users", current_value="10", recommended_value="25",
        live_value="off_10pct", expected_impact=18.5, confidence=0.93, affected_users=40, priority=1,
        details={"impact_interval": {"low": 4.2, "high": 31.0, "level": 0.9}},
    )


def test_page_shows_the_configuration_tests_proposals_and_change_log(client, viewer, campaign, proposal):
    ABTestFactory(campaign=campaign, test_name="Bigger discount")
    client.force_login(viewer)
    html = client.get("/analytics/campaign/camp_hub/").content.decode()
    assert re.search(r'data-config="default_offer">10% off \(off_10pct\)<', html)
    assert re.search(r'data-segment-offer="returning_users"><td>returning_users</td><td>25% off \(off_25pct\)</td><td class="muted">its own offer', html)
    assert re.search(r'data-segment-offer="new_users"><td>new_users</td><td>10% off \(off_10pct\)</td><td class="muted">the default', html)
    assert "08:00 UTC" in html and "Friendly Cafe (m_friend)" in html
    assert "Bigger discount" in html
    assert f'data-hub-open="{proposal.pk}"' in html
    assert 'data-change-source="api"' in html
    assert "data-hub-apply" not in html and "data-regenerate" not in html  # viewers read only


def test_preview_panel_shows_from_to_reach_and_interval(client, marketer, campaign, proposal):
    client.force_login(marketer)
    html = client.get(f"/analytics/campaign/camp_hub/?preview={proposal.pk}").content.decode()
    assert re.search(r"data-preview-from>10% off \(off_10pct\)<", html)
    assert re.search(r"data-preview-to>25% off \(off_25pct\)<", html)
    assert "data-preview-reach>40<" in html
    assert "90% interval 4.2 to 31.0" in html
    assert f'data-hub-apply="{proposal.pk}"' in html


def test_page_buttons_apply_and_undo_and_a_stale_apply_is_refused_with_the_reason(client, marketer, campaign, proposal):
    client.force_login(marketer)
    url = "/optimize/campaigns/camp_hub/"
    configuration.change_settings(campaign, [SettingChange("offer", "off_25pct")], user=marketer, source="admin")
    resp = client.post(url + "apply", {"optimization": proposal.pk}, follow=True)
    text = " ".join(str(m) for m in resp.context["messages"])
    assert "now off_25pct" in text and "an admin edit" in text
    proposal.refresh_from_db()
    assert proposal.status == "proposed"
    configuration.change_settings(campaign, [SettingChange("offer", "off_10pct")], user=marketer, source="admin")
    resp = client.post(url + "apply", {"optimization": proposal.pk})
    assert resp.status_code == 302 and resp.url == "/analytics/campaign/camp_hub/#hub"
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_25pct"
    client.post(url + "undo", {"optimization": proposal.pk})
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_10pct"
    proposal.refresh_from_db()
    assert proposal.status == "undone"


def test_page_buttons_are_for_marketers_only(client, viewer, campaign, proposal):
    client.force_login(viewer)
    assert client.post("/optimize/campaigns/camp_hub/apply", {"optimization": proposal.pk}).status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == "proposed"


def test_changes_are_marked_on_the_trend_chart(client, viewer, campaign):
    _a_week_of_views(campaign)
    client.force_login(viewer)
    html = client.get("/analytics/campaign/camp_hub/").content.decode()
    payload = re.search(r'data-chart-for="chart-trend">(.*?)</script>', html, re.S).group(1)
    figure = json.loads(payload.replace("<\\/", "</"))
    change = campaign_selectors.campaign_changes(campaign).get()
    when = change.changed_at.strftime("%Y-%m-%d %H:%M:%S")
    lines = [s["x0"] for s in figure["layout"]["shapes"] if s["type"] == "line"]  # (the partial day is a shaded rect)
    assert lines == [when]
    assert "offer returning_users: off_25pct (API)" in [a["text"] for a in figure["layout"]["annotations"]]


def test_admin_undo_action_reverts_through_the_same_service(client, make_user, campaign, proposal):
    boss = make_user("boss", "marketer", is_staff=True, is_superuser=True)
    client.force_login(boss)
    url = "/admin/optimizer/campaignoptimization/"
    client.post(url, {"action": "apply_selected", "_selected_action": [proposal.pk]})
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_25pct"
    resp = client.post(url, {"action": "undo_selected", "_selected_action": [proposal.pk]}, follow=True)
    assert "1 recommendation(s) undone" in " ".join(str(m) for m in resp.context["messages"])
    assert campaign_selectors.effective_offer_id(campaign, "new_users") == "off_10pct"
    assert list(campaign.changes.order_by("pk").values_list("source", "changed_by__username"))[-2:] == [
        ("recommendation", "boss"), ("undo", "boss"),
    ]

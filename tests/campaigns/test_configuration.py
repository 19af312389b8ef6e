"""A campaign's configuration: per-segment offers, promoted merchants, and the change log of every settings write."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from campaigns import configuration, selectors
from campaigns.configuration import SettingChange, StaleValue
from campaigns.models import Campaign, CampaignChange, CampaignSegmentOffer, Segment
from tests.factories import CampaignFactory, MerchantFactory, OfferFactory, SegmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def offers():
    return {v: OfferFactory(offer_id=f"off_{v}pct", value=Decimal(v)) for v in (10, 25, 40)}


@pytest.fixture
def campaign(offers):
    c = CampaignFactory(campaign_id="camp_1", current_offer=offers[10], send_time=dt.time(8))
    c.target_segments.set([SegmentFactory(name="new_users"), SegmentFactory(name="returning_users")])
    SegmentFactory(name="high_value_users")
    return c


def log_rows(campaign):
    return [
        (c.field, c.segment, c.old_value, c.new_value, c.source)
        for c in CampaignChange.objects.filter(campaign=campaign).order_by("pk")
    ]


def test_a_segment_offer_overrides_the_default_for_that_segment_only(campaign, offers, marketer):
    configuration.change_settings(campaign, [SettingChange("offer", "off_40pct", "new_users")], user=marketer, source="admin")
    got = {name: offer.offer_id for name, offer in selectors.offers_by_segment(campaign).items()}
    assert got == {"high_value_users": "off_10pct", "new_users": "off_40pct", "returning_users": "off_10pct"}
    campaign.refresh_from_db()
    assert campaign.current_offer == offers[10]  # the default did not move
    # Back to the default: the override row goes, and that is logged too.
    configuration.change_settings(campaign, [SettingChange("offer", "", "new_users")], user=marketer, source="api")
    assert not CampaignSegmentOffer.objects.exists()
    assert log_rows(campaign) == [
        ("offer", "new_users", "", "off_40pct", "admin"),
        ("offer", "new_users", "off_40pct", "", "api"),
    ]


def test_every_setting_change_is_logged_with_who_when_from_to_and_source(campaign, marketer):
    merchant = MerchantFactory(merchant_id="m_partner")
    written = configuration.change_settings(
        campaign,
        [
            SettingChange("offer", "off_25pct"),
            SettingChange("send_time", "14:00"),
            SettingChange("target_segments", "new_users"),
            SettingChange("promoted_merchants", merchant.merchant_id),
            SettingChange("status", "paused"),
            SettingChange("send_time", "14:00"),  # no change: not logged
        ],
        user=marketer, source="api", note="bulk edit",
    )
    assert len(written) == 5
    assert log_rows(campaign) == [
        ("offer", "", "off_10pct", "off_25pct", "api"),
        ("send_time", "", "08:00", "14:00", "api"),
        ("target_segments", "", "new_users,returning_users", "new_users", "api"),
        ("promoted_merchants", "", "", "m_partner", "api"),
        ("status", "", "active", "paused", "api"),
    ]
    assert {(c.changed_by, c.note) for c in written} == {(marketer, "bulk edit")}
    campaign.refresh_from_db()
    assert (campaign.current_offer.offer_id, campaign.send_time, campaign.status) == ("off_25pct", dt.time(14), "paused")
    assert list(campaign.promoted_merchants.values_list("merchant_id", flat=True)) == ["m_partner"]


def test_a_bad_value_changes_nothing_and_names_the_field(campaign):
    from marketing_ai.api import BadRequest

    with pytest.raises(BadRequest) as err:
        configuration.change_settings(
            campaign, [SettingChange("send_time", "15:00"), SettingChange("offer", "off_nope", "new_users")], source="api"
        )
    assert "offer_id" in err.value.fields
    campaign.refresh_from_db()
    assert campaign.send_time == dt.time(8) and not CampaignChange.objects.exists()  # all or nothing


@pytest.mark.parametrize(("field", "value", "message"), [
    ("target_segments", "new_users,nobody", "no segments named nobody"),
    ("promoted_merchants", "m_ghost", "no merchants with merchant_id m_ghost"),
])
def test_an_unknown_segment_or_merchant_is_named_and_nothing_changes(campaign, field, value, message):
    from marketing_ai.api import BadRequest

    before = set(campaign.target_segments.values_list("name", flat=True))
    with pytest.raises(BadRequest) as err:
        configuration.change_settings(campaign, [SettingChange(field, value)], source="api")
    assert [str(m) for m in err.value.fields[field]] == [message]
    assert set(campaign.target_segments.values_list("name", flat=True)) == before
    assert not campaign.promoted_merchants.exists() and not CampaignChange.objects.exists()


def test_undo_restores_the_value_before_and_is_logged_as_an_undo(campaign, marketer):
    [change] = configuration.change_settings(campaign, [SettingChange("offer", "off_40pct", "new_users")], source="recommendation")
    undo = configuration.undo_change(change, user=marketer)
    assert (undo.field, undo.segment, undo.old_value, undo.new_value, undo.source, undo.reverts) == (
        "offer", "new_users", "off_40pct", "", "undo", change,
    )
    assert selectors.effective_offer_id(campaign, "new_users") == "off_10pct"
    with pytest.raises(Exception, match="already undone"):
        configuration.undo_change(change, user=marketer)


def test_undo_is_refused_when_the_value_changed_since_and_names_what_changed_it(campaign, marketer):
    [first] = configuration.change_settings(campaign, [SettingChange("send_time", "14:00")], source="recommendation")
    configuration.change_settings(campaign, [SettingChange("send_time", "18:00")], user=marketer, source="ab_winner", note="A/B test ab_1")
    with pytest.raises(StaleValue) as err:
        configuration.undo_change(first, user=marketer)
    message = err.value.message
    assert "18:00" in message and "A/B winner" in message and "ab_1" in message and "marketer" in message
    campaign.refresh_from_db()
    assert campaign.send_time == dt.time(18)


# --- API -------------------------------------------------------------------------------------------
def test_api_reads_and_writes_segment_offers_and_promoted_merchants(api, campaign):
    MerchantFactory(merchant_id="m_9")
    resp = api.patch(
        "/api/v1/campaigns/camp_1/",
        {"segment_offers": [{"segment": "new_users", "offer_id": "off_40pct"}], "promoted_merchants": ["m_9"]},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    body = api.get("/api/v1/campaigns/camp_1/").json()
    assert body["current_offer_id"] == "off_10pct"
    assert [(r["segment"], r["offer_id"], r["offer"]["value"]) for r in body["segment_offers"]] == [("new_users", "off_40pct", "40.00")]
    assert body["promoted_merchants"] == ["m_9"]
    # The write went through the service: logged as an API change by the caller.
    assert log_rows(campaign) == [
        ("promoted_merchants", "", "", "m_9", "api"),
        ("offer", "new_users", "", "off_40pct", "api"),
    ]
    assert set(CampaignChange.objects.values_list("changed_by__username", flat=True)) == {"marketer"}
    # The list replaces the overrides: an empty list puts every segment back on the default.
    api.patch("/api/v1/campaigns/camp_1/", {"segment_offers": []}, format="json")
    assert api.get("/api/v1/campaigns/camp_1/").json()["segment_offers"] == []


def test_api_rejects_bad_segment_offers_with_the_error_shape(api, campaign):
    resp = api.patch(
        "/api/v1/campaigns/camp_1/",
        {"segment_offers": [{"segment": "new_users", "offer_id": "off_40pct"}, {"segment": "new_users", "offer_id": "off_25pct"}]},
        format="json",
    )
    assert resp.status_code == 400
    assert "segment_offers" in resp.json()["error"]["fields"]
    resp = api.patch("/api/v1/campaigns/camp_1/", {"segment_offers": [{"segment": "nobody", "offer_id": "off_40pct"}]}, format="json")
    assert resp.status_code == 400 and "segment_offers" in resp.json()["error"]["fields"]
    assert not CampaignChange.objects.exists()


def test_api_change_log_lists_newest_first_and_undo_reverts_one_change(api, campaign):
    api.patch("/api/v1/campaigns/camp_1/", {"send_time": "10:00", "name": "Renamed"}, format="json")
    api.patch("/api/v1/campaigns/camp_1/", {"status": "paused"}, format="json")
    rows = api.get("/api/v1/campaigns/camp_1/changes/").json()["results"]
    assert [(r["field"], r["old_value"], r["new_value"], r["source"], r["changed_by"]) for r in rows] == [
        ("status", "active", "paused", "api", "marketer"),
        ("send_time", "08:00", "10:00", "api", "marketer"),
    ]
    assert [r["field"] for r in api.get("/api/v1/campaigns/camp_1/changes/?field=status").json()["results"]] == ["status"]
    assert api.get("/api/v1/campaigns/camp_1/changes/?field=colour").status_code == 400
    undo = api.post(f"/api/v1/campaigns/camp_1/changes/{rows[1]['change_id']}/undo/")
    assert undo.status_code == 200, undo.content
    assert (undo.json()["source"], undo.json()["new_value"], undo.json()["reverts"]) == ("undo", "08:00", rows[1]["change_id"])
    campaign.refresh_from_db()
    assert campaign.send_time == dt.time(8) and campaign.name == "Renamed" and campaign.status == "paused"
    again = api.post(f"/api/v1/campaigns/camp_1/changes/{rows[1]['change_id']}/undo/")
    assert again.status_code == 409 and again.json()["error"]["message"].endswith("already undone")
    assert api.post("/api/v1/campaigns/camp_1/changes/999999/undo/").status_code == 404


def test_viewer_may_read_the_log_but_not_undo(viewer_api, campaign):
    [change] = configuration.change_settings(campaign, [SettingChange("send_time", "10:00")], source="admin")
    assert viewer_api.get("/api/v1/campaigns/camp_1/changes/").status_code == 200
    assert viewer_api.post(f"/api/v1/campaigns/camp_1/changes/{change.pk}/undo/").status_code == 403


def test_creating_a_campaign_with_segment_offers_and_partners(api, offers):
    MerchantFactory(merchant_id="m_7")
    SegmentFactory(name="new_users")
    resp = api.post(
        "/api/v1/campaigns/",
        {"campaign_id": "camp_new", "name": "New", "current_offer_id": "off_10pct", "target_segments": ["new_users"],
         "segment_offers": [{"segment": "new_users", "offer_id": "off_25pct"}], "promoted_merchants": ["m_7"]},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    c = Campaign.objects.get(campaign_id="camp_new")
    assert selectors.effective_offer_id(c, "new_users") == "off_25pct"
    assert selectors.effective_offer_id(c, Segment.HIGH_VALUE_USERS) == "off_10pct"
    assert resp.json()["promoted_merchants"] == ["m_7"]


def test_admin_save_goes_through_the_service_and_the_log_is_read_only(client, make_user, campaign, offers):
    boss = make_user("boss", "marketer", is_staff=True, is_superuser=True)
    client.force_login(boss)
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update({
        "campaign_id": campaign.campaign_id, "name": campaign.name, "merchant": campaign.merchant_id, "status": "paused",
        "channel": "push", "budget": "1000.00", "current_offer": offers[25].pk, "send_time": "08:00",
        "send_time_policy": "personal", "target_segments": [s.pk for s in campaign.target_segments.all()], "promoted_merchants": [],
        "created_at_0": "2025-01-01", "created_at_1": "00:00:00",
    })
    for prefix in ("segment_offers", "changes"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "0"})
    resp = client.post(url, data)
    assert resp.status_code == 302, resp.context["adminform"].form.errors if resp.context else resp
    assert log_rows(campaign) == [
        ("offer", "", "off_10pct", "off_25pct", "admin"),
        ("send_time_policy", "", "fixed", "personal", "admin"),
        ("status", "", "active", "paused", "admin"),
    ]
    campaign.refresh_from_db()
    assert campaign.send_time_policy == "personal"
    assert set(CampaignChange.objects.values_list("changed_by__username", flat=True)) == {"boss"}
    log_url = "/admin/campaigns/campaignchange/"
    assert client.get(log_url).status_code == 200
    change = CampaignChange.objects.first()
    assert client.post(f"{log_url}{change.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"{log_url}add/").status_code == 403

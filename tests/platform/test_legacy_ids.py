"""External ids stored before the id alphabet existed: pages keep working (every link they build
answers), and ``manage.py fix_external_ids`` replaces them safely (docs/operations.md)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest
from django.db import connection

from abtests.models import ABTest
from tests.abtests.factories import ABTestFactory, populate
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

# Ids the alphabet now refuses, as old rows may hold them (inserted with .create(): no validators run).
LEGACY_IDS = ["camp/1", "camp 2?x=1#y", "camp\n3", "..", ".", "-camp", "50%off", "c" * 70, "camp\x01ctl", "é-camp"]
PAGES = ["/", "/analytics/", "/ab-tests/", "/optimize/", "/analytics/alerts/"]


def legacy_ids() -> list[str]:
    ids = LEGACY_IDS
    if connection.vendor == "postgresql":
        ids = [i for i in ids if len(i) <= 64]  # a varchar(64) column cannot hold more
    return ids


@pytest.fixture
def legacy_rows():
    campaigns = [CampaignFactory(campaign_id=cid, name=f"legacy {i}") for i, cid in enumerate(legacy_ids())]
    tests = []
    for i, campaign in enumerate(campaigns[:4]):
        test = ABTestFactory(campaign=campaign, test_id=campaign.campaign_id.replace("camp", "test"),
                             status=ABTest.Status.RUNNING if i % 2 else ABTest.Status.DRAFT)
        populate(test, users=[10, 10], conversions=[1, 2])
        tests.append(test)
    return campaigns, tests


def links_of(html: str, attribute: str = "href") -> set[str]:
    found = {unescape(m) for m in re.findall(rf'{attribute}="([^"]*)"', html)}
    return {u for u in found if u.startswith("/") and not u.startswith(("/static/", "//"))}


def test_every_page_and_every_link_it_builds_answers_for_legacy_ids(client, marketer, legacy_rows):
    campaigns, tests = legacy_rows
    client.force_login(marketer)
    seen: set[str] = set()
    actions: set[str] = set()
    todo = list(PAGES)
    detail_pages = 0
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        assert response.status_code in (200, 302), (url, response.status_code)
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue
        path = urlsplit(url).path
        if path.startswith(("/analytics/campaign/", "/ab-tests/")) and path.count("/") > 2:
            detail_pages += 1
        html = response.content.decode()
        for link in links_of(html):
            if not link.startswith(("/admin/",)) and link not in seen:
                todo.append(link)
        actions |= links_of(html, "action")
    # every form's action resolves to its view with the row's real id (posting them: the test below)
    from django.urls import resolve

    for action in actions:
        match = resolve(urlsplit(action).path)
        for key in ("campaign_id", "test_id"):
            if key in match.kwargs:
                assert match.kwargs[key] in {c.campaign_id for c in campaigns} | {t.test_id for t in tests} | {
                    t.test_id for t in ABTest.objects.all()}, action
    # every legacy campaign's page and every legacy test's page was reached through a link and answered 200
    assert detail_pages >= len(campaigns) + len(tests)


def test_a_legacy_id_round_trips_through_its_page_url(client, marketer, legacy_rows):
    from django.urls import reverse

    campaigns, tests = legacy_rows
    client.force_login(marketer)
    for campaign in campaigns:
        url = reverse("analytics-campaign-page", args=[campaign.campaign_id])
        response = client.get(url)
        assert response.status_code == 200, (campaign.campaign_id, url)
        assert response.context["campaign"].pk == campaign.pk
    for test in tests:
        response = client.get(reverse("abtests-detail", args=[test.test_id]))
        assert response.status_code == 200 and response.context["test"].pk == test.pk
    # a page write by such an address works too: start the draft test through its card's form
    draft = next(t for t in tests if t.status == ABTest.Status.DRAFT)
    assert client.post(reverse("abtests-transition", args=[draft.test_id, "start"])).status_code == 302
    draft.refresh_from_db()
    assert draft.status == ABTest.Status.RUNNING


def test_a_valid_id_keeps_its_plain_url():
    from django.urls import reverse

    assert reverse("analytics-campaign-page", args=["camp_1.a:b@c+d-e"]) == "/analytics/campaign/camp_1.a:b@c+d-e/"
    assert reverse("abtests-detail", args=["test_ab12"]) == "/ab-tests/test_ab12/"


# --- manage.py fix_external_ids ---------------------------------------------------------------------

def fix_command(*args: str) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("fix_external_ids", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def legacy_world(make_user):
    """One invalid id per model with an external id, and the text that references them."""
    from analytics.models import AlertSent, AlertSubscription
    from campaigns.models import CampaignChange
    from optimizer.models import CampaignOptimization
    from tests.factories import CustomerFactory, EventFactory, MerchantFactory, OfferFactory

    merchant = MerchantFactory(merchant_id="m/1")
    offer = OfferFactory(offer_id="off 25%")
    campaign = CampaignFactory(campaign_id="camp/1", merchant=merchant, current_offer=offer)
    valid = CampaignFactory(campaign_id="camp_ok")
    customer = CustomerFactory(customer_id="user 1")
    event = EventFactory(event_id="evt\n1", campaign=campaign, customer=customer)
    test = ABTestFactory(campaign=campaign, test_id="test/1", status=ABTest.Status.COMPLETED,
                         applied={"current_offer": "off 25%", "send_time": "09:00"})
    ABTest.objects.filter(pk=test.pk).update(hashing_seed="")  # an old row: the seed defaulted to the id
    seeded = ABTestFactory(campaign=valid, test_id="test 2")
    change = CampaignChange.objects.create(campaign=campaign, field=CampaignChange.Field.OFFER, old_value="off_10pct",
                                           new_value="off 25%", source=CampaignChange.Source.API)
    merchants = CampaignChange.objects.create(campaign=campaign, field=CampaignChange.Field.PROMOTED_MERCHANTS,
                                              old_value="a_m,m/1,z_m", new_value="m/1", source=CampaignChange.Source.API)
    proposal = CampaignOptimization.objects.create(campaign=campaign, recommendation_type="merchant",
                                                   current_value="m/1", recommended_value="m_2", live_value="m/1",
                                                   expected_impact=0.1, confidence=0.5)
    sub = AlertSubscription.objects.create(user=make_user("u"), kind=AlertSubscription.Kind.ABTEST_DECISION)
    sent = AlertSent.objects.create(subscription=sub, key="abtest:test/1:winner:B", subject="s")
    sent_conv = AlertSent.objects.create(subscription=sub, key="conversions:camp/1:2026-11-30", subject="s")
    return locals()


def test_the_report_lists_every_invalid_id_and_changes_nothing(legacy_world):
    from campaigns.models import Campaign

    out = fix_command()
    for old in ("camp/1", "m/1", "off 25%", "user 1", "evt\\n1", "test/1", "test 2"):
        assert repr(old).strip("'") in out or old in out, old
    assert "7 id(s) outside the alphabet" in out and "--apply" in out
    assert Campaign.objects.filter(campaign_id="camp/1").exists()
    assert "camp_ok" not in out


def test_apply_replaces_every_invalid_id_deterministically_with_its_references(legacy_world):
    from analytics.models import AlertSent
    from campaigns.models import Campaign, CampaignChange, Customer, Event, Merchant, Offer
    from marketing_ai import id_repair
    from marketing_ai.validation import EXTERNAL_ID_RE
    from optimizer.models import CampaignOptimization

    w = legacy_world
    expected = {old: id_repair.replacement_for(old, lambda c: False)
                for old in ("camp/1", "m/1", "off 25%", "user 1", "evt\n1", "test/1", "test 2")}
    assert expected["camp/1"].startswith("camp_1-") and expected["off 25%"].startswith("off_25_-")
    out = fix_command("--apply")
    assert "Replaced 7 id(s)" in out
    for model, column in id_repair.targets():
        for value in model.objects.values_list(column, flat=True):
            assert EXTERNAL_ID_RE.fullmatch(value), (model, value)
    assert Campaign.objects.get(pk=w["campaign"].pk).campaign_id == expected["camp/1"]
    assert Campaign.objects.get(pk=w["valid"].pk).campaign_id == "camp_ok"  # valid ids untouched
    assert Merchant.objects.get(pk=w["merchant"].pk).merchant_id == expected["m/1"]
    assert Offer.objects.get(pk=w["offer"].pk).offer_id == expected["off 25%"]
    assert Customer.objects.get(pk=w["customer"].pk).customer_id == expected["user 1"]
    assert Event.objects.get(pk=w["event"].pk).event_id == expected["evt\n1"]
    test = ABTest.objects.get(pk=w["test"].pk)
    assert test.test_id == expected["test/1"]
    assert test.hashing_seed == "test/1"  # assignments hash as before
    assert test.applied == {"current_offer": expected["off 25%"], "send_time": "09:00"}
    assert ABTest.objects.get(pk=w["seeded"].pk).hashing_seed == "test 2"  # its stored seed is kept
    assert CampaignChange.objects.get(pk=w["change"].pk).new_value == expected["off 25%"]
    assert CampaignChange.objects.get(pk=w["change"].pk).old_value == "off_10pct"
    merchants = CampaignChange.objects.get(pk=w["merchants"].pk)
    assert (merchants.old_value, merchants.new_value) == (f"a_m,{expected['m/1']},z_m", expected["m/1"])
    proposal = CampaignOptimization.objects.get(pk=w["proposal"].pk)
    assert (proposal.current_value, proposal.recommended_value, proposal.live_value) == (expected["m/1"], "m_2", expected["m/1"])
    assert AlertSent.objects.get(pk=w["sent"].pk).key == f"abtest:{expected['test/1']}:winner:B"
    assert AlertSent.objects.get(pk=w["sent_conv"].pk).key == f"conversions:{expected['camp/1']}:2026-11-30"
    assert "Every stored external id is in the alphabet" in fix_command("--apply")  # a second run: nothing to do


def test_a_replacement_never_takes_an_existing_id(legacy_world):
    from marketing_ai import id_repair

    first = id_repair.replacement_for("camp/1", lambda c: False)
    CampaignFactory(campaign_id=first)  # someone already holds the 8-digit replacement
    fix_command("--apply")
    from campaigns.models import Campaign

    new = Campaign.objects.get(pk=legacy_world["campaign"].pk).campaign_id
    assert new != first and new.startswith("camp_1-") and len(new.split("-")[-1]) == 16


@pytest.mark.django_db(transaction=True)
def test_a_failure_part_way_changes_nothing(legacy_world):
    """A real database error on the last table (a trigger refusing event updates): every earlier
    replacement is rolled back with it, and the command says so with a non-zero exit."""
    from django.core.management import CommandError

    from campaigns.models import Campaign, Event

    table = Event._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CREATE FUNCTION refuse_update() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'frozen'; END $$ LANGUAGE plpgsql")
            cursor.execute(f"CREATE TRIGGER frozen BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_update()")
        else:
            cursor.execute(f"CREATE TRIGGER frozen BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, 'frozen'); END")
    try:
        with pytest.raises(CommandError, match="nothing was changed"):
            fix_command("--apply")
        assert Campaign.objects.filter(campaign_id="camp/1").exists()
        assert ABTest.objects.filter(test_id="test/1", hashing_seed="").exists()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER frozen ON {table}" if connection.vendor == "postgresql" else "DROP TRIGGER frozen")
            if connection.vendor == "postgresql":
                cursor.execute("DROP FUNCTION refuse_update()")


def test_after_the_fix_the_campaign_page_has_its_plain_url_and_exports(client, marketer, legacy_world):
    from django.urls import reverse

    from campaigns.models import Campaign

    fix_command("--apply")
    campaign = Campaign.objects.get(pk=legacy_world["campaign"].pk)
    client.force_login(marketer)
    url = reverse("analytics-campaign-page", args=[campaign.campaign_id])
    assert url == f"/analytics/campaign/{campaign.campaign_id}/"
    html = client.get(url).content.decode()
    assert f"/api/analytics/campaign/{campaign.campaign_id}/metrics" in html

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

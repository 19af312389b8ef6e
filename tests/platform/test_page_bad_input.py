"""Pages, the admin and the page forms under hostile input: never a 5xx.

Every dashboard page and admin list/change page gets every query parameter the pages read (and the
admin's own) with values that reach Python's and the database's limits: NUL and other control bytes,
non-ASCII digits, integers beyond 64 bits, dates past year 9999, invalid UTF-8, a 10,000-character value.
"""

from __future__ import annotations

import pytest
from django.contrib import admin

from tests.abtests.factories import ABTestFactory
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

PAGE_PARAMETERS = ["days", "from", "to", "interval", "campaign_id", "campaign", "customer_id", "preview", "status",
                   "type", "page_offer"]
# The campaign page renders a whole dashboard: it gets the parameters it reads, the others get all of them.
CAMPAIGN_PAGE_PARAMETERS = ["days", "from", "to", "interval", "preview"]
ADMIN_PARAMETERS = ["q", "o", "p", "id__gt"]
VALUES = ["a%00b", "%C2%B2", "99999999999999999999999", "10000-01-01", "%ED%A0%80", "x" * 10_000]
ADMIN_VALUES = ["%C2%B2", "99999999999999999999999", "x" * 3_000]


@pytest.fixture
def rows():
    campaign = CampaignFactory(campaign_id="camp_1")
    test = ABTestFactory(campaign=campaign)
    return campaign, test


def page_urls(campaign, test) -> list[str]:
    return ["/", "/analytics/", "/analytics/campaign/", f"/analytics/campaign/{campaign.campaign_id}/",
            "/analytics/alerts/", "/ab-tests/", f"/ab-tests/{test.test_id}/", "/optimize/"]


def admin_urls(campaign) -> list[str]:
    urls = []
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        urls.append(base)
    urls.append(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    return urls


def test_no_page_answers_5xx_to_any_hostile_query_value(client, make_user, rows):
    campaign, test = rows
    client.force_login(make_user("boss", "marketer", is_staff=True, is_superuser=True))
    failures = []
    for url in page_urls(campaign, test):
        for name in CAMPAIGN_PAGE_PARAMETERS if url.startswith("/analytics/campaign/camp_") else PAGE_PARAMETERS:
            for value in VALUES:
                response = client.get(f"{url}?{name}={value}")
                if response.status_code >= 500:
                    failures.append((url, name, value[:30], response.status_code))
    assert failures == []


def test_no_admin_page_answers_5xx_to_any_hostile_query_value(client, make_user, rows):
    campaign, _ = rows
    client.force_login(make_user("boss", is_staff=True, is_superuser=True))
    failures = []
    for url in admin_urls(campaign):
        for name in ADMIN_PARAMETERS:
            for value in ADMIN_VALUES:
                response = client.get(f"{url}?{name}={value}")
                if response.status_code >= 500:
                    failures.append((url, name, value[:30], response.status_code))
    assert failures == []


@pytest.mark.parametrize("key", ["99999999999999999999999", "-1", "1e309", "%C2%B2", "x", "~", "%7E%2F"])
def test_admin_and_page_addresses_with_hostile_keys_are_404_not_5xx(client, make_user, rows, key):
    client.force_login(make_user("boss", "marketer", is_staff=True, is_superuser=True))
    urls = [f"/admin/{m._meta.app_label}/{m._meta.model_name}/{key}/change/" for m in admin.site._registry]
    urls += [f"/analytics/campaign/{key}/", f"/ab-tests/{key}/", f"/optimize/recommendations/{key}/apply",
             f"/optimize/campaigns/{key}/apply", f"/ab-tests/{key}/start"]
    for url in urls:
        response = client.get(url) if "/admin/" in url or url.endswith("/") else client.post(url)
        assert response.status_code < 500, (url, response.status_code)


def test_page_forms_refuse_hostile_values_without_a_5xx(client, make_user, rows):
    """The forms that write: NUL/overflow in every field is a message or a 4xx, never a 500."""
    campaign, test = rows
    client.force_login(make_user("m", "marketer"))
    hostile = ["\x00", "9" * 30, "²", "9999-12-31T23:59:59-01:00", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")]
    forms = {
        "/ab-tests/": ["test_name", "campaign_id", "sample_size_target", "confidence_level", "variant_a_name",
                       "variant_b_name", "hypothesis", "primary_metric", "weights", "namespace_start"],
        "/analytics/alerts/": ["email", "campaign_id", "kinds"],
        f"/ab-tests/{test.test_id}/end": ["apply_winner", "next"],
        "/analytics/refresh": ["next"],
        f"/optimize/campaigns/{campaign.campaign_id}/apply": ["optimization", "preview"],
    }
    for url, fields in forms.items():
        for field in fields:
            for value in hostile:
                response = client.post(url, {field: value})
                assert response.status_code < 500, (url, field, value[:20], response.status_code)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/", "/analytics/alerts/", "/ab-tests/"])
def test_a_nul_byte_in_a_posted_form_field_is_a_400(client, make_user, url):
    if url not in ("/accounts/login/", "/admin/login/"):
        client.force_login(make_user("m", "marketer"))
    response = client.post(url, {"username": "a\x00b", "password": "x", "email": "a@b.c", "test_name": "t\x00"})
    assert response.status_code == 400
    assert "control character (U+0000)" in response.content.decode()

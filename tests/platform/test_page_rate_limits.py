"""Dashboard form writes are rate-limited like the API's writes: same scopes, rates and counters,
429 with Retry-After and a readable page, nothing written when refused."""

from __future__ import annotations

import re

import pytest
import requests
from django.test import Client, override_settings
from rest_framework.test import APIClient

from abtests.models import ABTest
from analytics.models import AlertSubscription
from tests.abtests.factories import ABTestFactory
from tests.factories import CampaignFactory

# Counting against per-minute limits: the window is held still so a slow run cannot roll it over.
pytestmark = pytest.mark.usefixtures("frozen_throttle_clock")

RATES = {"ingest_per_user": 100, "ingest_per_ip": 100, "write_per_user": 2, "write_per_ip": 100,
         "jobs_per_user": 1, "jobs_per_ip": 100}


def page_client(user, ip="10.2.0.1") -> Client:
    client = Client(REMOTE_ADDR=ip)
    client.force_login(user)
    return client


def subscribe(client: Client, kind: str):
    return client.post("/analytics/alerts/", {"email": "m@example.com", "kinds": [kind]})


def assert_throttled_page(response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "Too many changes" in html
    assert re.search(rf"Try again in <strong>{response['Retry-After']} seconds?</strong>", html)
    assert "Nothing was changed" in html


@pytest.mark.django_db
@override_settings(THROTTLE_RATES=RATES)
def test_a_page_form_over_the_write_limit_gets_429_and_writes_nothing(make_user):
    client = page_client(make_user("m", "marketer"))
    assert subscribe(client, "job_failed").status_code == 302
    assert subscribe(client, "abtest_srm").status_code == 302
    refused = subscribe(client, "abtest_decision")
    assert_throttled_page(refused)
    kinds = set(AlertSubscription.objects.values_list("kind", flat=True))
    assert kinds == {"abtest_srm"}  # the form replaces the set: the refused third post changed nothing
    assert client.get("/analytics/alerts/").status_code == 200  # reads are still served


@pytest.mark.django_db
@override_settings(THROTTLE_RATES=RATES)
def test_every_kind_of_page_write_counts_and_is_refused(make_user):
    """A/B transitions, proposal and hub actions, the A/B create form: each refused once over the limit."""
    campaign = CampaignFactory(campaign_id="camp_1")
    draft = ABTestFactory(campaign=campaign, status=ABTest.Status.DRAFT, started_at=None)
    writes = [
        ("/ab-tests/", {"test_name": "x"}),
        (f"/ab-tests/{draft.test_id}/start", {}),
        ("/optimize/recommendations/1/apply", {}),
        (f"/optimize/campaigns/{campaign.campaign_id}/regenerate", {}),
        ("/analytics/alerts/", {"email": "m@example.com", "kinds": ["job_failed"]}),
    ]
    for i, (path, data) in enumerate(writes):
        client = page_client(make_user(f"m{i}", "marketer"))
        subscribe(client, "job_failed")
        subscribe(client, "job_failed")
        refused = client.post(path, data)
        assert_throttled_page(refused)
    draft.refresh_from_db()
    assert draft.status == ABTest.Status.DRAFT  # the refused start did not run


@pytest.mark.django_db
@override_settings(THROTTLE_RATES=RATES)
def test_page_and_api_writes_share_one_budget(make_user):
    from rest_framework.authtoken.models import Token

    CampaignFactory(campaign_id="camp_1")
    user = make_user("m", "marketer")
    api = APIClient(REMOTE_ADDR="10.2.0.1")
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert api.patch("/api/v1/campaigns/camp_1/", {"name": "a"}, format="json").status_code == 200
    client = page_client(user)
    assert subscribe(client, "job_failed").status_code == 302
    assert_throttled_page(subscribe(client, "abtest_srm"))
    assert api.patch("/api/v1/campaigns/camp_1/", {"name": "b"}, format="json").status_code == 429


@pytest.mark.django_db
@override_settings(THROTTLE_RATES={**RATES, "write_per_user": 100, "write_per_ip": 3})
def test_page_writes_are_limited_per_ip_across_accounts(make_user):
    first, second = page_client(make_user("a", "marketer")), page_client(make_user("b", "marketer"))
    assert subscribe(first, "job_failed").status_code == 302
    assert subscribe(first, "job_failed").status_code == 302
    assert subscribe(second, "job_failed").status_code == 302
    assert_throttled_page(subscribe(second, "job_failed"))
    elsewhere = page_client(make_user("c", "marketer"), ip="10.2.0.9")
    assert subscribe(elsewhere, "job_failed").status_code == 302


@pytest.mark.django_db
@override_settings(THROTTLE_RATES=RATES)
def test_the_refresh_button_runs_a_job_and_counts_as_a_job_run(make_user):
    client = page_client(make_user("m", "marketer"))
    assert client.post("/analytics/refresh").status_code == 302
    refused = client.post("/analytics/refresh")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "job run" in refused.content.decode()
    from marketing_ai.models import JobRun

    assert JobRun.objects.filter(job="daily_analytics").count() == 1  # the refused click ran nothing
    assert subscribe(client, "job_failed").status_code == 302  # the write scope has its own budget


@pytest.mark.django_db
@override_settings(THROTTLE_RATES={**RATES, "write_per_user": 1})
def test_refused_roles_are_403_and_not_counted(make_user):
    viewer = page_client(make_user("v", "viewer"))
    for _ in range(3):
        assert subscribe(viewer, "job_failed").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_form_write_over_the_limit_over_real_http(live_server, make_user):
    """Through the live server: log in with the real form, post the alerts form with its CSRF token."""
    make_user("http-marketer", "marketer", password="http-pw-for-tests")
    session = requests.Session()
    base = live_server.url

    def csrf(path: str) -> str:
        html = session.get(f"{base}{path}", timeout=10).text
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    login = session.post(f"{base}/accounts/login/", timeout=10, headers={"Referer": f"{base}/accounts/login/"},
                         data={"username": "http-marketer", "password": "http-pw-for-tests",
                               "csrfmiddlewaretoken": csrf("/accounts/login/")})
    assert login.status_code == 200 and "/accounts/login/" not in login.url
    with override_settings(THROTTLE_RATES={**RATES, "write_per_user": 1}):
        token = csrf("/analytics/alerts/")
        form = {"email": "m@example.com", "kinds": ["job_failed"], "csrfmiddlewaretoken": token}
        headers = {"Referer": f"{base}/analytics/alerts/"}
        first = session.post(f"{base}/analytics/alerts/", data=form, headers=headers, timeout=10, allow_redirects=False)
        assert first.status_code == 302
        second = session.post(f"{base}/analytics/alerts/", data=form, headers=headers, timeout=10, allow_redirects=False)
    assert second.status_code == 429
    assert 1 <= int(second.headers["Retry-After"]) <= 60
    assert "Try again in" in second.text
    assert f'href="{base}/analytics/alerts/"' in second.text  # back to the form it came from

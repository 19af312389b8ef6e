"""Rate limits (per user/token and per IP, per scope; 429 + Retry-After) and the login lockout (django-axes)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from tests.factories import CampaignFactory

# Counting against per-minute limits: the window is held still so a slow run cannot roll it over.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_throttle_clock")]

RATES = {"ingest_per_user": 3, "ingest_per_ip": 5, "write_per_user": 2, "write_per_ip": 100,
         "jobs_per_user": 1, "jobs_per_ip": 100}


def batch(i: int) -> list[dict]:
    return [{"event_id": f"evt_{i}", "type": "view", "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
             "customer_id": "user_1", "campaign_id": "camp_1"}]


def token_client(user, ip="10.0.0.1"):
    from rest_framework.authtoken.models import Token

    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content[:300]
    assert response.json()["error"]["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


@override_settings(THROTTLE_RATES=RATES)
def test_ingestion_is_limited_per_token_and_reads_are_still_served(make_user):
    CampaignFactory(campaign_id="camp_1")
    sender = token_client(make_user("sender", "ingest", "marketer"))
    statuses = [sender.post("/api/v1/events/", batch(i), format="json").status_code for i in range(3)]
    assert statuses == [201, 201, 201]
    assert_throttled(sender.post("/api/v1/events/", batch(9), format="json"))
    assert sender.get("/api/v1/campaigns/").status_code == 200  # reads: not limited
    assert sender.get("/api/analytics/portfolio").status_code == 200
    # Another scope keeps its own budget: a write is still allowed.
    assert sender.patch("/api/v1/campaigns/camp_1/", {"name": "renamed"}, format="json").status_code == 200


@override_settings(THROTTLE_RATES=RATES)
def test_ingestion_is_limited_per_ip_across_tokens(make_user):
    CampaignFactory(campaign_id="camp_1")
    first = token_client(make_user("s1", "ingest"))
    second = token_client(make_user("s2", "ingest"))
    for i in range(3):
        assert first.post("/api/v1/events/", batch(i), format="json").status_code == 201
    assert second.post("/api/v1/events/", batch(3), format="json").status_code == 201
    assert second.post("/api/v1/events/", batch(4), format="json").status_code == 201
    assert_throttled(second.post("/api/v1/events/", batch(5), format="json"))  # the IP's 5 are used up
    elsewhere = token_client(make_user("s3", "ingest"), ip="10.0.0.2")
    assert elsewhere.post("/api/v1/events/", batch(6), format="json").status_code == 201


@override_settings(THROTTLE_RATES=RATES)
def test_writes_and_job_runs_are_limited(make_user):
    CampaignFactory(campaign_id="camp_1")
    marketer = token_client(make_user("m", "marketer"))
    for name in ("a", "b"):
        assert marketer.patch("/api/v1/campaigns/camp_1/", {"name": name}, format="json").status_code == 200
    assert_throttled(marketer.patch("/api/v1/campaigns/camp_1/", {"name": "c"}, format="json"))
    assert marketer.post("/api/v1/jobs/abtest_results/run", {}, format="json").status_code in (200, 202)
    assert_throttled(marketer.post("/api/v1/jobs/abtest_results/run", {}, format="json"))


def test_counters_are_shared_through_redis(make_user, redis_url):
    CampaignFactory(campaign_id="camp_1")
    throttle_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                      "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
    from django.conf import settings

    with override_settings(THROTTLE_RATES=RATES, CACHES={**settings.CACHES, "throttle": throttle_cache}):
        from django.core.cache import caches

        from marketing_ai import throttles

        sender = token_client(make_user("sender", "ingest"))
        for i in range(3):
            assert sender.post("/api/v1/events/", batch(i), format="json").status_code == 201
        assert_throttled(sender.post("/api/v1/events/", batch(9), format="json"))
        keys = caches["throttle"]._cache.get_client().keys(f"{throttle_cache['KEY_PREFIX']}:*throttle:ingest:*")
        assert len(keys) == 2  # one per-user and one per-IP counter, in Redis
        assert throttles.CACHE_ALIAS == "throttle"


def test_a_broken_rate_limit_cache_lets_requests_through(make_user):
    """Redis down (here: nothing listens on the port): the API keeps answering, unthrottled."""
    CampaignFactory(campaign_id="camp_1")
    from django.conf import settings

    dead = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}
    with override_settings(THROTTLE_RATES=RATES, CACHES={**settings.CACHES, "throttle": dead}):
        sender = token_client(make_user("sender", "ingest"))
        statuses = [sender.post("/api/v1/events/", batch(i), format="json").status_code for i in range(5)]
    assert statuses == [201] * 5


# --- Login lockout (django-axes), on both login forms -------------------------------------------------

@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_repeated_failed_logins_lock_the_account_out_even_with_the_right_password(make_user, login_url, settings):
    make_user("boss", "marketer", password="the-right-password-1", is_staff=True)
    client = Client(REMOTE_ADDR="10.1.1.1")
    statuses = [client.post(login_url, {"username": "boss", "password": "wrong"}).status_code
                for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the form again, then the lockout
    locked = client.post(login_url, {"username": "boss", "password": "the-right-password-1"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not locked out.
    make_user("other", "viewer", password="another-password-2", is_staff=True)
    ok = Client(REMOTE_ADDR="10.1.1.1").post(login_url, {"username": "other", "password": "another-password-2"})
    assert ok.status_code == 302


def test_a_success_before_the_limit_resets_the_count(make_user, settings):
    make_user("boss", "marketer", password="the-right-password-1")
    client = Client(REMOTE_ADDR="10.1.1.2")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": "boss", "password": "wrong"})
    assert client.post("/accounts/login/", {"username": "boss", "password": "the-right-password-1"}).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": "boss", "password": "wrong"})
    assert client.post("/accounts/login/", {"username": "boss", "password": "the-right-password-1"}).status_code == 302

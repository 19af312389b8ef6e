"""The API's per-process caches: token -> user and roles (marketing_ai/auth.py), and the analytics data
version (analytics.selectors.data_version).

"Another process" is simulated by changing the database without Django's signals (``QuerySet.update``,
raw SQL, ``bulk_create``): that is exactly what a gunicorn worker sees when the change is made elsewhere.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.contrib.auth.models import Group, update_last_login
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext as CaptureQueries
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analytics import selectors
from analytics.models import AggregateRefresh

PORTFOLIO = "/api/v1/analytics/portfolio"
MERCHANTS = "/api/v1/merchants/"


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def tables_read(queries: CaptureQueries) -> str:
    return " ".join(q["sql"] for q in queries.captured_queries)


@pytest.fixture
def short_ttl(settings):
    settings.AUTH_TOKEN_CACHE_SECONDS = 1
    return 1


def test_a_recently_seen_token_costs_no_token_user_or_group_query(api):
    assert api.get(PORTFOLIO).status_code == 200
    with CaptureQueries(connection) as queries:
        assert api.get(PORTFOLIO).status_code == 200
    sql = tables_read(queries)
    assert "authtoken_token" not in sql and "auth_user" not in sql and "auth_group" not in sql


def test_the_cached_user_is_the_tokens_user_with_its_roles(api, marketer):
    api.get(PORTFOLIO)
    # A write that only a marketer may attempt: past the role check, the empty body is a 400, not a 403.
    response = api.post(MERCHANTS, {}, format="json")
    assert response.status_code == 400, response.content
    assert "merchant_id" in response.json()["error"]["fields"]


def test_deleting_a_token_stops_it_at_once_in_this_process(api, marketer):
    assert api.get(PORTFOLIO).status_code == 200
    Token.objects.filter(user=marketer).delete()
    assert api.get(PORTFOLIO).status_code == 401


def test_rotating_a_token_with_the_command_stops_the_old_one_and_starts_the_new(api, marketer, capsys):
    old = Token.objects.get(user=marketer).key
    assert api.get(PORTFOLIO).status_code == 200
    call_command("create_api_token", marketer.username, "--rotate")
    new = capsys.readouterr().out.strip().splitlines()[-1]
    assert new != old
    assert token_client(old).get(PORTFOLIO).status_code == 401
    assert token_client(new).get(PORTFOLIO).status_code == 200


def test_deactivating_a_user_stops_their_token_at_once(api, marketer):
    assert api.get(PORTFOLIO).status_code == 200
    marketer.is_active = False
    marketer.save()
    assert api.get(PORTFOLIO).status_code == 401


def test_losing_the_marketer_role_denies_writes_at_once(api, marketer):
    assert api.post(MERCHANTS, {}, format="json").status_code == 400  # role check passed, body refused
    marketer.groups.remove(Group.objects.get(name="marketer"))
    assert api.post(MERCHANTS, {}, format="json").status_code == 403


def test_gaining_the_marketer_role_allows_writes_at_once(viewer_api, viewer):
    assert viewer_api.post(MERCHANTS, {}, format="json").status_code == 403
    viewer.groups.add(Group.objects.get_or_create(name="marketer")[0])
    assert viewer_api.post(MERCHANTS, {}, format="json").status_code == 400


def test_a_login_does_not_empty_the_cache(api, marketer):
    api.get(PORTFOLIO)
    update_last_login(None, marketer)  # what every session login does
    with CaptureQueries(connection) as queries:
        api.get(PORTFOLIO)
    assert "authtoken_token" not in tables_read(queries)


def test_a_token_revoked_in_another_process_stops_working_within_the_ttl(api, marketer, short_ttl):
    key = Token.objects.get(user=marketer).key
    assert api.get(PORTFOLIO).status_code == 200
    with connection.cursor() as cursor:  # no signal reaches this process
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [key])
    assert api.get(PORTFOLIO).status_code == 200  # the documented delay: still cached here
    time.sleep(short_ttl + 0.2)
    response = api.get(PORTFOLIO)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_user_deactivated_in_another_process_is_refused_within_the_ttl(api, marketer, short_ttl):
    assert api.get(PORTFOLIO).status_code == 200
    type(marketer).objects.filter(pk=marketer.pk).update(is_active=False)  # no signal
    time.sleep(short_ttl + 0.2)
    assert api.get(PORTFOLIO).status_code == 401


def test_with_the_cache_off_a_revocation_elsewhere_is_seen_at_once(api, marketer, settings):
    settings.AUTH_TOKEN_CACHE_SECONDS = 0
    key = Token.objects.get(user=marketer).key
    assert api.get(PORTFOLIO).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [key])
    assert api.get(PORTFOLIO).status_code == 401


def test_an_unknown_token_is_refused_every_time_in_the_error_shape(db):
    client = token_client("0" * 40)
    for _ in range(2):
        response = client.get(PORTFOLIO)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"
        assert response.json()["error"]["code"] == "authentication_failed"


def test_a_view_changing_its_user_object_does_not_change_the_next_requests(api, marketer):
    from marketing_ai.auth import CachedTokenAuthentication

    key = Token.objects.get(user=marketer).key
    first, _ = CachedTokenAuthentication().authenticate_credentials(key)
    first._marketing_ai_groups.add("ingest")
    first.username = "changed"
    again, _ = CachedTokenAuthentication().authenticate_credentials(key)
    assert again.username == marketer.username and again._marketing_ai_groups == {"marketer"}


# --- The analytics data version, reused for ANALYTICS_VERSION_CACHE_SECONDS per process ---------------

def _refresh() -> AggregateRefresh:
    day = dt.date(2026, 1, 1)
    return AggregateRefresh(computed_at=timezone.now(), start=day, end=day, rows_written=1)


@pytest.fixture
def fresh_version_memo(monkeypatch, settings):
    from django.core.cache import cache

    cache.delete(selectors.VERSION_CACHE_KEY)
    settings.ANALYTICS_VERSION_CACHE_SECONDS = 0.5
    return 0.5


@pytest.mark.django_db(transaction=True)  # outside a transaction, as a web request runs
def test_a_run_made_in_another_process_reaches_the_api_within_the_version_ttl(fresh_version_memo):
    assert selectors.data_version() is None
    AggregateRefresh.objects.bulk_create([_refresh()])  # no post_save: as the Celery worker's run looks here
    assert selectors.data_version() is None
    time.sleep(fresh_version_memo + 0.1)
    newest = AggregateRefresh.objects.order_by("-id").first()
    assert selectors.data_version() == (newest.id, newest.computed_at)


@pytest.mark.django_db(transaction=True)
def test_a_run_made_in_this_process_is_seen_at_once(fresh_version_memo):
    assert selectors.data_version() is None
    refresh = _refresh()
    refresh.save()
    assert selectors.data_version() == (refresh.id, refresh.computed_at)


def test_inside_a_transaction_the_version_is_always_read(db, fresh_version_memo):
    assert selectors.data_version() is None
    AggregateRefresh.objects.bulk_create([_refresh()])
    assert selectors.data_version() is not None


@pytest.mark.django_db
def test_a_logged_in_page_session_follows_role_changes_and_deactivation_at_once(client, make_user):
    """Pages read the user and its groups on every request (no cache): the bound is 0 s."""
    from django.contrib.auth.models import Group

    user = make_user("pages", "marketer")
    client.force_login(user)
    alerts = {"email": "p@example.com", "kinds": ["job_failed"]}
    assert client.post("/analytics/alerts/", alerts).status_code == 302
    user.groups.remove(Group.objects.get(name="marketer"))
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    assert client.post("/analytics/alerts/", alerts).status_code == 403  # a viewer now
    assert client.get("/analytics/").status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = client.get("/analytics/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

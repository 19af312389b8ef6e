"""Access control outside the API: logins, CSRF, security headers, production settings, tokens, roles."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.authtoken.models import Token

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def test_the_three_roles_exist_as_groups():
    assert {"marketer", "viewer", "ingest"} <= set(Group.objects.values_list("name", flat=True))


def test_dashboard_pages_redirect_to_the_login_form(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_every_dashboard_page_needs_a_login(client):
    from django.urls import URLPattern, URLResolver, resolve

    from marketing_ai import urls

    def sample(pattern) -> str:
        text = str(pattern.pattern).lstrip("^").rstrip("$")
        text = re.sub(r"\(\?P<\w+>[^)]*\)", "1", text)
        return re.sub(r"<(?:\w+:)?\w+>", "1", text).replace("/?", "/").replace("\\", "")

    def walk(patterns, prefix: str):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + sample(p))
            elif isinstance(p, URLPattern):
                yield prefix + sample(p), p.callback

    checked = []
    for path, callback in walk(urls.pages, "/"):
        try:
            if resolve(path).func is not callback:
                continue
        except Exception:
            continue
        response = client.get(path)
        assert response.status_code == 302, f"{path} answered {response.status_code} without a login"
        assert response["Location"].startswith("/accounts/login/?next="), path
        checked.append(path)
    assert checked, "no app page was checked"


def test_the_login_form_needs_its_csrf_token(make_user):
    make_user("someone", "viewer", password="a-long-password-1")
    client = Client(enforce_csrf_checks=True)
    without = client.post("/accounts/login/", {"username": "someone", "password": "a-long-password-1"})
    assert without.status_code == 403

    form = client.get("/accounts/login/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    with_token = client.post(
        "/accounts/login/", {"username": "someone", "password": "a-long-password-1", "csrfmiddlewaretoken": token}
    )
    assert (with_token.status_code, with_token["Location"]) == (302, "/")


def test_logout_is_a_post_with_csrf(marketer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    page = client.get("/").content.decode()
    assert re.search(r'<form class="logout" method="post"[^>]*>.*?csrfmiddlewaretoken', page, re.S)
    assert client.get("/accounts/logout/").status_code == 405


def test_security_headers_are_set(client):
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def production_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"}}
    env.update(DEBUG="False", DJANGO_SETTINGS_MODULE="marketing_ai.settings")
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = production_env(
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="marketing.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_production_start_up_fails_naming_a_missing_setting(tmp_path, missing):
    values = {"SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "marketing.example.com"}
    del values[missing]
    result = manage("check", env=production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'p.sqlite3'}", **values))
    assert result.returncode != 0
    assert f"{missing} must be set when DEBUG is off" in result.stderr


# --- Commands -------------------------------------------------------------------------------------


def command_output(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_api_token_prints_a_working_token_on_its_last_line(marketer):
    token = command_output("create_api_token", "marketer").strip().splitlines()[-1]
    assert token == Token.objects.get(user=marketer).key
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/job-runs/").status_code == 200
    # Asking again gives the same token; --rotate replaces it.
    assert command_output("create_api_token", "marketer").strip() == token
    assert command_output("create_api_token", "marketer", "--rotate").strip() != token


def test_create_api_token_can_create_an_ingest_only_service_account():
    token = command_output("create_api_token", "event-collector", "--create", "--role", "ingest").splitlines()[-1]
    account = User.objects.get(username="event-collector")
    assert set(account.groups.values_list("name", flat=True)) == {"ingest"}
    assert not account.has_usable_password()
    assert Token.objects.get(key=token).user == account


def test_create_api_token_refuses_an_unknown_user_without_create():
    with pytest.raises(CommandError, match="no user 'ghost'"):
        command_output("create_api_token", "ghost")
    assert not User.objects.filter(username="ghost").exists()


def test_demo_login_creates_then_updates_the_admin_with_the_given_password(monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "first-demo-pass")
    assert "password first-demo-pass" in command_output("demo_login")
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "second-demo-pass")
    command_output("demo_login")

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.groups.filter(name="marketer").exists()
    assert authenticate(username="admin", password="second-demo-pass") == admin
    assert authenticate(username="admin", password="first-demo-pass") is None


def test_demo_login_generates_and_prints_a_password_when_none_is_given(monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    printed = re.search(r"password (\S+)", command_output("demo_login")).group(1)
    assert len(printed) >= 12
    assert authenticate(username="admin", password=printed) is not None


def test_admin_shows_job_runs_and_celery_beats_periodic_tasks(admin_client):
    from marketing_ai.models import JobRun

    JobRun.objects.create(job="daily_analytics", status="succeeded", rows_written=12, arguments={"trigger": "celery"})
    runs = admin_client.get("/admin/marketing_ai/jobrun/")
    assert runs.status_code == 200 and "daily_analytics" in runs.content.decode()
    assert admin_client.get("/admin/marketing_ai/jobrun/?status__exact=failed").status_code == 200
    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    assert admin_client.get("/admin/marketing_ai/jobrun/add/").status_code == 403

"""Shared test fixtures: users with roles, API clients, and service gates.

A test that needs PostgreSQL, Redis or Chromium asks for the ``postgres``, ``redis_url`` or
``chromium`` fixture. Outside CI a missing service skips the test with a reason; with CI=true
it is an error, so CI never silently skips.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.conf import settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing_service(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL (set DATABASE_URL=postgres://...)")
    return connection


@pytest.fixture
def redis_url() -> str:
    if not settings.REDIS_URL:
        missing_service("needs Redis (set REDIS_URL=redis://...)")
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        missing_service(f"Redis at {settings.REDIS_URL} does not answer: {exc}")
    return settings.REDIS_URL


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing_service(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


@pytest.fixture
def make_user(db):
    from django.contrib.auth.models import Group, User

    def make(username: str, *roles: str, password: str = "pw-for-tests-only", **extra) -> User:
        user = User.objects.create_user(username=username, password=password, **extra)
        for role in roles:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user

    return make


@pytest.fixture
def marketer(make_user):
    return make_user("marketer", "marketer")


@pytest.fixture
def viewer(make_user):
    return make_user("viewer", "viewer")


def _token_client(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    client.user = user
    return client


@pytest.fixture
def api(marketer):
    """An API client authenticated (by token) as a marketer."""
    return _token_client(marketer)


@pytest.fixture
def viewer_api(viewer):
    return _token_client(viewer)


@pytest.fixture
def anon_api():
    from rest_framework.test import APIClient

    return APIClient()

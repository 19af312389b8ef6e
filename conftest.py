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
# CI runs the suite twice: on PostgreSQL, and on SQLite (the database `make demo` uses). In the SQLite
# leg (TEST_DATABASE_LEG=sqlite) a PostgreSQL-only test skips by design; everywhere else in CI it fails.
SQLITE_LEG = os.environ.get("TEST_DATABASE_LEG", "").lower() == "sqlite"


def pytest_configure(config) -> None:
    # WhiteNoise serves from the finders in development; an uncollected STATIC_ROOT is expected here.
    config.addinivalue_line("filterwarnings", "ignore:No directory at:UserWarning")


def missing_service(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        if SQLITE_LEG:
            pytest.skip("PostgreSQL-only: this is CI's SQLite leg")
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


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing():
    """Tests create many users; the production hasher's deliberate slowness buys nothing here."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Each test counts its own requests: rate-limit counters are keyed apart per test (not flushed:
    in CI the counters live in the Redis that every xdist worker shares, and on SQLite a new test's
    user can get the pk an earlier test's user had). A setting, not the cache object's prefix, so
    a live server's thread sees it too."""
    import uuid

    from django.test import override_settings

    with override_settings(THROTTLE_KEY_PREFIX=f"test-{uuid.uuid4().hex}:"):
        yield


@pytest.fixture
def frozen_throttle_clock(monkeypatch):
    """Hold the rate-limit window still (one second into a minute): a test counting requests
    against a per-minute limit must not see the window roll over on a slow machine."""
    from marketing_ai import throttles

    frozen = (int(throttles.time.time()) // throttles.WINDOW_SECONDS) * throttles.WINDOW_SECONDS + 1.0
    monkeypatch.setattr(throttles, "clock", lambda: frozen)
    return frozen


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


# --- Browser tests (Playwright's sync API driving Debian's Chromium) ---------------------------------
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One headless Chromium for the test session (Playwright gives it a new, empty user data dir).

    Playwright's sync API keeps an asyncio loop in this thread, which trips Django's
    async-safety check on every ORM call from the test; DJANGO_ALLOW_ASYNC_UNSAFE turns the
    check off for the browser tests only (set here, restored when the session ends).
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    # The live server answers each keep-alive browser connection in its own thread; with persistent
    # DB connections those threads would still hold the test database when pytest drops it.
    db_settings = settings.DATABASES["default"]
    previous_max_age = db_settings.get("CONN_MAX_AGE", 0)
    db_settings["CONN_MAX_AGE"] = 0
    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
        db_settings["CONN_MAX_AGE"] = previous_max_age
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    """A tab in a fresh browser context (no cookies, no cache), closed with its connections after the test."""
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


@pytest.fixture
def logged_in_page(page, live_server, make_user):
    """``(page, base_url)``: a marketer logged in through the real login form of ``live_server``.

    Recipe for a page test in another app::

        pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

        def test_overview_draws_its_chart(logged_in_page):
            page, base = logged_in_page
            page.goto(f"{base}/analytics/")
            page.wait_for_selector(".chart .main-svg")

    ``transaction=True`` is needed because the live server runs in another thread and must see
    the rows the test commits (build data with the factories before ``page.goto``).
    Without Chromium the test skips outside CI (and fails with CI=true).
    """
    make_user("browser-marketer", "marketer", password="browser-pw-for-tests")
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "browser-marketer")
    page.fill("input[name=password]", "browser-pw-for-tests")
    page.click("form[action$='/accounts/login/'] button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return page, live_server.url

"""Browser tests: log in through the real form, see the overview's chart drawn from real events, log out."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import EventFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_overview_draws_the_events_chart_from_real_events(logged_in_page):
    page, base = logged_in_page
    now = timezone.now()
    for days_ago in (0, 1, 1, 5):
        EventFactory(type="view", occurred_at=now - dt.timedelta(days=days_ago))
    EventFactory(type="conversion", occurred_at=now - dt.timedelta(days=2))

    page.goto(f"{base}/")
    assert page.locator("header .who").inner_text() == "browser-marketer"
    assert page.locator("#events-total").inner_text() == "5"
    page.wait_for_selector("#events-per-day .main-svg")
    # One line per event type present, drawn by Plotly from the embedded figure.
    assert page.locator("#events-per-day .scatterlayer .trace").count() == 2


def test_login_is_required_and_logout_returns_to_the_login_form(logged_in_page):
    page, base = logged_in_page
    page.goto(f"{base}/")
    page.click("form.logout button[type=submit]")
    page.wait_for_url(f"{base}/accounts/login/")
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/accounts/login/?next=/")


def test_wrong_password_shows_an_error_on_the_login_page(page, live_server, make_user):
    make_user("someone", "viewer", password="right-password-123")
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "someone")
    page.fill("input[name=password]", "wrong")
    page.click("form button[type=submit]")
    assert "didn't match" in page.locator(".error").inner_text()

"""Browser tests: log in through the real form, see the overview's chart drawn from real events, log out."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import EventFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_overview_draws_the_events_chart_and_lists_the_latest_job_runs(logged_in_page):
    from marketing_ai.models import JobRun

    page, base = logged_in_page
    now = timezone.now()
    for days_ago in (0, 1, 1, 5):
        EventFactory(type="view", occurred_at=now - dt.timedelta(days=days_ago))
    EventFactory(type="conversion", occurred_at=now - dt.timedelta(days=2))
    EventFactory(type="view", occurred_at=now - dt.timedelta(days=45))  # outside the 30-day window
    JobRun.objects.create(job="daily_analytics", status="succeeded", rows_written=42)
    JobRun.objects.create(job="send_times", status="failed", error="boom")

    page.goto(f"{base}/")

    assert page.locator("header .who").inner_text() == "browser-marketer"
    assert page.locator(".mainnav a[aria-current=page]").inner_text() == "Overview"
    assert page.locator(".mainnav a").all_inner_texts()[:4] == ["Overview", "Analytics", "A/B Tests", "Optimization"]
    assert page.locator("#events-total").inner_text() == "5"
    page.wait_for_selector("#events-per-day .main-svg")
    # One line per event type present, drawn by Plotly from the embedded figure, each dotted into today
    # (still under way, shaded and labelled).
    assert page.locator("#events-per-day .scatterlayer .trace").count() == 4
    assert page.locator("#events-per-day .legend .traces").count() == 2
    assert page.locator("#events-per-day .annotation-text", has_text="today so far").count() == 1
    rows = page.locator("#job-runs tbody tr").all_inner_texts()
    assert any("daily_analytics" in r and "42" in r and "succeeded" in r for r in rows)
    assert any("send_times" in r and "failed" in r for r in rows)


def test_logout_returns_to_the_login_form_and_pages_need_a_login_again(logged_in_page):
    page, base = logged_in_page
    page.goto(f"{base}/")
    page.click("form.logout button[type=submit]")
    page.wait_for_url(f"{base}/accounts/login/")
    assert page.locator(".messages .msg").inner_text() == "You are logged out."
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/accounts/login/?next=/")

    page.fill("input[name=username]", "browser-marketer")
    page.fill("input[name=password]", "wrong")
    page.click("form button[type=submit]")
    assert "didn't match" in page.locator(".error").inner_text()


def test_the_layout_fits_a_phone_screen(logged_in_page):
    page, base = logged_in_page
    EventFactory(type="view")
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"{base}/")
    page.wait_for_selector("#events-per-day .main-svg")
    # Nothing is wider than the screen: no horizontal scrolling of the page itself.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.locator(".mainnav a", has_text="Optimization").is_visible()


def test_swagger_ui_renders_the_schema_from_local_assets(logged_in_page):
    page, base = logged_in_page
    external = []
    page.on("request", lambda request: external.append(request.url) if not request.url.startswith(base) else None)
    page.goto(f"{base}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
    assert "marketing_ai API" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-tag-section", timeout=60_000)  # the schema was fetched with the session
    assert [url for url in external if not url.startswith("data:")] == []


def test_redoc_renders_from_local_assets_only(logged_in_page):
    page, base = logged_in_page
    fetched, blocked = [], []
    local = ("data:", base, "blob:" + base)  # blob: is the worker Redoc starts from its own script
    page.on("requestfinished", lambda r: fetched.append(r.url) if not r.url.startswith(local) else None)
    page.on("requestfailed", lambda r: blocked.append((r.url, r.failure)) if not r.url.startswith(local) else None)
    page.goto(f"{base}/api/redoc/")
    page.wait_for_selector("h1", timeout=60_000)
    assert "marketing_ai API" in page.locator("h1").first.inner_text()
    page.wait_for_load_state("networkidle")
    # Redoc's bundle hard-codes a sidebar logo on cdn.redoc.ly: the page's policy stops it before the network.
    assert fetched == []
    assert all(failure == "csp" for _, failure in blocked), blocked


def test_no_page_requests_a_missing_file(logged_in_page, make_user):
    page, base = logged_in_page
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    for path in ("/", "/analytics/", "/ab-tests/", "/optimize/", "/api/docs/"):
        page.goto(base + path)
        page.wait_for_load_state("load")
    page.wait_for_timeout(500)  # the browser asks for the icon after the load event
    assert missing == []
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert page.request.get(icon).status == 200

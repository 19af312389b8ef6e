"""Pages: user text cannot change how a page parses, and the Content-Security-Policy allows no inline script."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from tests.abtests.factories import ABTestFactory, populate
from tests.factories import CampaignFactory

HOSTILE = '<!--<script></script>&amp;\u2028"</script><script>alert(1)</script>'
DASHBOARD = ["/", "/analytics/", "/ab-tests/", "/optimize/"]


class Scripts(HTMLParser):
    """Every <script> element: its attributes and its text."""

    def __init__(self):
        super().__init__()
        self.scripts: list[tuple[dict, str]] = []
        self._open: dict | None = None
        self._text: list[str] = []
        self.inline_handlers: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.inline_handlers += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data):
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._open is not None:
            self.scripts.append((self._open, "".join(self._text)))
            self._open = None


def scripts_of(html: str) -> Scripts:
    parser = Scripts()
    parser.feed(html)
    return parser


@pytest.fixture
def hostile_test(db):
    campaign = CampaignFactory(name=HOSTILE)
    test = ABTestFactory(campaign=campaign, test_name=HOSTILE, variants=[(HOSTILE, 0.5), ("B", 0.5)])
    populate(test, users=[20, 20], conversions=[2, 3])
    return test


@pytest.mark.django_db
def test_a_variant_named_like_markup_stays_data_in_the_chart_json(client, marketer, hostile_test):
    client.force_login(marketer)
    html = client.get("/ab-tests/").content.decode()
    parsed = scripts_of(html)
    charts = [(attrs, text) for attrs, text in parsed.scripts if attrs.get("type") == "application/json"]
    assert charts, "no chart was embedded"
    for _, text in charts:
        assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    names = [trace.get("x") for _, text in charts for trace in json.loads(text)["data"]]
    assert any(HOSTILE in (x or []) for x in names), "the variant name did not reach the chart intact"
    # Everything after the charts is still in the page, as parsed (not swallowed by a script element).
    assert html.rstrip().endswith("</html>")
    assert "No completed tests yet." in html


@pytest.mark.django_db
@pytest.mark.parametrize("path", DASHBOARD)
def test_dashboard_pages_carry_a_csp_without_inline_script_and_have_none(client, marketer, hostile_test, path):
    client.force_login(marketer)
    response = client.get(path)
    assert response.status_code == 200
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip())
    assert policy["script-src"] == "'self'"
    assert "unsafe-inline" not in policy["default-src"] and "unsafe-eval" not in response["Content-Security-Policy"]
    parsed = scripts_of(response.content.decode())
    inline = [text[:80] for attrs, text in parsed.scripts if "src" not in attrs and attrs.get("type") != "application/json"]
    assert inline == [], f"{path} has inline script"
    assert parsed.inline_handlers == [], f"{path} has inline event handlers"


@pytest.mark.django_db
def test_the_api_docs_page_has_no_inline_script(client, marketer):
    client.force_login(marketer)
    parsed = scripts_of(client.get("/api/docs/").content.decode())
    assert parsed.scripts and all("src" in attrs for attrs, _ in parsed.scripts)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_runs_under_its_csp_in_a_browser(logged_in_page, hostile_test):
    """Chromium enforces the policy: no violation is reported and the charts are drawn."""
    page, base = logged_in_page
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in DASHBOARD:
        page.goto(f"{base}{path}")
        page.wait_for_load_state("load")
        if path == "/ab-tests/":
            page.wait_for_selector(".chart .main-svg")
            assert page.locator("text=No completed tests yet.").count() == 1
    page.goto(f"{base}/ab-tests/")
    page.click("form.end-form button[data-action=end]")  # asks first (forms.js); dismissed: nothing ends
    assert dialogs and dialogs[0].startswith("End ")
    assert violations == []
    assert not any("alert" in d for d in dialogs[1:])

"""The /ab-tests/ page through Django's test client: lists, form validation, role checks, transitions."""

from __future__ import annotations

import math
import re

import pytest
from scipy.stats import norm

from abtests.models import ABTest
from tests.abtests.factories import ABTestFactory, populate
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

VALID = {
    "campaign_id": "camp_page", "test_name": "Push copy", "hypothesis": "Shorter copy converts better",
    "variant_name_0": "A", "variant_weight_0": "0.5", "variant_name_1": "B", "variant_weight_1": "0.5",
    "sample_size_target": "2000", "confidence_level": "0.95", "primary_metric": "conversion_rate",
}


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


def test_page_needs_login(client):
    response = client.get("/ab-tests/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_page_shows_active_tests_with_progress_chart_and_srm_warning(marketer_client):
    test = ABTestFactory(test_name="Split broken", sample_size_target=1000)
    populate(test, users=[300, 200], conversions=[30, 20])
    done = ABTestFactory(test_name="Old test", status=ABTest.Status.COMPLETED, winner="B")
    html = marketer_client.get("/ab-tests/").content.decode()
    assert "Split broken" in html and "Sample ratio mismatch" in html
    assert 'style="width:50.0%"' in html  # 500 of 1000 users
    assert f'id="rates-{test.test_id}"' in html  # the Plotly chart
    assert "Old test" in html and done.test_id in html
    assert "End test" in html and "Create test" in html


def test_viewer_sees_the_page_without_write_controls_and_cannot_post(client, viewer):
    ABTestFactory(test_name="Visible")
    client.force_login(viewer)
    html = client.get("/ab-tests/").content.decode()
    assert "Visible" in html and "End test" not in html and "Create test" not in html
    assert client.post("/ab-tests/", VALID).status_code == 403


def test_creating_through_the_form_makes_a_draft(marketer_client):
    CampaignFactory(campaign_id="camp_page")
    response = marketer_client.post("/ab-tests/", VALID)
    assert response.status_code == 302
    test = ABTest.objects.get(test_name="Push copy")
    assert test.status == "draft" and [v.name for v in test.ordered_variants] == ["A", "B"]


def test_form_errors_are_shown_by_field_with_a_400(marketer_client):
    CampaignFactory(campaign_id="camp_page")
    # A value the API's serializer cannot read (as the API: 400 before any rule is checked) ...
    response = marketer_client.post("/ab-tests/", {**VALID, "sample_size_target": "lots"})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-error-for="sample_size_target"' in html and "A valid integer is required." in html
    assert 'value="Push copy"' in html  # the form keeps what was typed
    # ... and the service's rules, every one at once.
    response = marketer_client.post("/ab-tests/", {**VALID, "variant_weight_1": "0.3", "confidence_level": "0.5"})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-error-for="variants"' in html and "sum to 1" in html
    assert 'data-error-for="confidence_level"' in html
    assert 'value="Push copy"' in html
    assert not ABTest.objects.exists()


def _api_body(form: dict) -> dict:
    """The page's form as the equivalent API body."""
    body = {k: v for k, v in form.items() if not k.startswith("variant_") and v != ""}
    rows = sorted({k.rsplit("_", 1)[1] for k in form if k.startswith("variant_name_")})
    body["variants"] = [{"name": form[f"variant_name_{i}"], "weight": form[f"variant_weight_{i}"]} for i in rows]
    return body


@pytest.mark.parametrize("change", [
    {"sample_size_target": "lots"},
    {"sample_size_target": "99999999999"},
    {"confidence_level": "0.5"},
    {"confidence_level": "x"},
    {"campaign_id": "camp_nope"},
    {"primary_metric": "clicks"},
    {"test_name": "x" * 201},
    {"variant_weight_1": "0.3"},
    {"variant_weight_1": "2"},
    {"variant_name_1": "y" * 65},
    {"sample_size_target": "0", "variant_weight_0": "0.9"},
])
def test_the_page_refuses_what_the_api_refuses_with_the_same_reasons(marketer_client, api, change):
    CampaignFactory(campaign_id="camp_page")
    form = {**VALID, **change}
    page = marketer_client.post("/ab-tests/", form)
    answer = api.post("/api/v1/ab-tests/", _api_body(form), format="json")
    assert page.status_code == answer.status_code == 400
    fields = answer.json()["error"]["fields"]
    shown = page.context["errors"]
    assert set(shown) == set(fields)
    for name, reasons in fields.items():
        if name == "variants" and isinstance(reasons, dict):  # the rows' own errors, by row index
            expected = [f"variant {int(i) + 1} {key}: {line}" for i, row in sorted(reasons.items())
                        for key, lines in row.items() for line in lines]
        else:
            expected = reasons
        assert shown[name] == expected, name
    assert not ABTest.objects.exists()


def test_start_and_end_buttons_change_the_state_and_illegal_ones_show_a_message(marketer_client):
    test = ABTestFactory(status=ABTest.Status.DRAFT, started_at=None)
    marketer_client.post(f"/ab-tests/{test.test_id}/start")
    test.refresh_from_db()
    assert test.status == "running"
    response = marketer_client.post(f"/ab-tests/{test.test_id}/start", follow=True)
    assert "already running" in response.content.decode()
    marketer_client.post(f"/ab-tests/{test.test_id}/end")
    test.refresh_from_db()
    assert test.status == "completed"


def test_detail_page_lists_stored_analyses(marketer_client):
    test = ABTestFactory()
    populate(test, users=[50, 50], conversions=[5, 7])
    html = marketer_client.get(f"/ab-tests/{test.test_id}/").content.decode()
    assert "No stored analyses yet" in html and "<tr data-result>" not in html
    marketer_client.post(f"/ab-tests/{test.test_id}/analyze")
    html = marketer_client.get(f"/ab-tests/{test.test_id}/").content.decode()
    stored = test.results.get()  # the one row the analysis wrote
    rows = re.findall(r"<tr data-result>(.*?)</tr>", html, re.S)
    assert len(rows) == 1 and "No stored analyses yet" not in html
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", rows[0], re.S)]
    assert cells[0] == f"{stored.calculated_at:%Y-%m-%d %H:%M}"
    assert (cells[1], cells[2]) == (stored.method, "100")  # method and users of the stored row
    assert "planned sample not reached" in cells[8] and cells[8] == stored.reason


def test_calculator_endpoint_matches_the_formula(viewer_api):
    p1, mde = 0.05, 0.1
    p2 = p1 * (1 + mde)
    pbar = (p1 + p2) / 2
    n = (norm.ppf(0.975) * (2 * pbar * (1 - pbar)) ** 0.5 + norm.ppf(0.8) * (p1 * (1 - p1) + p2 * (1 - p2)) ** 0.5) ** 2 / (p2 - p1) ** 2
    client = viewer_api
    body = client.get("/api/v1/ab-tests/sample-size", {"baseline_rate": p1, "mde": mde, "daily_traffic": 1000}).json()
    assert body["users_per_arm"] == math.ceil(n)
    assert body["days_needed"] == math.ceil(2 * math.ceil(n) / 1000)
    bad = client.get("/api/v1/ab-tests/sample-size", {"baseline_rate": 1.5, "mde": 0.1})
    assert bad.status_code == 400 and "baseline_rate" in bad.json()["error"]["fields"]


def test_a_sequential_card_explains_each_number_beside_the_others(marketer_client):
    test = ABTestFactory(test_name="Seq copy", sample_size_target=100_000, sequential=True)
    populate(test, users=[400, 400], conversions=[20, 26])
    html = marketer_client.get("/ab-tests/").content.decode()
    explain = html[html.index('data-explain="sequential"'):]
    explain = explain[:explain.index("</ul>")]
    for words in ("always valid", "never rises again", "Significance</strong> = 1 − p-value",
                  "exactly when a variant's interval leaves 0", "confidence sequence that holds at every look",
                  "does not correct for looking every day"):
        assert words in explain
    assert 'data-explain="fixed"' not in html


def test_a_fixed_card_says_the_interval_and_the_verdict_agree(marketer_client):
    test = ABTestFactory(test_name="Fixed copy", sample_size_target=1000)
    populate(test, users=[400, 400], conversions=[20, 26])
    html = marketer_client.get("/ab-tests/").content.decode()
    assert 'data-explain="fixed"' in html and "excludes 0 exactly when the result is significant" in html
    assert 'data-explain="sequential"' not in html

"""The A/B testing page in a real browser: create a test, see it listed, start it, see its chart, end it."""

from __future__ import annotations

import pytest

from abtests.models import ABTest
from tests.abtests.factories import populate
from tests.factories import CampaignFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_a_test_see_it_listed_and_end_it(logged_in_page):
    page, base = logged_in_page
    CampaignFactory(campaign_id="camp_browser", name="Browser campaign")
    page.on("dialog", lambda dialog: dialog.accept())  # the End button asks for confirmation
    page.goto(f"{base}/ab-tests/")

    # The live calculator answers from the sample-size endpoint as the inputs change.
    page.fill("#calc-baseline", "0.2")
    page.fill("#calc-mde", "0.3")
    page.wait_for_function("document.getElementById('calc-result').textContent.includes('users per variant')")
    page.click("#calc-use")
    target = page.input_value("#sample_size_target")
    assert int(target) > 0

    # A bad weight is caught by the server and shown by field; the form keeps its values.
    page.select_option("select[name=campaign_id]", "camp_browser")
    page.fill("input[name=test_name]", "Browser test")
    page.fill("input[name=variant_weight_1]", "0.4")
    assert page.locator("#weight-sum").inner_text() == "0.900"
    page.click("#create-form button[type=submit]")
    assert "sum to 1" in page.locator("[data-error-for=variants]").inner_text()
    assert page.input_value("input[name=test_name]") == "Browser test"

    page.fill("input[name=variant_weight_1]", "0.5")
    page.click("#create-form button[type=submit]")
    card = page.locator(".abtest", has_text="Browser test")
    assert card.locator(".badge").inner_text() == "draft"
    test = ABTest.objects.get(test_name="Browser test")
    assert test.sample_size_target == int(target)

    card.locator("[data-action=start]").click()
    page.wait_for_selector(".abtest .badge.running")
    populate(test, users=[60, 60], conversions=[6, 12])
    page.reload()
    page.wait_for_selector(f"#rates-{test.test_id} .main-svg")  # conversion rates with error bars
    assert page.locator(".abtest .users-assigned").inner_text() == "120"
    assert "Keep running" in page.locator(".abtest .recommendation").inner_text()

    page.locator(".abtest [data-action=end]").click()
    page.wait_for_selector(f"#history tr[data-test-id={test.test_id}]")
    test.refresh_from_db()
    assert test.status == "completed"
    assert page.locator(".abtest").count() == 0

"""CSV exports: text that a spreadsheet would run as a formula is neutralised; the download name is safe."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from marketing_ai.exports import csv_response, neutralise, safe_filename
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

FORMULAS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_cell_starting_like_a_formula_is_written_as_text(text):
    assert neutralise(text) == "'" + text
    response = csv_response([{"name": text}], ["name"], filename="x")
    [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert row["name"] == "'" + text


def test_numbers_and_plain_text_are_written_as_they_are():
    rows = [{"profit": Decimal("-12.50"), "rate": -0.5, "n": -3, "name": "Spring sale", "none": None}]
    response = csv_response(rows, ["profit", "rate", "n", "name", "none"], filename="x")
    assert response.content.decode().splitlines()[1] == "-12.50,-0.5,-3,Spring sale,"


@pytest.mark.parametrize(("name", "expected"), [
    ('a"; filename=evil.exe', "a_filename_evil.exe.csv"),
    ("camp\r\nSet-Cookie: x", "camp_Set-Cookie_x.csv"),
    ("../../etc/passwd", "etc_passwd.csv"),
    ("", "export.csv"),
])
def test_the_download_name_cannot_add_parameters_or_paths(name, expected):
    assert safe_filename(name) == expected
    header = csv_response([], ["a"], filename=name)["Content-Disposition"]
    assert header == f'attachment; filename="{expected}"'


def test_an_analytics_export_of_a_campaign_named_like_a_formula_is_neutralised(api):
    CampaignFactory(campaign_id="camp_x", name="=cmd|' /C calc'!A0", status="active")
    response = api.get("/api/analytics/portfolio?days=7&format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["name"] for r in rows if r["campaign_id"] == "camp_x"] == ["'=cmd|' /C calc'!A0"]
    assert response["Content-Disposition"].startswith('attachment; filename="analytics_portfolio_')

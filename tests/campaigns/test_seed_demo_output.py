"""seed_demo's closing line states the planted truth with units (issue 15: "best offer: 40 % off")."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from campaigns.management.commands.seed_demo import _offers_with_units


def test_offers_are_printed_with_units():
    assert _offers_with_units({"new_users": 40, "returning_users": 0}) == "new_users 40 % off, returning_users no discount (0 % off)"


@pytest.mark.django_db
def test_seed_demo_prints_the_planted_best_offer_per_segment(tmp_path):
    out = io.StringIO()
    call_command("seed_demo", "--customers", "30", "--merchants", "5", "--campaigns", "2", "--days", "3", "--seed", "4",
                 "--end-date", "2026-06-30", verbosity=0, stdout=out)
    line = out.getvalue()
    assert "planted best offer: new_users " in line and "% off" in line, line

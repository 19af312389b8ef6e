"""The metric definitions and their edge cases, checked against statsmodels."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from analytics import metrics


def test_conversion_rate_is_zero_without_views():
    assert metrics.conversion_rate(0, 0) == 0.0
    assert metrics.conversion_rate(5, 0) == 0.0


def test_conversion_rate_is_conversions_over_views():
    assert metrics.conversion_rate(250, 5000) == pytest.approx(0.05)


def test_roi_is_null_with_a_reason_when_cost_is_zero():
    r = metrics.roi(Decimal("100.00"), Decimal("0"))
    assert r.percentage is None and "cost is 0" in r.reason


def test_roi_matches_the_seed_example():
    assert metrics.roi(Decimal("25000.00"), Decimal("5000.00")) == metrics.Roi(400.0, None)


def test_roi_is_negative_when_revenue_is_below_cost():
    assert metrics.roi(Decimal("0"), Decimal("50")).percentage == -100.0


@settings(max_examples=1000, deadline=None)
@given(trials=st.integers(1, 10**7), frac=st.floats(0, 1), confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_interval_equals_statsmodels(trials, frac, confidence):
    successes = int(round(frac * trials))
    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    ours = metrics.wilson_interval(successes, trials, confidence)
    assert ours.low == pytest.approx(low, abs=1e-12)
    assert ours.high == pytest.approx(high, abs=1e-12)
    assert 0 <= ours.low <= successes / trials <= ours.high <= 1


def test_wilson_interval_without_trials_is_zero_width():
    assert metrics.wilson_interval(0, 0) == metrics.Interval(0.0, 0.0)


def test_wilson_interval_caps_more_conversions_than_views():
    assert metrics.wilson_interval(12, 10) == metrics.wilson_interval(10, 10)


def test_wilson_interval_rejects_a_confidence_outside_0_1():
    with pytest.raises(ValueError, match="confidence"):
        metrics.wilson_interval(1, 2, confidence=95)

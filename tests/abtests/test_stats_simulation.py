"""Simulations: the error rates the engine promises hold on data where the truth is known.

Every bound is the nominal rate plus three Monte-Carlo standard errors, sqrt(p (1 - p) / sims): a correct
engine fails such a check about once in 700 runs; the seeds are fixed, so a run is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abtests import stats

pytestmark = pytest.mark.slow

ALPHA = 0.05


def mc_bound(rate: float, sims: int, sigmas: float = 3.0) -> float:
    return sigmas * math.sqrt(rate * (1 - rate) / sims)


def test_fixed_horizon_a_a_false_positive_rate_is_alpha():
    rng = np.random.default_rng(101)
    sims, users, rate = 4000, 5000, 0.10
    conversions = rng.binomial(users, rate, size=(sims, 2))
    rejections = sum(stats.proportions_test([users, users], row).arms[1].p_value < ALPHA for row in conversions)
    observed = rejections / sims
    assert abs(observed - ALPHA) <= mc_bound(ALPHA, sims), observed


def test_fixed_horizon_a_a_at_a_low_rate_with_unequal_arms_is_alpha():
    rng = np.random.default_rng(102)
    sims, users, rate = 4000, np.array([30_000, 10_000]), 0.01
    conversions = rng.binomial(users, rate, size=(sims, 2))
    observed = np.mean([stats.proportions_test(users, row).arms[1].p_value < ALPHA for row in conversions])
    assert abs(observed - ALPHA) <= mc_bound(ALPHA, sims), observed


def test_holm_keeps_the_family_wise_error_of_a_four_arm_a_a_test_at_most_alpha():
    rng = np.random.default_rng(103)
    sims, users, rate = 3000, 4000, 0.08
    conversions = rng.binomial(users, rate, size=(sims, 4))
    family_errors = 0
    raw_errors = 0
    for row in conversions:
        result = stats.proportions_test([users] * 4, row)
        family_errors += any(a.significant for a in result.treatments)
        raw_errors += any(a.p_value < ALPHA for a in result.treatments)
    assert family_errors / sims <= ALPHA + mc_bound(ALPHA, sims)
    assert raw_errors / sims > ALPHA + mc_bound(ALPHA, sims)  # without the adjustment it would inflate


def _daily_paths(rng, sims: int, days: int, per_day: int, rates) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative users and conversions per arm after each day: shape (sims, days, arms)."""
    rates = np.asarray(rates)
    daily = rng.binomial(per_day, rates, size=(sims, days, rates.size))
    users = np.broadcast_to(per_day * np.arange(1, days + 1)[None, :, None], daily.shape)
    return users, daily.cumsum(axis=1)


def test_daily_peeking_inflates_the_fixed_test_but_not_the_sequential_test():
    rng = np.random.default_rng(104)
    sims, days, per_day, rate = 1000, 25, 400, 0.10
    users, conversions = _daily_paths(rng, sims, days, per_day, [rate, rate])
    planned = 2 * per_day * days
    sequential_rejected = naive_rejected = covered = 0
    for s in range(sims):
        previous = None
        seq_hit = naive_hit = cs_missed = False
        for d in range(days):
            n, c = users[s, d], conversions[s, d]
            seq = stats.sequential_test(n, c, planned_users=planned, previous_p_values=previous)
            previous = [seq.arms[0].p_value]
            seq_hit |= seq.arms[0].significant
            cs_missed |= seq.arms[0].cs_low is not None and not (seq.arms[0].cs_low <= 0.0 <= seq.arms[0].cs_high)
            naive_hit |= stats.proportions_test(n, c).arms[1].p_value < ALPHA
        sequential_rejected += seq_hit
        naive_rejected += naive_hit
        covered += not cs_missed
    bound = ALPHA + mc_bound(ALPHA, sims)
    assert sequential_rejected / sims <= bound, sequential_rejected / sims
    assert 1 - covered / sims <= bound  # the confidence sequence holds the true difference on every day
    # Looking at the fixed-horizon p-value every day and stopping at the first p < 0.05 fails far more often.
    assert naive_rejected / sims > 2 * ALPHA, naive_rejected / sims


def test_power_at_the_computed_sample_size_is_the_planned_eighty_percent():
    rng = np.random.default_rng(105)
    baseline, mde, sims = 0.10, 0.10, 3000
    n = stats.sample_size(baseline, mde, confidence_level=1 - ALPHA, power=0.8)
    control = rng.binomial(n, baseline, size=sims)
    treatment = rng.binomial(n, baseline * (1 + mde), size=sims)
    detected = np.mean(
        [stats.proportions_test([n, n], [c, t]).arms[1].significant for c, t in zip(control, treatment, strict=True)]
    )
    assert abs(detected - 0.8) <= mc_bound(0.8, sims), detected


def test_relative_and_absolute_lift_intervals_cover_the_truth_at_their_level():
    rng = np.random.default_rng(106)
    sims, users, rates = 3000, np.array([20_000, 25_000]), np.array([0.05, 0.056])
    true_lift, true_diff = rates[1] / rates[0] - 1, rates[1] - rates[0]
    conversions = rng.binomial(users, rates, size=(sims, 2))
    relative = absolute = 0
    for row in conversions:
        arm = stats.proportions_test(users, row, confidence_level=0.95).arms[1]
        relative += arm.ci_low <= true_lift <= arm.ci_high
        absolute += arm.abs_ci_low <= true_diff <= arm.abs_ci_high
    for covered in (relative, absolute):
        assert abs(covered / sims - 0.95) <= mc_bound(0.95, sims), covered / sims


def test_sequential_test_stops_early_on_a_real_lift():
    rng = np.random.default_rng(107)
    sims, days, per_day = 300, 20, 1500
    users, conversions = _daily_paths(rng, sims, days, per_day, [0.10, 0.12])
    stopped_on = []
    for s in range(sims):
        previous = None
        for d in range(days):
            seq = stats.sequential_test(users[s, d], conversions[s, d], planned_users=2 * per_day * days,
                                        previous_p_values=previous)
            previous = [seq.arms[0].p_value]
            if seq.arms[0].significant:
                stopped_on.append(d + 1)
                break
    assert len(stopped_on) / sims > 0.9
    assert np.median(stopped_on) < days / 2

"""The verdict and the interval shown beside it are one statistic, and the intervals cover at low counts.

- Consistency: on 10,000 random inputs per mode (fixed conversions, revenue, sequential conversions and
  revenue with the running state passed from look to look), an arm is "significant" exactly when its
  relative-lift interval excludes 0 (docs/statistics.md, "Verdict and interval").
- Coverage from 10 expected conversions per arm upward: the fixed-horizon interval exactly (by summing the
  binomial probabilities of every outcome, with an independently written score statistic) and by simulation
  through ``proportions_test``; the sequential one by simulated daily looks through ``sequential_test``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from abtests import stats

ALPHA = 0.05


def excludes_zero(low, high) -> bool:
    low = -math.inf if low is None else low
    high = math.inf if high is None else high
    return low > 0 or high < 0


def covers(low, high, value) -> bool:
    return (-math.inf if low is None else low) <= value <= (math.inf if high is None else high)


def random_table(rng):
    """2-5 arms, 10 to 1,000,000 users, rates 0.001-0.5 (a third A/A), so low counts are common."""
    k = int(rng.integers(2, 6))
    users = np.round(10 ** rng.uniform(1, 6, size=k)).astype(np.int64)
    rates = 10 ** rng.uniform(-3, math.log10(0.5), size=k)
    if rng.random() < 1 / 3:
        rates[:] = rates[0]
    return users, rng.binomial(users, rates), float(rng.uniform(0.80, 0.999))


# ---------------------------------------------------------------------------------------------
# Verdict vs interval: never disagree
# ---------------------------------------------------------------------------------------------


def test_fixed_verdict_and_relative_interval_never_disagree_on_10000_inputs():
    rng = np.random.default_rng(2026)
    compared = significant = no_interval = 0
    for _ in range(10_000):
        users, conversions, level = random_table(rng)
        if conversions[0] == 0 and rng.random() < 0.5:
            conversions[0] = 1  # keep most controls convertible, but test the zero-control case too
        result = stats.proportions_test(users, conversions, level)
        for arm in result.treatments:
            if arm.ci_low is None:
                # No conversions in the pair: nothing to test, nothing significant.
                assert conversions[arm.index] + conversions[0] == 0 and not arm.significant
                no_interval += 1
                continue
            compared += 1
            significant += arm.significant
            assert arm.significant == excludes_zero(arm.ci_low, arm.ci_high), (users, conversions, level, arm)
    assert compared > 20_000 and 0.2 * compared < significant < 0.9 * compared and no_interval < 0.05 * compared


def test_revenue_verdict_and_relative_interval_never_disagree_on_10000_inputs():
    rng = np.random.default_rng(2027)
    compared = significant = 0
    for _ in range(10_000):
        k = int(rng.integers(2, 6))
        n = np.round(10 ** rng.uniform(1, 6, size=k)).astype(np.int64)
        mean = rng.uniform(0.5, 20, size=k)
        if rng.random() < 1 / 3:
            mean[:] = mean[0] * rng.normal(1, 0.01, size=k)
        variance = (mean * rng.uniform(0.5, 8, size=k)) ** 2
        level = float(rng.uniform(0.80, 0.999))
        for arm in stats.welch_test(mean, variance, n, level).arms[1:]:
            compared += 1
            significant += arm.significant
            assert arm.rel_ci_low is not None, arm  # non-negative means: always one interval
            assert arm.significant == excludes_zero(arm.rel_ci_low, arm.rel_ci_high), (mean, variance, n, level, arm)
    assert compared > 20_000 and 0.2 * compared < significant < 0.9 * compared


@pytest.mark.parametrize("metric", ["conversion_rate", "revenue_per_user"])
def test_sequential_verdict_and_running_interval_never_disagree_over_10000_looks(metric):
    """1,000 tests x 10 daily looks; the running state (p-values, intervals) goes from look to look.

    Also the issue's case: once an arm has won, its interval never again contains 0 while it shows significant.
    """
    rng = np.random.default_rng(2028 if metric == "conversion_rate" else 2029)
    looks = compared = won = 0
    for _ in range(1_000):
        k = int(rng.integers(2, 5))
        per_day = int(10 ** rng.uniform(1.5, 4))
        rates = np.full(k, 10 ** rng.uniform(-2.5, math.log10(0.4)))
        rates[1:] *= rng.choice([1.0, 1.0, 1.1, 1.3, 0.8], size=k - 1)
        level = float(rng.uniform(0.80, 0.99))
        planned = float(2 * per_day * 10 * rng.uniform(0.3, 3))
        conv = np.zeros(k, dtype=np.int64)
        revenue = np.zeros(k)
        previous_p = previous_i = None
        won_before = np.zeros(k - 1, dtype=bool)
        for day in range(1, 11):
            n = np.full(k, per_day * day)
            new = rng.binomial(per_day, rates)
            conv += new
            if metric == "conversion_rate":
                result = stats.sequential_test(n, conv, level, planned, previous_p, previous_i)
            else:
                # Spend per user ~ Gamma(2, scale): a day's sum is Gamma(2 per_day, scale); the sample
                # variance scatters around the true 2 scale^2 like a chi-squared.
                scale = 20.0 * rates / rates[0]
                revenue += rng.gamma(2.0 * per_day, scale)
                mean = revenue / n
                variance = 2.0 * scale**2 * rng.chisquare(n - 1) / (n - 1)
                result = stats.sequential_means_test(mean, variance, n, level, planned, previous_p, previous_i)
            looks += 1
            for j, arm in enumerate(result.arms):
                if arm.lift is None:
                    assert arm.lift_cs_low is None and arm.lift_cs_high is None
                    continue
                compared += 1
                assert arm.significant == excludes_zero(arm.lift_cs_low, arm.lift_cs_high), (day, arm)
                if won_before[j]:
                    assert arm.significant and not covers(arm.lift_cs_low, arm.lift_cs_high, 0.0)
                won_before[j] |= arm.significant
            previous_p = [a.p_value for a in result.arms]
            previous_i = [(a.lift_cs_low, a.lift_cs_high) for a in result.arms]
        won += int(won_before.any())
    assert looks == 10_000 and compared > 15_000 and won > 100


def test_a_sequential_interval_from_another_engine_is_not_mixed_into_the_running_one():
    # Stored state whose interval disagrees with its p-value (e.g. written before this engine) is ignored.
    fresh = stats.sequential_test([5_000, 5_000], [500, 520], planned_users=100_000)
    stale = stats.sequential_test([5_000, 5_000], [500, 520], planned_users=100_000, previous_p_values=[0.5],
                                  previous_intervals=[(0.01, 0.2)])
    assert (stale.arms[0].lift_cs_low, stale.arms[0].lift_cs_high) == (fresh.arms[0].lift_cs_low,
                                                                       fresh.arms[0].lift_cs_high)
    kept = stats.sequential_test([5_000, 5_000], [500, 520], planned_users=100_000, previous_p_values=[0.5],
                                 previous_intervals=[(-0.01, 0.02)])
    assert kept.arms[0].lift_cs_high == pytest.approx(0.02) and not kept.arms[0].significant
    with pytest.raises(ValueError, match="one \\(low, high\\) pair"):
        stats.sequential_test([5_000, 5_000], [500, 520], previous_p_values=[0.5],
                              previous_intervals=[(0.0, 1.0), (0.0, 1.0)])
    # Intervals are a look's state together with its p-values: alone they are not used.
    alone = stats.sequential_test([5_000, 5_000], [500, 520], planned_users=100_000,
                                  previous_intervals=[(-0.01, 0.02)])
    assert alone.arms[0].lift_cs_high == fresh.arms[0].lift_cs_high


# ---------------------------------------------------------------------------------------------
# Coverage at low counts
# ---------------------------------------------------------------------------------------------


def koopman_z(ratio, x1, n1, x0, n0):
    """Score statistic for H0: p1 = R p0, from Miettinen & Nurminen (1985) in its textbook form (vectorised)."""
    a = ratio * (n1 + n0)
    b = -(ratio * n1 + x1 + n0 + ratio * x0)
    c = x1 + x0
    p0 = (-b - np.sqrt(np.maximum(b * b - 4 * a * c, 0))) / (2 * a)
    p1 = ratio * p0
    var = p1 * (1 - p1) / n1 + ratio**2 * p0 * (1 - p0) / n0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x1 / n1 - ratio * x0 / n0) / np.sqrt(var)
    return np.where(np.isnan(z), 0.0, z)


def test_the_fixed_interval_is_exactly_the_set_the_score_test_accepts():
    """The link the exact coverage below relies on: R is in the interval <=> |z(R)| <= z_crit."""
    rng = np.random.default_rng(31)
    for _ in range(300):
        n = rng.integers(50, 5_000, size=2)
        c = rng.binomial(n, rng.uniform(0.01, 0.4, size=2))
        if c.min() == 0:
            continue
        arm = stats.proportions_test(n, c).arms[1]
        z_crit = special.ndtri(1 - ALPHA / 2)
        for ratio in np.exp(rng.uniform(-1.5, 1.5, size=20)):
            inside = covers(arm.ci_low, arm.ci_high, ratio - 1)
            z = abs(float(koopman_z(ratio, c[1], n[1], c[0], n[0])))
            if abs(z - z_crit) > 1e-6:
                assert inside == (z <= z_crit), (n, c, ratio)


CELLS = [  # (expected conversions in each arm at least, control rate, true ratio, treatment / control users)
    (e, rate, ratio, share)
    for e in (10, 20, 50, 200)
    for rate in (0.005, 0.05, 0.2, 0.45)
    for ratio in (1.0, 0.8, 1.25, 2.0)
    for share in (1.0, 2.0)
    if rate * ratio < 1
]


def test_fixed_interval_coverage_is_at_least_94_percent_from_10_expected_conversions_exactly():
    """Exact coverage: the sum of the binomial probabilities of every outcome whose interval holds the truth."""
    z_crit = special.ndtri(1 - ALPHA / 2)
    worst = 1.0
    for expected, rate, ratio, share in CELLS:
        n0 = math.ceil(expected / rate)
        n1 = max(math.ceil(n0 * share), math.ceil(expected / (rate * ratio)))
        x0 = np.arange(sps.binom.ppf(1e-10, n0, rate), sps.binom.isf(1e-10, n0, rate) + 1)
        x1 = np.arange(sps.binom.ppf(1e-10, n1, rate * ratio), sps.binom.isf(1e-10, n1, rate * ratio) + 1)
        w = np.outer(sps.binom.pmf(x1, n1, rate * ratio), sps.binom.pmf(x0, n0, rate))
        accepted = np.abs(koopman_z(ratio, x1[:, None], n1, x0[None, :], n0)) <= z_crit
        coverage = float((w * accepted).sum() / w.sum())
        worst = min(worst, coverage)
        assert coverage >= 0.94, (expected, rate, ratio, share, coverage)
    assert worst < 0.952  # the check can bite: some cells sit near the nominal 95 %


@pytest.mark.parametrize(("rate", "lift"), [(0.01, 0.0), (0.2, 0.25)])
def test_fixed_interval_coverage_at_10_expected_conversions_by_simulation(rate, lift):
    rng = np.random.default_rng(41)
    sims, n = 3000, int(10 / rate)
    conversions = rng.binomial(n, [rate, rate * (1 + lift)], size=(sims, 2))
    covered = sum(covers(a.ci_low, a.ci_high, lift) for a in
                  (stats.proportions_test([n, n], row).arms[1] for row in conversions))
    assert covered / sims >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / sims), covered / sims


@pytest.mark.parametrize(("rate", "lift"), [(0.01, 0.0), (0.01, 0.2), (0.2, 0.0), (0.2, 0.2)])
def test_sequential_running_interval_holds_the_truth_at_every_look_from_10_expected_conversions(rate, lift):
    rng = np.random.default_rng(43)
    paths, looks, per_look = 300, 8, int(10 / rate)
    daily = rng.binomial(per_look, [rate, rate * (1 + lift)], size=(paths, looks, 2)).cumsum(axis=1)
    held = 0
    for path in daily:
        previous_p = previous_i = None
        ok = True
        for day, conversions in enumerate(path, start=1):
            arm = stats.sequential_test([per_look * day] * 2, conversions, planned_users=2 * per_look * looks,
                                        previous_p_values=previous_p, previous_intervals=previous_i).arms[0]
            previous_p, previous_i = [arm.p_value], [(arm.lift_cs_low, arm.lift_cs_high)]
            ok &= covers(arm.lift_cs_low, arm.lift_cs_high, lift)
        held += ok
    assert held / paths >= 0.94, held / paths


# ---------------------------------------------------------------------------------------------
# Against GrowthBook's gbstats: the same at large samples, different by design at low counts
# ---------------------------------------------------------------------------------------------


def gbstats_relative_t_interval(x1, n1, x0, n0, alpha=ALPHA):
    """gbstats' frequentist TwoSidedTTest for proportions (frequentist/tests.py), written from its formulas:
    relative lift (m_b - m_a) / m_a, delta-method variance v_b / (m_a^2 n_b) + v_a m_b^2 / (m_a^4 n_a) with
    v = m (1 - m), Welch-Satterthwaite dof, interval = lift +- t quantile x standard error."""
    ma, mb = x0 / n0, x1 / n1
    va, vb = ma * (1 - ma), mb * (1 - mb)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = vb / (ma**2 * n1) + va * mb**2 / (ma**4 * n0)
        dof = (vb / n1 + va / n0) ** 2 / (vb**2 / (n1**2 * (n1 - 1)) + va**2 / (n0**2 * (n0 - 1)))
        half = sps.t.ppf(1 - alpha / 2, dof) * np.sqrt(var)
        lift = (mb - ma) / ma  # undefined (nan) when the control has no conversions: no interval
    return lift - half, lift + half


def test_relative_interval_agrees_with_gbstats_relative_t_test_at_large_samples():
    rng = np.random.default_rng(51)
    for _ in range(200):
        n = rng.integers(1_000_000, 2_000_000, size=2)
        rate = rng.uniform(0.01, 0.3)
        c = rng.binomial(n, [rate, rate * rng.uniform(0.97, 1.03)])
        arm = stats.proportions_test(n, c).arms[1]
        low, high = gbstats_relative_t_interval(c[1], n[1], c[0], n[0])
        width = high - low
        assert abs(arm.ci_low - low) < 0.01 * width and abs(arm.ci_high - high) < 0.01 * width


def test_at_10_expected_conversions_gbstats_relative_interval_under_covers_and_ours_does_not():
    """Exact coverage in the A/A cell the issue measured (10 expected conversions per arm, 0.5 % rate)."""
    n, rate = 2000, 0.005
    x = np.arange(0, 60)
    w = np.outer(sps.binom.pmf(x, n, rate), sps.binom.pmf(x, n, rate))
    x1, x0 = x[:, None], x[None, :]
    low, high = gbstats_relative_t_interval(x1, n, x0, n)
    theirs = float((w * np.where(np.isnan(low) | np.isnan(high), False, (low <= 0) & (0 <= high))).sum())
    ours = float((w * (np.abs(koopman_z(1.0, x1, n, x0, n)) <= special.ndtri(1 - ALPHA / 2))).sum())
    assert theirs < 0.93 < 0.94 <= ours, (theirs, ours)  # about 91.7 % against 94.9 %

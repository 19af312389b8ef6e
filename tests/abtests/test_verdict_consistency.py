"""The verdict and the interval the user sees agree end to end: through ``analysis.analyze`` (fixed, sequential,
revenue, 2-4 arms with Holm, and CUPED-adjusted comparisons from ``metrics.compare``), a treatment is
significant exactly when its interval excludes 0. (``test_stats_consistency.py`` proves it for the statistics
alone on 10,000 inputs each; this checks that nothing between them and the card breaks it.)"""

from __future__ import annotations

import numpy as np

from abtests import analysis, metrics, multiple_testing


def _cuped_adjusted(rng, metric: str, n, conv, level: float):
    """Adjusted comparisons as ``selectors._cuped_goal`` builds them, from sums of real 0/1 rows: customers
    with a pre-period event (x), and how many of them also converted (xy)."""
    x = rng.binomial(n, rng.uniform(0.1, 0.6))
    both = np.minimum(rng.binomial(x, np.clip(conv / n * rng.uniform(1.0, 3.0), 0, 1)), np.minimum(x, conv))
    arms = [metrics.MetricArm(int(n[i]), float(conv[i]), float(conv[i]), x_total=float(x[i]), x_sq=float(x[i]),
                              xy=float(both[i])) for i in range(len(n))]
    comparisons = metrics.compare(metrics.METRICS[metric], arms, level, use_cuped=True)
    if any(c is None for c in comparisons) or comparisons[0].cuped is None:
        return None
    p = [c.p_value for c in comparisons]
    p_adj = list(multiple_testing.holm(p)) if len(p) > 1 else p
    return tuple((c.lift, c.ci_low, c.ci_high, c.p_value, float(pa)) for c, pa in zip(comparisons, p_adj, strict=True))


def test_the_cards_verdict_and_interval_never_disagree_on_2500_random_tests():
    rng = np.random.default_rng(20261202)
    checked = significant = cuped = 0
    for _ in range(2500):
        k = int(rng.integers(2, 5))
        metric = str(rng.choice(["conversion_rate", "revenue_per_user"]))
        sequential = metric == "conversion_rate" and rng.random() < 0.3
        n = np.round(10 ** rng.uniform(1.5, 5, size=k)).astype(np.int64)
        conv = rng.binomial(n, np.clip(rng.uniform(0.01, 0.4) * np.clip(1 + rng.normal(0, 0.15, size=k), 0.2, None), 0, 1))
        mean = rng.uniform(1, 20) * np.clip(1 + rng.normal(0, 0.1, size=k), 0.2, None)
        variance = (mean * rng.uniform(0.5, 5)) ** 2
        level = float(rng.choice([0.8, 0.9, 0.95, 0.99]))
        adjusted = None if sequential or rng.random() < 0.6 else _cuped_adjusted(rng, metric, n, conv, level)
        cuped += adjusted is not None
        arms = [analysis.Arm(name=f"v{i}", weight=1 / k, users=int(n[i]), conversions=int(conv[i]),
                             revenue_mean=float(mean[i]), revenue_variance=float(variance[i])) for i in range(k)]
        config = analysis.Config(confidence_level=level, sample_size_target=10, metric=metric, sequential=sequential,
                                 adjusted=adjusted)
        outcome = analysis.analyze(arms=arms, config=config)
        for arm in outcome.arms[1:]:
            if arm.p_value_adjusted is None or arm.ci_low is None:
                continue
            checked += 1
            is_significant = arm.p_value_adjusted < 1 - level
            significant += is_significant
            excludes_zero = arm.ci_low > 0 or (arm.ci_high is not None and arm.ci_high < 0)
            assert is_significant == excludes_zero, (metric, sequential, adjusted is not None, k, level, arm)
        best = max(outcome.arms[1:], key=lambda a: (a.lift if a.lift is not None else -np.inf, a.rate))
        if best.ci_low is not None and outcome.p_value is not None:
            # The headline figures are the best arm's: the same agreement on the card's KPIs.
            assert outcome.significant == (best.ci_low > 0 or (best.ci_high is not None and best.ci_high < 0))
    assert checked > 4000 and 0.15 * checked < significant < 0.85 * checked and cuped > 500

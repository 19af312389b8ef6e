"""CUPED by simulation with a planted correlation: the interval narrows by (1 - rho^2) in variance, the
estimator really is that much less variable, and the A/A false-positive rate stays at alpha."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.utils import timezone
from scipy import stats as scipy_stats

from abtests import cuped, stats
from abtests.models import ABTestAssignment
from campaigns.models import Customer, Event
from tests.abtests.factories import ABTestFactory


def sums(x: np.ndarray, y: np.ndarray) -> cuped.CupedArm:
    return cuped.CupedArm(users=len(y), y_total=float(y.sum()), y_sq=float((y**2).sum()), x_total=float(x.sum()),
                          x_sq=float((x**2).sum()), xy=float((x * y).sum()))


def both(control: cuped.CupedArm, treatment: cuped.CupedArm):
    """(raw Welch arm, CUPED Welch arm, CUPED result) for one experiment."""
    arms = [control, treatment]
    raw_var = [cuped._var(a.users, a.y_total, a.y_sq) for a in arms]
    raw = stats.welch_test([a.y_total / a.users for a in arms], raw_var, [a.users for a in arms]).arms[1]
    adjusted = cuped.adjust(arms)
    return raw, stats.welch_test(adjusted.means, adjusted.variances, [a.users for a in arms]).arms[1], adjusted


def simulate(rng, rho: float, n: int, effect: float = 0.0):
    x = rng.normal(0, 1, (2, n))
    y = 5.0 + rho * x + np.sqrt(1 - rho**2) * rng.normal(0, 1, (2, n))
    y[1] += effect
    return sums(x[0], y[0]), sums(x[1], y[1])


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_the_interval_narrows_by_one_minus_rho_squared_and_the_estimate_is_that_much_less_variable(rho):
    rng = np.random.default_rng(int(rho * 100))
    width_ratio_sq, raw_diffs, cuped_diffs, reductions = [], [], [], []
    for _ in range(400):
        raw, adj, result = both(*simulate(rng, rho, 1000, effect=0.1))
        width_ratio_sq.append(((adj.diff_ci_high - adj.diff_ci_low) / (raw.diff_ci_high - raw.diff_ci_low)) ** 2)
        raw_diffs.append(raw.diff)
        cuped_diffs.append(adj.diff)
        reductions.append(result.variance_reduction)
    expected = 1 - rho**2
    assert np.mean(width_ratio_sq) == pytest.approx(expected, rel=0.02)
    assert np.mean(reductions) == pytest.approx(rho**2, abs=0.01)
    # Not only the reported interval: across experiments the adjusted estimate varies (1 - rho^2) as much.
    assert np.var(cuped_diffs) / np.var(raw_diffs) == pytest.approx(expected, rel=0.2)
    assert np.mean(cuped_diffs) == pytest.approx(0.1, abs=0.01)  # and it is unbiased


@pytest.mark.parametrize("rho", [0.0, 0.7])
def test_the_aa_false_positive_rate_stays_at_alpha(rho):
    rng = np.random.default_rng(7 + int(10 * rho))
    runs, alpha = 4000, 0.05
    rejections = sum(both(*simulate(rng, rho, 300))[1].p_value < alpha for _ in range(runs))
    band = 3.3 * np.sqrt(alpha * (1 - alpha) / runs)  # 99.9 % binomial band
    assert abs(rejections / runs - alpha) < band


def test_aa_with_binary_conversions_and_a_pre_period_conversion_covariate():
    """The realistic case: converted before the test (X) raises the chance to convert in it (Y)."""
    rng = np.random.default_rng(11)
    runs, alpha, n = 3000, 0.05, 800
    rejections, interval_sq, reductions = 0, [], []
    for _ in range(runs):
        x = (rng.random((2, n)) < 0.3).astype(float)
        y = (rng.random((2, n)) < np.where(x == 1, 0.25, 0.05)).astype(float)
        raw, adj, result = both(sums(x[0], y[0]), sums(x[1], y[1]))
        rejections += adj.p_value < alpha
        interval_sq.append(((adj.diff_ci_high - adj.diff_ci_low) / (raw.diff_ci_high - raw.diff_ci_low)) ** 2)
        reductions.append(result.variance_reduction)
    assert abs(rejections / runs - alpha) < 3.3 * np.sqrt(alpha * (1 - alpha) / runs)
    # The planted correlation of the two indicators, and the narrowing it promises.
    p_x, p1, p0 = 0.3, 0.25, 0.05
    p_y = p_x * p1 + (1 - p_x) * p0
    rho = (p_x * p1 - p_x * p_y) / np.sqrt(p_x * (1 - p_x) * p_y * (1 - p_y))
    assert np.mean(interval_sq) == pytest.approx(1 - rho**2, rel=0.03)
    assert np.mean(reductions) == pytest.approx(rho**2, abs=0.02)


def test_without_spread_in_the_covariate_cuped_does_not_apply():
    flat = cuped.CupedArm(users=10, y_total=3, y_sq=3, x_total=0, x_sq=0, xy=0)
    assert not cuped.applicable([flat, flat])
    with pytest.raises(ValueError):
        cuped.adjust([flat, flat])


def test_adjusted_figures_equal_a_direct_computation_on_the_rows():
    rng = np.random.default_rng(3)
    xs = [rng.exponential(2, 50), rng.exponential(2, 70)]
    ys = [x * 0.5 + rng.normal(0, 1, len(x)) for x in xs]
    result = cuped.adjust([sums(x, y) for x, y in zip(xs, ys, strict=True)])
    # Reference: theta from pooled within-arm covariance, then Y_adj per row.
    centred = [(x - x.mean(), y - y.mean()) for x, y in zip(xs, ys, strict=True)]
    theta = sum((cx * cy).sum() for cx, cy in centred) / sum((cx**2).sum() for cx, _ in centred)
    x_all = np.concatenate(xs).mean()
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        adjusted = y - theta * (x - x_all)
        assert result.means[i] == pytest.approx(adjusted.mean(), rel=1e-10)
        assert result.variances[i] == pytest.approx(adjusted.var(ddof=1), rel=1e-9)
    assert result.theta == pytest.approx(theta, rel=1e-10)


# ---------------------------------------------------------------- through the database and the API

def build_with_pre_period(test, rng, n: int = 600, lift: float = 0.3) -> pd.DataFrame:
    """Customers of both arms; 30 % converted in the 4 weeks before the test (in its campaign), and those
    convert in the test far more often (25 % vs 6 %, x (1 + lift) in arm B)."""
    variants = test.ordered_variants
    start = test.started_at
    rows = []
    for arm in (0, 1):
        for j in range(n):
            pre = rng.random() < 0.3
            p = (0.25 if pre else 0.06) * (1 + lift * arm)
            rows.append({"customer_id": f"{test.test_id}_{arm}_{j}", "arm": arm, "pre": float(pre),
                         "y": float(rng.random() < p)})
    frame = pd.DataFrame(rows)
    Customer.objects.bulk_create([Customer(customer_id=c) for c in frame.customer_id])
    pk = dict(Customer.objects.filter(customer_id__startswith=test.test_id).values_list("customer_id", "pk"))
    assigned = start + dt.timedelta(hours=1)
    ABTestAssignment.objects.bulk_create([ABTestAssignment(test=test, customer_id=pk[r.customer_id],
                                                           variant=variants[r.arm], assigned_at=assigned)
                                          for r in frame.itertuples()])
    events = []
    for r in frame.itertuples():
        c = pk[r.customer_id]
        if r.pre:
            events.append(Event(event_id=f"pre_{c}", type="conversion", occurred_at=start - dt.timedelta(days=3),
                                customer_id=c, campaign_id=test.campaign_id, amount=Decimal("20.00")))
        # Older than the pre-period: never part of the covariate.
        events.append(Event(event_id=f"old_{c}", type="conversion", occurred_at=start - dt.timedelta(days=60),
                            customer_id=c, campaign_id=test.campaign_id, amount=Decimal("20.00")))
        if r.y:
            events.append(Event(event_id=f"in_{c}", type="conversion", occurred_at=assigned + dt.timedelta(hours=2),
                                customer_id=c, campaign_id=test.campaign_id, amount=Decimal("20.00")))
    Event.objects.bulk_create(events)
    return frame


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2])
def test_the_analysis_uses_cuped_when_pre_period_data_exist_and_equals_welch_on_adjusted_rows(api, seed):
    test = ABTestFactory(sample_size_target=1200, started_at=timezone.now() - dt.timedelta(days=2))
    frame = build_with_pre_period(test, np.random.default_rng(seed))
    body = api.post(f"/api/v1/ab-tests/{test.test_id}/analyze").json()
    assert body["cuped"]["applied"] and body["cuped"]["pre_period_days"] == 28

    # Reference on the customer rows: theta from pooled within-arm covariance, Y_adj, scipy's Welch test.
    groups = [frame[frame.arm == a] for a in (0, 1)]
    cov = sum(((g.pre - g.pre.mean()) * (g.y - g.y.mean())).sum() for g in groups)
    var = sum(((g.pre - g.pre.mean()) ** 2).sum() for g in groups)
    theta = cov / var
    adjusted = [g.y - theta * (g.pre - frame.pre.mean()) for g in groups]
    ref = scipy_stats.ttest_ind(adjusted[1], adjusted[0], equal_var=False)
    assert body["cuped"]["theta"] == pytest.approx(theta, rel=1e-9)
    assert body["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert body["lift"] == pytest.approx(100 * (adjusted[1].mean() / adjusted[0].mean() - 1), rel=1e-9)
    raw_var = sum(g.y.var(ddof=1) for g in groups)
    assert body["cuped"]["variance_reduction"] == pytest.approx(1 - sum(a.var(ddof=1) for a in adjusted) / raw_var,
                                                                rel=1e-9)
    assert body["cuped"]["variance_reduction"] > 0.03  # the planted correlation is real
    goal = next(m for m in body["metrics"] if m["role"] == "goal")
    assert goal["cuped_variance_reduction"] == pytest.approx(body["cuped"]["variance_reduction"])

    # Switched off: the unadjusted z-test, a wider interval.
    test.cuped = False
    test.save(update_fields=["cuped"])
    plain = api.post(f"/api/v1/ab-tests/{test.test_id}/analyze").json()
    assert not plain["cuped"]["applied"] and "switched off" in plain["cuped"]["reason"]
    assert (plain["lift_ci_high"] - plain["lift_ci_low"]) > (body["lift_ci_high"] - body["lift_ci_low"])


@pytest.mark.django_db
def test_without_pre_period_data_the_analysis_says_cuped_was_not_applied(api, client, marketer):
    from tests.abtests.factories import populate

    test = ABTestFactory(sample_size_target=400, started_at=timezone.now() - dt.timedelta(days=2))
    populate(test, users=[200, 200], conversions=[20, 30])  # assigned a day after the start
    body = api.post(f"/api/v1/ab-tests/{test.test_id}/analyze").json()
    assert body["cuped"] == {"applied": False, "reason": body["cuped"]["reason"]}
    assert "no pre-period data" in body["cuped"]["reason"]
    client.force_login(marketer)
    assert "CUPED not applied: no pre-period data" in client.get(f"/ab-tests/{test.test_id}/").content.decode()


@pytest.mark.django_db
def test_the_card_shows_the_variance_reduction(client, marketer):
    test = ABTestFactory(sample_size_target=1200, started_at=timezone.now() - dt.timedelta(days=2))
    build_with_pre_period(test, np.random.default_rng(4))
    client.force_login(marketer)
    html = client.get(f"/ab-tests/{test.test_id}/").content.decode()
    assert "CUPED: the goal is adjusted" in html and "of its variance" in html

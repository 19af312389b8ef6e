"""Conversion rates: Pearson chi-squared over all arms, per-arm z-test, lift intervals, Holm."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from abtests.stats._common import _check_confidence, _check_users_conversions, _holm_over, _z
from abtests.stats.intervals import holm_levels, score_ratio_interval


@dataclass(frozen=True)
class ArmResult:
    """One arm of a conversion-rate test, compared with the control (arm 0).

    ``lift`` is relative ((rate - control) / control), ``abs_lift`` the difference in rates.
    ``ci_low``/``ci_high``: the interval of the relative lift that inverts the arm's own z-test (Koopman's
    score interval), so ``significant`` is exactly "the interval excludes 0"; with k > 2 arms it is drawn at
    the arm's Holm step level (``ci_level``). ``abs_ci_low``/``abs_ci_high``: the Wald (unpooled) interval of
    the absolute lift, for reference (not the verdict's interval). ``lift`` is ``None`` when the control
    converted nobody (a relative lift over zero is undefined; ``ci_low`` then still bounds it from below and
    ``ci_high`` is ``None``, unbounded); ``note`` says why. For the control itself lift, abs_lift and the
    intervals are 0 and the p-values 1.
    """

    index: int
    users: int
    conversions: int
    rate: float
    lift: float | None
    abs_lift: float
    ci_low: float | None
    ci_high: float | None
    abs_ci_low: float
    abs_ci_high: float
    z: float
    p_value: float
    p_value_adjusted: float
    significant: bool
    note: str = ""
    ci_level: float | None = None  # confidence level of ci_low/ci_high (below confidence_level only for Holm)


@dataclass(frozen=True)
class ProportionsResult:
    chi2: float
    p_value: float
    dof: int
    confidence_level: float
    arms: list[ArmResult]

    @property
    def control(self) -> ArmResult:
        return self.arms[0]

    @property
    def treatments(self) -> list[ArmResult]:
        return self.arms[1:]


def proportions_test(
    users: Sequence[int], conversions: Sequence[int], confidence_level: float = 0.95
) -> ProportionsResult:
    """Compare the conversion rates of k >= 2 arms (arm 0 = control).

    - Overall: Pearson's chi-squared on the 2 x k table, no continuity correction, dof = k - 1
      (equal to ``scipy.stats.chi2_contingency(table, correction=False)``).
    - Per treatment arm vs control: two-sided pooled two-proportion z-test (equal to statsmodels'
      ``proportions_ztest``), its inversion as the interval of the relative lift (Koopman's score interval,
      equal to statsmodels' ``confint_proportions_2indep(method="score", compare="ratio", correction=False)``),
      the Wald interval of the absolute lift, and Holm-adjusted p-values over the k - 1 comparisons when k > 2.

    Edge cases (never an exception, never NaN): no conversions anywhere (or everyone converted) gives
    chi2 = 0, p = 1; a treatment with zero users gets rate 0, p = 1 and is left out of the chi-squared
    (dof shrinks); zero control conversions gives a relative lift ``None`` with a note.
    """
    level = _check_confidence(confidence_level)
    n, c = _check_users_conversions(users, conversions)
    k = n.size
    z_crit = _z(level)

    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(n > 0, c / n, 0.0)

    # Pearson chi-squared over arms that have users. For a 2 x k table it reduces to
    # sum_j (c_j - n_j p)^2 / (n_j p (1 - p)) with p the pooled rate.
    present = n > 0
    n_p, c_p = n[present], c[present]
    total_n, total_c = n_p.sum(), c_p.sum()
    pooled = total_c / total_n
    dof = int(present.sum()) - 1
    if 0.0 < pooled < 1.0 and dof > 0:
        chi2 = float(np.sum((c_p - n_p * pooled) ** 2 / n_p) / (pooled * (1.0 - pooled)))
        chi2_p = float(special.chdtrc(dof, chi2))
    else:
        chi2, chi2_p = 0.0, 1.0

    # Per-arm comparisons with the control (vectorised over treatments).
    n0, c0, r0 = n[0], c[0], rates[0]
    nt, ct, rt = n[1:], c[1:], rates[1:]
    has_users = nt > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pair_pool = (ct + c0) / (nt + n0)
        se_pooled = np.sqrt(pair_pool * (1.0 - pair_pool) * (1.0 / nt + 1.0 / n0))
        diff = rt - r0
        z = np.where(se_pooled > 0, diff / se_pooled, 0.0)
        p = np.where(se_pooled > 0, 2.0 * special.ndtr(-np.abs(z)), 1.0)
        var_t = np.where(has_users, rt * (1.0 - rt) / nt, 0.0)
        var_0 = r0 * (1.0 - r0) / n0
        se_abs = np.sqrt(var_t + var_0)
    z = np.where(has_users, z, 0.0)
    p = np.where(has_users, p, 1.0)
    diff = np.where(has_users, diff, 0.0)
    p_adj = _holm_over(p, has_users) if k > 2 else p.copy()
    alpha = 1.0 - level
    significant = p_adj < alpha
    # The relative-lift interval is the z-test inverted, at the level the verdict used for this arm.
    ci_levels = holm_levels(p, has_users, alpha) if k > 2 else np.full(k - 1, alpha)
    tested = has_users & (ct + c0 > 0)
    ratio_bounds = {
        int(j): score_ratio_interval(ct[j], nt[j], c0, n0, special.ndtri(1.0 - ci_levels[j] / 2.0), significant[j])
        for j in np.flatnonzero(tested)
    }

    arms = [
        ArmResult(
            index=0, users=int(n0), conversions=int(c0), rate=float(r0), lift=0.0, abs_lift=0.0,
            ci_low=0.0, ci_high=0.0, abs_ci_low=0.0, abs_ci_high=0.0, z=0.0, p_value=1.0,
            p_value_adjusted=1.0, significant=False, note="control", ci_level=level,
        )
    ]
    for j in range(k - 1):
        note = ""
        lift_j = ci_lo = ci_hi = None
        abs_lo = abs_hi = 0.0
        if not has_users[j]:
            note = "no users in this arm yet"
        else:
            abs_lo = float(diff[j] - z_crit * se_abs[j])
            abs_hi = float(diff[j] + z_crit * se_abs[j])
            if r0 > 0:
                lift_j = float(rt[j] / r0 - 1.0)
            else:
                note = "the control has no conversions, so a relative lift is undefined; see abs_lift"
            if tested[j]:
                ratio_low, ratio_high = ratio_bounds[j]
                ci_lo = ratio_low - 1.0
                ci_hi = None if math.isinf(ratio_high) else ratio_high - 1.0
        arms.append(
            ArmResult(
                index=j + 1, users=int(nt[j]), conversions=int(ct[j]), rate=float(rt[j]), lift=lift_j,
                abs_lift=float(diff[j]), ci_low=ci_lo, ci_high=ci_hi, abs_ci_low=abs_lo, abs_ci_high=abs_hi,
                z=float(z[j]), p_value=float(p[j]), p_value_adjusted=float(p_adj[j]),
                significant=bool(significant[j]), note=note, ci_level=float(1.0 - ci_levels[j]),
            )
        )
    return ProportionsResult(chi2=chi2, p_value=chi2_p, dof=max(dof, 0), confidence_level=level, arms=arms)

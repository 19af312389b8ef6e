"""Conversion rates: Pearson chi-squared over all arms, per-arm z-test, lift intervals, Holm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from abtests.stats._common import _check_confidence, _check_users_conversions, _holm_over, _z


@dataclass(frozen=True)
class ArmResult:
    """One arm of a conversion-rate test, compared with the control (arm 0).

    ``lift`` is relative ((rate - control) / control), ``abs_lift`` the difference in rates.
    ``ci_low``/``ci_high``: the delta-method interval of the relative lift; ``abs_ci_low``/``abs_ci_high``:
    the Wald (unpooled) interval of the absolute lift. The relative quantities are ``None`` when the
    control converted nobody (a relative lift over zero is undefined); ``note`` then says why.
    For the control itself lift, abs_lift and the intervals are 0 and the p-values 1.
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
      ``proportions_ztest``), Wald interval of the absolute lift, delta-method interval of the relative
      lift, and Holm-adjusted p-values over the k - 1 comparisons when k > 2.

    Edge cases (never an exception, never NaN): no conversions anywhere (or everyone converted) gives
    chi2 = 0, p = 1; a treatment with zero users gets rate 0, p = 1 and is left out of the chi-squared
    (dof shrinks); zero control conversions gives relative lift/intervals ``None`` with a note.
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
        # Delta method for g(rt, r0) = rt / r0 - 1: grad = (1/r0, -rt/r0^2).
        if r0 > 0:
            lift = rt / r0 - 1.0
            se_rel = np.sqrt(var_t / r0**2 + rt**2 * var_0 / r0**4)
    z = np.where(has_users, z, 0.0)
    p = np.where(has_users, p, 1.0)
    diff = np.where(has_users, diff, 0.0)
    p_adj = _holm_over(p, has_users) if k > 2 else p.copy()
    alpha = 1.0 - level

    arms = [
        ArmResult(
            index=0, users=int(n0), conversions=int(c0), rate=float(r0), lift=0.0, abs_lift=0.0,
            ci_low=0.0, ci_high=0.0, abs_ci_low=0.0, abs_ci_high=0.0, z=0.0, p_value=1.0,
            p_value_adjusted=1.0, significant=False, note="control",
        )
    ]
    for j in range(k - 1):
        note = ""
        if not has_users[j]:
            lift_j = ci_lo = ci_hi = None
            abs_lo = abs_hi = 0.0
            note = "no users in this arm yet"
        else:
            abs_lo = float(diff[j] - z_crit * se_abs[j])
            abs_hi = float(diff[j] + z_crit * se_abs[j])
            if r0 > 0:
                lift_j = float(lift[j])
                ci_lo = float(lift[j] - z_crit * se_rel[j])
                ci_hi = float(lift[j] + z_crit * se_rel[j])
            else:
                lift_j = ci_lo = ci_hi = None
                note = "the control has no conversions, so a relative lift is undefined; see abs_lift"
        arms.append(
            ArmResult(
                index=j + 1, users=int(nt[j]), conversions=int(ct[j]), rate=float(rt[j]), lift=lift_j,
                abs_lift=float(diff[j]), ci_low=ci_lo, ci_high=ci_hi, abs_ci_low=abs_lo, abs_ci_high=abs_hi,
                z=float(z[j]), p_value=float(p[j]), p_value_adjusted=float(p_adj[j]),
                significant=bool(p_adj[j] < alpha), note=note,
            )
        )
    return ProportionsResult(chi2=chi2, p_value=chi2_p, dof=max(dof, 0), confidence_level=level, arms=arms)

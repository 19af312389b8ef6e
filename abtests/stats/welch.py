"""Revenue per user: Welch's unequal-variance t-test of each treatment against the control."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from abtests.stats._common import _as_counts, _check_confidence, _holm
from abtests.stats.intervals import fieller_ratio_interval, holm_levels


@dataclass(frozen=True)
class WelchArm:
    """One arm of a revenue-per-user comparison with the control (arm 0).

    ``diff`` = mean - control mean with a Welch t interval; ``rel_diff`` = diff / control mean with the
    Fieller interval of the same t-test (same t quantile, same degrees of freedom; at the arm's Holm step
    level when k > 2, see ``rel_ci_level``), so ``significant`` is exactly "the relative interval excludes 0".
    ``rel_ci_high`` is ``None`` when the interval has no upper bound (the control mean is not itself
    distinguishable from 0); all relative quantities are ``None`` when the control mean is 0.
    """

    index: int
    n: int
    mean: float
    variance: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    rel_diff: float | None
    rel_ci_low: float | None
    rel_ci_high: float | None
    t: float
    dof: float
    p_value: float
    p_value_adjusted: float
    significant: bool
    note: str = ""
    rel_ci_level: float | None = None  # confidence level of rel_ci_low/rel_ci_high


@dataclass(frozen=True)
class WelchResult:
    confidence_level: float
    arms: list[WelchArm]


def welch_test(
    mean: Sequence[float], variance: Sequence[float], n: Sequence[int], confidence_level: float = 0.95
) -> WelchResult:
    """Welch's unequal-variance t-test of each treatment's mean against the control's.

    ``variance`` is the sample variance (ddof=1) of the per-user metric. Equal to
    ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)``. Holm-adjusted when k > 2. The relative
    difference's interval is Fieller's for the same t-test, so it excludes 0 exactly when ``significant``.
    Edge case: both variances 0 (no spread at all): p = 1 when the means are equal, else p = 0; t is then
    undefined and reported as 0.0 with a note (the difference is exact, not estimated).
    """
    level = _check_confidence(confidence_level)
    m = np.asarray(mean, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    nn = _as_counts(n, "n")
    if not (m.shape == v.shape == nn.shape) or m.ndim != 1:
        raise ValueError("mean, variance and n must be flat lists of the same length")
    if m.size < 2:
        raise ValueError("at least two arms are needed (arm 0 is the control)")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v))):
        raise ValueError("mean and variance must be finite numbers")
    if np.any(v < 0):
        raise ValueError("variance must not be negative")
    if np.any(nn < 2):
        raise ValueError(f"every arm needs at least 2 users for a variance (arm {int(np.argmax(nn < 2))})")
    alpha = 1.0 - level
    s0 = v[0] / nn[0]
    st = v[1:] / nn[1:]
    se = np.sqrt(st + s0)
    diff = m[1:] - m[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = (st + s0) ** 2 / (st**2 / (nn[1:] - 1) + s0**2 / (nn[0] - 1))
        t = diff / se
    degenerate = se == 0
    dof = np.where(degenerate, nn[1:] + nn[0] - 2, dof)
    t = np.where(degenerate, 0.0, t)
    p = np.where(degenerate, np.where(diff == 0, 1.0, 0.0), 2.0 * special.stdtr(dof, -np.abs(t)))
    t_crit = special.stdtrit(dof, 0.5 + level / 2.0)
    p_adj = _holm(p) if m.size > 2 else p.copy()
    significant = p_adj < alpha
    # Fieller's interval of m_t / m_c for the same t statistic: the t quantile at the level the verdict used.
    rel_levels = holm_levels(p, np.ones(p.size, dtype=bool), alpha) if m.size > 2 else np.full(p.size, alpha)
    rel_crit = special.stdtrit(dof, 1.0 - rel_levels / 2.0)
    ratio_low, ratio_high = fieller_ratio_interval(m[1:], st, m[0], s0, rel_crit, significant)
    arms = [
        WelchArm(index=0, n=int(nn[0]), mean=float(m[0]), variance=float(v[0]), diff=0.0, diff_ci_low=0.0,
                 diff_ci_high=0.0, rel_diff=0.0, rel_ci_low=0.0, rel_ci_high=0.0, t=0.0, dof=0.0, p_value=1.0,
                 p_value_adjusted=1.0, significant=False, note="control")
    ]
    for j in range(m.size - 1):
        note = "both arms have zero variance; the difference is exact" if degenerate[j] else ""
        rel = rel_lo = rel_hi = None
        if m[0] == 0:
            note = note or "the control mean is 0, so a relative difference is undefined"
        else:
            rel = diff[j] / m[0]
            if np.isnan(ratio_low[j]):
                note = note or "the means are too uncertain for an interval of the relative difference"
            else:
                rel_lo = ratio_low[j] - 1.0
                rel_hi = None if np.isinf(ratio_high[j]) else ratio_high[j] - 1.0
        arms.append(
            WelchArm(
                index=j + 1, n=int(nn[j + 1]), mean=float(m[j + 1]), variance=float(v[j + 1]), diff=float(diff[j]),
                diff_ci_low=float(diff[j] - t_crit[j] * se[j]), diff_ci_high=float(diff[j] + t_crit[j] * se[j]),
                rel_diff=None if rel is None else float(rel),
                rel_ci_low=None if rel_lo is None else float(rel_lo),
                rel_ci_high=None if rel_hi is None else float(rel_hi),
                t=float(t[j]), dof=float(dof[j]), p_value=float(p[j]), p_value_adjusted=float(p_adj[j]),
                significant=bool(significant[j]), note=note, rel_ci_level=float(1.0 - rel_levels[j]),
            )
        )
    return WelchResult(confidence_level=level, arms=arms)

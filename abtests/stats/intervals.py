"""Intervals of the relative lift that are the very test behind the verdict, inverted.

Every interval shown beside a verdict is the set of ratios R = treatment / control that the verdict's own test
would *not* reject at the interval's level. The verdict asks whether R = 1 is rejected, so "significant" and
"the interval excludes a lift of 0" are the same statement (docs/statistics.md, "Verdict and interval").

- ``score_ratio_interval``: conversion rates, fixed horizon. The test is the pooled two-proportion z-test; its
  inversion for the ratio is Koopman's score interval (the Miettinen-Nurminen interval without the N/(N-1)
  factor): at R = 1 the restricted estimate is the pooled rate, so the score statistic *is* the pooled z.
- ``fieller_ratio_interval``: any test of the form (m_t - R m_c)^2 <= crit^2 (v_t + R^2 v_c) (Fieller 1954):
  Welch's t-test (crit = the Welch t quantile) and the sequential mixture boundary (crit = its multiplier).
- ``holm_levels``: the level of each arm's interval when Holm adjusts k > 2 arms, chosen so the interval
  excludes 0 exactly when the Holm-adjusted p-value is below alpha.

Bounds are ratios (R - 1 is the relative lift); ``np.inf`` is "no upper bound", ``nan`` "no interval".
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

# Bounds are searched on x = ln R within this far range; a bound beyond it is reported as 0 or unbounded.
_LOG_FAR = 35.0  # R from 6e-16 to 1.6e15
_LOG_TOL = 1e-13  # absolute in ln R, i.e. 1e-13 relative in R


def score_ratio_z(ratio: float, c_t: float, n_t: float, c_c: float, n_c: float) -> float:
    """The score statistic of H0: p_t = R p_c (Koopman 1984; Miettinen & Nurminen 1985, without N/(N-1)).

    The restricted maximum-likelihood rates under H0 solve N R p^2 - (n_t R + c_t + n_c + c_c R) p + (c_t + c_c)
    = 0 for p = p_c (the smaller root, written in the cancellation-free form 2c / (-b + sqrt(b^2 - 4ac))).
    At R = 1 the restricted rate is the pooled rate and the statistic equals the pooled z-test. Plain floats:
    called by a scalar root finder, where numpy's per-call overhead would dominate.
    """
    total_c = c_t + c_c
    b = -(n_t * ratio + c_t + n_c + c_c * ratio)
    disc = math.sqrt(max(b * b - 4.0 * (n_t + n_c) * ratio * total_c, 0.0))
    p_c = 2.0 * total_c / (disc - b)
    p_t = min(p_c * ratio, 1.0)
    var = p_t * (1.0 - p_t) / n_t + ratio * ratio * p_c * (1.0 - p_c) / n_c
    diff = c_t / n_t - ratio * c_c / n_c
    if diff == 0.0:
        return 0.0
    if var <= 0.0:
        return math.copysign(math.inf, diff)
    return diff / math.sqrt(var)


def _bound(excess, accepted: float, limit: float, step: float) -> float:
    """Where ``excess`` crosses 0 going from an accepted x (excess <= 0) towards ``limit`` (Brent's method).

    The bracket grows from ``accepted`` in steps of ``step`` (x4 each time) until a rejected point is found,
    so Brent works on a short bracket; ``limit`` itself when the set reaches it (or it is the known rejected
    point R = 1).
    """
    if excess(accepted) >= 0.0:
        return accepted
    direction = 1.0 if limit > accepted else -1.0
    inner = accepted
    while True:
        outer = accepted + direction * step
        if direction * (outer - limit) >= 0.0:
            outer = limit
            if excess(outer) <= 0.0:
                return limit  # the far end is accepted too: the set reaches it
            break
        if excess(outer) > 0.0:
            break
        inner, step = outer, step * 4.0
    return optimize.brentq(excess, inner, outer, xtol=_LOG_TOL, rtol=4 * np.finfo(float).eps)


def score_ratio_interval(
    c_t: float, n_t: float, c_c: float, n_c: float, z_crit: float, rejects_one: bool
) -> tuple[float, float]:
    """Koopman's score interval {R : |score_ratio_z(R)| <= z_crit} of the ratio p_t / p_c.

    ``rejects_one`` is the verdict (the pooled z-test rejects R = 1 at this level); it chooses the brackets:
    a significant arm's bound is searched between its estimate and R = 1, anyone else's beyond R = 1, so the
    interval excludes R = 1 exactly when the verdict says so (float rounding at the exact boundary cannot
    split them). Needs n_t, n_c > 0 and some conversions; returns (low, high) ratios: low = 0 when the
    treatment has no conversions, high = inf when the control has none.
    """
    c_t, n_t, c_c, n_c, z_crit = (float(x) for x in (c_t, n_t, c_c, n_c, z_crit))
    r_t, r_c = c_t / n_t, c_c / n_c

    def excess(x: float) -> float:
        return abs(score_ratio_z(math.exp(x), c_t, n_t, c_c, n_c)) - z_crit

    # The estimate ln R^ (the statistic is 0 there); +-inf when a rate is 0.
    x_hat = math.log(r_t / r_c) if r_t > 0 and r_c > 0 else (-math.inf if r_t == 0 else math.inf)
    x_hat = min(max(x_hat, -_LOG_FAR), _LOG_FAR)
    # First step: about the width of the log-ratio (Katz) interval, so Brent starts from a short bracket.
    step = z_crit * math.sqrt(sum(1.0 / max(x, 0.5) for x in (c_t, c_c)))
    if rejects_one and x_hat > 0:  # R = 1 rejected below the estimate: low in (1, R^), high above R^
        low = max(_bound(excess, x_hat, 0.0, step), math.nextafter(0.0, 1.0))
        high = _bound(excess, x_hat, _LOG_FAR, step)
    elif rejects_one:  # R = 1 rejected above the estimate
        low = _bound(excess, x_hat, -_LOG_FAR, step)
        high = min(_bound(excess, x_hat, 0.0, step), math.nextafter(0.0, -1.0))
    else:  # R = 1 is inside: each bound lies beyond both the estimate and R = 1
        low = _bound(excess, min(x_hat, 0.0), -_LOG_FAR, step)
        high = _bound(excess, max(x_hat, 0.0), _LOG_FAR, step)
    low_ratio = 0.0 if r_t == 0 or low <= -_LOG_FAR else math.exp(low)
    high_ratio = math.inf if r_c == 0 or high >= _LOG_FAR else math.exp(high)
    return low_ratio, high_ratio


def fieller_ratio_interval(m_t, v_t, m_c, v_c, crit, rejects_one) -> tuple[np.ndarray, np.ndarray]:
    """Fieller's set {R : (m_t - R m_c)^2 <= crit^2 (v_t + R^2 v_c)} for the ratio of two independent means.

    ``v_t``, ``v_c`` are the variances of the means (s^2 / n). At R = 1 the inequality is the test
    d^2 <= crit^2 (v_t + v_c), i.e. the verdict ``rejects_one`` is "1 is outside the set". For non-negative
    means the set within R >= 0 is one interval, possibly without an upper bound (inf) when the control
    mean is not itself distinguishable from 0; with a negative mean a set that is not one bounded interval
    gives (nan, nan).
    """
    m_t, v_t, m_c, v_c, crit = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64)
                                                     for x in (m_t, v_t, m_c, v_c, crit)))
    rejects_one = np.broadcast_to(np.asarray(rejects_one, dtype=bool), m_t.shape)
    c2 = crit * crit
    a = m_c * m_c - c2 * v_c
    b = m_t * m_c
    c = m_t * m_t - c2 * v_t
    disc = np.sqrt(np.maximum(b * b - a * c, 0.0))
    nonneg = (m_t >= 0) & (m_c >= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # a > 0: the bounded interval between the roots (b -+ sqrt(disc)) / a, written without cancellation.
        root_low = np.where(b > 0, c / (b + disc), (b - disc) / a)
        root_high = np.where(b < 0, c / (b - disc), (b + disc) / a)
        # a <= 0 with non-negative means: the part of the set at R >= 0 is [r, inf) (or all of [0, inf)).
        ray_start = np.where(a < 0, np.where(b * b - a * c >= 0, (b - disc) / a, 0.0),
                             np.where(b > 0, c / (2.0 * b), 0.0))
    low = np.where(a > 0, root_low, np.where(nonneg, np.maximum(ray_start, 0.0), np.nan))
    high = np.where(a > 0, root_high, np.where(nonneg, np.inf, np.nan))
    # The roots and the verdict are one inequality; this settles only float rounding at the exact boundary.
    hat_above = m_t > m_c
    low = np.where(rejects_one & hat_above, np.maximum(low, np.nextafter(1.0, 2.0)),
                   np.where(rejects_one, low, np.minimum(low, 1.0)))
    high = np.where(rejects_one & ~hat_above, np.minimum(high, np.nextafter(1.0, 0.0)),
                    np.where(rejects_one, high, np.maximum(high, 1.0)))
    return low, high


def holm_levels(p_values: np.ndarray, in_family: np.ndarray, alpha: float) -> np.ndarray:
    """Per comparison, the level at which to draw its interval so it excludes 0 exactly when Holm rejects.

    Holm steps through the sorted p-values p(1) <= ... <= p(m) and rejects while (m - i + 1) p(i) < alpha. The
    i-th is drawn at alpha / (m - i + 1) (it excludes 0 because p(i) is below that level); from the first
    step that fails, every later one is drawn at that step's level, which its p-value is not below. Each
    interval is thus at least a 1 - alpha interval on its own. Comparisons outside the family get alpha.
    """
    levels = np.full(p_values.shape, float(alpha))
    members = np.flatnonzero(in_family)
    m = members.size
    if m == 0:
        return levels
    order = members[np.argsort(p_values[members], kind="mergesort")]
    steps = m - np.arange(m)  # m, m - 1, ..., 1
    fails = np.flatnonzero(steps * p_values[order] >= alpha)  # the comparison _holm makes
    stop = int(fails[0]) if fails.size else m
    ranks = np.minimum(np.arange(m), stop)
    levels[order] = alpha / steps[ranks]
    return levels

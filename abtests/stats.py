"""The A/B testing statistics engine: pure numpy/scipy, no Django.

Every public function takes plain numbers or sequences and returns a frozen dataclass (or a number).
Arm 0 is always the control. The methods, formulas, edge cases and references are documented in
``docs/statistics.md``; ``tests/abtests/test_stats.py`` compares every statistic with scipy/statsmodels.

Contract used by the rest of the app (see docs/statistics.md for the full list):
``proportions_test``, ``welch_test``, ``srm_p_value`` + ``SRM_THRESHOLD``, ``chance_to_beat_control``,
``sample_size`` (+ ``sample_size_unrounded``), ``days_needed``, ``sequential_test`` (+ ``sequential_means_test``),
``hash_bucket`` (+ vectorised ``hash_buckets``), ``choose_variant``, ``analyze``.
No result holds NaN or infinity: undefined quantities are ``None`` with a ``note`` saying why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from abtests import multiple_testing  # Holm's step-down: one implementation, pure numpy

# An SRM p-value below this blocks declaring a winner (the threshold GrowthBook and Optimizely use).
SRM_THRESHOLD = 0.001
MIN_CONFIDENCE = 0.80
MAX_CONFIDENCE = 0.999

_FNV32_OFFSET_BASIS = 0x811C9DC5
_FNV32_PRIME = 0x01000193


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------


def _check_confidence(confidence_level: float, name: str = "confidence_level") -> float:
    try:
        level = float(confidence_level)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number between {MIN_CONFIDENCE} and {MAX_CONFIDENCE}") from None
    if not (MIN_CONFIDENCE <= level <= MAX_CONFIDENCE):
        raise ValueError(f"{name} must be between {MIN_CONFIDENCE} and {MAX_CONFIDENCE}, got {confidence_level}")
    return level


def _as_counts(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """A 1-D float array of non-negative whole numbers (counts may exceed 2**31, so float64)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat list of numbers, one per arm")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain finite numbers")
    if np.any(arr < 0):
        raise ValueError(f"{name} must not be negative (arm {int(np.argmax(arr < 0))} is {arr[arr < 0][0]:g})")
    if np.any(arr != np.floor(arr)):
        raise ValueError(f"{name} must be whole numbers")
    return arr


def _check_users_conversions(users, conversions) -> tuple[np.ndarray, np.ndarray]:
    n = _as_counts(users, "users")
    c = _as_counts(conversions, "conversions")
    if n.shape != c.shape:
        raise ValueError(f"users and conversions must have the same length ({n.size} != {c.size})")
    if n.size < 2:
        raise ValueError("at least two arms are needed (arm 0 is the control)")
    if np.any(c > n):
        arm = int(np.argmax(c > n))
        raise ValueError(f"arm {arm} has more conversions ({c[arm]:g}) than users ({n[arm]:g})")
    if n[0] == 0:
        raise ValueError("the control arm (arm 0) has no users")
    return n, c


def _holm_over(p_values: np.ndarray, in_family: np.ndarray) -> np.ndarray:
    """Holm over the comparisons that exist (arms with users); the others keep p = 1."""
    adjusted = np.ones_like(p_values)
    if in_family.any():
        adjusted[in_family] = multiple_testing.holm(p_values[in_family])
    return adjusted


def _z(confidence_level: float) -> float:
    """Two-sided critical value z_{1 - alpha/2}."""
    return float(special.ndtri(0.5 + confidence_level / 2.0))


# --------------------------------------------------------------------------------------------------
# Frequentist test of conversion rates
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Welch's t-test for revenue per user
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WelchArm:
    """One arm of a revenue-per-user comparison with the control (arm 0).

    ``diff`` = mean - control mean with a Welch t interval; ``rel_diff`` = diff / control mean with a
    delta-method (normal) interval, ``None`` when the control mean is 0.
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


@dataclass(frozen=True)
class WelchResult:
    confidence_level: float
    arms: list[WelchArm]


def welch_test(
    mean: Sequence[float], variance: Sequence[float], n: Sequence[int], confidence_level: float = 0.95
) -> WelchResult:
    """Welch's unequal-variance t-test of each treatment's mean against the control's.

    ``variance`` is the sample variance (ddof=1) of the per-user metric. Equal to
    ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)``. Holm-adjusted when k > 2.
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
    z_crit = _z(level)
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
    p_adj = multiple_testing.holm(p) if m.size > 2 else p.copy()
    arms = [
        WelchArm(index=0, n=int(nn[0]), mean=float(m[0]), variance=float(v[0]), diff=0.0, diff_ci_low=0.0,
                 diff_ci_high=0.0, rel_diff=0.0, rel_ci_low=0.0, rel_ci_high=0.0, t=0.0, dof=0.0, p_value=1.0,
                 p_value_adjusted=1.0, significant=False, note="control")
    ]
    for j in range(m.size - 1):
        note = "both arms have zero variance; the difference is exact" if degenerate[j] else ""
        if m[0] != 0:
            rel = diff[j] / m[0]
            se_rel = math.sqrt(st[j] / m[0] ** 2 + m[j + 1] ** 2 * s0 / m[0] ** 4)
            rel_lo, rel_hi = rel - z_crit * se_rel, rel + z_crit * se_rel
        else:
            rel = rel_lo = rel_hi = None
            note = note or "the control mean is 0, so a relative difference is undefined"
        arms.append(
            WelchArm(
                index=j + 1, n=int(nn[j + 1]), mean=float(m[j + 1]), variance=float(v[j + 1]), diff=float(diff[j]),
                diff_ci_low=float(diff[j] - t_crit[j] * se[j]), diff_ci_high=float(diff[j] + t_crit[j] * se[j]),
                rel_diff=None if rel is None else float(rel),
                rel_ci_low=None if rel_lo is None else float(rel_lo),
                rel_ci_high=None if rel_hi is None else float(rel_hi),
                t=float(t[j]), dof=float(dof[j]), p_value=float(p[j]), p_value_adjusted=float(p_adj[j]),
                significant=bool(p_adj[j] < alpha), note=note,
            )
        )
    return WelchResult(confidence_level=level, arms=arms)


# --------------------------------------------------------------------------------------------------
# Sample ratio mismatch
# --------------------------------------------------------------------------------------------------


def srm_p_value(users: Sequence[int], weights: Sequence[float]) -> float:
    """Chi-squared goodness of fit of the observed users per arm against the configured traffic weights.

    Arms with weight 0 are dropped (as GrowthBook does); the remaining weights are renormalised.
    Returns 1.0 when there are no users or fewer than two weighted arms. Equal to
    ``scipy.stats.chisquare(observed, expected)``. A value below ``SRM_THRESHOLD`` means the split is broken.
    """
    n = _as_counts(users, "users")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != n.shape:
        raise ValueError(f"users and weights must have the same length ({n.size} != {w.size})")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be non-negative numbers")
    keep = w > 0
    if not keep.any():
        raise ValueError("at least one weight must be positive")
    n, w = n[keep], w[keep]
    total = n.sum()
    if total == 0 or n.size < 2:
        return 1.0
    expected = total * w / w.sum()
    chi2 = float(np.sum((n - expected) ** 2 / expected))
    return float(special.chdtrc(n.size - 1, chi2))


# --------------------------------------------------------------------------------------------------
# Bayesian chance to beat control
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BayesArm:
    """Posterior comparison of one treatment with the control under Beta(1, 1) priors.

    ``chance_to_beat_control`` = P(rate_t > rate_c | data); ``expected_loss`` = E[max(rate_c - rate_t, 0)]
    (the conversion rate given up, on average, by shipping this arm); ``control_expected_loss`` =
    E[max(rate_t - rate_c, 0)] (given up by keeping the control).
    """

    index: int
    chance_to_beat_control: float
    expected_loss: float
    control_expected_loss: float


@dataclass(frozen=True)
class BayesResult:
    method: str  # "quadrature" or "monte_carlo"
    arms: list[BayesArm]  # treatments only (index 1..k-1)


# Quadrature for the posterior integrals. Write the narrower posterior X as X = Q_X(Phi(z)) with z standard
# normal; E[g(X)] = integral of g(Q_X(Phi(z))) phi(z) dz is then a smooth integral over z (for large counts
# Q_X(Phi(z)) is nearly linear in z). Gauss-Legendre on [-10, 10] (normal mass outside: 1.5e-23).
_Z_NODES, _Z_WEIGHTS = np.polynomial.legendre.leggauss(128)
_Z = _Z_NODES * 10.0
_Z_W = _Z_WEIGHTS * 10.0 * np.exp(-0.5 * _Z**2) / math.sqrt(2.0 * math.pi)
_Z_LOWER = special.ndtr(np.minimum(_Z, 0.0))  # Phi(z) for z <= 0, precise in the lower tail
_Z_UPPER = special.ndtr(-np.maximum(_Z, 0.0))  # 1 - Phi(z) for z > 0, precise in the upper tail
_Z_NEG = _Z <= 0


def _beta_quantiles(a: float, b: float) -> np.ndarray:
    """Q(Phi(z)) at the quadrature nodes, accurate in both tails."""
    out = np.empty_like(_Z)
    out[_Z_NEG] = special.betaincinv(a, b, _Z_LOWER[_Z_NEG])
    out[~_Z_NEG] = special.betainccinv(a, b, _Z_UPPER[~_Z_NEG])
    return out


def _beta_sd(a: float, b: float) -> float:
    return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))


def _compare_betas(a_t: float, b_t: float, a_c: float, b_c: float) -> tuple[float, float, float]:
    """(P(T > C), E[max(C - T, 0)], E[max(T - C, 0)]) for independent T ~ Beta(a_t, b_t), C ~ Beta(a_c, b_c).

    One quadrature over the narrower posterior; the inner expectations over the other one are closed
    forms via the size-biased Beta identity y f_{a,b}(y) = mean * f_{a+1,b}(y):
    E[(C - x)+] = mean_C S_{a_c+1,b_c}(x) - x S_C(x) and E[(x - C)+] = x F_C(x) - mean_C F_{a_c+1,b_c}(x).
    """
    if _beta_sd(a_t, b_t) <= _beta_sd(a_c, b_c):
        x, (a_o, b_o), flip = _beta_quantiles(a_t, b_t), (a_c, b_c), False
    else:
        x, (a_o, b_o), flip = _beta_quantiles(a_c, b_c), (a_t, b_t), True
    mean_o = a_o / (a_o + b_o)
    cdf, sf = special.betainc(a_o, b_o, x), special.betaincc(a_o, b_o, x)
    cdf_plus, sf_plus = special.betainc(a_o + 1.0, b_o, x), special.betaincc(a_o + 1.0, b_o, x)
    other_above = np.maximum(mean_o * sf_plus - x * sf, 0.0)  # E[(O - x)+]
    other_below = np.maximum(x * cdf - mean_o * cdf_plus, 0.0)  # E[(x - O)+]
    if not flip:  # x are draws of T, O is C
        prob = float(np.dot(_Z_W, cdf))
        loss_t, loss_c = float(np.dot(_Z_W, other_above)), float(np.dot(_Z_W, other_below))
    else:  # x are draws of C, O is T
        prob = float(np.dot(_Z_W, sf))
        loss_t, loss_c = float(np.dot(_Z_W, other_below)), float(np.dot(_Z_W, other_above))
    return min(1.0, max(0.0, prob)), max(0.0, loss_t), max(0.0, loss_c)


def chance_to_beat_control(
    users: Sequence[int], conversions: Sequence[int], draws: int | None = None, seed: int | None = None
) -> BayesResult:
    """Per treatment arm: P(rate > control rate) and expected losses, Beta(1, 1) priors.

    By default computed by deterministic quadrature (see docs/statistics.md for the measured accuracy).
    Pass ``draws`` to use seeded Monte Carlo instead (precision ~ 0.5/sqrt(draws)).
    """
    n, c = _check_users_conversions(users, conversions)
    a = c + 1.0
    b = n - c + 1.0
    arms: list[BayesArm] = []
    if draws is not None:
        if int(draws) < 1000:
            raise ValueError("draws must be at least 1000")
        rng = np.random.default_rng(seed)
        control = rng.beta(a[0], b[0], size=int(draws))
        for j in range(1, n.size):
            t = rng.beta(a[j], b[j], size=int(draws))
            arms.append(BayesArm(
                index=j, chance_to_beat_control=float(np.mean(t > control)),
                expected_loss=float(np.mean(np.maximum(control - t, 0.0))),
                control_expected_loss=float(np.mean(np.maximum(t - control, 0.0))),
            ))
        return BayesResult(method="monte_carlo", arms=arms)
    for j in range(1, n.size):
        prob, loss_t, loss_c = _compare_betas(a[j], b[j], a[0], b[0])
        arms.append(BayesArm(index=j, chance_to_beat_control=prob, expected_loss=loss_t, control_expected_loss=loss_c))
    return BayesResult(method="quadrature", arms=arms)


# --------------------------------------------------------------------------------------------------
# Planning: sample size and duration
# --------------------------------------------------------------------------------------------------


def sample_size_unrounded(
    baseline_rate: float, mde: float, confidence_level: float = 0.95, power: float = 0.8, arms: int = 2
) -> float:
    """The classic formula's exact (fractional) users per arm; ``sample_size`` rounds it up.

    n = (z_{1-a/2} sqrt(2 p (1-p)) + z_{1-b} sqrt(p1 (1-p1) + p2 (1-p2)))^2 / (p2 - p1)^2,
    p2 = p1 (1 + mde), p = (p1 + p2) / 2; alpha is Bonferroni-divided by (arms - 1) when arms > 2
    (each treatment is compared with the control).
    """
    level = _check_confidence(confidence_level)
    try:
        p1, mde, power, arms_f = float(baseline_rate), float(mde), float(power), float(arms)
    except (TypeError, ValueError):
        raise ValueError("baseline_rate, mde, power and arms must be numbers") from None
    if not (0.0 < p1 < 1.0):
        raise ValueError(f"baseline_rate must be between 0 and 1 (exclusive), got {baseline_rate}")
    if mde == 0 or not math.isfinite(mde):
        raise ValueError("mde (relative minimum detectable effect) must be a non-zero number")
    p2 = p1 * (1.0 + mde)
    if not (0.0 < p2 < 1.0):
        raise ValueError(f"baseline_rate * (1 + mde) must be between 0 and 1, got {p2:g}")
    if not (0.5 <= power < 1.0):
        raise ValueError(f"power must be between 0.5 and 1 (exclusive), got {power}")
    if arms_f != int(arms_f) or arms_f < 2:
        raise ValueError(f"arms must be a whole number >= 2, got {arms}")
    arms = int(arms_f)
    alpha = (1.0 - level) / (arms - 1 if arms > 2 else 1)
    z_a = float(special.ndtri(1.0 - alpha / 2.0))
    z_b = float(special.ndtri(power))
    p_bar = (p1 + p2) / 2.0
    root = z_a * math.sqrt(2.0 * p_bar * (1.0 - p_bar)) + z_b * math.sqrt(p1 * (1.0 - p1) + p2 * (1.0 - p2))
    return root**2 / (p2 - p1) ** 2


def sample_size(
    baseline_rate: float, mde: float, confidence_level: float = 0.95, power: float = 0.8, arms: int = 2
) -> int:
    """Users needed per arm to detect a relative lift ``mde`` over ``baseline_rate`` (two-sided test).

    The classic formula (see ``sample_size_unrounded``), rounded up to a whole user.
    Example: 10% baseline, +10% relative, 95% confidence, 80% power -> 14,751 per arm.
    """
    n = sample_size_unrounded(baseline_rate, mde, confidence_level, power, arms)
    # Absorb 1e-12 float noise so an exact integer is not pushed to the next one.
    return int(math.ceil(n - 1e-9))


def days_needed(n_per_arm: int, arms: int, daily_traffic: float) -> int:
    """Whole days to collect ``n_per_arm`` users in each of ``arms`` arms at ``daily_traffic`` users/day."""
    if int(n_per_arm) < 0:
        raise ValueError("n_per_arm must not be negative")
    if int(arms) < 1:
        raise ValueError("arms must be at least 1")
    if not (float(daily_traffic) > 0):
        raise ValueError("daily_traffic must be positive")
    return int(math.ceil(int(n_per_arm) * int(arms) / float(daily_traffic)))


# --------------------------------------------------------------------------------------------------
# Sequential testing: always-valid p-values and confidence sequences
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequentialArm:
    """One treatment arm under continuous monitoring.

    ``p_value`` is always valid (may be checked after every new user); ``p_value_adjusted`` is Holm over
    the k - 1 comparisons. ``cs_low``/``cs_high``: confidence sequence of the absolute lift;
    ``lift_cs_low``/``lift_cs_high``: of the relative lift (None when the control rate is 0). All
    sequence bounds are None while an arm has no users or no variation (the sequence is the whole line).
    """

    index: int
    abs_lift: float
    cs_low: float | None
    cs_high: float | None
    lift: float | None
    lift_cs_low: float | None
    lift_cs_high: float | None
    p_value: float
    p_value_adjusted: float
    significant: bool


@dataclass(frozen=True)
class SequentialResult:
    confidence_level: float
    arms: list[SequentialArm]  # treatments only (index 1..k-1)
    safe_to_stop: bool
    reason: str


def _sequential_mixing(planned_users: float | None, alpha: float) -> float:
    """The normal mixture's tuning rho^2, chosen so the boundary is tightest at the planned sample size.

    rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / N*, Howard et al. (2021) eq. for the optimal mixture.
    """
    if planned_users is None or planned_users <= 0:
        planned_users = 10_000.0
    return (-2.0 * math.log(alpha) + math.log(1.0 - 2.0 * math.log(alpha))) / float(planned_users)


def _sequential(
    estimates: np.ndarray, variances: np.ndarray, n: np.ndarray, level: float,
    planned_users: float | None, previous_p_values: Sequence[float] | None,
) -> SequentialResult:
    """Shared engine: per-arm estimates (rates or means) and the variances of those estimates."""
    k = estimates.size
    alpha = 1.0 - level
    alpha_cs = alpha / (k - 1)  # Bonferroni for the sequences; p-values get Holm below
    rho2 = _sequential_mixing(planned_users, alpha_cs)
    m0, v0 = float(estimates[0]), float(variances[0])
    rows = []
    p_current = np.ones(k - 1)
    for j in range(1, k):
        mj, vj = float(estimates[j]), float(variances[j])
        d = mj - m0
        var = vj + v0
        total = float(n[0] + n[j])
        lift = d / m0 if m0 != 0 else None
        if n[j] == 0 or var == 0:
            # Nothing to estimate yet (or no variation at all): the sequence is the whole line.
            rows.append((d, None, None, lift, None, None))
            continue
        nr2 = total * rho2
        # radius = sqrt(var) * sqrt((N rho^2 + 1) / (N rho^2) * 2 ln(sqrt(N rho^2 + 1) / alpha))
        multiplier = math.sqrt((nr2 + 1.0) / nr2 * 2.0 * math.log(math.sqrt(nr2 + 1.0) / alpha_cs))
        radius = math.sqrt(var) * multiplier
        # Mixture likelihood ratio: ln L = -0.5 ln(1 + N rho^2) + (d^2 / var) N rho^2 / (2 (1 + N rho^2))
        log_lr = -0.5 * math.log1p(nr2) + (d * d / var) * nr2 / (2.0 * (1.0 + nr2))
        p_current[j - 1] = min(1.0, math.exp(-log_lr))
        if m0 != 0:
            var_rel = vj / m0**2 + mj**2 * v0 / m0**4
            rel_radius = math.sqrt(var_rel) * multiplier
            rows.append((d, d - radius, d + radius, lift, lift - rel_radius, lift + rel_radius))
        else:
            rows.append((d, d - radius, d + radius, None, None, None))
    if previous_p_values is not None:
        prev = np.asarray(previous_p_values, dtype=np.float64)
        if prev.shape != p_current.shape:
            raise ValueError(f"previous_p_values must have one value per treatment arm ({k - 1})")
        if np.any(~np.isfinite(prev)) or np.any(prev < 0) or np.any(prev > 1):
            raise ValueError("previous_p_values must be probabilities between 0 and 1")
        p_current = np.minimum(p_current, prev)  # always-valid p-values are running minima
    p_adj = _holm_over(p_current, n[1:] > 0) if k > 2 else p_current.copy()
    arms = [
        SequentialArm(
            index=j + 1, abs_lift=float(d), cs_low=None if lo is None else float(lo),
            cs_high=None if hi is None else float(hi),
            lift=None if lift is None else float(lift),
            lift_cs_low=None if llo is None else float(llo), lift_cs_high=None if lhi is None else float(lhi),
            p_value=float(p_current[j]), p_value_adjusted=float(p_adj[j]), significant=bool(p_adj[j] < alpha),
        )
        for j, (d, lo, hi, lift, llo, lhi) in enumerate(rows)
    ]
    crossed = [a for a in arms if a.significant]
    if crossed:
        names = ", ".join(f"arm {a.index}" for a in crossed)
        safe, reason = True, f"{names} crossed the always-valid boundary at {level:.0%} confidence; stopping now is safe"
    elif planned_users is not None and float(n[0] + n[1:].max()) >= planned_users:
        safe, reason = True, "the planned sample is reached without crossing the boundary; stop: no detectable difference"
    else:
        safe, reason = False, "no arm has crossed the always-valid boundary yet; keep running (looking again is safe)"
    return SequentialResult(confidence_level=level, arms=arms, safe_to_stop=safe, reason=reason)


def sequential_test(
    users: Sequence[int],
    conversions: Sequence[int],
    confidence_level: float = 0.95,
    planned_users: int | None = None,
    previous_p_values: Sequence[float] | None = None,
) -> SequentialResult:
    """Always-valid inference for conversion rates: safe to look after every new user.

    Asymptotic confidence sequences with a normal mixture (Howard, Ramdas, McAuliffe & Sekhon 2021;
    Waudby-Smith et al. 2024), i.e. the mixture SPRT of Johari et al. (2017) on the difference of rates d
    with variance V = r_t (1 - r_t) / n_t + r_c (1 - r_c) / n_c and N = n_t + n_c users in the pair:
    the CS is d +- sqrt(V) sqrt((N rho^2 + 1) / (N rho^2) * 2 ln(sqrt(N rho^2 + 1) / alpha)), and the
    always-valid p-value is min(1, 1 / Lambda) with Lambda the mixture likelihood ratio.
    ``planned_users`` (users in a control + treatment pair at the planned end) tunes rho so the
    sequence is tightest there; it does not affect validity. Pass the ``previous_p_values`` stored at the
    last look to keep each p-value the running minimum. k > 2: Bonferroni CS, Holm-adjusted p-values.
    """
    level = _check_confidence(confidence_level)
    n, c = _check_users_conversions(users, conversions)
    rates = np.where(n > 0, c / np.maximum(n, 1.0), 0.0)
    var = np.where(n > 0, rates * (1.0 - rates) / np.maximum(n, 1.0), 0.0)
    planned = None if planned_users is None else float(planned_users)
    return _sequential(rates, var, n, level, planned, previous_p_values)


def sequential_means_test(
    mean: Sequence[float],
    variance: Sequence[float],
    n: Sequence[int],
    confidence_level: float = 0.95,
    planned_users: int | None = None,
    previous_p_values: Sequence[float] | None = None,
) -> SequentialResult:
    """The sequential mode for a per-user mean (revenue per user); same method as ``sequential_test``."""
    level = _check_confidence(confidence_level)
    m = np.asarray(mean, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    nn = _as_counts(n, "n")
    if not (m.shape == v.shape == nn.shape) or m.ndim != 1 or m.size < 2:
        raise ValueError("mean, variance and n must be flat lists of the same length, at least 2 arms")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v))) or np.any(v < 0):
        raise ValueError("mean and variance must be finite, variance non-negative")
    if nn[0] == 0:
        raise ValueError("the control arm (arm 0) has no users")
    var = np.where(nn > 0, v / np.maximum(nn, 1.0), 0.0)
    planned = None if planned_users is None else float(planned_users)
    return _sequential(m, var, nn, level, planned, previous_p_values)


# --------------------------------------------------------------------------------------------------
# Deterministic assignment (GrowthBook hash v2)
# --------------------------------------------------------------------------------------------------


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the string's code points (as GrowthBook's SDKs do)."""
    h = _FNV32_OFFSET_BASIS
    for ch in text:
        h ^= ord(ch)
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def hash_bucket(seed: str, user_id: str) -> float:
    """GrowthBook hash version 2: ``fnv1a32(str(fnv1a32(seed + user_id))) % 10000 / 10000`` in [0, 1)."""
    return (fnv1a32(str(fnv1a32(str(seed) + str(user_id)))) % 10000) / 10000


def _fnv1a32_rows(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """FNV-1a over each row of a (n, width) code-point matrix, each row's first ``lengths[i]`` columns."""
    h = np.full(codes.shape[0], _FNV32_OFFSET_BASIS, dtype=np.uint64)
    for col in range(codes.shape[1]):
        live = lengths > col
        stepped = ((h ^ codes[:, col]) * _FNV32_PRIME) & 0xFFFFFFFF
        h = np.where(live, stepped, h)
    return h


def hash_buckets(seed: str, user_ids: Sequence[str]) -> np.ndarray:
    """``hash_bucket`` for many users at once (numpy-vectorised; equal to the scalar function).

    About 50x faster than a Python loop: for batch assignment of millions of customers.
    """
    ids = [str(seed) + str(u) for u in user_ids]
    if not ids:
        return np.empty(0)
    text = np.array(ids, dtype=np.str_)
    width = text.dtype.itemsize // 4
    codes = text.view(np.uint32).reshape(len(ids), width).astype(np.uint64)
    lengths = np.char.str_len(text)
    first = _fnv1a32_rows(codes, lengths)
    # Second round over the decimal digits of the first hash (str(int) in the spec).
    digits = np.zeros((len(ids), 10), dtype=np.uint64)
    n_digits = np.ones(len(ids), dtype=np.int64)
    n_digits += (first >= 10).astype(np.int64)
    for power in range(2, 10):
        n_digits += (first >= 10**power).astype(np.int64)
    rest = first.copy()
    for pos in range(9, -1, -1):  # least significant digit goes to column n_digits - 1
        col_digit = rest % 10
        rest //= 10
        index = n_digits - 1 - (9 - pos)
        ok = index >= 0
        digits[np.flatnonzero(ok), index[ok]] = col_digit[ok] + ord("0")
    second = _fnv1a32_rows(digits, n_digits)
    return (second % 10000).astype(np.float64) / 10000


def choose_variant(bucket: float, weights: Sequence[float]) -> int:
    """Index of the arm whose cumulative-weight range [start, end) holds ``bucket``.

    ``weights`` must be non-negative and sum to 1 (within 1e-6). Zero-weight arms are never chosen.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size < 1:
        raise ValueError("weights must be a non-empty list of numbers")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be non-negative numbers")
    if abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1, got {w.sum():g}")
    b = float(bucket)
    if not (0.0 <= b < 1.0):
        raise ValueError(f"bucket must be in [0, 1), got {bucket}")
    cumulative = 0.0
    last_positive = int(np.flatnonzero(w > 0)[-1])
    for i, wi in enumerate(w):
        cumulative += wi
        if wi > 0 and (b < cumulative or i == last_positive):
            return i
    return last_positive  # pragma: no cover - unreachable: the last positive arm catches rounding


# --------------------------------------------------------------------------------------------------
# The decision rule
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """The verdict on a test.

    ``decision``: "winner", "inconclusive" or "srm". ``winner`` is the winning arm's index (None unless
    decision == "winner"; 0 when the control beats every treatment). ``users_needed``: users (all arms
    together) still needed to reach ``sample_size_target``, 0 when reached or no target.
    ``welch`` is set for the revenue-per-user metric, ``sequential`` for the sequential method.
    """

    decision: str
    winner: int | None
    reason: str
    recommended_action: str
    users_needed: int
    srm_p_value: float
    srm: bool
    method: str
    metric: str
    proportions: ProportionsResult
    bayes: BayesResult
    welch: WelchResult | None = None
    sequential: SequentialResult | None = None


METRICS = ("conversion_rate", "revenue_per_user")
METHODS = ("fixed", "sequential")


def analyze(
    users: Sequence[int],
    conversions: Sequence[int],
    weights: Sequence[float] | None = None,
    confidence_level: float = 0.95,
    sample_size_target: int | None = None,
    method: str = "fixed",
    metric: str = "conversion_rate",
    revenue_mean: Sequence[float] | None = None,
    revenue_variance: Sequence[float] | None = None,
    previous_p_values: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
) -> Analysis:
    """Decide a test by the issue's rule.

    A winner only when (1) the primary metric's difference is significant at ``confidence_level``
    (Holm-adjusted when k > 2), (2) there is no sample ratio mismatch (SRM p >= ``SRM_THRESHOLD``), and
    (3) the planned sample is reached (``sample_size_target`` = total users over all arms) or, with
    ``method="sequential"``, the always-valid boundary is crossed. Otherwise "inconclusive" with the reason
    and the users still needed, or "srm" when the split is broken.
    ``metric="revenue_per_user"`` needs ``revenue_mean`` and ``revenue_variance`` (sample variance per user)
    per arm and decides on Welch's test (fixed) or the sequential means test.
    ``previous_p_values``: the sequential p-values stored at the last look (running minimum).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    level = _check_confidence(confidence_level)
    n, c = _check_users_conversions(users, conversions)
    k = n.size
    if weights is None:
        weights = [1.0 / k] * k
    if len(weights) != k:
        raise ValueError(f"weights must have one value per arm ({len(weights)} != {k})")
    labels = [str(x) for x in names] if names is not None else ["control"] + [f"arm {i}" for i in range(1, k)]
    if len(labels) != k:
        raise ValueError(f"names must have one value per arm ({len(labels)} != {k})")
    if sample_size_target is not None and int(sample_size_target) < 0:
        raise ValueError("sample_size_target must not be negative")
    if metric == "revenue_per_user" and (revenue_mean is None or revenue_variance is None):
        raise ValueError("revenue_per_user needs revenue_mean and revenue_variance per arm")

    props = proportions_test(n, c, level)
    bayes = chance_to_beat_control(n, c)
    srm_p = srm_p_value(n, weights)
    srm = srm_p < SRM_THRESHOLD
    total = int(n.sum())
    target = int(sample_size_target) if sample_size_target else 0
    users_needed = max(0, target - total)
    planned_pair = (2.0 * target / k) if target else None
    welch = seq = None
    if metric == "revenue_per_user":
        if np.all(n >= 2):
            welch = welch_test(revenue_mean, revenue_variance, n, level)
        if method == "sequential":
            seq = sequential_means_test(revenue_mean, revenue_variance, n, level, planned_pair, previous_p_values)
    elif method == "sequential":
        seq = sequential_test(n, c, level, planned_pair, previous_p_values)

    if seq is not None:
        significant = {a.index: a.abs_lift for a in seq.arms if a.significant}
    elif welch is not None:
        significant = {a.index: a.diff for a in welch.arms[1:] if a.significant}
    elif metric == "revenue_per_user":
        significant = {}  # fewer than 2 users in some arm: no variance, nothing can be significant
    else:
        significant = {a.index: a.abs_lift for a in props.treatments if a.significant}
    unit = "revenue per user" if metric == "revenue_per_user" else "conversion rate"

    def verdict(decision: str, winner: int | None, reason: str, action: str) -> Analysis:
        return Analysis(
            decision=decision, winner=winner, reason=reason, recommended_action=action,
            users_needed=users_needed, srm_p_value=srm_p, srm=srm, method=method, metric=metric,
            proportions=props, bayes=bayes, welch=welch, sequential=seq,
        )

    if srm:
        return verdict(
            "srm", None,
            f"sample ratio mismatch: users per arm {[int(x) for x in n]} do not fit the configured weights "
            f"(p = {srm_p:.2g} < {SRM_THRESHOLD}); the results cannot be trusted",
            "Stop and investigate the split: assignment or tracking is broken.",
        )
    if method == "fixed" and users_needed > 0:
        return verdict(
            "inconclusive", None,
            f"the planned sample is not reached yet ({total} of {target} users)",
            f"Keep running: about {users_needed} more users are needed.",
        )
    if not significant:
        if method == "sequential" and not (seq is not None and seq.safe_to_stop):
            more = f" about {users_needed} more users to the plan" if users_needed else ""
            return verdict(
                "inconclusive", None,
                f"no arm has crossed the always-valid boundary yet at {level:.0%} confidence",
                f"Keep running:{more or ' looking again tomorrow is safe'}.",
            )
        return verdict(
            "inconclusive", None,
            f"no difference in {unit} is significant at {level:.0%} confidence with the planned sample",
            f"Stop: no variant differs detectably from the control; keep {labels[0]}.",
        )
    best = max(significant, key=lambda i: significant[i])
    if significant[best] > 0:
        return verdict(
            "winner", best,
            f"{labels[best]} beats {labels[0]} on {unit}, significant at {level:.0%} confidence",
            f"Ship {labels[best]}.",
        )
    if len(significant) == k - 1:
        return verdict(
            "winner", 0,
            f"every variant is significantly worse than {labels[0]} on {unit} at {level:.0%} confidence",
            f"Keep {labels[0]}.",
        )
    losers = ", ".join(labels[i] for i in sorted(significant))
    return verdict(
        "inconclusive", None,
        f"only losses are significant ({losers} worse than {labels[0]}); no variant beats it",
        f"Drop {losers}; keep {labels[0]}.",
    )

"""Sequential testing: always-valid p-values and confidence sequences."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from abtests.stats._common import _as_counts, _check_confidence, _check_users_conversions
from abtests.stats.intervals import fieller_ratio_interval


@dataclass(frozen=True)
class SequentialArm:
    """One treatment arm under continuous monitoring.

    ``p_value`` is always valid (may be checked after every new user) and is the running minimum over the
    looks; ``p_value_adjusted`` is Bonferroni over the k - 1 comparisons (the level the sequences are drawn
    at). ``cs_low``/``cs_high``: confidence sequence of the absolute lift at this look;
    ``lift_cs_low``/``lift_cs_high``: of the relative lift, Fieller's inversion of the same mixture boundary,
    intersected with the previous looks' (pass ``previous_intervals``), so ``significant`` is exactly
    "the relative sequence excludes 0" at every look. ``lift_cs_high`` alone is None when the sequence has
    no upper bound yet (the control's rate is not itself distinguishable from 0). All bounds are None
    while an arm has no users or no variation, or the control rate is 0 (the sequence is the whole line).
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


def _as_previous_intervals(previous_intervals, arms: int) -> list[tuple[float, float]]:
    """Previous relative-lift bounds as (low, high) with +-inf for "unbounded" (None in the input)."""
    if previous_intervals is None:
        return [(-math.inf, math.inf)] * arms
    rows = list(previous_intervals)
    if len(rows) != arms:
        raise ValueError(f"previous_intervals must have one (low, high) pair per treatment arm ({arms})")
    out = []
    for row in rows:
        low, high = (None, None) if row is None else row
        low = -math.inf if low is None else float(low)
        high = math.inf if high is None else float(high)
        if math.isnan(low) or math.isnan(high) or low > high:
            raise ValueError("previous_intervals must be (low, high) pairs with low <= high")
        out.append((low, high))
    return out


def _excludes_zero(low: float, high: float) -> bool:
    return low > 0.0 or high < 0.0


def _sequential(
    estimates: np.ndarray, variances: np.ndarray, n: np.ndarray, level: float,
    planned_users: float | None, previous_p_values: Sequence[float] | None,
    previous_intervals: Sequence[tuple[float | None, float | None]] | None = None,
) -> SequentialResult:
    """Shared engine: per-arm estimates (rates or means) and the variances of those estimates."""
    k = estimates.size
    alpha = 1.0 - level
    alpha_cs = alpha / (k - 1)  # Bonferroni: the sequences' level, and the p-values' adjustment below
    rho2 = _sequential_mixing(planned_users, alpha_cs)
    m0, v0 = float(estimates[0]), float(variances[0])
    rows: list[tuple[float, float | None, float | None, float | None]] = []
    p_look = np.ones(k - 1)
    multipliers = np.full(k - 1, np.nan)
    for j in range(1, k):
        mj, vj = float(estimates[j]), float(variances[j])
        d = mj - m0
        var = vj + v0
        total = float(n[0] + n[j])
        lift = d / m0 if m0 != 0 else None
        if n[j] == 0 or var == 0:
            # Nothing to estimate yet (or no variation at all): the sequence is the whole line.
            rows.append((d, None, None, lift))
            continue
        nr2 = total * rho2
        # radius = sqrt(var) * sqrt((N rho^2 + 1) / (N rho^2) * 2 ln(sqrt(N rho^2 + 1) / alpha))
        multiplier = math.sqrt((nr2 + 1.0) / nr2 * 2.0 * math.log(math.sqrt(nr2 + 1.0) / alpha_cs))
        multipliers[j - 1] = multiplier
        radius = math.sqrt(var) * multiplier
        # Mixture likelihood ratio: ln L = -0.5 ln(1 + N rho^2) + (d^2 / var) N rho^2 / (2 (1 + N rho^2))
        log_lr = -0.5 * math.log1p(nr2) + (d * d / var) * nr2 / (2.0 * (1.0 + nr2))
        p_look[j - 1] = min(1.0, math.exp(-log_lr))
        rows.append((d, d - radius, d + radius, lift))
    p_current = p_look
    previous_p = None
    if previous_p_values is not None:
        previous_p = np.asarray(previous_p_values, dtype=np.float64)
        if previous_p.shape != p_current.shape:
            raise ValueError(f"previous_p_values must have one value per treatment arm ({k - 1})")
        if np.any(~np.isfinite(previous_p)) or np.any(previous_p < 0) or np.any(previous_p > 1):
            raise ValueError("previous_p_values must be probabilities between 0 and 1")
        p_current = np.minimum(p_current, previous_p)  # always-valid p-values are running minima
    p_adj = np.minimum(1.0, (k - 1) * p_current)
    significant = p_adj < alpha
    crossed_now = (k - 1) * p_look < alpha  # this look's sequence excludes 0
    # A look's state is its p-values and its intervals together: intervals without p-values are not used.
    previous = _as_previous_intervals(previous_intervals if previous_p is not None else None, k - 1)
    # This look's relative sequences, all arms at once (the whole line where undefined).
    defined_now = np.array([lift is not None for *_, lift in rows]) & ~np.isnan(multipliers)
    ratio_low = np.full(k - 1, np.nan)
    ratio_high = np.full(k - 1, np.nan)
    if defined_now.any():
        ratio_low[defined_now], ratio_high[defined_now] = fieller_ratio_interval(
            estimates[1:][defined_now], variances[1:][defined_now], m0, v0, multipliers[defined_now],
            crossed_now[defined_now])
    arms = []
    for j, (d, lo, hi, lift) in enumerate(rows):
        low, high = -math.inf, math.inf
        if not np.isnan(ratio_low[j]):
            low, high = float(ratio_low[j]) - 1.0, float(ratio_high[j]) - 1.0
        prev_low, prev_high = previous[j]
        prev_crossed = previous_p is not None and (k - 1) * previous_p[j] < alpha
        if _excludes_zero(prev_low, prev_high) != prev_crossed:
            prev_low, prev_high = -math.inf, math.inf  # state from another engine: do not mix it in
        # The running intersection. It excludes 0 exactly when one of the looks did, i.e. when the running
        # minimum p-value crossed. An empty intersection (a sequence missed, probability <= alpha) keeps the
        # look that excludes 0, so the shown sequence still agrees with the verdict.
        run_low, run_high = max(low, prev_low), min(high, prev_high)
        if run_low > run_high:
            run_low, run_high = (prev_low, prev_high) if _excludes_zero(prev_low, prev_high) else (low, high)
        defined = lift is not None and not (math.isinf(run_low) and math.isinf(run_high))
        arms.append(SequentialArm(
            index=j + 1, abs_lift=float(d), cs_low=None if lo is None else float(lo),
            cs_high=None if hi is None else float(hi), lift=None if lift is None else float(lift),
            lift_cs_low=float(run_low) if defined and not math.isinf(run_low) else None,
            lift_cs_high=float(run_high) if defined and not math.isinf(run_high) else None,
            p_value=float(p_current[j]), p_value_adjusted=float(p_adj[j]), significant=bool(significant[j]),
        ))
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
    previous_intervals: Sequence[tuple[float | None, float | None]] | None = None,
) -> SequentialResult:
    """Always-valid inference for conversion rates: safe to look after every new user.

    Asymptotic confidence sequences with a normal mixture (Howard, Ramdas, McAuliffe & Sekhon 2021;
    Waudby-Smith et al. 2024), i.e. the mixture SPRT of Johari et al. (2017) on the difference of rates d
    with variance V = r_t (1 - r_t) / n_t + r_c (1 - r_c) / n_c and N = n_t + n_c users in the pair:
    the CS is d +- sqrt(V) sqrt((N rho^2 + 1) / (N rho^2) * 2 ln(sqrt(N rho^2 + 1) / alpha)), and the
    always-valid p-value is min(1, 1 / Lambda) with Lambda the mixture likelihood ratio.
    ``planned_users`` (users in a control + treatment pair at the planned end) tunes rho so the
    sequence is tightest there; it does not affect validity. Pass the ``previous_p_values`` stored at the
    last look to keep each p-value the running minimum, and the ``previous_intervals`` (the relative-lift
    bounds ``lift_cs_low``, ``lift_cs_high`` shown then; None = unbounded) to keep the relative sequence their
    running intersection: then "significant" and "the sequence excludes 0" agree at every look.
    k > 2: sequences at alpha / (k - 1) and Bonferroni-adjusted p-values (the same family level).
    """
    level = _check_confidence(confidence_level)
    n, c = _check_users_conversions(users, conversions)
    rates = np.where(n > 0, c / np.maximum(n, 1.0), 0.0)
    var = np.where(n > 0, rates * (1.0 - rates) / np.maximum(n, 1.0), 0.0)
    planned = None if planned_users is None else float(planned_users)
    return _sequential(rates, var, n, level, planned, previous_p_values, previous_intervals)


def sequential_means_test(
    mean: Sequence[float],
    variance: Sequence[float],
    n: Sequence[int],
    confidence_level: float = 0.95,
    planned_users: int | None = None,
    previous_p_values: Sequence[float] | None = None,
    previous_intervals: Sequence[tuple[float | None, float | None]] | None = None,
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
    return _sequential(m, var, nn, level, planned, previous_p_values, previous_intervals)

"""Planning: users per arm for a detectable lift, and the days that takes."""

from __future__ import annotations

import math

from scipy import special

from abtests.stats._common import _check_confidence


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

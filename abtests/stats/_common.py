"""Shared checks and small helpers of the statistics engine (pure numpy/scipy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

from abtests import multiple_testing  # pure numpy, like this package

MIN_CONFIDENCE = 0.80
MAX_CONFIDENCE = 0.999


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


def _holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (Holm 1979): one implementation, ``abtests.multiple_testing.holm``."""
    return np.asarray(multiple_testing.holm(p_values), dtype=float)


def _holm_over(p_values: np.ndarray, in_family: np.ndarray) -> np.ndarray:
    """Holm over the comparisons that exist (arms with users); the others keep p = 1."""
    adjusted = np.ones_like(p_values)
    if in_family.any():
        adjusted[in_family] = _holm(p_values[in_family])
    return adjusted


def _z(confidence_level: float) -> float:
    """Two-sided critical value z_{1 - alpha/2}."""
    return float(special.ndtri(0.5 + confidence_level / 2.0))

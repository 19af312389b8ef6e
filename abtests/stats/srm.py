"""Sample ratio mismatch: do the users per arm fit the configured traffic weights?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

from abtests.stats._common import _as_counts

# An SRM p-value below this blocks declaring a winner (the threshold GrowthBook and Optimizely use).
SRM_THRESHOLD = 0.001


def srm_p_value(users: Sequence[int], weights: Sequence[float]) -> float:
    """Chi-squared goodness of fit of the observed users per arm against the configured traffic weights.

    Zero-weight arms take no part in the chi-squared (the remaining weights are renormalised), but a user in
    a zero-weight arm is itself a mismatch: under the configured split that arm cannot receive anyone, so
    the observation has probability 0 and the answer is 0.0 (GrowthBook's ``check_srm`` keeps such users in
    the total and flags the split through the chi-squared instead). Returns 1.0 when there are no users or
    fewer than two weighted arms. Otherwise equal to ``scipy.stats.chisquare(observed, expected)``.
    A value below ``SRM_THRESHOLD`` means the split is broken.
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
    if np.any(n[~keep] > 0):
        return 0.0  # users reached an arm that gets no traffic: impossible under the configured split
    n, w = n[keep], w[keep]
    total = n.sum()
    if total == 0 or n.size < 2:
        return 1.0
    expected = total * w / w.sum()
    chi2 = float(np.sum((n - expected) ** 2 / expected))
    return float(special.chdtrc(n.size - 1, chi2))

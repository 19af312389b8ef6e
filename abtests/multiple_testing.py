"""Adjusted p-values for a family of comparisons (pure numpy: no Django).

- ``holm``: Holm's step-down (1979); controls the family-wise error rate (the chance of any false
  positive in the family) under any dependence.
- ``benjamini_hochberg``: Benjamini-Hochberg step-up (1995); controls the false discovery rate (the
  expected share of false positives among the significant ones) for independent or positively
  dependent tests; more lenient than Holm when many comparisons are made.

Both equal ``statsmodels.stats.multitest.multipletests(p, method="holm" / "fdr_bh")[1]``
(tests/abtests/test_multiple_testing.py). Not-a-number entries (comparisons that could not be made)
stay NaN and are left out of the family.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HOLM = "holm"
BENJAMINI_HOCHBERG = "bh"
METHODS = (HOLM, BENJAMINI_HOCHBERG)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    return _over_finite(p_values, _holm)


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    return _over_finite(p_values, _bh)


def adjust(p_values: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    if method == HOLM:
        return holm(p_values)
    if method == BENJAMINI_HOCHBERG:
        return benjamini_hochberg(p_values)
    raise ValueError(f"unknown correction {method!r}; use one of {', '.join(METHODS)}")


def _over_finite(p_values, fn) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    present = ~np.isnan(p)
    if present.any():
        out[present] = fn(p[present])
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="mergesort")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="mergesort")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = stepped
    return out

"""Evaluation measures shared by the models (pure numpy / scikit-learn)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

# scikit-learn is imported inside the functions that use it: Django's start-up imports this module (the job
# registry), and loading it there cost every process ~0.6 s (tests/platform/test_startup.py).

HOURS = 24


def circular_hour_distance(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Distance between hours on the 24-hour clock: 23 and 0 are 1 hour apart."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % HOURS
    return np.minimum(d, HOURS - d)


def window_mass(pattern: np.ndarray, radius: int = 1) -> np.ndarray:
    """For each hour h, the mass of ``pattern`` in h-radius..h+radius, wrapping round midnight.

    ``pattern`` is (..., 24); the result has the same shape.
    """
    pattern = np.asarray(pattern, dtype=float)
    out = pattern.copy()
    for shift in range(1, radius + 1):
        out += np.roll(pattern, shift, axis=-1) + np.roll(pattern, -shift, axis=-1)
    return out


def auc(y_true: np.ndarray, score: np.ndarray, sample_weight: np.ndarray | None = None) -> float | None:
    """ROC AUC, or None when the holdout has a single class (AUC undefined)."""
    y_true = np.asarray(y_true)
    if len(np.unique(y_true)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true, score, sample_weight=sample_weight))


def ndcg_at_k(ranked: np.ndarray, relevant: sparse.csr_matrix, k: int = 10) -> float:
    """Mean NDCG@k with binary relevance, vectorised.

    ``ranked`` is (n_users, >=k) item indices best first; ``relevant`` an (n_users, n_items) sparse
    matrix whose non-zeros are the items each user really chose later. Users with no relevant item
    are left out (their NDCG is undefined).
    """
    relevant = sparse.csr_matrix(relevant)
    relevant.data = np.ones_like(relevant.data, dtype=float)
    n_relevant = np.asarray(relevant.sum(axis=1)).ravel()
    users = np.flatnonzero(n_relevant > 0)
    if len(users) == 0:
        return 0.0
    top = np.asarray(ranked)[users, :k]
    gains = np.asarray(relevant[users[:, None], top].todense()) if top.size else np.zeros((len(users), 0))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (gains * discounts[: top.shape[1]]).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_relevant[users], k).astype(int) - 1]
    return float(np.mean(dcg / ideal))


def auc_placements(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: for each positive, the share of negatives it outranks (ties count half);
    for each negative, the share of positives that outrank it. Their means both equal the ROC AUC.

    ``y_true`` must hold both classes. numpy only (two binary searches), O((m + n) log n).
    """
    y_true, score = np.asarray(y_true), np.asarray(score, dtype=float)
    pos, neg = score[y_true == 1], score[y_true == 0]
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    below = (np.searchsorted(neg_sorted, pos, "left") + np.searchsorted(neg_sorted, pos, "right")) / 2.0
    above = len(pos) - (np.searchsorted(pos_sorted, neg, "left") + np.searchsorted(pos_sorted, neg, "right")) / 2.0
    return below / len(neg), above / len(pos)


def paired_auc_difference(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> tuple[float, float]:
    """``AUC(a) - AUC(b)`` on the same rows and its standard error (DeLong, DeLong & Clarke-Pearson 1988).

    The variance of the difference uses the placements' covariance: two learners scored on the same rows
    err on the same hard cases, so the difference is much better determined than either AUC.
    """
    a10, a01 = auc_placements(y_true, score_a)
    b10, b01 = auc_placements(y_true, score_b)
    d10, d01 = a10 - b10, a01 - b01
    variance = d10.var(ddof=1) / len(d10) + d01.var(ddof=1) / len(d01)
    return float(d10.mean()), float(np.sqrt(max(variance, 0.0)))

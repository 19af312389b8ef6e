"""Merchant affinity: which merchants each customer is most drawn to.

Input is an implicit-feedback matrix (customers x merchants) of time-decayed interaction
weights (``optimizer.features.customer_merchant_weights``: conversions weigh most, then clicks,
views and opens; each event's weight halves every ``half_life_days``).

Score of merchant m for customer u (all terms are shares, so they add up sensibly):

    raw(u, m) = own(u, m) + NEIGHBOUR_WEIGHT * sum_j own(u, j) * sim(j, m) + POPULARITY_WEIGHT * pop(m)

- ``own``: the customer's row normalised to sum 1 (their own history);
- ``sim``: item-item cosine similarity between merchants over customers, keeping the top
  ``NEIGHBOURS`` per merchant (customers who like j also like m), which generalises beyond what
  the customer already bought;
- ``pop``: merchant popularity share, the prior that ranks merchants for customers with no history.

The affinity score in [0, 1] is ``raw / (raw + scale)`` with ``scale`` the median top raw score
in training: a typical customer's favourite merchant scores about 0.5, a strong habit near 1.

This is the sklearn/numpy route the issue allows instead of ``implicit``: it needs no compiled
extra, runs in sparse matrix products, and its NDCG is measured against a popularity baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from optimizer.ml.metrics import ndcg_at_k

NEIGHBOURS = 50
NEIGHBOUR_WEIGHT = 0.3
POPULARITY_WEIGHT = 0.02
TOP_K = 10
BLOCK_CELLS = 8_000_000  # customers x merchants scored per dense block (64 MB of float64)


def _row_normalise(m: sparse.csr_matrix) -> sparse.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=float), where=sums > 0)
    return sparse.diags(inv) @ m


def item_neighbours(weights: sparse.csr_matrix, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours per merchant: (indices, similarities), both (n_items, k)."""
    x = sparse.csc_matrix(weights, dtype=np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    xn = x @ sparse.diags(inv)
    sim = (xn.T @ xn).toarray()
    np.fill_diagonal(sim, 0.0)
    k = min(k, max(sim.shape[0] - 1, 1))
    # A block of merchants at a time: sorting all rows at once held two more (merchants x merchants) arrays
    # (0.4 GB at 5,000 merchants) on top of ``sim``.
    rows = max(1, BLOCK_CELLS // max(sim.shape[1], 1))
    idx = np.concatenate([np.argsort(-sim[i:i + rows], axis=1, kind="stable")[:, :k]
                          for i in range(0, sim.shape[0], rows)]) if sim.shape[0] else np.zeros((0, k), dtype=np.int64)
    return idx.astype(np.int32), np.take_along_axis(sim, idx, axis=1).astype(np.float32)


def _similarity_matrix(artifact: dict[str, Any]) -> sparse.csr_matrix:
    idx, sims = artifact["neighbour_index"], artifact["neighbour_similarity"]
    n = len(artifact["popularity"])
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    return sparse.csr_matrix((sims.ravel().astype(np.float64), (rows, idx.ravel())), shape=(n, n))


def raw_scores(artifact: dict[str, Any], weights: sparse.csr_matrix) -> np.ndarray:
    """Dense raw scores (n_customers, n_merchants) for one block of customers."""
    own = _row_normalise(sparse.csr_matrix(weights, dtype=np.float64))
    sim = _similarity_matrix(artifact)
    scores = (own + artifact["neighbour_weight"] * (own @ sim)).toarray()
    return scores + artifact["popularity_weight"] * artifact["popularity"][None, :]


def top_k(artifact: dict[str, Any], weights: sparse.csr_matrix, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` merchants per customer: (indices, affinity scores in [0, 1]) each (n, k).

    Sparse throughout: a merchant can only beat the popularity prior if the customer interacted
    with it or with one of its neighbours, so the candidates per customer are those merchants
    plus the ``k`` most popular ones; every other merchant scores ``popularity_weight * pop`` at
    most, below the ``k`` popular candidates. The result equals ranking every merchant (ties go
    to the lower merchant index), at a cost proportional to the candidates, not to customers x merchants.
    """
    weights = sparse.csr_matrix(weights, dtype=np.float64)
    n, n_items = weights.shape
    k = min(k, n_items)
    out_idx = np.zeros((n, k), dtype=np.int32)
    out_score = np.zeros((n, k), dtype=np.float64)
    if n == 0 or k == 0:
        return out_idx, out_score
    sim = _similarity_matrix(artifact)
    neighbours = artifact["neighbour_index"].shape[1] if artifact["neighbour_index"].size else 0
    # The tiny floor keeps a zero-popularity candidate as an explicit entry; it never changes an order.
    prior = artifact["popularity_weight"] * artifact["popularity"] + 1e-300
    popular = np.argsort(-artifact["popularity"], kind="stable")[:k]
    per_row = max(weights.nnz / n, 1.0) * (neighbours + 1) + k
    chunk = max(1, int(BLOCK_CELLS / per_row))
    for start in range(0, n, chunk):
        own = _row_normalise(weights[start : start + chunk])
        rows = own.shape[0]
        personal = (own + artifact["neighbour_weight"] * (own @ sim)).tocsr()
        candidates = sparse.csr_matrix(
            (np.ones(rows * k), (np.repeat(np.arange(rows), k), np.tile(popular, rows))), shape=(rows, n_items)
        )
        pattern = personal.copy()
        pattern.data = np.ones_like(pattern.data)
        union = (pattern + candidates).tocsr()
        union.data = np.ones_like(union.data)
        scores = (personal + union.multiply(prior[None, :])).tocsr()
        scores.sum_duplicates()
        counts = np.diff(scores.indptr)
        row_of = np.repeat(np.arange(rows), counts)
        order = np.lexsort((scores.indices, -scores.data, row_of))  # by row, best first, ties by merchant index
        rank = np.arange(len(order)) - np.repeat(scores.indptr[:-1], counts)
        keep = order[rank < k]
        idx = scores.indices[keep].reshape(rows, k)
        raw = scores.data[keep].reshape(rows, k)
        out_idx[start : start + rows] = idx
        out_score[start : start + rows] = raw / (raw + artifact["scale"])
    return out_idx, out_score


def top_k_dense(artifact: dict[str, Any], weights: sparse.csr_matrix, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Reference implementation of ``top_k``: score every merchant densely, in blocks (used by the tests)."""
    weights = sparse.csr_matrix(weights)
    n, n_items = weights.shape
    k = min(k, n_items)
    out_idx = np.zeros((n, k), dtype=np.int32)
    out_score = np.zeros((n, k), dtype=np.float64)
    chunk = max(1, BLOCK_CELLS // max(n_items, 1))
    for start in range(0, n, chunk):
        block = raw_scores(artifact, weights[start : start + chunk])
        order = np.lexsort((np.broadcast_to(np.arange(n_items), block.shape), -block), axis=1)[:, :k]
        raw = np.take_along_axis(block, order, axis=1)
        out_idx[start : start + len(block)] = order
        out_score[start : start + len(block)] = raw / (raw + artifact["scale"])
    return out_idx, out_score


def popularity_ranking(popularity: np.ndarray, n_customers: int, k: int = TOP_K) -> np.ndarray:
    order = np.argsort(-popularity, kind="stable")[:k]
    return np.tile(order, (n_customers, 1))


def fit(
    weights: sparse.csr_matrix,
    holdout_purchases: sparse.csr_matrix | None = None,
    *,
    neighbours: int = NEIGHBOURS,
    neighbour_weight: float = NEIGHBOUR_WEIGHT,
    popularity_weight: float = POPULARITY_WEIGHT,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Learn neighbours, popularity and the score scale from training ``weights`` (customers x merchants).

    ``holdout_purchases`` (same shape; later conversions) is used only for the metrics.
    """
    weights = sparse.csr_matrix(weights, dtype=np.float64)
    item_totals = np.asarray(weights.sum(axis=0)).ravel()
    popularity = item_totals / item_totals.sum() if item_totals.sum() > 0 else np.full(weights.shape[1], 1.0 / weights.shape[1])
    idx, sims = item_neighbours(weights, neighbours)
    artifact: dict[str, Any] = {
        "neighbour_index": idx,
        "neighbour_similarity": sims,
        "popularity": popularity.astype(np.float64),
        "neighbour_weight": float(neighbour_weight),
        "popularity_weight": float(popularity_weight),
        "scale": 1.0,
    }
    active = np.flatnonzero(np.diff(weights.indptr) > 0)
    sample = active[:: max(1, len(active) // 20_000)]
    if len(sample):
        # Dense scores of up to 20,000 customers x every merchant (0.8 GB at 5,000 merchants) a block at a time.
        rows = max(1, BLOCK_CELLS // max(weights.shape[1], 1))
        top_raw = np.concatenate([raw_scores(artifact, weights[sample[i:i + rows]]).max(axis=1)
                                  for i in range(0, len(sample), rows)])
        artifact["scale"] = float(np.median(top_raw))
    metrics: dict[str, Any] = {"train_customers": int(len(active)), "merchants": int(weights.shape[1])}
    if holdout_purchases is not None:
        metrics.update(evaluate(artifact, weights, holdout_purchases))
    return artifact, metrics


def evaluate(artifact: dict[str, Any], weights: sparse.csr_matrix, holdout_purchases: sparse.csr_matrix, k: int = TOP_K) -> dict[str, Any]:
    """NDCG@k on later purchases, next to the popularity baseline on the same customers."""
    holdout_purchases = sparse.csr_matrix(holdout_purchases)
    users = np.flatnonzero(np.diff(holdout_purchases.indptr) > 0)
    if len(users) == 0:
        return {"ndcg_at_10": None, "popularity_ndcg_at_10": None, "holdout_customers": 0}
    ranked, _ = top_k(artifact, sparse.csr_matrix(weights)[users], k)
    relevant = holdout_purchases[users]
    model = ndcg_at_k(ranked, relevant, k)
    baseline = ndcg_at_k(popularity_ranking(artifact["popularity"], len(users), k), relevant, k)
    return {
        "ndcg_at_10": model,
        "popularity_ndcg_at_10": baseline,
        "ndcg_ratio_vs_popularity": model / baseline if baseline > 0 else None,
        "holdout_customers": int(len(users)),
    }

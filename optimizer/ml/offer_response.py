"""Offer response: conversion probability by segment and offer value, and expected profit.

Training data is aggregated, one row per (segment, offer value): how many customers of the
segment were sent the offer and how many of those sends converted (``optimizer.features.offer_exposures``).

The model is a **Beta posterior per (segment, offer value)**: a weak prior of ``PRIOR_SENDS``
pseudo-sends at the segment's pooled conversion rate, updated with the sends and conversions of that
offer. Its mean is the predicted conversion rate (interpolated on the logit scale between offer
values); its draws are what ``optimizer.recommend`` uses for the probability that one offer beats
another. The offer that maximises expected profit per segment is the argmax of ``expected_profit``
at the posterior means, over the offers actually available.

Why not a smooth curve: the first version fitted a quadratic logit per segment (kept when BIC
preferred it, i.e. on thin data). A quadratic in the logit cannot bend into the plateau of a
saturating response, so on thin data it was convex and extrapolated a steep rise at the top of the
ladder, making the largest discount look best (docs/optimizer-recommendations.md, "Diagnosis").
With six offers, one rate per offer is few parameters and cannot be wrong in shape.

Conversion amounts are what the customer paid, after the discount, so the undiscounted order
value of a conversion under a percent offer ``v`` is ``amount / (1 - v / 100)``. ``expected_profit``
is the one profit formula both this module's quality report and the recommendation service use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from optimizer.ml.metrics import auc

# scikit-learn is imported inside the functions that use it: Django's start-up imports this module (the job
# registry), and loading it there cost every process ~0.6 s (tests/platform/test_startup.py).

PERCENT = "percent"
AMOUNT = "amount"
# Prior of each (segment, offer) rate, in pseudo-sends at the segment's pooled rate: it only keeps a
# never-converted cell finite (the demo's cells hold thousands of sends).
PRIOR_SENDS = 1.0


def beta_posterior(
    sends: np.ndarray, conversions: np.ndarray, prior_rates: np.ndarray | None = None, prior_sends: float | np.ndarray = PRIOR_SENDS
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of each offer's conversion rate: Beta(ref x prior, (1 - ref) x prior) updated with the counts.

    ``ref`` is ``prior_rates`` when given, else the pooled rate of all the offers in ``sends``.
    """
    sends = np.asarray(sends, dtype=float)
    conversions = np.asarray(conversions, dtype=float)
    pooled = (conversions.sum() + 0.5) / (sends.sum() + 1.0)
    ref = np.clip(np.full(len(sends), pooled) if prior_rates is None else np.asarray(prior_rates, dtype=float), 1e-4, 1 - 1e-4)
    strength = np.broadcast_to(np.asarray(prior_sends, dtype=float), ref.shape)
    return ref * strength + conversions, (1 - ref) * strength + (sends - conversions)


def discount_amount(order_value: float | np.ndarray, offer_value: float | np.ndarray, offer_kind: str = PERCENT) -> np.ndarray:
    """Money given away on one order: a percentage of the order, or a fixed amount (never more than the order)."""
    order_value = np.asarray(order_value, dtype=float)
    offer_value = np.asarray(offer_value, dtype=float)
    if offer_kind == PERCENT:
        return order_value * offer_value / 100.0
    return np.minimum(offer_value, order_value)


def expected_profit(
    conversion_probability: float | np.ndarray,
    order_value: float | np.ndarray,
    offer_value: float | np.ndarray,
    offer_kind: str = PERCENT,
    cost_per_send: float = 0.0,
) -> np.ndarray:
    """Expected profit of one send: P(convert) x (order value - discount) - cost of the send.

    The issue's formula "conversion probability x (order value - discount) - cost".
    Vectorised over any of the array arguments.
    """
    p = np.asarray(conversion_probability, dtype=float)
    margin = np.asarray(order_value, dtype=float) - discount_amount(order_value, offer_value, offer_kind)
    return p * margin - cost_per_send


def _weighted_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Expand aggregated (sends, conversions) into positive and negative rows with weights."""
    pos = frame.assign(_y=1, _w=frame["conversions"].astype(float))
    neg = frame.assign(_y=0, _w=(frame["sends"] - frame["conversions"]).clip(lower=0).astype(float))
    rows = pd.concat([pos, neg], ignore_index=True)
    rows = rows[rows["_w"] > 0]
    return rows, rows["_y"].to_numpy(int), rows["_w"].to_numpy(float)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def counts_grid(frame: pd.DataFrame, segments: list[str], offer_values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sends and conversions per (segment, offer value), each (n_segments, n_offers)."""
    grid = frame.groupby(["segment", "offer_value"])[["sends", "conversions"]].sum()
    full = pd.MultiIndex.from_product([segments, offer_values], names=["segment", "offer_value"])
    grid = grid.reindex(full, fill_value=0)
    shape = (len(segments), len(offer_values))
    return grid["sends"].to_numpy(float).reshape(shape), grid["conversions"].to_numpy(float).reshape(shape)


def fit(train: pd.DataFrame, holdout: pd.DataFrame | None = None, *, random_state: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """``train``/``holdout``: columns segment, offer_value, sends, conversions, revenue.

    Returns ``(artifact, metrics)``; the holdout is only used for the metrics. ``random_state`` is
    accepted for the training service's uniform call (the posterior is exact, nothing is random).
    """
    train = train[train["sends"] > 0]
    segments = sorted(train["segment"].astype(str).unique())
    if not segments:
        raise ValueError("no offer exposures to learn from")
    offer_values = sorted(float(v) for v in train["offer_value"].unique())
    sends, conversions = counts_grid(train, segments, offer_values)
    conversions = np.minimum(conversions, sends)
    if conversions.sum() == 0 or conversions.sum() == sends.sum():
        raise ValueError("offer exposures have a single outcome: need conversions and non-conversions")
    table = np.empty_like(sends)
    for i in range(len(segments)):
        alpha, beta = beta_posterior(sends[i], conversions[i])
        table[i] = alpha / (alpha + beta)

    discount = np.where(train["offer_kind"].eq(AMOUNT), 0.0, train["offer_value"].to_numpy(float) / 100.0) if "offer_kind" in train else train["offer_value"].to_numpy(float) / 100.0
    gross = train["revenue"].to_numpy(float) / np.maximum(1.0 - discount, 1e-6)
    by_segment = train.assign(gross=gross).groupby("segment")[["conversions", "gross", "sends"]].sum()
    order_value = {
        s: float(by_segment.loc[s, "gross"] / by_segment.loc[s, "conversions"]) if by_segment.loc[s, "conversions"] > 0 else 0.0
        for s in segments
    }
    artifact = {
        "curve": "beta_posterior",
        "table": table,  # posterior mean per (segment, offer value)
        "segments": segments,
        "order_value": order_value,
        "offer_values": offer_values,
        "prior_sends": PRIOR_SENDS,
        "sends_by_segment": {s: int(by_segment.loc[s, "sends"]) for s in segments},
        # Training counts per (segment, offer value): the posterior itself (see ``beta_posterior``).
        "sends": sends,
        "conversions": conversions,
    }
    metrics: dict[str, Any] = {"algorithm": "offer_response_beta_posterior", "train_sends": int(train["sends"].sum())}
    if holdout is not None and len(holdout):
        metrics.update(evaluate(artifact, holdout))
    return artifact, metrics


def predict_conversion(model: dict[str, Any], segment: str, offer_values: list[float] | np.ndarray) -> np.ndarray:
    """P(convert per send | segment, offer value) for each of ``offer_values``.

    A segment the model never saw gets the mean prediction over the known segments.
    """
    values = np.asarray(offer_values, dtype=float).reshape(-1)
    if segment not in model["segments"]:
        return np.mean([predict_conversion(model, s, values) for s in model["segments"]], axis=0)
    code = model["segments"].index(segment)
    known = np.asarray(model["offer_values"], dtype=float)
    row = _logit(np.asarray(model["table"][code], dtype=float))
    logits = np.interp(values, known, row) if len(known) > 1 else np.full(len(values), row[0])
    return 1.0 / (1.0 + np.exp(-logits))


def best_offer(
    model: dict[str, Any],
    segment: str,
    offer_values: list[float] | np.ndarray | None = None,
    *,
    order_value: float | None = None,
    offer_kind: str = PERCENT,
    cost_per_send: float = 0.0,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The offer value with the largest expected profit for ``segment``: (value, probabilities, profits)."""
    values = np.asarray(offer_values if offer_values is not None else model["offer_values"], dtype=float)
    if order_value is None:
        known = model["order_value"]
        order_value = known.get(segment, float(np.mean(list(known.values()))))
    p = predict_conversion(model, segment, values)
    profit = expected_profit(p, order_value, values, offer_kind, cost_per_send)
    return float(values[int(np.argmax(profit))]), p, profit


def evaluate(artifact: dict[str, Any], holdout: pd.DataFrame) -> dict[str, Any]:
    from sklearn.metrics import log_loss
    holdout = holdout[(holdout["sends"] > 0) & holdout["segment"].isin(artifact["segments"])]
    rows, y, w = _weighted_rows(holdout)
    if len(rows) == 0:
        return {"holdout_log_loss": None, "roc_auc": None, "holdout_sends": 0}
    p = np.concatenate([predict_conversion(artifact, s, g["offer_value"].to_numpy(float)) for s, g in rows.groupby("segment", sort=False)])
    order = np.concatenate([g.index.to_numpy() for _, g in rows.groupby("segment", sort=False)])
    y_ord, w_ord = rows.loc[order, "_y"].to_numpy(int), rows.loc[order, "_w"].to_numpy(float)
    base = np.full(len(p), np.average(y_ord, weights=w_ord))
    return {
        "holdout_log_loss": float(log_loss(y_ord, np.clip(p, 1e-9, 1 - 1e-9), sample_weight=w_ord, labels=[0, 1])),
        "base_rate_log_loss": float(log_loss(y_ord, base, sample_weight=w_ord, labels=[0, 1])),
        "roc_auc": auc(y_ord, p, sample_weight=w_ord),
        "base_rate": float(np.average(y_ord, weights=w_ord)),
        "holdout_sends": int(holdout["sends"].sum()),
    }

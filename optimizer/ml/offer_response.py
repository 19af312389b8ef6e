"""Offer response: conversion probability by segment and offer value, and expected profit.

Training data is aggregated, one row per (segment, offer value): how many customers of the
segment were sent the offer and how many of those sends converted (``optimizer.features.offer_exposures``).
The model is a binomial logistic regression, fitted on the aggregated rows with sample weights
(so 10 million events cost no more than a few hundred rows), with one intercept and one
quadratic curve in the offer value per segment:

    logit P(convert | segment s, offer v) = a_s + b_s * v + c_s * v^2      (v scaled to [0, 1])

The quadratic lets each segment's response rise and saturate at its own pace; the offer that
maximises expected profit per segment is the argmax of ``expected_profit`` over the offers
actually available. ``expected_profit`` is the one profit formula both this module's quality
report and the recommendation service use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import MinMaxScaler

from optimizer.ml.metrics import auc

PERCENT = "percent"
AMOUNT = "amount"
# Weak L2 penalty (inverse strength): enough to keep sparse segments finite, little bias elsewhere.
REGULARISATION_C = 100.0


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


def _design(segment_codes: np.ndarray, v_scaled: np.ndarray, n_segments: int) -> np.ndarray:
    onehot = np.eye(n_segments)[segment_codes]
    return np.hstack([onehot, onehot * v_scaled[:, None], onehot * (v_scaled**2)[:, None]])


def _weighted_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Expand aggregated (sends, conversions) into positive and negative rows with weights."""
    pos = frame.assign(_y=1, _w=frame["conversions"].astype(float))
    neg = frame.assign(_y=0, _w=(frame["sends"] - frame["conversions"]).clip(lower=0).astype(float))
    rows = pd.concat([pos, neg], ignore_index=True)
    rows = rows[rows["_w"] > 0]
    return rows, rows["_y"].to_numpy(int), rows["_w"].to_numpy(float)


def fit(train: pd.DataFrame, holdout: pd.DataFrame | None = None, *, random_state: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """``train``/``holdout``: columns segment, offer_value, sends, conversions, revenue.

    Returns ``(artifact, metrics)``; the holdout is only used for the metrics.
    """
    train = train[train["sends"] > 0]
    segments = sorted(train["segment"].astype(str).unique())
    if not segments:
        raise ValueError("no offer exposures to learn from")
    codes = {s: i for i, s in enumerate(segments)}
    scaler = MinMaxScaler().fit(train[["offer_value"]].to_numpy(float))
    rows, y, w = _weighted_rows(train)
    if len(np.unique(y)) < 2:
        raise ValueError("offer exposures have a single outcome: need conversions and non-conversions")
    x = _design(rows["segment"].map(codes).to_numpy(int), scaler.transform(rows[["offer_value"]].to_numpy(float)).ravel(), len(segments))
    estimator = LogisticRegression(C=REGULARISATION_C, fit_intercept=False, max_iter=2000, random_state=random_state)
    estimator.fit(x, y, sample_weight=w)

    by_segment = train.groupby("segment")[["conversions", "revenue", "sends"]].sum()
    order_value = {s: float(by_segment.loc[s, "revenue"] / by_segment.loc[s, "conversions"]) if by_segment.loc[s, "conversions"] > 0 else 0.0 for s in segments}
    artifact = {
        "estimator": estimator,
        "scaler": scaler,
        "segments": segments,
        "order_value": order_value,
        "offer_values": sorted(float(v) for v in train["offer_value"].unique()),
        "sends_by_segment": {s: int(by_segment.loc[s, "sends"]) for s in segments},
    }
    metrics: dict[str, Any] = {"algorithm": "logistic_regression_quadratic_per_segment", "train_sends": int(train["sends"].sum())}
    if holdout is not None and len(holdout):
        metrics.update(evaluate(artifact, holdout))
    return artifact, metrics


def predict_conversion(model: dict[str, Any], segment: str, offer_values: list[float] | np.ndarray) -> np.ndarray:
    """P(convert | segment, offer value) for each of ``offer_values``.

    A segment the model never saw gets the mean prediction over the known segments.
    """
    values = np.asarray(offer_values, dtype=float).reshape(-1)
    v = model["scaler"].transform(values[:, None]).ravel()
    n = len(model["segments"])
    if segment in model["segments"]:
        codes = np.full(len(values), model["segments"].index(segment))
        return model["estimator"].predict_proba(_design(codes, v, n))[:, 1]
    per_segment = [model["estimator"].predict_proba(_design(np.full(len(values), c), v, n))[:, 1] for c in range(n)]
    return np.mean(per_segment, axis=0)


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

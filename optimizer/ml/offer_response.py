"""Offer response: conversion probability by segment and offer value, and expected profit.

Training data is aggregated, one row per (segment, offer value): how many customers of the
segment were sent the offer and how many of those sends converted (``optimizer.features.offer_exposures``).
The model is a binomial logistic regression, fitted on the aggregated rows with sample weights
(so 10 million events cost no more than a few hundred rows), with one intercept and one
quadratic curve in the offer value per segment:

    logit P(convert | segment s, offer v) = a_s + b_s * v + c_s * v^2      (v scaled to [0, 1])

The quadratic lets each segment's response rise and saturate at its own pace. A second
candidate is the saturated model, one rate per (segment, offer) (a Beta(1, 1)-smoothed table,
interpolated on the logit scale between offer values). The fit keeps whichever has the lower BIC
on the training rows (the saturated model wins when data is plentiful and the response curve is
not quadratic; the quadratic when data is thin). The offer that maximises expected profit per
segment is the argmax of ``expected_profit`` over the offers actually available.

Conversion amounts are what the customer paid, after the discount, so the undiscounted order
value of a conversion under a percent offer ``v`` is ``amount / (1 - v / 100)``. ``expected_profit`` is the one profit formula both this module's quality
report and the recommendation service use.
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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def _loglik(y: np.ndarray, w: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(np.sum(w * (y * np.log(p) + (1 - y) * np.log(1 - p))))


def counts_grid(frame: pd.DataFrame, segments: list[str], offer_values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sends and conversions per (segment, offer value), each (n_segments, n_offers)."""
    grid = frame.groupby(["segment", "offer_value"])[["sends", "conversions"]].sum()
    full = pd.MultiIndex.from_product([segments, offer_values], names=["segment", "offer_value"])
    grid = grid.reindex(full, fill_value=0)
    shape = (len(segments), len(offer_values))
    return grid["sends"].to_numpy(float).reshape(shape), grid["conversions"].to_numpy(float).reshape(shape)


def _fit_table(train: pd.DataFrame, segments: list[str], offer_values: list[float]) -> np.ndarray:
    """Beta(1, 1)-smoothed conversion rate per (segment, offer value): (n_segments, n_offers)."""
    sends, conversions = counts_grid(train, segments, offer_values)
    return (conversions + 1.0) / (sends + 2.0)


def _fit_isotonic(train: pd.DataFrame, segments: list[str], offer_values: list[float]) -> tuple[np.ndarray, int]:
    """Per segment, the send-weighted isotonic (non-decreasing in the discount) fit of the smoothed rates.

    Returns the (n_segments, n_offers) rates and the degrees of freedom (number of distinct blocks).
    """
    from sklearn.isotonic import IsotonicRegression
    sends, conversions = counts_grid(train, segments, offer_values)
    rates = (conversions + 1.0) / (sends + 2.0)
    out = np.empty_like(rates)
    df = 0
    for i in range(len(segments)):
        iso = IsotonicRegression(increasing=True).fit(offer_values, rates[i], sample_weight=sends[i] + 2.0)
        out[i] = iso.predict(offer_values)
        df += len(np.unique(np.round(out[i], 12)))
    return out, df


def fit(train: pd.DataFrame, holdout: pd.DataFrame | None = None, *, random_state: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """``train``/``holdout``: columns segment, offer_value, sends, conversions, revenue.

    Returns ``(artifact, metrics)``; the holdout is only used for the metrics.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import MinMaxScaler
    train = train[train["sends"] > 0]
    segments = sorted(train["segment"].astype(str).unique())
    if not segments:
        raise ValueError("no offer exposures to learn from")
    codes = {s: i for i, s in enumerate(segments)}
    offer_values = sorted(float(v) for v in train["offer_value"].unique())
    scaler = MinMaxScaler().fit(train[["offer_value"]].to_numpy(float))
    rows, y, w = _weighted_rows(train)
    if len(np.unique(y)) < 2:
        raise ValueError("offer exposures have a single outcome: need conversions and non-conversions")
    x = _design(rows["segment"].map(codes).to_numpy(int), scaler.transform(rows[["offer_value"]].to_numpy(float)).ravel(), len(segments))
    estimator = LogisticRegression(C=REGULARISATION_C, fit_intercept=False, max_iter=5000, random_state=random_state)
    estimator.fit(x, y, sample_weight=w)
    table = _fit_table(train, segments, offer_values)
    isotonic, isotonic_df = _fit_isotonic(train, segments, offer_values)

    # Choose the curve by BIC on the training rows (never on the holdout).
    n_obs = float(w.sum())
    quad_p = estimator.predict_proba(x)[:, 1]
    cell = rows["segment"].map(codes).to_numpy(int), np.searchsorted(offer_values, rows["offer_value"].to_numpy(float))
    bic = {
        "quadratic": -2 * _loglik(y, w, quad_p) + 3 * len(segments) * np.log(n_obs),
        "table": -2 * _loglik(y, w, table[cell]) + len(segments) * len(offer_values) * np.log(n_obs),
        "isotonic": -2 * _loglik(y, w, isotonic[cell]) + isotonic_df * np.log(n_obs),
    }
    curve = min(sorted(bic), key=lambda k: bic[k])

    discount = np.where(train["offer_kind"].eq(AMOUNT), 0.0, train["offer_value"].to_numpy(float) / 100.0) if "offer_kind" in train else train["offer_value"].to_numpy(float) / 100.0
    gross = train["revenue"].to_numpy(float) / np.maximum(1.0 - discount, 1e-6)
    by_segment = train.assign(gross=gross).groupby("segment")[["conversions", "gross", "sends"]].sum()
    order_value = {
        s: float(by_segment.loc[s, "gross"] / by_segment.loc[s, "conversions"]) if by_segment.loc[s, "conversions"] > 0 else 0.0
        for s in segments
    }
    artifact = {
        "curve": curve,
        "estimator": estimator,
        "scaler": scaler,
        "table": isotonic if curve == "isotonic" else table,
        "segments": segments,
        "order_value": order_value,
        "offer_values": offer_values,
        "sends_by_segment": {s: int(by_segment.loc[s, "sends"]) for s in segments},
        # Training counts per (segment, offer value), for "enough data" rules and confidence.
        "sends": counts_grid(train, segments, offer_values)[0],
        "conversions": counts_grid(train, segments, offer_values)[1],
    }
    metrics: dict[str, Any] = {
        "algorithm": f"offer_response_{curve}",
        "bic": {k: round(float(v), 2) for k, v in bic.items()},
        "train_sends": int(train["sends"].sum()),
    }
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
    if model.get("curve") in ("table", "isotonic"):
        known = np.asarray(model["offer_values"], dtype=float)
        row = _logit(np.asarray(model["table"][code], dtype=float))
        logits = np.interp(values, known, row) if len(known) > 1 else np.full(len(values), row[0])
        return 1.0 / (1.0 + np.exp(-logits))
    v = model["scaler"].transform(values[:, None]).ravel()
    codes = np.full(len(values), code)
    return model["estimator"].predict_proba(_design(codes, v, len(model["segments"])))[:, 1]


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


def min_conversions_per_offer(model: dict[str, Any], segment: str) -> int:
    """The fewest training conversions at any offer level of ``segment`` (0 for an unknown segment)."""
    if segment not in model["segments"]:
        return 0
    return int(np.min(model["conversions"][model["segments"].index(segment)]))


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

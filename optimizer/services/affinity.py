"""Merchant-affinity job (every 6 hours): the top ``TOP_K`` merchants of every customer.

The customer x merchant matrix of time-decayed interactions (all history, decayed to now) is
scored by the active affinity model (``optimizer.ml.affinity``); the best ``TOP_K`` merchants
per customer are written to ``user_merchant_affinity`` with:

- ``affinity_score`` in [0, 1] (the model's squashed score) and ``rank`` (1 = best);
- ``engagement_level``: "high" with 2+ conversions or 10+ interactions at that merchant,
  "medium" with 3+ interactions, else "low" (including merchants suggested by neighbours or
  popularity, with which the customer has not interacted yet);
- ``avg_purchase_value``: mean conversion amount at that merchant (0 when none);
- ``confidence``: ``n / (n + 10)`` for the customer's ``n`` interactions overall, halved for a
  merchant the customer has not interacted with (an inference, not an observed habit).

Customers with no interactions at all get no rows: the read side (``optimizer.selectors.affinity_answer``)
answers them with the popular merchants, ``method: "fallback"``. The table is replaced in one
transaction (a customer who lost its history loses its stale rows), so the job is idempotent. With
``JOB_FANOUT_HELPERS`` the customers are scored in parts by idle workers and swapped in together
(``optimizer.services.staging``): the same rows.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from campaigns.models import Merchant
from marketing_ai import fanout
from marketing_ai.jobs import NullProgress, Progress
from optimizer import features, registry
from optimizer.ml import affinity
from optimizer.models import AffinityStage, MLModel, ModelType, UserMerchantAffinity
from optimizer.services import bulk, staging
from optimizer.services.training import interaction_matrix, load_active

log = logging.getLogger(__name__)

TOP_K = affinity.TOP_K
HIGH_CONVERSIONS, HIGH_INTERACTIONS, MEDIUM_INTERACTIONS = 2, 10, 3
CONFIDENCE_HALF = 10.0
PART_WORKER = "merchant_affinity.part"  # the fan-out part worker's name (optimizer/apps.py registers it)


# Below this share of current interaction weight on merchants the champion knows, the champion is
# stale (e.g. the merchants were replaced since it was trained): fit on current history instead.
MIN_KNOWN_MERCHANT_SHARE = 0.5


def fit_now(weights, merchant_pks: np.ndarray) -> dict:
    """An affinity model fitted on the current interaction matrix (no usable champion)."""
    artifact, _ = affinity.fit(weights)
    artifact["merchant_pks"] = merchant_pks
    return artifact


def known_merchant_share(inter: pd.DataFrame, merchant_pks: np.ndarray) -> float:
    """Share of the interaction weight that falls on merchants in ``merchant_pks`` (1.0 with no interactions)."""
    total = float(inter["weight"].sum()) if len(inter) else 0.0
    if total <= 0:
        return 1.0
    known = np.isin(inter["merchant_id"].to_numpy(), merchant_pks)
    return float(inter["weight"].to_numpy()[known].sum()) / total


def engagement_levels(interactions: np.ndarray, conversions: np.ndarray) -> np.ndarray:
    E = UserMerchantAffinity.Engagement
    return np.where(
        (conversions >= HIGH_CONVERSIONS) | (interactions >= HIGH_INTERACTIONS), E.HIGH,
        np.where(interactions >= MEDIUM_INTERACTIONS, E.MEDIUM, E.LOW),
    )


def compute(now=None, *, artifact: dict | None = None) -> pd.DataFrame:
    """The rows the job writes, as a frame (customer pk, merchant pk, rank, score, level, value, confidence).

    ``artifact``: an affinity model to use instead of the champion (the quality report passes the version it evaluates).
    """
    now = now or timezone.now()
    customer_pks = features.customer_pks()
    loaded = registry.Loaded(record=None, artifact=artifact) if artifact is not None else load_active(ModelType.AFFINITY)
    merchant_pks = (
        np.asarray(loaded.artifact["merchant_pks"], dtype=np.int64) if loaded is not None
        else np.array(sorted(Merchant.objects.values_list("id", flat=True)), dtype=np.int64)
    )
    if loaded is None:
        log.warning("merchant_affinity: no trained affinity model yet; fitting one on the current history")
    half_life = loaded.artifact.get("half_life_days", features.HALF_LIFE_DAYS) if loaded is not None else features.HALF_LIFE_DAYS
    inter = features.customer_merchant_interactions(None, now, half_life_days=half_life)
    if loaded is not None and artifact is None and known_merchant_share(inter, merchant_pks) < MIN_KNOWN_MERCHANT_SHARE:
        log.warning("merchant_affinity: the active affinity model knows too few of today's merchants; "
                    "fitting one on the current history until the next retraining")
        loaded = None
        merchant_pks = np.array(sorted(Merchant.objects.values_list("id", flat=True)), dtype=np.int64)
    weights = interaction_matrix(inter, customer_pks, merchant_pks, "weight")
    artifact = loaded.artifact if loaded is not None else fit_now(weights, merchant_pks)
    return rows_for(inter, customer_pks, weights, artifact, merchant_pks, now)


def rows_for(inter: pd.DataFrame, customer_pks: np.ndarray, weights, artifact: dict, merchant_pks: np.ndarray,
             now) -> pd.DataFrame:
    """The rows of ``customer_pks`` (their ``inter``-actions and ``weights`` matrix, rows in that order).

    Each customer's rows depend on its own interactions only: a fan-out part scores its customers alone
    and gets their rows of the whole run.
    """
    # Rows only for customers with interactions: the rest would all get the same popularity list,
    # which the read side serves as its fallback (about half the rows at 1M customers, and half the write).
    with_history = np.diff(weights.indptr) > 0
    customer_pks, weights = customer_pks[with_history], weights[with_history]
    if len(merchant_pks) == 0 or len(customer_pks) == 0:
        return pd.DataFrame()
    top_idx, top_score = affinity.top_k(artifact, weights, TOP_K)
    k = top_idx.shape[1]
    rows = pd.DataFrame(
        {
            "customer_id": np.repeat(customer_pks, k),
            "merchant_id": merchant_pks[top_idx.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(customer_pks)),
            "affinity_score": np.round(top_score.ravel(), 4),
        }
    )
    stats = inter.set_index(["customer_id", "merchant_id"])[["interactions", "conversions", "revenue"]]
    rows = rows.join(stats, on=["customer_id", "merchant_id"])
    rows[["interactions", "conversions", "revenue"]] = rows[["interactions", "conversions", "revenue"]].fillna(0)
    per_customer = np.asarray(inter.groupby("customer_id")["interactions"].sum().reindex(customer_pks).fillna(0))
    n = np.repeat(per_customer, k)
    direct = rows["interactions"].to_numpy() > 0
    rows["confidence"] = np.round(n / (n + CONFIDENCE_HALF) * np.where(direct, 1.0, 0.5), 4)
    rows["engagement_level"] = engagement_levels(rows["interactions"].to_numpy(), rows["conversions"].to_numpy())
    avg = np.where(rows["conversions"] > 0, rows["revenue"] / rows["conversions"].clip(lower=1), 0.0)
    # Money as exact two-decimal text (what the DecimalField stores), formatted in C rather than Decimal objects.
    rows["avg_purchase_value"] = np.char.mod("%.2f", np.round(avg, 2))
    rows["last_updated"] = pd.Timestamp(now)
    return rows.drop(columns=["interactions", "conversions", "revenue"])


def stage_part(spec: dict) -> int:
    """One fan-out part (``optimizer.services.staging``): the customers ``lo..hi`` scored by the run's model version."""
    now, pk_range = staging.spec_moment(spec), (int(spec["lo"]), int(spec["hi"]))
    artifact = registry.load_cached(staging.spec_model(spec))
    merchant_pks = np.asarray(artifact["merchant_pks"], dtype=np.int64)
    half_life = artifact.get("half_life_days", features.HALF_LIFE_DAYS)
    customer_pks = features.customers(pk_range).index.to_numpy()
    inter = features.customer_merchant_interactions(None, now, half_life_days=half_life, pk_range=pk_range)
    weights = interaction_matrix(inter, customer_pks, merchant_pks, "weight")
    return staging.stage(AffinityStage, spec, rows_for(inter, customer_pks, weights, artifact, merchant_pks, now))


def compute_in_parts(*, model: MLModel, now, helpers: int, progress: Progress | None = None,
                     parts: int | None = None) -> int:
    """The job's fanned-out run: parts by customer range, staged, swapped into ``user_merchant_affinity`` in one transaction."""
    return staging.run_in_parts(
        part_worker=PART_WORKER, target=UserMerchantAffinity, stage_model=AffinityStage,
        order_by=["customer_id", "rank"], model=model, now=now, progress=progress or NullProgress(),
        helpers=helpers, parts=parts,
    )


def fan_out_model(now) -> MLModel | None:
    """The champion a fanned-out run scores with, or None when the run must be one process: no champion yet,
    or one that knows too few of today's merchants (both fit a model on every customer's interactions).

    The champion's knowledge is judged on per-merchant totals (a small grouped query) instead of every
    customer's interactions, which only the parts read.
    """
    loaded = load_active(ModelType.AFFINITY)
    if loaded is None or loaded.record is None:
        return None
    half_life = loaded.artifact.get("half_life_days", features.HALF_LIFE_DAYS)
    totals = features.merchant_interaction_weights(now, half_life_days=half_life)
    merchant_pks = np.asarray(loaded.artifact["merchant_pks"], dtype=np.int64)
    if known_merchant_share(totals, merchant_pks) < MIN_KNOWN_MERCHANT_SHARE:
        return None
    return loaded.record


def update_merchant_affinity(*, progress: Progress | None = None) -> int:
    """Top merchants per customer with affinity score, engagement level, average purchase value and confidence."""
    progress = progress or NullProgress()
    helpers = fanout.helpers_configured()
    if helpers:
        now = timezone.now()
        model = fan_out_model(now)
        if model is not None:
            return compute_in_parts(model=model, now=now, helpers=helpers, progress=progress)
        log.info("merchant_affinity: no usable champion; fitting on all customers' history in one process")
    rows = compute()
    progress.total(len(rows))
    with transaction.atomic():
        UserMerchantAffinity.objects.all().delete()
        if len(rows):
            bulk.insert(UserMerchantAffinity, rows, progress=progress)
    return len(rows)

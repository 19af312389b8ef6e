"""Weekly retraining of the five models, and the read side the other services use (``load_active``).

Each ``prepare_*`` function turns the database into the arrays/frames its model needs for one
time-based split (``optimizer.features``); each ``train_*`` fits the pure model in
``optimizer.ml`` and registers the result (``optimizer.registry``), which decides promotion.
``prepare_*`` and the bare fits are separate so ``bench/optimizer.py`` can time our data
handling against the library call on the same matrices.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from scipy import sparse

from campaigns.models import Merchant
from marketing_ai.jobs import NullProgress, Progress
from optimizer import features, registry
from optimizer.ml import affinity, conversion, engagement, offer_response, send_time
from optimizer.models import MLModel, ModelType

log = logging.getLogger(__name__)

RANDOM_STATE = 0
HOLDOUT_DAYS = features.DEFAULT_HOLDOUT_DAYS


def load_active(model_type: str) -> registry.Loaded | None:
    """The champion of ``model_type`` (``.record`` row and ``.artifact`` dict), or None before any training.

    For the offer-response model, pass ``.artifact`` to ``optimizer.ml.offer_response.predict_conversion``
    / ``best_offer``; for send time to ``optimizer.ml.send_time.recommend``.
    """
    return registry.load_active(model_type)


# --- data preparation -------------------------------------------------------------------------------
@dataclass
class PropensityData:
    train: pd.DataFrame
    holdout: pd.DataFrame


@dataclass
class CustomerReads:
    """What the propensity and send-time models both read: every customer, and their opens by local hour
    before each point of the split, from one query (``train_all`` reads them once for both)."""

    base: pd.DataFrame
    hours: dict[dt.datetime, pd.DataFrame]

    @classmethod
    def of(cls, split: features.Split) -> CustomerReads:
        base = features.customers()
        points = [split.train_cutoff, split.cutoff, split.end]
        return cls(base, dict(zip(points, features.open_hour_counts_until(None, points, frame=base), strict=True)))


def prepare_propensity(split: features.Split, reads: CustomerReads | None = None) -> PropensityData:
    """Customer rows as of ``train_cutoff`` (labels up to ``cutoff``) and as of ``cutoff`` (labels up to ``end``).

    Customers who had not signed up by a cut-off are left out of that cut-off's rows.
    """
    def signed_up(frame: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
        keep = pd.to_datetime(frame["signup_date"]).dt.tz_localize("UTC") <= pd.Timestamp(as_of)
        return frame[keep | frame["signup_date"].isna()]

    # Both frames from one pass over the events (the largest part of training at scale).
    train, holdout = features.customer_frame_pair(
        split.train_cutoff, split.cutoff, split.end,
        base=reads.base if reads else None, hours=(reads.hours[split.train_cutoff], reads.hours[split.cutoff]) if reads else None,
    )
    return PropensityData(train=signed_up(train, split.train_cutoff), holdout=signed_up(holdout, split.cutoff))


@dataclass
class SendTimeData:
    counts: np.ndarray  # (customers, 24) opens by local hour before the cut-off
    holdout_counts: np.ndarray  # the same after it
    segments: np.ndarray  # segment code per customer (-1: none)
    customer_pks: np.ndarray


def segment_codes(segment_names: pd.Series) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(features.SEGMENTS)}
    return segment_names.map(lookup).fillna(-1).astype(int).to_numpy()


def prepare_send_time(split: features.Split, reads: CustomerReads | None = None) -> SendTimeData:
    # One grouped query for both windows: opens before the end minus opens before the cut-off are the holdout's.
    if reads is None:
        base = features.customers()
        before_cutoff, before_end = features.open_hour_counts_until(None, [split.cutoff, split.end], frame=base)
    else:
        base, before_cutoff, before_end = reads.base, reads.hours[split.cutoff], reads.hours[split.end]
    train = before_cutoff.to_numpy()
    return SendTimeData(train, before_end.to_numpy() - train, segment_codes(base["segment"]), base.index.to_numpy())


@dataclass
class AffinityData:
    weights: sparse.csr_matrix  # customers x merchants, decayed interactions before the cut-off
    holdout_purchases: sparse.csr_matrix  # conversions after the cut-off
    customer_pks: np.ndarray
    merchant_pks: np.ndarray


def interaction_matrix(frame: pd.DataFrame, customer_pks: np.ndarray, merchant_pks: np.ndarray, value: str) -> sparse.csr_matrix:
    """A (customers x merchants) sparse matrix of ``frame[value]`` in the given row and column order."""
    rows = pd.Index(customer_pks).get_indexer(frame["customer_id"])
    cols = pd.Index(merchant_pks).get_indexer(frame["merchant_id"])
    keep = (rows >= 0) & (cols >= 0)
    data = frame[value].to_numpy(float)[keep]
    return sparse.csr_matrix((data, (rows[keep], cols[keep])), shape=(len(customer_pks), len(merchant_pks)))


def prepare_affinity(split: features.Split) -> AffinityData:
    customer_pks = features.customer_pks()
    merchant_pks = np.array(sorted(Merchant.objects.values_list("id", flat=True)), dtype=np.int64)
    train = features.customer_merchant_interactions(None, split.cutoff)
    later = features.customer_merchant_interactions(split.cutoff, split.end)
    later = later[later["conversions"] > 0]
    return AffinityData(
        weights=interaction_matrix(train, customer_pks, merchant_pks, "weight"),
        holdout_purchases=interaction_matrix(later, customer_pks, merchant_pks, "conversions"),
        customer_pks=customer_pks,
        merchant_pks=merchant_pks,
    )


@dataclass
class OfferData:
    train: pd.DataFrame
    holdout: pd.DataFrame


def prepare_offer_response(split: features.Split) -> OfferData:
    return OfferData(train=features.offer_exposures(None, split.cutoff), holdout=features.offer_exposures(split.cutoff, split.end))


# --- training ---------------------------------------------------------------------------------------
def _window_start(split: features.Split) -> dt.datetime | None:
    first, _ = features.data_span()
    return first


def train_conversion(split: features.Split, *, random_state: int = RANDOM_STATE, data: PropensityData | None = None) -> MLModel:
    data = data or prepare_propensity(split)
    artifact, metrics = conversion.fit(data.train, data.holdout, random_state=random_state)
    return registry.register(
        ModelType.CONVERSION, artifact, metrics, features=conversion.FEATURES,
        params={"random_state": random_state, "label_window_days": split.horizon.days},
        train_start=_window_start(split), train_end=split.cutoff, train_rows=len(data.train), holdout_rows=len(data.holdout),
    )


def train_engagement(split: features.Split, *, random_state: int = RANDOM_STATE, data: PropensityData | None = None) -> MLModel:
    data = data or prepare_propensity(split)
    artifact, metrics = engagement.fit(data.train, data.holdout, random_state=random_state)
    return registry.register(
        ModelType.ENGAGEMENT, artifact, metrics, features=engagement.FEATURES,
        params={"random_state": random_state, "label_window_days": split.horizon.days},
        train_start=_window_start(split), train_end=split.cutoff, train_rows=len(data.train), holdout_rows=len(data.holdout),
    )


def train_send_time(split: features.Split, *, data: SendTimeData | None = None) -> MLModel:
    data = data or prepare_send_time(split)
    artifact, metrics = send_time.fit(data.counts, data.segments, data.holdout_counts, n_segments=len(features.SEGMENTS))
    artifact["segment_names"] = list(features.SEGMENTS)
    return registry.register(
        ModelType.SEND_TIME, artifact, metrics, algorithm="dirichlet_shrunk_hour_histogram",
        features=["opens_by_local_hour", "segment"],
        params={"min_events": send_time.MIN_EVENTS, "window_hours": send_time.WINDOW, "alpha": artifact["alpha"]},
        train_start=_window_start(split), train_end=split.cutoff,
        train_rows=int(data.counts.sum()), holdout_rows=int(data.holdout_counts.sum()),
    )


def train_affinity(split: features.Split, *, data: AffinityData | None = None) -> MLModel:
    data = data or prepare_affinity(split)
    artifact, metrics = affinity.fit(data.weights, data.holdout_purchases)
    artifact["merchant_pks"] = data.merchant_pks
    artifact["half_life_days"] = features.HALF_LIFE_DAYS
    return registry.register(
        ModelType.AFFINITY, artifact, metrics, algorithm="decayed_interactions_item_knn_popularity",
        features=["decayed_customer_merchant_interactions"],
        params={"neighbours": affinity.NEIGHBOURS, "neighbour_weight": affinity.NEIGHBOUR_WEIGHT,
                "popularity_weight": affinity.POPULARITY_WEIGHT, "half_life_days": features.HALF_LIFE_DAYS},
        train_start=_window_start(split), train_end=split.cutoff,
        train_rows=int(data.weights.nnz), holdout_rows=int(data.holdout_purchases.nnz),
    )


def train_offer_response(split: features.Split, *, random_state: int = RANDOM_STATE, data: OfferData | None = None) -> MLModel:
    data = data or prepare_offer_response(split)
    artifact, metrics = offer_response.fit(data.train, data.holdout, random_state=random_state)
    return registry.register(
        ModelType.OFFER_RESPONSE, artifact, metrics, features=["segment", "offer_value"],
        params={"random_state": random_state, "curve": artifact["curve"]},
        train_start=_window_start(split), train_end=split.cutoff,
        train_rows=int(data.train["sends"].sum()), holdout_rows=int(data.holdout["sends"].sum()),
    )


def train_all(
    *,
    end: dt.datetime | None = None,
    holdout_days: int = HOLDOUT_DAYS,
    random_state: int = RANDOM_STATE,
    progress: Progress | None = None,
) -> dict[str, MLModel]:
    """Train and register all five models on one time-based split. Returns the new versions by type."""
    progress = progress or NullProgress()
    progress.total(5)
    split = features.time_split(end, holdout_days)
    out: dict[str, MLModel] = {}
    propensity: list[PropensityData] = []
    customer_reads: list[CustomerReads] = []

    def shared_reads() -> CustomerReads:  # the propensity and send-time models read the customers once
        if not customer_reads:
            customer_reads.append(CustomerReads.of(split))
        return customer_reads[0]

    def shared_propensity() -> PropensityData:  # conversion and engagement share one customer frame
        if not propensity:
            propensity.append(prepare_propensity(split, shared_reads()))
        return propensity[0]

    steps = {
        ModelType.CONVERSION: lambda: train_conversion(split, random_state=random_state, data=shared_propensity()),
        ModelType.ENGAGEMENT: lambda: train_engagement(split, random_state=random_state, data=shared_propensity()),
        ModelType.SEND_TIME: lambda: train_send_time(split, data=prepare_send_time(split, shared_reads())),
        ModelType.AFFINITY: lambda: train_affinity(split),
        ModelType.OFFER_RESPONSE: lambda: train_offer_response(split, random_state=random_state),
    }
    failures = []
    for model_type, step in steps.items():
        try:
            out[model_type] = step()
            log.info("%s: %s", out[model_type], out[model_type].promotion_note)
        except ValueError as exc:  # too little data for this model: the others still train
            failures.append(f"{model_type}: {exc}")
            log.warning("model %s not trained: %s", model_type, exc)
        if model_type == ModelType.ENGAGEMENT:
            # The customer frames are done with: kept through the next steps, they sat on top of the affinity
            # step's own peak (2.7 GB for the job at a million customers; docs/BENCHMARKS.md, scaling).
            propensity.clear()
            if customer_reads:
                customer_reads[0].hours.pop(split.train_cutoff, None)
            gc.collect()
        if model_type == ModelType.SEND_TIME:
            customer_reads.clear()
            gc.collect()
        progress.advance()
    if not out and failures:
        raise ValueError("no model could be trained: " + "; ".join(failures))
    return out


def retrain_models(*, progress: Progress) -> int:
    """Weekly retraining of the five models; each new version is promoted only if it is not worse."""
    if features.data_span()[1] is None:
        log.warning("model_retraining: no events yet, nothing to train")
        return 0
    # All new versions or none: a run that dies part way (worker killed, database lost) and is run
    # again must not leave the versions it registered before dying beside the ones the rerun makes.
    with transaction.atomic():
        return len(train_all(progress=progress))


def summary(record: MLModel) -> dict[str, Any]:
    """The registry row as the commands and docs show it."""
    return {
        "type": record.model_type,
        "version": record.version,
        "active": record.is_active,
        "algorithm": record.algorithm,
        "primary": record.primary_metric,
        "value": record.accuracy,
        "trained": record.last_trained,
    }

"""Daily send-time job: one ``user_send_times`` row per customer.

Each customer's opens by local hour (all history up to now) go through the active send-time
model (``optimizer.ml.send_time``): a personal hour when the customer has at least
``MIN_EVENTS`` (5) opens, else the population's best hour marked "fallback". The local time is
``HH:00`` in the customer's own time zone; ``utc_send_time`` is that moment today in UTC (it moves
by an hour across daylight-saving changes, hence recomputed daily). The table is replaced in one
transaction, so the job is idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
from celery.schedules import crontab
from django.db import transaction
from django.utils import timezone

from marketing_ai.jobs import NullProgress, Progress, job
from optimizer import features
from optimizer.ml import send_time
from optimizer.models import ModelType, UserSendTime
from optimizer.services import bulk
from optimizer.services.training import load_active, segment_codes

log = logging.getLogger(__name__)


def model_artifact(counts: np.ndarray, segments: np.ndarray) -> dict:
    """The champion's artifact; before the first training, a model fitted now on the same counts."""
    loaded = load_active(ModelType.SEND_TIME)
    if loaded is not None:
        return loaded.artifact
    log.warning("send_times: no trained send-time model yet; fitting one on the current history")
    artifact, _ = send_time.fit(counts, segments, n_segments=len(features.SEGMENTS))
    return artifact


def utc_times(local_hours: np.ndarray, zones: pd.Series, day: dt.date) -> np.ndarray:
    """``local_hours:00`` on ``day`` in each zone, as UTC ``datetime.time`` (vectorised per zone)."""
    out = np.empty(len(local_hours), dtype=object)
    local = pd.Timestamp(day) + pd.to_timedelta(local_hours, unit="h")
    for tz, idx in pd.Series(zones.to_numpy()).groupby(zones.to_numpy()).indices.items():
        moments = pd.DatetimeIndex(local[idx]).tz_localize(tz, nonexistent="shift_forward", ambiguous=True).tz_convert("UTC")
        out[idx] = [t.time() for t in moments.to_pydatetime()]
    return out


def compute(now: dt.datetime | None = None, *, artifact: dict | None = None) -> pd.DataFrame:
    """The rows the job writes, as a frame (customer pk, local/utc time, improvement, confidence, events, method).

    ``artifact``: a send-time model to use instead of the champion (the quality report passes the version it evaluates).
    """
    now = now or timezone.now()
    base = features.customers()
    counts = features.open_hour_counts(None, now, frame=base).to_numpy()
    segments = segment_codes(base["segment"])
    rec = send_time.recommend(artifact or model_artifact(counts, segments), counts, segments)
    zones = base["timezone"].fillna("UTC")
    return pd.DataFrame(
        {
            "customer_id": base.index.to_numpy(),
            "local_send_time": [dt.time(int(h), 0) for h in rec["hour"]],
            "utc_send_time": utc_times(rec["hour"], zones, now.date()),
            "expected_improvement": rec["expected_improvement"].astype(float),
            "confidence": np.round(rec["confidence"].astype(float), 4),
            "events_used": rec["events_used"],
            "method": np.where(rec["personal"], UserSendTime.Method.PERSONAL, UserSendTime.Method.FALLBACK),
            "last_updated": pd.Timestamp(now),
        }
    )


@job("send_times", schedule=crontab(hour=4, minute=0), after=("model_retraining",))
def compute_send_times(*, progress: Progress | None = None) -> int:
    """Optimal local send time for every customer (personal, or the population hour as fallback)."""
    progress = progress or NullProgress()
    rows = compute()
    progress.total(len(rows))
    with transaction.atomic():
        UserSendTime.objects.all().delete()
        bulk.insert(UserSendTime, rows, progress=progress)
    return len(rows)

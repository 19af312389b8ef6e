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
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from campaigns.models import Event
from marketing_ai.jobs import NullProgress, Progress
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


def compute_send_times(*, progress: Progress | None = None) -> int:
    """Optimal local send time for every customer (personal, or the population hour as fallback)."""
    progress = progress or NullProgress()
    rows = compute()
    progress.total(len(rows))
    with transaction.atomic():
        UserSendTime.objects.all().delete()
        bulk.insert(UserSendTime, rows, progress=progress)
    return len(rows)


# --- Inputs of the send-time policy recommendation (the campaign_optimizations job) -----------------
@dataclass
class PolicyInputs:
    """Everything the timing proposals need, read once per job run (arrays aligned on customer pk)."""

    artifact: dict
    counts: np.ndarray  # (n, 24) opens by local hour, all history
    segments: np.ndarray  # segment code per customer (-1: none)
    segment_names: np.ndarray
    zones: pd.Series  # IANA zone per customer
    sends: np.ndarray  # sends in the lookback window
    opens: np.ndarray
    personal_hours: np.ndarray  # recommended local hour (user_send_times; the population hour without a row)
    personal: np.ndarray  # True where that hour is the customer's own (not the population's)
    population_hour: int
    day: dt.date


def policy_inputs(*, now: dt.datetime, since: dt.datetime) -> PolicyInputs | None:
    """Read the send-time model, every customer's open hours, sends and opens, and their stored send hour."""
    base = features.customers()
    if base.empty:
        return None
    counts = features.open_hour_counts(None, now, frame=base).to_numpy()
    segments = segment_codes(base["segment"])
    artifact = model_artifact(counts, segments)
    activity = features.fetch(
        Event.objects.filter(occurred_at__gte=since, occurred_at__lt=now, customer__isnull=False,
                             type__in=[Event.Type.NOTIFICATION_SENT, Event.Type.NOTIFICATION_OPENED])
        .values("customer_id")
        .annotate(sends=Count("id", filter=Q(type=Event.Type.NOTIFICATION_SENT)),
                  opens=Count("id", filter=Q(type=Event.Type.NOTIFICATION_OPENED)))
        .order_by(),
        ["customer_id", "sends", "opens"],
    ).set_index("customer_id").reindex(base.index).fillna(0)
    stored = pd.DataFrame(
        list(UserSendTime.objects.values_list("customer_id", "local_send_time", "method")), columns=["customer_id", "local", "method"]
    ).set_index("customer_id").reindex(base.index)
    population_hour = int(artifact["population_hour"])
    hours = stored["local"].map(lambda t: t.hour if isinstance(t, dt.time) else population_hour).to_numpy(dtype=int)
    return PolicyInputs(
        artifact=artifact, counts=counts, segments=segments, segment_names=base["segment"].fillna("").to_numpy(),
        zones=base["timezone"].fillna("UTC"), sends=activity["sends"].to_numpy(float), opens=activity["opens"].to_numpy(float),
        personal_hours=hours, personal=(stored["method"] == UserSendTime.Method.PERSONAL).to_numpy(),
        population_hour=population_hour, day=now.date(),
    )


def local_hours_of(utc_time: dt.time, zones: pd.Series, day: dt.date) -> np.ndarray:
    """The local hour, in each customer's zone, of ``utc_time`` on ``day`` (vectorised per zone)."""
    out = np.empty(len(zones), dtype=int)
    moment = pd.Timestamp(dt.datetime.combine(day, utc_time), tz="UTC")
    for tz, idx in pd.Series(zones.to_numpy()).groupby(zones.to_numpy()).indices.items():
        out[idx] = moment.tz_convert(tz).hour
    return out


def campaign_policy_gain(
    inputs: PolicyInputs, segment_names: set[str], fixed_time: dt.time, *, seed: int
) -> tuple[send_time.PolicyGain | None, np.ndarray]:
    """The personal policy's gain for one campaign's audience (``segment_names``; empty = everyone) over its fixed UTC time."""
    audience = np.isin(inputs.segment_names, list(segment_names)) if segment_names else np.ones(len(inputs.counts), dtype=bool)
    current = local_hours_of(fixed_time, inputs.zones, inputs.day)
    gain = send_time.policy_gain(
        inputs.artifact, inputs.counts[audience], inputs.segments[audience], inputs.sends[audience], inputs.opens[audience],
        current[audience], inputs.personal_hours[audience], seed=seed,
    )
    return gain, audience

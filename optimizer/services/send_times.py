"""Daily send-time job: one ``user_send_times`` row per customer.

Each customer's opens by local hour (all history up to now) go through the active send-time
model (``optimizer.ml.send_time``): a personal hour when the customer has at least
``MIN_EVENTS`` (5) opens, else the population's best hour marked "fallback". The local time is
``HH:00`` in the customer's own time zone; ``utc_send_time`` is that moment today in UTC (it moves
by an hour across daylight-saving changes, hence recomputed daily). The table is replaced in one
transaction, so the job is idempotent. With ``JOB_FANOUT_HELPERS`` the customers are scored in parts by
idle workers and swapped in together (``optimizer.services.staging``): the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from marketing_ai import fanout
from marketing_ai.jobs import NullProgress, Progress
from optimizer import features, registry
from optimizer.ml import send_time
from optimizer.models import MLModel, ModelType, SendTimeStage, UserSendTime
from optimizer.services import bulk, staging
from optimizer.services.training import load_active, segment_codes

log = logging.getLogger(__name__)

PART_WORKER = "send_times.part"  # the fan-out part worker's name (optimizer/apps.py registers it)


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
    return rows_for(base, counts, artifact or model_artifact(counts, segments), now)


def rows_for(base: pd.DataFrame, counts: np.ndarray, artifact: dict, now: dt.datetime) -> pd.DataFrame:
    """The rows of the customers of ``base`` (their open-hour ``counts`` in the same order), scored by ``artifact``.

    Each row depends on its own customer only: a fan-out part scores its customers alone and gets their rows
    of the whole run.
    """
    rec = send_time.recommend(artifact, counts, segment_codes(base["segment"]))
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


def stage_part(spec: dict) -> int:
    """One fan-out part (``optimizer.services.staging``): the customers ``lo..hi`` scored by the run's model version."""
    now, pk_range = staging.spec_moment(spec), (int(spec["lo"]), int(spec["hi"]))
    artifact = registry.load_cached(staging.spec_model(spec))
    base = features.customers(pk_range)
    counts = features.open_hour_counts(None, now, frame=base, pk_range=pk_range).to_numpy()
    return staging.stage(SendTimeStage, spec, rows_for(base, counts, artifact, now))


def compute_in_parts(*, model: MLModel, now: dt.datetime, helpers: int, progress: Progress | None = None,
                     parts: int | None = None) -> int:
    """The job's fanned-out run: parts by customer range, staged, swapped into ``user_send_times`` in one transaction."""
    return staging.run_in_parts(
        part_worker=PART_WORKER, target=UserSendTime, stage_model=SendTimeStage, order_by=["customer_id"],
        model=model, now=now, progress=progress or NullProgress(), helpers=helpers, parts=parts,
    )


def compute_send_times(*, progress: Progress | None = None) -> int:
    """Optimal local send time for every customer (personal, or the population hour as fallback)."""
    progress = progress or NullProgress()
    helpers = fanout.helpers_configured()
    if helpers:
        loaded = load_active(ModelType.SEND_TIME)
        if loaded is not None and loaded.record is not None:
            return compute_in_parts(model=loaded.record, now=timezone.now(), helpers=helpers, progress=progress)
        # Before the first training the model is fitted on every customer's counts: one process.
        log.info("send_times: no trained send-time model yet; not fanning out")
    rows = compute()
    progress.total(len(rows))
    with transaction.atomic():
        UserSendTime.objects.all().delete()
        bulk.insert(UserSendTime, rows, progress=progress)
    return len(rows)


# --- Inputs of the send-time policy recommendation (the campaign_optimizations job) -----------------
@dataclass
class PolicyInputs:
    """Everything the timing proposals need, read once per job run (arrays aligned on customer pk).

    The lookback window is split: the opens before ``heldout_since`` give each customer a reference hour, the
    sends and opens after it measure how the open rate falls with the distance from that hour (held out, so
    the hours were not chosen by the outcomes they are judged on; ``send_time.policy_gain``).
    """

    artifact: dict
    segment_codes: np.ndarray  # each customer's segment, as a position in segment_labels (-1: none)
    segment_labels: list[str]
    zone_codes: np.ndarray  # each customer's IANA zone, as a position in zone_names
    zone_names: list[str]
    heldout_since: dt.datetime
    heldout: pd.DataFrame  # sends since heldout_since: position, campaign (pk), slot (local half-hour), opened
    reference_hours: np.ndarray  # best local hour from the opens before heldout_since
    personal_hours: np.ndarray  # recommended local hour (user_send_times; the population hour without a row)
    personal: np.ndarray  # True where that hour is the customer's own (not the population's)
    population_hour: int
    day: dt.date
    # Per audience and per fixed time, computed once for every campaign that shares them: a thousand campaigns
    # each matching a million customers' segment names took 48 ms apiece (most of the job at a million customers).
    _audiences: dict[frozenset[str], np.ndarray] = field(default_factory=dict, repr=False)
    _slots: dict[dt.time, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def customers(self) -> int:
        return len(self.segment_codes)

    def audience(self, segment_names: set[str]) -> np.ndarray:
        """Read-only mask of the customers in any of ``segment_names`` (empty: everyone)."""
        key = frozenset(segment_names)
        if key not in self._audiences:
            if key:
                wanted = [i for i, name in enumerate(self.segment_labels) if name in key]
                mask = np.isin(self.segment_codes, wanted)
            else:
                mask = np.ones(self.customers, dtype=bool)
            mask.flags.writeable = False
            self._audiences[key] = mask
        return self._audiences[key]

    def local_slots(self, utc_time: dt.time) -> np.ndarray:
        """Read-only: the local half-hour of ``utc_time`` today for each customer (``local_slots_of``)."""
        if utc_time not in self._slots:
            slots = local_slots_of(utc_time, self.zone_codes, self.zone_names, self.day)
            slots.flags.writeable = False
            self._slots[utc_time] = slots
        return self._slots[utc_time]


def policy_inputs(*, now: dt.datetime, since: dt.datetime) -> PolicyInputs | None:
    """Read the send-time model, every customer's open hours (before and after the split), held-out sends, and their stored send hour."""
    base = features.customers()
    if base.empty:
        return None
    first, _ = features.data_span()
    start = max(since, first) if first is not None else since
    heldout_since = now - (now - start) * send_time.HELDOUT_SHARE
    counts_df, before_df = features.open_hour_counts_until(None, [now, heldout_since], frame=base)
    segments = segment_codes(base["segment"])
    artifact = model_artifact(counts_df.to_numpy(), segments)
    del counts_df  # (n, 24) counts of all history: needed only when no model was trained yet
    reference_hours = send_time.recommend(artifact, before_df.to_numpy(), segments)["hour"]
    del before_df
    heldout = features.send_outcomes(heldout_since, now, frame=base)
    # Read as text by COPY: a million (customer, time, method) tuples from the ORM peaked at 500 MB.
    stored = features.fetch(UserSendTime.objects.values_list("customer_id", "local_send_time", "method").order_by(),
                            ["customer_id", "local", "method"]).set_index("customer_id").reindex(base.index)
    population_hour = int(artifact["population_hour"])
    local_hour = pd.to_numeric(stored["local"].astype("string").str.slice(0, 2), errors="coerce")
    hours = local_hour.fillna(population_hour).to_numpy(dtype=int)
    zone_codes, zone_names = pd.factorize(base["timezone"].fillna("UTC").to_numpy())
    segment_positions, segment_labels = pd.factorize(base["segment"].to_numpy())
    return PolicyInputs(
        artifact=artifact, segment_codes=np.asarray(segment_positions),
        segment_labels=[str(name) for name in segment_labels],
        zone_codes=np.asarray(zone_codes), zone_names=[str(zone) for zone in zone_names], heldout_since=heldout_since, heldout=heldout,
        reference_hours=reference_hours,
        personal_hours=hours, personal=(stored["method"] == UserSendTime.Method.PERSONAL).to_numpy(),
        population_hour=population_hour, day=now.date(),
    )


def local_slots_of(utc_time: dt.time, zone_codes: np.ndarray, zone_names: list[str], day: dt.date) -> np.ndarray:
    """The local half-hour (0..47), in each customer's zone, of ``utc_time`` on ``day``: one conversion per zone
    (``zone_codes`` index ``zone_names``), then a gather; grouping every customer's zone name again per campaign took 19 ms each at 125,000 customers."""
    moment = pd.Timestamp(dt.datetime.combine(day, utc_time), tz="UTC")
    local = (moment.tz_convert(tz) for tz in zone_names)
    return np.array([t.hour * 2 + t.minute // 30 for t in local], dtype=int)[zone_codes]


def by_slot(sends: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(len(rows), 48) sends and opened sends per local half-hour of the customers at positions ``rows`` (sorted)."""
    sent, opened = np.zeros((len(rows), send_time.SLOTS)), np.zeros((len(rows), send_time.SLOTS))
    at = np.searchsorted(rows, sends["position"].to_numpy())
    slots = sends["slot"].to_numpy()
    np.add.at(sent, (at, slots), 1)
    hit = sends["opened"].to_numpy(bool)
    np.add.at(opened, (at[hit], slots[hit]), 1)
    return sent, opened


def campaign_policy_gain(
    inputs: PolicyInputs, campaign_pk: int, segment_names: set[str], fixed_time: dt.time, *, seed: int
) -> tuple[send_time.PolicyGain | None, np.ndarray]:
    """The personal policy's gain for one campaign's audience (``segment_names``; empty = everyone) over its fixed UTC time.

    Measured on the campaign's own held-out sends only: campaigns differ in how often they are opened (channel,
    content), and its sends at its fixed time would otherwise be compared with other campaigns' sends at
    personal hours. Only the audience customers with a held-out send of the campaign get rows (the others are
    counted, ``unsent``): one row per customer of the whole base took 1.3 GB at 125,000 customers.
    """
    audience = inputs.audience(segment_names)
    current = inputs.local_slots(fixed_time)
    sends = inputs.heldout[inputs.heldout["campaign"] == campaign_pk]
    sends = sends[audience[sends["position"].to_numpy()]]
    rows = np.unique(sends["position"].to_numpy())
    sent, opened = by_slot(sends, rows)
    silent = audience.copy()
    silent[rows] = False
    gain = send_time.policy_gain(
        sent, opened, inputs.reference_hours[rows], current[rows], inputs.personal_hours[rows], seed=seed,
        unsent=int(silent.sum()),
        unsent_moved=int(np.sum(current[silent] // 2 != inputs.personal_hours[silent] % send_time.HOURS)),
    )
    return gain, audience

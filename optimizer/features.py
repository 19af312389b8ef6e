"""Feature engineering for the optimiser's models, in one place.

Every function here is set-based: one grouped query per feature family (database aggregates
through the ORM), loaded into pandas; no Python loop over events. Pure model code in
``optimizer.ml`` takes the frames and arrays returned here.

Feature families
----------------
``customer_frame(as_of, label_until)`` - one row per customer, history strictly before ``as_of``:

- recency: ``recency_days`` (days since the last event of any kind), ``recency_conversion_days``,
  ``recency_open_days`` (NaN when never; the models fill "never" with the largest observed value);
- frequency: ``sent``, ``opens``, ``views``, ``clicks``, ``conversions``, ``active_span_days``
  (days between the first and the last event), and the rates ``open_rate`` (opens / sent), ``click_rate``
  (clicks / (views or opens)), ``conversion_rate`` (conversions / sent);
- monetary: ``revenue`` (sum of conversion amounts) and ``avg_order_value``;
- tenure: ``tenure_days`` (days from signup, or first seen, to ``as_of``);
- recency-frequency scores: ``open_recency_score`` = opens / (1 + recency_days) and
  ``conversion_recency_score`` likewise (the baselines' heuristics, given to the models as features);
- segment: one-hot ``segment_new_users``, ``segment_returning_users``, ``segment_high_value_users``;
- open behaviour: ``open_hour_concentration``, the largest share of the customer's opens within
  +-1 hour of one local hour (1 = always the same time; 3/24 = no pattern);
- labels, when ``label_until`` is given: ``converted_next`` / ``opened_next`` (1 if the customer
  converted / opened in ``[as_of, label_until)``).

``open_hour_counts(start, end)`` - opens by *local* hour (24 columns per customer). Opens are
counted per customer and UTC quarter-hour in the database, then converted to each customer's IANA time
zone in pandas, vectorised per time-zone group (daylight saving time is handled by the zone).

``customer_merchant_interactions(start, end, half_life_days)`` - per customer and merchant:
time-decayed interaction weight (conversion 5, click 2, view 1, open 0.5; halves every
``half_life_days``), raw counts, conversions and revenue.

``offer_exposures(start, end)`` - per segment and offer value: sends, conversions, revenue.

``campaign_frame(start, end)`` - per campaign: offer (kind, value), send hour (UTC), sends,
opens, clicks, conversions, revenue, spend, and the rates.

Time-based split
----------------
``time_split(end, holdout_days)`` gives the cut-off ``T = end - holdout_days``: models train on
what happened before ``T`` and are measured on what happened from ``T`` to ``end``. The
customer-level propensity models need a label window for training too, so their training rows
use the cut-off ``T - holdout_days`` (labels in ``[T - H, T)``) and their holdout rows ``T``.
Normalisation to [0, 1] (MinMaxScaler) happens in ``optimizer.ml`` and is fitted on training
rows only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import CharField, Count, F, FloatField, Func, IntegerField, Max, Min, Q, Sum, Value
from django.db.models.functions import Cast, Concat, ExtractMinute, Substr, TruncDate, TruncHour

from campaigns.models import Campaign, Customer, Event, Segment
from marketing_ai.db import fetch_frame, parse_utc_moments
from optimizer.ml.metrics import HOURS, window_mass
from optimizer.ml.send_time import link_opens

T = Event.Type
SEGMENTS = [Segment.NEW_USERS, Segment.RETURNING_USERS, Segment.HIGH_VALUE_USERS]
INTERACTION_WEIGHTS = {T.CONVERSION: 5.0, T.CLICK: 2.0, T.VIEW: 1.0, T.NOTIFICATION_OPENED: 0.5}
HALF_LIFE_DAYS = 30.0
DEFAULT_HOLDOUT_DAYS = 14


@dataclass(frozen=True)
class Split:
    """A time-based split. Train on ``[.., cutoff)``, measure on ``[cutoff, end]``."""

    train_cutoff: dt.datetime  # propensity training rows: history before this, labels in [train_cutoff, cutoff)
    cutoff: dt.datetime
    end: dt.datetime

    @property
    def horizon(self) -> dt.timedelta:
        return self.end - self.cutoff


def data_span() -> tuple[dt.datetime | None, dt.datetime | None]:
    # Two ordered look-ups on the occurred_at index: one query with both MIN and MAX scans every event on SQLite.
    moments = Event.objects.order_by().values_list("occurred_at", flat=True)
    return moments.order_by("occurred_at").first(), moments.order_by("-occurred_at").first()


def time_split(end: dt.datetime | None = None, holdout_days: int = DEFAULT_HOLDOUT_DAYS) -> Split:
    """The split ending at ``end`` (default: just after the latest event)."""
    if end is None:
        _, last = data_span()
        if last is None:
            raise ValueError("no events: nothing to train on")
        end = last + dt.timedelta(seconds=1)
    horizon = dt.timedelta(days=holdout_days)
    return Split(train_cutoff=end - 2 * horizon, cutoff=end - horizon, end=end)


def _window(qs, start: dt.datetime | None, end: dt.datetime | None):
    if start is not None:
        qs = qs.filter(occurred_at__gte=start)
    if end is not None:
        qs = qs.filter(occurred_at__lt=end)
    return qs


def fetch(qs, columns: list[str] | None = None, moments: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run a ``values()`` / ``values_list()`` queryset's SQL and load the rows straight into pandas
    (``marketing_ai.db.fetch_frame``: COPY TO STDOUT as CSV on PostgreSQL, ``fetchall`` elsewhere).

    Skips the ORM's per-row Python conversion (millions of rows at scale). Columns are named by
    the query (field columns and annotation aliases) unless ``columns`` names them by position.
    Numbers come as numbers (NULL as NaN); every other column (text, dates, times) as text, which
    callers parse with ``pd.to_datetime`` (SQLite returns dates and times as text anyway), except the
    ``moments`` columns: ISO timestamps given back as UTC datetimes, parsed as the rows are read.
    """
    sql, params = qs.query.sql_with_params()
    return fetch_frame(sql, params, columns, moments)


def _text(expression) -> Cast:
    """Moments as text: pandas parses millions of ISO strings in C, far faster than per-row datetime objects."""
    return Cast(expression, output_field=CharField())


# The database-specific fast paths of the features' reads, both branches side by side in these four helpers.
# On SQLite, Django's TruncHour / TruncDate / ExtractMinute call a Python function per row (most of the
# demo's training time went there). SQLite stores a moment as UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]",
# so a prefix of it is the same hour or day. On PostgreSQL a moment is sent as seconds since 1970 (float):
# pandas reads numbers far faster than ISO text (the customer frames' eight moment columns at a million
# customers: 10 s of parsing of a 28 s read; docs/BENCHMARKS.md, "Every job at the full scale").
# ``fetch(moments=...)`` / ``parse_moments`` give either form back as UTC datetimes.
def moment_column(expression):
    """A moment (a datetime or date expression, or an aggregate of one), as ``fetch(moments=...)`` reads it fastest."""
    if connection.vendor == "sqlite":
        return _text(expression)
    return Func(expression, template="EXTRACT(EPOCH FROM %(expressions)s)::float8", output_field=FloatField())


def utc_hour(field: str = "occurred_at"):
    """The moment's UTC hour (a moment ``parse_moments`` reads)."""
    if connection.vendor == "sqlite":
        return Concat(Substr(field, 1, 13), Value(":00:00"), output_field=CharField())
    return moment_column(TruncHour(field))


def utc_quarter(field: str = "occurred_at"):
    """The quarter of the hour (0..3) of the moment, in UTC."""
    if connection.vendor == "sqlite":
        return Cast(Substr(field, 15, 2), output_field=IntegerField()) / Value(15)
    return ExtractMinute(field) / Value(15)


def _utc_day(field: str = "occurred_at"):
    """The moment's UTC date (a moment ``parse_moments`` reads, at midnight UTC)."""
    if connection.vendor == "sqlite":
        return Substr(field, 1, 10)
    return moment_column(TruncDate(field))


def parse_moments(values: pd.Series) -> pd.Series:
    return parse_utc_moments(values)


PkRange = tuple[int, int]  # customer pks lo..hi, both included: one fan-out part of a per-customer job


def _in_range(qs, pk_range: PkRange | None, field: str = "customer_id"):
    return qs if pk_range is None else qs.filter(**{f"{field}__gte": pk_range[0], f"{field}__lte": pk_range[1]})


def customers(pk_range: PkRange | None = None) -> pd.DataFrame:
    """Every customer (or those with a pk in ``pk_range``): pk (index), external id, time zone, segment name, signup date."""
    rows = (_in_range(Customer.objects.all(), pk_range, "id").annotate(created=moment_column(F("created_at")))
            .values_list("id", "customer_id", "timezone", "segment__name", "signup_date", "created").order_by())
    frame = fetch(rows, ["pk", "customer_id", "timezone", "segment", "signup_date", "created_at"], moments=("created_at",))
    frame["signup_date"] = pd.to_datetime(frame["signup_date"]).dt.date
    return frame.set_index("pk").sort_index()


def customer_pks() -> np.ndarray:
    """Every customer's pk, ascending (the index ``customers()`` would give, without its text columns)."""
    return fetch(Customer.objects.values_list("id").order_by("id"), ["id"])["id"].to_numpy(np.int64)


def _days_before(as_of: dt.datetime, moments: pd.Series) -> pd.Series:
    moments = parse_moments(moments)
    return (pd.Timestamp(as_of) - moments).dt.total_seconds() / 86400.0


_HISTORY_COLUMNS = ["sent", "opens", "views", "clicks", "conversions", "revenue", "last_event", "last_conversion", "last_open", "first_event"]
_COUNTS = ["sent", "opens", "views", "clicks", "conversions"]
_BLOCK_ROWS = 100_000  # customers per block where a per-customer array would otherwise be copied whole
_MOMENTS = ("last_event", "last_conversion", "last_open", "first_event")  # parsed as they are read (fetch)


def _history_aggregates(as_of: dt.datetime, suffix: str = "") -> dict:
    """The per-customer history aggregates strictly before ``as_of`` (names end with ``suffix``)."""
    before = Q(occurred_at__lt=as_of)
    return {
        f"sent{suffix}": Count("id", filter=before & Q(type=T.NOTIFICATION_SENT)),
        f"opens{suffix}": Count("id", filter=before & Q(type=T.NOTIFICATION_OPENED)),
        f"views{suffix}": Count("id", filter=before & Q(type=T.VIEW)),
        f"clicks{suffix}": Count("id", filter=before & Q(type=T.CLICK)),
        f"conversions{suffix}": Count("id", filter=before & Q(type=T.CONVERSION)),
        f"revenue{suffix}": Sum("amount", filter=before & Q(type=T.CONVERSION)),
        f"last_event{suffix}": moment_column(Max("occurred_at", filter=before)),
        f"last_conversion{suffix}": moment_column(Max("occurred_at", filter=before & Q(type=T.CONVERSION))),
        f"last_open{suffix}": moment_column(Max("occurred_at", filter=before & Q(type=T.NOTIFICATION_OPENED))),
        f"first_event{suffix}": moment_column(Min("occurred_at", filter=before)),
    }


def _label_aggregates(start: dt.datetime, end: dt.datetime, suffix: str) -> dict:
    within = Q(occurred_at__gte=start, occurred_at__lt=end)
    return {
        f"c{suffix}": Count("id", filter=within & Q(type=T.CONVERSION)),
        f"o{suffix}": Count("id", filter=within & Q(type=T.NOTIFICATION_OPENED)),
    }


def _finish_frame(base: pd.DataFrame, hist: pd.DataFrame, hours: pd.DataFrame, as_of: dt.datetime,
                  labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """The customer frame from its history aggregates (index customer pk), open-hour counts and labels."""
    if hist.empty:
        hist = pd.DataFrame(columns=_HISTORY_COLUMNS, index=pd.Index([], name="customer_id"))
    frame = base.join(hist[_HISTORY_COLUMNS], how="left")
    counts = _COUNTS
    frame[counts] = frame[counts].fillna(0).astype(np.int64)
    frame["revenue"] = frame["revenue"].astype(float).fillna(0.0)  # ML features are floats; money stays Decimal in the DB
    frame["avg_order_value"] = np.where(frame["conversions"] > 0, frame["revenue"] / frame["conversions"].clip(lower=1), 0.0)
    frame["recency_days"] = _days_before(as_of, frame["last_event"])
    frame["recency_conversion_days"] = _days_before(as_of, frame["last_conversion"])
    frame["recency_open_days"] = _days_before(as_of, frame["last_open"])
    # Days between first and last event (0 with one event or none): a cheap stand-in for distinct
    # active days, whose COUNT(DISTINCT) cost four times the rest of this query on PostgreSQL.
    frame["active_span_days"] = (_days_before(as_of, frame["first_event"]) - frame["recency_days"]).fillna(0.0)
    signup = pd.to_datetime(frame["signup_date"]).dt.tz_localize("UTC")
    first_seen = parse_moments(frame["first_event"]).fillna(pd.to_datetime(frame["created_at"], utc=True))
    frame["tenure_days"] = _days_before(as_of, signup.fillna(first_seen)).clip(lower=0).fillna(0.0)
    frame["open_rate"] = frame["opens"] / frame["sent"].where(frame["sent"] > 0)
    frame["click_rate"] = frame["clicks"] / np.maximum(frame["views"], frame["opens"]).where(lambda s: s > 0)
    frame["conversion_rate"] = frame["conversions"] / frame["sent"].where(frame["sent"] > 0)
    frame[["open_rate", "click_rate", "conversion_rate"]] = frame[["open_rate", "click_rate", "conversion_rate"]].fillna(0.0).clip(upper=1.0)
    # The recency-frequency heuristics as features, so a model starts from what the baseline knows.
    recency = frame["recency_days"].fillna(np.inf)
    frame["open_recency_score"] = frame["opens"] / (1.0 + recency)
    frame["conversion_recency_score"] = frame["conversions"] / (1.0 + recency)
    for name in SEGMENTS:
        frame[f"segment_{name}"] = (frame["segment"] == name).astype(np.int8)

    # A block of customers at a time: window_mass makes float copies of its (rows, 24) input, which for a million
    # customers at once took 0.55 GB on top of the frames (measured: 2,228 -> 1,678 MB for both frames' build).
    counts = hours.to_numpy()
    peaks = [window_mass(counts[i:i + _BLOCK_ROWS], 1).max(axis=1) for i in range(0, len(counts), _BLOCK_ROWS)]
    share = (np.concatenate(peaks) if peaks else np.zeros(0)) / np.maximum(counts.sum(axis=1), 1)
    frame["open_hour_concentration"] = pd.Series(share, index=hours.index).reindex(frame.index).fillna(0.0)

    if labels is not None:
        frame["converted_next"] = (labels["c"].reindex(frame.index).astype(float).fillna(0) > 0).astype(np.int8)
        frame["opened_next"] = (labels["o"].reindex(frame.index).astype(float).fillna(0) > 0).astype(np.int8)
    return frame.drop(columns=["last_event", "last_conversion", "last_open", "first_event", "created_at"])


def customer_frame(as_of: dt.datetime, label_until: dt.datetime | None = None) -> pd.DataFrame:
    """One row per customer (index: customer pk) with the features described in the module docstring."""
    base = customers()
    history = (
        Event.objects.filter(occurred_at__lt=as_of, customer__isnull=False)
        .values("customer_id")
        .annotate(**_history_aggregates(as_of))
    )
    hist = fetch(history.order_by(), moments=_MOMENTS).set_index("customer_id")
    hours = open_hour_counts(None, as_of, frame=base)
    labels = None
    if label_until is not None:
        rows = (
            Event.objects.filter(occurred_at__gte=as_of, occurred_at__lt=label_until, customer__isnull=False,
                                 type__in=[T.CONVERSION, T.NOTIFICATION_OPENED])
            .values("customer_id")
            .annotate(**_label_aggregates(as_of, label_until, ""))
        )
        labels = fetch(rows.order_by()).set_index("customer_id")
    return _finish_frame(base, hist, hours, as_of, labels)


def customer_frame_pair(
    first: dt.datetime, second: dt.datetime, end: dt.datetime, *,
    base: pd.DataFrame | None = None, hours: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``customer_frame(first, second)`` and ``customer_frame(second, end)`` from one pass over the events.

    The propensity split needs both; one grouped query with filtered aggregates for both cut-offs
    (and both label windows) reads the events once instead of four times, and the open hours come
    from one query too. Equal to the two separate calls (tested). ``base`` (``customers()``) and ``hours``
    (``open_hour_counts_until(None, [first, second])``): when the caller read them already.
    """
    base = customers() if base is None else base
    aggregates = {**_history_aggregates(first, "_1"), **_history_aggregates(second, "_2"),
                  **_label_aggregates(first, second, "_1"), **_label_aggregates(second, end, "_2")}
    rows = Event.objects.filter(occurred_at__lt=end, customer__isnull=False).values("customer_id").annotate(**aggregates)
    both = fetch(rows.order_by(), moments=tuple(f"{m}{s}" for m in _MOMENTS for s in ("_1", "_2"))).set_index("customer_id")
    hours_1, hours_2 = _open_hour_counts_at(None, [first, second], base) if hours is None else hours
    frames = []
    for suffix, as_of, hours in (("_1", first, hours_1), ("_2", second, hours_2)):
        part = both[[c for c in both.columns if c.endswith(suffix)]].rename(columns=lambda c, s=suffix: c[: -len(s)])
        hist = part[part["first_event"].notna()]  # customers with history before this cut-off
        frames.append(_finish_frame(base, hist, hours, as_of, part[["c", "o"]]))
    return frames[0], frames[1]


def open_hour_counts(
    start: dt.datetime | None, end: dt.datetime | None, *, frame: pd.DataFrame | None = None,
    pk_range: PkRange | None = None,
) -> pd.DataFrame:
    """Opens per customer by local hour: index customer pk (every customer), columns 0..23.

    Counted per customer and UTC quarter-hour in the database (quarter hours, because some zones
    are offset by 30 or 45 minutes); each group of customers sharing a time zone is converted in
    one vectorised ``tz_convert``. ``pk_range``: only the opens of those customers (``frame`` holds them).
    """
    base = frame if frame is not None else customers(pk_range)
    return _open_hour_counts_at(start, [end], base, pk_range)[0]


def open_hour_counts_until(
    start: dt.datetime | None, ends: list[dt.datetime], *, frame: pd.DataFrame | None = None
) -> list[pd.DataFrame]:
    """``open_hour_counts(start, end)`` for each of ``ends``, from one grouped query over the events."""
    return _open_hour_counts_at(start, list(ends), frame if frame is not None else customers())


def send_outcomes(
    start: dt.datetime, end: dt.datetime, *, frame: pd.DataFrame | None = None, max_customers: int = 20_000
) -> pd.DataFrame:
    """Notifications sent in [start, end): one row per send with ``position`` (the customer's row in ``frame``),
    ``campaign`` (pk), ``slot`` (local half-hour 0..47 in the customer's zone) and ``opened``.

    A send counts as opened when an open of the same customer and campaign follows it before their next
    send (``optimizer.ml.send_time.link_opens``). Above ``max_customers`` customers, only an evenly spaced
    sample of them (by pk) is read.
    """
    base = frame if frame is not None else customers()
    qs = _window(Event.objects.filter(type__in=[T.NOTIFICATION_SENT, T.NOTIFICATION_OPENED], customer__isnull=False), start, end)
    if len(base) > max_customers:
        qs = qs.filter(customer_id__in=base.index[:: -(-len(base) // max_customers)].tolist())
    rows = fetch(qs.annotate(moment=moment_column(F("occurred_at"))).values_list("customer_id", "campaign_id", "type", "moment").order_by(),
                 ["customer_id", "campaign_id", "type", "moment"])
    empty = pd.DataFrame({"position": np.empty(0, np.int64), "campaign": np.empty(0, np.int64),
                          "slot": np.empty(0, np.int64), "opened": np.empty(0, bool)})
    if rows.empty:
        return empty
    position = base.index.get_indexer(rows["customer_id"])
    rows, position = rows[position >= 0], position[position >= 0]
    moment = parse_moments(rows["moment"])
    seconds = (moment - pd.Timestamp("2000-01-01", tz="UTC")).dt.total_seconds().to_numpy()
    campaign = rows["campaign_id"].to_numpy(np.int64)
    key = position.astype(np.int64) * 10_000_000 + campaign
    is_send = (rows["type"] == T.NOTIFICATION_SENT).to_numpy()
    was_opened = link_opens(key[is_send], seconds[is_send], key[~is_send], seconds[~is_send])
    zones = base["timezone"].fillna("UTC").to_numpy()[position[is_send]]
    send_moments = moment[is_send].reset_index(drop=True)
    slot = np.empty(len(send_moments), dtype=np.int64)
    for tz, idx in pd.Series(zones).groupby(zones).indices.items():  # one vectorised conversion per zone
        local = send_moments.iloc[idx].dt.tz_convert(tz)
        slot[idx] = (local.dt.hour * 2 + local.dt.minute // 30).to_numpy()
    return pd.DataFrame({"position": position[is_send], "campaign": campaign[is_send], "slot": slot, "opened": was_opened})


def _open_hour_counts_at(start: dt.datetime | None, ends: list[dt.datetime | None], base: pd.DataFrame,
                         pk_range: PkRange | None = None) -> list[pd.DataFrame]:
    """``open_hour_counts(start, end)`` for each of ``ends``, from one grouped query."""
    last = None if any(e is None for e in ends) else max(ends)
    counts = {f"n{i}": Count("id", filter=Q(occurred_at__lt=e) if e is not None else None) for i, e in enumerate(ends)}
    rows = (
        _window(_in_range(Event.objects.filter(type=T.NOTIFICATION_OPENED, customer__isnull=False), pk_range), start, last)
        .annotate(hour=utc_hour(), quarter=utc_quarter())
        .values("customer_id", "hour", "quarter")
        .annotate(**counts)
    )
    opens = fetch(rows.order_by(), moments=("hour",))
    # int32: a customer's opens in one hour fit, and a million customers' counts take half the memory.
    out = [np.zeros((len(base), HOURS), dtype=np.int32) for _ in ends]
    if not opens.empty:
        opens["hour"] = opens["hour"] + pd.to_timedelta(opens["quarter"].astype(int) * 15, unit="m")
        opens["tz"] = base["timezone"].reindex(opens["customer_id"]).fillna("UTC").to_numpy()
        local = np.empty(len(opens), dtype=np.int64)
        for tz, idx in opens.groupby("tz").indices.items():  # one vectorised conversion per zone
            local[idx] = opens["hour"].iloc[idx].dt.tz_convert(tz).dt.hour.to_numpy()
        position = base.index.get_indexer(opens["customer_id"])
        keep = position >= 0
        for i in range(len(ends)):
            np.add.at(out[i], (position[keep], local[keep]), opens[f"n{i}"].to_numpy(np.int64)[keep])
    return [pd.DataFrame(o, index=base.index, columns=range(HOURS)) for o in out]


def _interaction_events(start: dt.datetime | None, end: dt.datetime, pk_range: PkRange | None = None):
    qs = Event.objects.filter(customer__isnull=False, merchant__isnull=False, type__in=list(INTERACTION_WEIGHTS))
    return _window(_in_range(qs, pk_range), start, end).annotate(day=_utc_day())


def _decayed_weight(frame: pd.DataFrame, end: dt.datetime, half_life_days: float) -> pd.Series:
    """Each (type, day) group's interaction weight, halved every ``half_life_days`` of age at ``end``."""
    age = (pd.Timestamp(end).tz_convert("UTC").normalize() - parse_moments(frame["day"])).dt.days.clip(lower=0)
    return frame["type"].map(INTERACTION_WEIGHTS).astype(float) * frame["n"] * np.power(0.5, age / half_life_days)


def customer_merchant_interactions(
    start: dt.datetime | None, end: dt.datetime, *, half_life_days: float = HALF_LIFE_DAYS,
    pk_range: PkRange | None = None,
) -> pd.DataFrame:
    """Per (customer pk, merchant pk): decayed ``weight``, ``interactions``, ``conversions``, ``revenue``.

    Events are counted per customer, merchant, type and day in the database; the decay
    ``0.5 ** (age_days / half_life_days)`` (age from the day to ``end``) is applied in pandas.
    ``pk_range``: only those customers' interactions (one fan-out part of the affinity job).
    """
    rows = _interaction_events(start, end, pk_range).values("customer_id", "merchant_id", "type", "day").annotate(
        n=Count("id"), revenue=Sum("amount"))
    frame = fetch(rows.order_by(), moments=("day",))  # parsed as read, not kept as one string per row
    frame["type"] = frame["type"].astype("category")
    out_cols = ["customer_id", "merchant_id", "weight", "interactions", "conversions", "revenue"]
    if frame.empty:
        return pd.DataFrame(columns=out_cols)
    # A fixed order before summing: a float sum depends on its order, and the database returns groups in any
    # order (a query over a range of customers in another than one over all), so a customer's weights would
    # otherwise differ in the last bit between the whole run and a fan-out part.
    frame = frame.sort_values(["customer_id", "merchant_id", "type", "day"], kind="stable", ignore_index=True)
    frame["weight"] = _decayed_weight(frame, end, half_life_days)
    is_conversion = frame["type"] == T.CONVERSION
    frame["conversions"] = np.where(is_conversion, frame["n"], 0)
    frame["revenue"] = np.where(is_conversion, frame["revenue"].astype(float).fillna(0.0), 0.0)
    grouped = frame.groupby(["customer_id", "merchant_id"], sort=True).agg(
        weight=("weight", "sum"), interactions=("n", "sum"), conversions=("conversions", "sum"), revenue=("revenue", "sum")
    )
    return grouped.reset_index()[out_cols]


def merchant_interaction_weights(end: dt.datetime, *, half_life_days: float = HALF_LIFE_DAYS) -> pd.DataFrame:
    """Per merchant pk: the decayed interaction ``weight`` of all customers up to ``end`` (what
    ``customer_merchant_interactions`` sums to per merchant), from one grouped query of a few rows per merchant and day."""
    rows = _interaction_events(None, end).values("merchant_id", "type", "day").annotate(n=Count("id"))
    frame = fetch(rows.order_by())
    if frame.empty:
        return pd.DataFrame(columns=["merchant_id", "weight"])
    frame = frame.sort_values(["merchant_id", "type", "day"], kind="stable", ignore_index=True)
    frame["weight"] = _decayed_weight(frame, end, half_life_days)
    return frame.groupby("merchant_id", sort=True, as_index=False)["weight"].sum()


def offer_exposures(start: dt.datetime | None, end: dt.datetime | None) -> pd.DataFrame:
    """Per (segment, offer kind, offer value): ``sends``, ``conversions``, ``revenue`` (conversion amounts)."""
    keys = ["customer__segment__name", "offer__kind", "offer__value"]
    qs = _window(Event.objects.filter(offer__isnull=False, customer__segment__isnull=False,
                                      type__in=[T.NOTIFICATION_SENT, T.CONVERSION]), start, end)
    rows = qs.values(*keys).annotate(
        sends=Count("id", filter=Q(type=T.NOTIFICATION_SENT)),
        conversions=Count("id", filter=Q(type=T.CONVERSION)),
        revenue=Sum("amount", filter=Q(type=T.CONVERSION)),
    )
    frame = pd.DataFrame.from_records(list(rows), columns=[*keys, "sends", "conversions", "revenue"])
    frame = frame.rename(columns={"customer__segment__name": "segment", "offer__kind": "offer_kind", "offer__value": "offer_value"})
    frame["offer_value"] = frame["offer_value"].astype(float)
    frame["revenue"] = frame["revenue"].astype(float).fillna(0.0)
    return frame.sort_values(["segment", "offer_kind", "offer_value"]).reset_index(drop=True)


def campaign_frame(start: dt.datetime | None, end: dt.datetime | None) -> pd.DataFrame:
    """Per campaign: current offer and send hour, and its outcome counts in the window."""
    campaigns = pd.DataFrame.from_records(
        list(Campaign.objects.values("id", "campaign_id", "current_offer__kind", "current_offer__value", "send_time")),
        columns=["id", "campaign_id", "current_offer__kind", "current_offer__value", "send_time"],
    ).rename(columns={"id": "pk", "current_offer__kind": "offer_kind", "current_offer__value": "offer_value"})
    campaigns["offer_value"] = campaigns["offer_value"].astype(float)
    campaigns["send_hour_utc"] = campaigns["send_time"].map(lambda t: t.hour if t is not None else np.nan)
    outcomes = _window(Event.objects.all(), start, end).values(pk=F("campaign_id")).annotate(
        sends=Count("id", filter=Q(type=T.NOTIFICATION_SENT)),
        opens=Count("id", filter=Q(type=T.NOTIFICATION_OPENED)),
        clicks=Count("id", filter=Q(type=T.CLICK)),
        conversions=Count("id", filter=Q(type=T.CONVERSION)),
        revenue=Sum("amount", filter=Q(type=T.CONVERSION)),
        spend=Sum("amount", filter=Q(type=T.SPEND)),
    )
    out = pd.DataFrame.from_records(list(outcomes), columns=["pk", "sends", "opens", "clicks", "conversions", "revenue", "spend"])
    frame = campaigns.merge(out, on="pk", how="left").drop(columns=["send_time"])
    counts = ["sends", "opens", "clicks", "conversions"]
    frame[counts] = frame[counts].fillna(0).astype(np.int64)
    frame[["revenue", "spend"]] = frame[["revenue", "spend"]].astype(float).fillna(0.0)
    frame["open_rate"] = (frame["opens"] / frame["sends"].where(frame["sends"] > 0)).fillna(0.0)
    frame["conversion_rate"] = (frame["conversions"] / frame["sends"].where(frame["sends"] > 0)).fillna(0.0)
    return frame.set_index("pk").sort_index()

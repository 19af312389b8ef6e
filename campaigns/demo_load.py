"""Load the demo data set (``campaigns.demo``) into the database, set-based, and write its truth.

``seed_demo(...)`` is the one service behind ``manage.py seed_demo`` and ``make demo``. Every demo
row carries the ``demo_`` prefix in its external id (``demo_user_12``, ``demo_m_3``, ``demo_camp_0``,
``demo_off_20pct``, ``demo_evt_7_123``), which is how ``replace=True`` finds what to delete and how a
second run notices the data is already there.

Apps extend the demo through a ``<app>.demo`` module with ``plant(ctx: DemoContext) -> dict``; the
returned dict is merged into the truth (the A/B testing app adds ``ab_tests``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import PROTECT, ProtectedError, Q
from django.utils import timezone

from campaigns.demo import DemoConfig, DemoData, generate
from campaigns.models import Campaign, Customer, Event, Merchant, Offer, Segment
from marketing_ai.db import copy_in
from marketing_ai.jobs import NullProgress, Progress

log = logging.getLogger(__name__)

DEMO_PREFIX = "demo_"
# Apps whose ``<app>.demo.plant(ctx)`` runs after the base data is written, in this order.
DEMO_EXTENSIONS = ("abtests",)
RECEIVED_LAG = dt.timedelta(seconds=40)  # demo events "arrive" 40 s after they happen
CHUNK = 100_000  # rows per COPY / executemany round


class DemoDataPresent(Exception):
    """Demo rows are already in the database and ``replace`` was not asked for."""

    def __init__(self, message: str, *, same_seed: bool) -> None:
        super().__init__(message)
        self.same_seed = same_seed


@dataclass
class DemoContext:
    """What an app's ``demo.plant(ctx)`` gets, after the base demo data is written.

    ``rng`` is seeded from the demo seed and the app name (deterministic, independent of other apps).
    ``data`` is the generated DemoData (frames of merchants, customers, offers, campaigns, events, and
    the base truth). The ``*_pk`` dicts map external ids to primary keys. ``start``/``end`` is the
    window (inclusive dates, UTC). ``write_events(frame)`` writes more events with the same fast writer
    and returns the number written; the frame has the columns of ``demo.EVENT_COLUMNS`` (ids as
    external id strings or Categoricals; ``amount_cents`` as integer cents, or ``amount`` as
    Decimal/str; ``variant`` and ``channel`` optional). Use event ids starting with ``demo_`` so replace finds them.
    """

    seed: int
    rng: np.random.Generator
    data: DemoData
    customer_pk: dict[str, int]
    campaign_pk: dict[str, int]
    merchant_pk: dict[str, int]
    offer_pk: dict[str, int]
    segment_pk: dict[str, int]
    start: dt.date
    end: dt.date
    write_events: Callable[[pd.DataFrame], int]
    id_prefix: str = DEMO_PREFIX


def seed_demo(
    *,
    customers: int,
    merchants: int,
    campaigns: int,
    days: int,
    seed: int,
    end_date: dt.date | None = None,
    truth_out: str | Path | None = None,
    replace: bool = False,
    sends_per_day: float | None = None,
    progress: Progress | None = None,
) -> dict:
    """Generate and write the demo data set; return (and optionally write) its truth."""
    progress = progress or NullProgress()
    # Default: up to now, so "the last 7 days" on the dashboard are full of data. Never in the future.
    now = timezone.now()
    end_date = end_date or now.date()
    not_after = now if end_date >= now.date() else None
    extra = {} if sends_per_day is None else {"sends_per_day": sends_per_day}
    config = DemoConfig(
        customers=customers, merchants=merchants, campaigns=campaigns, days=days, seed=seed,
        end_date=end_date, not_after=not_after, id_prefix=DEMO_PREFIX, **extra,
    )
    if not replace:
        _refuse_if_present(seed)
    data = generate(config)
    progress.total(len(data.customers) + len(data.events))
    with transaction.atomic():
        if replace:
            delete_demo_data()
        ctx = _write_base(data, progress)
        truth = dict(data.truth)
        for app in DEMO_EXTENSIONS:
            truth.update(_plant(app, ctx))
    if truth_out:
        path = Path(truth_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(truth, default=str))  # no indent: the C encoder, fast at 1M customers
    return truth


def demo_rows_present() -> bool:
    return (
        Customer.objects.filter(customer_id__startswith=DEMO_PREFIX).exists()
        or Campaign.objects.filter(campaign_id__startswith=DEMO_PREFIX).exists()
        or Merchant.objects.filter(merchant_id__startswith=DEMO_PREFIX).exists()
        or Event.objects.filter(event_id__startswith=DEMO_PREFIX).exists()
    )


def _refuse_if_present(seed: int) -> None:
    if not demo_rows_present():
        return
    same_seed = Event.objects.filter(event_id__startswith=f"{DEMO_PREFIX}evt_{seed}_").exists()
    if same_seed:
        raise DemoDataPresent(
            f"demo data for seed {seed} is already loaded; nothing written (pass replace/--replace to rebuild it)",
            same_seed=True,
        )
    raise DemoDataPresent(
        f"other demo data (ids starting with {DEMO_PREFIX!r}) is already loaded; pass replace/--replace to rebuild it",
        same_seed=False,
    )


def delete_demo_data() -> dict[str, int]:
    """Delete every demo row (external ids starting with ``demo_``) and what hangs off them.

    Rows of other apps that protect a demo row (e.g. an A/B test on a demo campaign) belong to the demo
    too and are deleted with it; cascading relations go the usual way.
    """
    demo = {
        Campaign: Campaign.objects.filter(campaign_id__startswith=DEMO_PREFIX),
        Customer: Customer.objects.filter(customer_id__startswith=DEMO_PREFIX),
        Merchant: Merchant.objects.filter(merchant_id__startswith=DEMO_PREFIX),
        Offer: Offer.objects.filter(offer_id__startswith=DEMO_PREFIX),
    }
    deleted: dict[str, int] = {}
    try:
        with transaction.atomic():
            deleted["events"] = Event.objects.filter(
                Q(event_id__startswith=DEMO_PREFIX)
                | Q(campaign__in=demo[Campaign].values("pk"))
                | Q(customer__in=demo[Customer].values("pk"))
                | Q(merchant__in=demo[Merchant].values("pk"))
                | Q(offer__in=demo[Offer].values("pk"))
            ).delete()[0]
            for model, rows in demo.items():
                for relation in model._meta.related_objects:
                    if relation.on_delete is PROTECT and relation.related_model is not Event:
                        dependants = relation.related_model._base_manager.filter(
                            **{f"{relation.field.name}__in": rows.values("pk")}
                        )
                        deleted[relation.related_model._meta.label] = dependants.delete()[0]
            for model, rows in demo.items():
                deleted[model._meta.model_name] = rows.delete()[0]
    except ProtectedError as exc:
        names = sorted({o._meta.label for o in exc.protected_objects})
        raise DemoDataPresent(
            f"cannot delete the old demo data: rows in {', '.join(names)} protect it", same_seed=False
        ) from exc
    return deleted


# --- writing --------------------------------------------------------------------------------------


def _write_base(data: DemoData, progress: Progress) -> DemoContext:
    segment_pk = dict(Segment.objects.values_list("name", "pk"))
    for name in data.customers["segment"].cat.categories:
        if name not in segment_pk:
            segment_pk[name] = Segment.objects.create(name=name).pk

    Offer.objects.bulk_create(
        Offer(offer_id=row.offer_id, kind=row.kind, value=Decimal(int(row.value)),
              description=f"{row.value}% off (demo)")
        for row in data.offers.itertuples()
    )
    offer_pk = dict(Offer.objects.filter(offer_id__startswith=DEMO_PREFIX).values_list("offer_id", "pk"))

    Merchant.objects.bulk_create(
        (Merchant(merchant_id=r.merchant_id, name=r.name, category=r.category) for r in data.merchants.itertuples()),
        batch_size=5000,
    )
    merchant_pk = dict(Merchant.objects.filter(merchant_id__startswith=DEMO_PREFIX).values_list("merchant_id", "pk"))

    _write_customers(data.customers, segment_pk, progress)
    customer_pk = dict(Customer.objects.filter(customer_id__startswith=DEMO_PREFIX).values_list("customer_id", "pk"))

    camp = data.campaigns
    offer_by_value = {int(v): offer_pk[o] for v, o in zip(data.offers["value"], data.offers["offer_id"], strict=True)}
    Campaign.objects.bulk_create(
        Campaign(
            campaign_id=r.campaign_id,
            name=r.name,
            merchant_id=merchant_pk[r.merchant_id],
            status=r.status,
            channel=r.channel,
            start_date=r.start_date,
            end_date=r.end_date,
            budget=Decimal(int(r.budget_cents)).scaleb(-2),
            current_offer_id=offer_by_value[int(r.current_offer)],
            send_time=dt.time(int(r.send_hour_utc), 0),
        )
        for r in camp.itertuples()
    )
    campaign_pk = dict(Campaign.objects.filter(campaign_id__startswith=DEMO_PREFIX).values_list("campaign_id", "pk"))
    through = Campaign.target_segments.through
    through.objects.bulk_create(
        through(campaign_id=campaign_pk[cid], segment_id=segment_pk[s])
        for cid, targets in zip(camp["campaign_id"], camp["target_segments"], strict=True)
        for s in targets
    )

    ids = {"customer_id": customer_pk, "campaign_id": campaign_pk, "merchant_id": merchant_pk, "offer_id": offer_pk}
    lookups = {col: (pd.Index(list(m.keys())), np.fromiter(m.values(), dtype=np.int64, count=len(m)))
               for col, m in ids.items()}

    def write_events(frame: pd.DataFrame) -> int:
        return _write_events(frame, lookups, progress)

    write_events(data.events)
    config = data.config
    return DemoContext(
        seed=config.seed,
        rng=np.random.default_rng([config.seed, 0]),
        data=data,
        customer_pk=customer_pk,
        campaign_pk=campaign_pk,
        merchant_pk=merchant_pk,
        offer_pk=offer_pk,
        segment_pk=segment_pk,
        start=config.start_date,
        end=config.end_date,
        write_events=write_events,
    )


def _plant(app: str, ctx: DemoContext) -> dict:
    module_name = f"{app}.demo"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (app, module_name):
            return {}
        raise
    plant = getattr(module, "plant", None)
    if plant is None:
        return {}
    ctx.rng = np.random.default_rng([ctx.seed, sum(map(ord, app))])
    return plant(ctx) or {}


def _write_customers(customers: pd.DataFrame, segment_pk: dict[str, int], progress: Progress) -> None:
    now = timezone.now()
    segment = np.array([segment_pk[s] for s in customers["segment"].cat.categories])[customers["segment"].cat.codes]
    rows = pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "signup_date": customers["signup_date"].astype(str),
            "timezone": customers["timezone"].astype(str),
            "segment_id": segment,
            "created_at": now,
        }
    )
    # Every id was resolved in this transaction: the per-row foreign-key triggers may be skipped.
    copy_in(Customer._meta.db_table, (rows.iloc[lo : lo + CHUNK] for lo in range(0, len(rows), CHUNK)),
            advanced=progress.advance, skip_fk_triggers=True)


def _pks(values: pd.Series, lookup: tuple[pd.Index, np.ndarray], column: str) -> pd.array:
    """Primary keys for external ids (nullable); an unknown id is an error, not a silent null."""
    known, pks = lookup
    if isinstance(values.dtype, pd.CategoricalDtype):
        category_pos = known.get_indexer(values.cat.categories)
        codes = values.cat.codes.to_numpy()
        pos = np.where(codes >= 0, category_pos[codes], -1)
    else:
        pos = known.get_indexer(values)
    missing = (pos < 0) & values.notna().to_numpy()
    if missing.any():
        raise ValueError(f"{column}: unknown id {values[missing].iloc[0]!r} in demo events")
    out = pd.array(pks[np.maximum(pos, 0)], dtype="Int64")
    out[pos < 0] = pd.NA
    return out


def _amount_text(frame: pd.DataFrame) -> pd.Series:
    """Exact decimal text ("123.45") of each amount; NA where there is none."""
    if "amount_cents" in frame:
        cents = frame["amount_cents"].astype("Int64")
        out = pd.Series(pd.NA, index=frame.index, dtype=object)
        has = cents.notna().to_numpy()
        values = cents[has].astype(np.int64)
        sign = np.where(values < 0, "-", "")
        values = values.abs()
        out[has] = sign + (values // 100).astype(str) + "." + (values % 100).astype(str).str.zfill(2)
        return out
    if "amount" in frame:
        return frame["amount"].map(lambda a: None if a is None or pd.isna(a) else str(Decimal(str(a)).quantize(Decimal("0.01"))))
    return pd.Series(pd.NA, index=frame.index, dtype=object)


def _write_events(frame: pd.DataFrame, lookups: dict, progress: Progress) -> int:
    chunks = (_event_rows(frame.iloc[lo : lo + CHUNK], lookups) for lo in range(0, len(frame), CHUNK))
    return copy_in(Event._meta.db_table, chunks, advanced=progress.advance, skip_fk_triggers=True)


def _event_rows(part: pd.DataFrame, lookups: dict) -> pd.DataFrame:
    """Wire-format events -> rows of the events table (ids resolved to primary keys)."""
    occurred = pd.to_datetime(part["occurred_at"], utc=True)
    rows = pd.DataFrame(
        {
            "event_id": part["event_id"].astype(str),
            "type": part["type"].astype(str),
            "occurred_at": occurred,
            "received_at": occurred + RECEIVED_LAG,
            "customer_id": _pks(part["customer_id"], lookups["customer_id"], "customer_id"),
            "campaign_id": _pks(part["campaign_id"], lookups["campaign_id"], "campaign_id"),
            "merchant_id": _optional_pks(part, "merchant_id", lookups),
            "offer_id": _optional_pks(part, "offer_id", lookups),
            "variant": part["variant"].astype(str) if "variant" in part else "",
            "amount": _amount_text(part),
            "channel": part["channel"].astype(str) if "channel" in part else "",
        }
    )
    if rows["campaign_id"].isna().any():
        raise ValueError("campaign_id: every demo event needs a campaign")
    return rows


def _optional_pks(part: pd.DataFrame, column: str, lookups: dict) -> pd.array:
    if column not in part:
        return pd.array([pd.NA] * len(part), dtype="Int64")
    return _pks(part[column], lookups[column], column)



"""Random event sets for the aggregation tests (hypothesis strategies) and their pandas reference."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pandas as pd
from hypothesis import strategies as st

from campaigns.models import Event

FIRST_DAY = dt.date(2025, 3, 1)  # a Saturday: the window crosses a week and (with 40 days) a month boundary
TYPES = [t.value for t in Event.Type]
COUNT_TYPES = {
    "sends": Event.Type.NOTIFICATION_SENT,
    "opens": Event.Type.NOTIFICATION_OPENED,
    "views": Event.Type.VIEW,
    "clicks": Event.Type.CLICK,
    "conversions": Event.Type.CONVERSION,
}

# One event: (campaign index, customer index or None, type, day offset, second of the day, amount in cents)
event_rows = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.one_of(st.none(), st.integers(0, 5)),
        st.sampled_from(TYPES),
        st.integers(0, 40),
        st.integers(0, 86399),
        st.integers(0, 500_00),
    ),
    max_size=60,
)


def occurred(day_offset: int, second: int) -> dt.datetime:
    return dt.datetime.combine(FIRST_DAY + dt.timedelta(days=day_offset), dt.time.min, tzinfo=dt.UTC) + dt.timedelta(
        seconds=second
    )


def create_random_events(n: int, *, seed: int, days: int, campaigns: list, customers: list, prefix: str) -> None:
    """``n`` events of every type at random moments of the first ``days`` days, random campaigns and
    customers (``None`` among them: no customer), with amounts from 0 to 99.99."""
    rng = random.Random(seed)
    Event.objects.bulk_create([
        Event(event_id=f"{prefix}{i}", type=rng.choice(list(Event.Type)), occurred_at=occurred(rng.randrange(days), rng.randrange(86400)),
              campaign=rng.choice(campaigns), customer=rng.choice(customers), amount=Decimal(rng.randrange(10000)) / 100)
        for i in range(n)
    ])


def reference_frames(events: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Independent computation of the daily and segment tables from raw event dicts with pandas.

    Each dict: campaign_id (pk), customer_id (pk or None), segment_id (or None), type, occurred_at, amount.
    """
    cols = ["campaign_id", "date", *COUNT_TYPES, "revenue", "cost"]
    if not events:
        return pd.DataFrame(columns=cols), pd.DataFrame(
            columns=["campaign_id", "segment_id", "date", "users", "views", "conversions", "revenue", "cost"]
        )
    df = pd.DataFrame(events)
    df["date"] = pd.to_datetime(df["occurred_at"], utc=True).dt.date
    for name, type_ in COUNT_TYPES.items():
        df[name] = (df["type"] == type_).astype(int)
    amount = df["amount"].map(lambda a: Decimal(0) if a is None else Decimal(a))
    df["revenue"] = [a if t == Event.Type.CONVERSION else Decimal(0) for a, t in zip(amount, df["type"], strict=True)]
    df["cost"] = [a if t == Event.Type.SPEND else Decimal(0) for a, t in zip(amount, df["type"], strict=True)]
    sums = {name: "sum" for name in [*COUNT_TYPES, "revenue", "cost"]}
    daily = df.groupby(["campaign_id", "date"]).agg(sums).reset_index()
    seg = df[df["segment_id"].notna()].copy()
    seg["segment_id"] = seg["segment_id"].astype(int)
    segment = (
        seg.groupby(["campaign_id", "segment_id", "date"])
        .agg(users=("customer_id", "nunique"), views=("views", "sum"), conversions=("conversions", "sum"),
             revenue=("revenue", "sum"), cost=("cost", "sum"))
        .reset_index()
    )
    return daily[cols], segment

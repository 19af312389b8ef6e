"""Feature engineering: every family equals an independent pandas / zoneinfo computation over the raw events."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.db.models import F, Max, Q

from campaigns.models import Event
from optimizer import features
from optimizer.ml import propensity
from tests.factories import (
    CampaignFactory,
    CustomerFactory,
    EventFactory,
    MerchantFactory,
    OfferFactory,
    SegmentFactory,
)

pytestmark = pytest.mark.django_db
UTC = dt.UTC
T = Event.Type


def at(day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 1, tzinfo=UTC) + dt.timedelta(days=day, hours=hour, minutes=minute)


@pytest.fixture
def world():
    """Three customers in three zones, two merchants, two offers, a varied event history."""
    seg_new = SegmentFactory(name="new_users")
    seg_ret = SegmentFactory(name="returning_users")
    camp = CampaignFactory()
    m1, m2 = MerchantFactory(), MerchantFactory()
    o10, o30 = OfferFactory(value=Decimal("10")), OfferFactory(value=Decimal("30"))
    a = CustomerFactory(timezone="America/New_York", segment=seg_new, signup_date=dt.date(2026, 2, 1))
    b = CustomerFactory(timezone="Asia/Kolkata", segment=seg_ret, signup_date=dt.date(2025, 6, 1))
    c = CustomerFactory(timezone="UTC", segment=None, signup_date=dt.date(2026, 2, 20))
    rows = [
        (a, T.NOTIFICATION_SENT, at(0, 9), None, o10, None), (a, T.NOTIFICATION_OPENED, at(0, 14, 30), None, o10, None),
        (a, T.VIEW, at(0, 15), m1, o10, None), (a, T.CLICK, at(0, 15, 5), m1, o10, None),
        (a, T.CONVERSION, at(0, 15, 20), m1, o10, Decimal("40.50")),
        (a, T.NOTIFICATION_SENT, at(5, 9), None, o30, None), (a, T.NOTIFICATION_OPENED, at(130, 14, 30), None, o30, None),
        (b, T.NOTIFICATION_SENT, at(1, 8), None, o30, None), (b, T.NOTIFICATION_OPENED, at(1, 14, 30), None, o30, None),
        (b, T.VIEW, at(2, 10), m2, o30, None), (b, T.CONVERSION, at(3, 10), m2, o30, Decimal("70.00")),
        (b, T.CONVERSION, at(20, 10), m1, o30, Decimal("19.99")), (b, T.NOTIFICATION_SENT, at(21, 8), None, o10, None),
        (c, T.NOTIFICATION_SENT, at(2, 23), None, o10, None),
    ]
    for customer, kind, when, merchant, offer, amount in rows:
        EventFactory(customer=customer, campaign=camp, type=kind, occurred_at=when, merchant=merchant, offer=offer, amount=amount)
    return {"a": a, "b": b, "c": c, "m1": m1, "m2": m2}


def raw_events() -> pd.DataFrame:
    frame = pd.DataFrame.from_records(
        list(Event.objects.values("customer_id", "merchant_id", "type", "occurred_at", "amount", "offer__value", "customer__segment__name"))
    )
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    return frame


def test_customer_frame_counts_recency_and_money_match_pandas_over_raw_events(world):
    as_of = at(10)
    frame = features.customer_frame(as_of, label_until=at(30))
    events = raw_events()
    before = events[events["occurred_at"] < as_of]
    for key in ("a", "b", "c"):
        pk = world[key].pk
        mine = before[before["customer_id"] == pk]
        row = frame.loc[pk]
        assert row["sent"] == (mine["type"] == T.NOTIFICATION_SENT).sum()
        assert row["opens"] == (mine["type"] == T.NOTIFICATION_OPENED).sum()
        assert row["conversions"] == (mine["type"] == T.CONVERSION).sum()
        assert row["revenue"] == pytest.approx(float(mine.loc[mine["type"] == T.CONVERSION, "amount"].sum()))
        assert row["recency_days"] == pytest.approx((as_of - mine["occurred_at"].max()).total_seconds() / 86400)
        span = (mine["occurred_at"].max() - mine["occurred_at"].min()).total_seconds() / 86400 if len(mine) else 0.0
        assert row["active_span_days"] == pytest.approx(span)
        later = events[(events["customer_id"] == pk) & (events["occurred_at"] >= as_of) & (events["occurred_at"] < at(30))]
        assert row["converted_next"] == int((later["type"] == T.CONVERSION).any())
        assert row["opened_next"] == int((later["type"] == T.NOTIFICATION_OPENED).any())
    assert frame.loc[world["a"].pk, "tenure_days"] == pytest.approx((as_of - dt.datetime(2026, 2, 1, tzinfo=UTC)).total_seconds() / 86400)
    assert frame.loc[world["a"].pk, "segment_new_users"] == 1 and frame.loc[world["c"].pk, "segment_new_users"] == 0


def test_customer_frame_never_sees_events_after_its_cut_off(world):
    early = features.customer_frame(at(1, 0))
    # Customer a's only events before day 1 00:00 are those of day 0: one conversion of 40.50.
    assert early.loc[world["a"].pk, "conversions"] == 1
    assert early.loc[world["a"].pk, "revenue"] == pytest.approx(40.50)
    assert early.loc[world["b"].pk, "sent"] == 0 and np.isnan(early.loc[world["b"].pk, "recency_days"])


def test_open_hours_are_counted_in_each_customers_local_time_including_dst(world):
    counts = features.open_hour_counts(None, None)
    expected = {}
    for when, customer in [(at(0, 14, 30), world["a"]), (at(130, 14, 30), world["a"]), (at(1, 14, 30), world["b"])]:
        local_hour = when.astimezone(zoneinfo.ZoneInfo(customer.timezone)).hour
        expected[(customer.pk, local_hour)] = expected.get((customer.pk, local_hour), 0) + 1
    # New York: 14:30 UTC is 09:30 in March before DST and 10:30 in July; Kolkata (+05:30): 20:00.
    assert expected == {(world["a"].pk, 9): 1, (world["a"].pk, 10): 1, (world["b"].pk, 20): 1}
    for (pk, hour), n in expected.items():
        assert counts.loc[pk, hour] == n
    assert counts.to_numpy().sum() == 3
    assert counts.loc[world["c"].pk].sum() == 0


def test_customer_merchant_weights_decay_by_half_life_like_an_independent_computation(world):
    end = at(40)
    inter = features.customer_merchant_interactions(None, end, half_life_days=10.0).set_index(["customer_id", "merchant_id"])
    events = raw_events()
    events = events[events["merchant_id"].notna() & events["type"].isin(list(features.INTERACTION_WEIGHTS))]
    events["age"] = (end.date() - events["occurred_at"].dt.date).map(lambda d: d.days)
    events["w"] = events["type"].map(features.INTERACTION_WEIGHTS) * 0.5 ** (events["age"] / 10.0)
    reference = events.groupby(["customer_id", "merchant_id"]).agg(weight=("w", "sum"), n=("w", "size"))
    assert len(inter) == len(reference)
    for key, ref in reference.iterrows():
        assert inter.loc[key, "weight"] == pytest.approx(ref["weight"])
        assert inter.loc[key, "interactions"] == ref["n"]
    assert inter.loc[(world["b"].pk, world["m2"].pk), "revenue"] == pytest.approx(70.0)


@pytest.mark.parametrize("points", [[None, None], [None, at(2, 9), None], [at(1), at(3, 10), at(21, 8), None]])
def test_offer_exposures_equal_a_pandas_group_by_segment_and_offer(world, points):
    """Each window between consecutive points (the offer model's training and holdout windows) against a
    pandas group-by of the raw events in that window (a boundary moment belongs to the later window)."""
    windows = [features.offer_exposures(start, end) for start, end in zip(points[:-1], points[1:], strict=True)]
    events = raw_events().dropna(subset=["customer__segment__name", "offer__value"])
    events = events[events["type"].isin([T.NOTIFICATION_SENT, T.CONVERSION])]
    events["offer_value"] = events["offer__value"].astype(float)
    for got, (start, end) in zip(windows, zip(points[:-1], points[1:], strict=True), strict=True):
        after_start = events["occurred_at"] >= start if start else pd.Series(True, index=events.index)
        before_end = events["occurred_at"] < end if end else pd.Series(True, index=events.index)
        inside = events[after_start & before_end]
        ref = inside.groupby(["customer__segment__name", "offer_value"]).agg(
            sends=("type", lambda s: (s == T.NOTIFICATION_SENT).sum()),
            conversions=("type", lambda s: (s == T.CONVERSION).sum()),
            revenue=("amount", lambda a: float(sum(x for x in a if x is not None and x == x))),
        )
        got = got.set_index(["segment", "offer_value"])
        assert sorted(got.index) == sorted(ref.index), (start, end)
        for key, row in ref.iterrows():
            assert got.loc[key, "sends"] == row["sends"]
            assert got.loc[key, "conversions"] == row["conversions"]
            assert got.loc[key, "revenue"] == pytest.approx(row["revenue"])


def test_moment_columns_read_back_as_the_stored_moments_on_either_database(world):
    """``moment_column`` sends seconds since 1970 on PostgreSQL and UTC text on SQLite; the fetch gives both back as
    the moments the ORM reads (microseconds included), a missing one as NaT."""
    Event.objects.filter(pk=Event.objects.order_by("pk").first().pk).update(occurred_at=at(4, 7, 13) + dt.timedelta(microseconds=987_654))
    rows = features.fetch(Event.objects.annotate(m=features.moment_column(F("occurred_at"))).values_list("id", "m").order_by("id"),
                          ["id", "m"], moments=("m",))
    expected = dict(Event.objects.values_list("id", "occurred_at"))
    assert len(rows) == len(expected) == 14
    for pk, moment in zip(rows["id"], rows["m"], strict=True):
        assert moment.to_pydatetime() == expected[pk], (pk, moment, expected[pk])
    missing = features.fetch(Event.objects.values("campaign_id").annotate(
        m=features.moment_column(Max("occurred_at", filter=Q(type="no_such_type")))).values_list("m").order_by(), ["m"], moments=("m",))
    assert missing["m"].isna().all() and len(missing) == 1


def test_time_split_puts_the_holdout_after_the_training_window(world):
    split = features.time_split(holdout_days=14)
    assert split.train_cutoff < split.cutoff < split.end
    assert split.end - split.cutoff == dt.timedelta(days=14) == split.cutoff - split.train_cutoff
    assert split.end > Event.objects.latest("occurred_at").occurred_at


def test_normalisation_is_fitted_on_training_rows_only():
    rng = np.random.default_rng(3)
    cols = ["recency_days", "conversions"]
    train = pd.DataFrame({"recency_days": rng.uniform(0, 10, 300), "conversions": rng.integers(0, 5, 300)})
    train["y"] = (train["conversions"] > 2).astype(int)
    holdout = pd.DataFrame({"recency_days": rng.uniform(0, 100, 200), "conversions": rng.integers(0, 50, 200)})
    holdout["y"] = (holdout["conversions"] > 2).astype(int)
    artifact, _ = propensity.fit(train, holdout, features=cols, label="y", heuristic_frequency="conversions")
    scaler = artifact["scaler"]
    np.testing.assert_allclose(scaler.data_max_, train[cols].max().to_numpy(float))
    np.testing.assert_allclose(scaler.data_min_, train[cols].min().to_numpy(float))
    scaled = scaler.transform(holdout[cols].to_numpy(float))
    assert scaled.min() >= 0.0 and scaled.max() <= 1.0  # later, larger values are clipped, not refitted


def test_customer_frame_pair_from_one_pass_equals_the_two_separate_frames(world):
    first, second, end = at(10), at(20, 7), at(40)
    one_pass = features.customer_frame_pair(first, second, end)
    for frame, (as_of, until) in zip(one_pass, ((first, second), (second, end)), strict=True):
        separate = features.customer_frame(as_of, label_until=until)
        pd.testing.assert_frame_equal(frame.sort_index(axis=1), separate.sort_index(axis=1), check_dtype=False)
    # And against the raw events: labels of the first frame are what happened in [first, second).
    events = raw_events()
    for key in ("a", "b", "c"):
        pk = world[key].pk
        window = events[(events["customer_id"] == pk) & (events["occurred_at"] >= first) & (events["occurred_at"] < second)]
        assert one_pass[0].loc[pk, "converted_next"] == int((window["type"] == T.CONVERSION).any())
        assert one_pass[0].loc[pk, "opened_next"] == int((window["type"] == T.NOTIFICATION_OPENED).any())


def test_fetch_keeps_text_as_text_and_numbers_as_numbers_on_postgres(postgres):
    """The COPY-and-read_csv path: ids that look like numbers or like NA stay text, NULL is missing."""
    from campaigns.models import Customer
    from optimizer.features import fetch

    Customer.objects.bulk_create([Customer(customer_id=ext, timezone="UTC") for ext in ("0042", "NA", "null", "a,b \"c\"")])
    frame = fetch(Customer.objects.order_by("customer_id").values("id", "customer_id", "signup_date", "segment_id"))
    assert sorted(frame["customer_id"]) == sorted(["0042", "NA", "null", "a,b \"c\""])
    assert frame["id"].dtype.kind == "i" and frame["signup_date"].isna().all() and frame["segment_id"].isna().all()
    empty = fetch(Customer.objects.filter(customer_id="nobody").values("id", "customer_id"))
    assert list(empty.columns) == ["id", "customer_id"] and empty.empty

"""The demo generator plants a truth that is really in the events, and the loader writes it faithfully.

Planted structure is checked with independent pandas computations over the raw event frame
(local hours via pandas' own time-zone conversion, profit per send per offer, most-bought merchant),
never by reading the generator's internals.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Sum

from campaigns.demo import EVENT_COLUMNS, EVENT_TYPES, OFFER_LADDER, DemoConfig, generate
from campaigns.demo_load import DemoDataPresent, seed_demo
from campaigns.models import Campaign, Customer, Event, Merchant, Offer
from campaigns.services import validate_batch

END = dt.date(2026, 6, 30)


def small(seed: int = 3, **overrides) -> DemoConfig:
    return DemoConfig(customers=300, merchants=12, campaigns=5, days=20, seed=seed, end_date=END, **overrides)


@pytest.fixture(scope="module")
def big():
    """Large enough for the planted effects to show through sampling noise (about 1.2M events)."""
    return generate(DemoConfig(customers=12_000, merchants=50, campaigns=12, days=60, seed=11, end_date=END))


def local_open_hours(data) -> pd.DataFrame:
    opens = data.events.loc[data.events["type"] == "notification_opened", ["customer_id", "occurred_at"]]
    opens = opens.assign(customer_id=opens["customer_id"].astype(str))
    zone = data.customers.set_index("customer_id")["timezone"].astype(str)
    opens["tz"] = zone.reindex(opens["customer_id"]).to_numpy()
    opens["hour"] = -1
    for tz, rows in opens.groupby("tz"):
        opens.loc[rows.index, "hour"] = rows["occurred_at"].dt.tz_convert(tz).dt.hour
    return opens


# --- the pure generator ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_frames_and_truth():
    first, second = generate(small()), generate(small())
    for name in ("merchants", "customers", "offers", "campaigns", "events"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    assert first.truth == second.truth


def test_different_seeds_give_different_data():
    first, second = generate(small(seed=3)), generate(small(seed=4))
    assert first.truth["preferred_hour"] != second.truth["preferred_hour"]
    assert first.truth["merchant_preference"] != second.truth["merchant_preference"]
    assert first.truth["offer_response"] != second.truth["offer_response"]
    assert len(first.events) != len(second.events) or not first.events["occurred_at"].equals(second.events["occurred_at"])
    assert set(first.events["event_id"]).isdisjoint(second.events["event_id"])


def test_events_follow_the_wire_format_and_the_window():
    data = generate(small())
    events = data.events
    assert tuple(events.columns) == EVENT_COLUMNS
    assert events["event_id"].is_unique
    assert set(events["type"].astype(str)) == set(EVENT_TYPES)
    assert events["occurred_at"].is_monotonic_increasing
    start = pd.Timestamp(data.config.start_date, tz="UTC")
    assert events["occurred_at"].min() >= start
    assert events["occurred_at"].max() < start + pd.Timedelta(days=data.config.days)
    money = events["type"].isin(["conversion", "spend"])
    assert events.loc[money, "amount_cents"].notna().all() and (events.loc[money, "amount_cents"] > 0).all()
    assert events.loc[~money, "amount_cents"].isna().all()
    assert events.loc[events["type"] == "spend", "customer_id"].isna().all()
    assert events.loc[events["type"] != "spend", "customer_id"].notna().all()
    # Nobody hears from us before signing up, and draft campaigns have no events.
    signup = data.customers.set_index("customer_id")["signup_date"]
    with_customer = events.dropna(subset=["customer_id"])
    first_day = with_customer["occurred_at"].dt.date.to_numpy()
    assert (first_day >= signup.reindex(with_customer["customer_id"].astype(str)).to_numpy()).all()
    drafts = set(data.campaigns.loc[data.campaigns["status"] == "draft", "campaign_id"])
    assert drafts.isdisjoint(set(events["campaign_id"].astype(str)))


def test_not_after_cuts_the_stream_at_that_instant():
    cut = dt.datetime.combine(END, dt.time(9, 30), tzinfo=dt.UTC)
    events = generate(small(not_after=cut)).events
    assert events["occurred_at"].max() < pd.Timestamp(cut)
    assert events["occurred_at"].max() > pd.Timestamp(cut) - pd.Timedelta(hours=3)


def test_every_conversion_follows_a_click_a_view_an_open_and_a_send():
    events = generate(small()).events
    counts = events.groupby(["customer_id", "campaign_id", "type"], observed=True).size().unstack(fill_value=0)
    funnel = ["notification_sent", "notification_opened", "view", "click", "conversion"]
    for upper, lower in zip(funnel, funnel[1:], strict=False):
        assert (counts[upper] >= counts[lower]).all(), f"more {lower} than {upper} for some customer"


def test_activity_is_heavy_tailed(big):
    opens = big.events[big.events["type"] == "notification_opened"].groupby("customer_id", observed=False).size()
    events = big.events.groupby("customer_id", observed=False).size()
    assert (opens >= 20).mean() > 0.10  # a good share of customers open 20+ notifications
    assert (events < 5).mean() > 0.02  # and some barely appear


def test_planted_hour_is_the_modal_local_open_hour_for_customers_with_enough_opens(big):
    opens = local_open_hours(big)
    per_customer = opens.groupby("customer_id").size()
    heavy = per_customer[per_customer >= 20].index
    modal = opens[opens["customer_id"].isin(heavy)].groupby("customer_id")["hour"].agg(lambda h: h.value_counts().idxmax())
    planted = pd.Series(big.truth["preferred_hour"]).reindex(modal.index)
    assert len(modal) > 500
    assert (modal == planted).mean() >= 0.9


def test_sends_are_spread_over_the_day_but_opens_cluster_at_the_preferred_hour(big):
    preferred = pd.Series(big.truth["preferred_hour"])

    def share_near_preferred(events: pd.DataFrame) -> float:
        local = local_open_hours(big) if events is None else events
        gap = (local["hour"].to_numpy() - preferred.reindex(local["customer_id"]).to_numpy()) % 24
        return float((np.minimum(gap, 24 - gap) <= 1).mean())

    sends = big.events.loc[big.events["type"] == "notification_sent", ["customer_id", "occurred_at"]]
    sends = sends.assign(customer_id=sends["customer_id"].astype(str))
    zone = big.customers.set_index("customer_id")["timezone"].astype(str).reindex(sends["customer_id"]).to_numpy()
    sends["hour"] = -1
    for tz in np.unique(zone):
        rows = zone == tz
        sends.loc[rows, "hour"] = sends.loc[rows, "occurred_at"].dt.tz_convert(tz).dt.hour
    assert share_near_preferred(sends) < 0.25  # a 3-hour band holds 1/8 of a uniform day
    assert share_near_preferred(None) > 0.5  # while most opens fall within an hour of it


def segment_offer_counts(data) -> pd.DataFrame:
    """Per (segment, offer value): sends, clicks, conversions and revenue (cents), straight from the events."""
    events = data.events[data.events["type"].isin(["notification_sent", "click", "conversion"])]
    segment = data.customers.set_index("customer_id")["segment"].astype(str)
    value = data.offers.set_index("offer_id")["value"]
    frame = pd.DataFrame({
        "segment": segment.reindex(events["customer_id"].astype(str)).to_numpy(),
        "offer": value.reindex(events["offer_id"].astype(str)).to_numpy(),
        "type": events["type"].astype(str).to_numpy(),
        "cents": events["amount_cents"].astype("Float64").fillna(0).to_numpy(float),
    })
    counts = frame.pivot_table(index=["segment", "offer"], columns="type", values="cents", aggfunc="size", fill_value=0)
    return counts.assign(revenue=frame[frame["type"] == "conversion"].groupby(["segment", "offer"])["cents"].sum())


def test_planted_best_offer_maximises_empirical_profit_per_segment(big):
    counts = segment_offer_counts(big)
    spend = big.events.loc[big.events["type"] == "spend", "amount_cents"].sum()
    cost_per_send = spend / (big.events["type"] == "notification_sent").sum()
    profit = (counts["revenue"] / counts["notification_sent"] - cost_per_send).unstack()  # per send, in cents
    assert sorted(profit.columns) == list(OFFER_LADDER)
    recovered = {seg: int(profit.loc[seg].idxmax()) for seg in profit.index}
    assert recovered == big.truth["best_offer"]
    assert len(set(recovered.values())) == 3  # segments really differ


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_conversion_per_click_follows_each_seeds_own_planted_offer_curve(seed):
    """Every cell of the drawn curve is in the events: clicks convert at the planted rate of their segment and offer."""
    data = generate(DemoConfig(customers=4000, merchants=20, campaigns=6, days=30, seed=seed, end_date=END))
    counts = segment_offer_counts(data)
    planted = data.truth["offer_response"]
    for (segment, offer), row in counts.iterrows():
        p = planted[segment][str(int(offer))]["conversion_given_click"]
        se = np.sqrt(p * (1 - p) / row["click"])
        assert row["click"] > 300
        assert abs(row["conversion"] / row["click"] - p) < 4.5 * se, (segment, offer, row["conversion"] / row["click"], p)


def test_planted_offer_curves_differ_between_seeds_and_cover_the_whole_ladder():
    """Different truths, not only different noise: over 20 seeds every rung is somebody's best offer."""
    winners = []
    for seed in range(20):
        truth = generate(DemoConfig(customers=30, merchants=3, campaigns=2, days=2, seed=seed, end_date=END)).truth
        best = truth["best_offer"]
        assert len(set(best.values())) == 3  # the segments of one seed differ
        for segment, by_offer in truth["offer_response"].items():
            p = np.array([by_offer[str(v)]["conversion_given_click"] for v in OFFER_LADDER])
            profit = p * (1 - np.array(OFFER_LADDER) / 100)
            assert OFFER_LADDER[int(np.argmax(profit))] == best[segment]
            assert (np.diff(p) >= 0).all()  # a bigger discount never lowers conversion
            # the planted best wins by a margin (the next rung up loses its discount's share of the margin)
            assert np.sort(profit)[-2] <= profit.max() * 0.9 + 1e-3
            winners.append(best[segment])
    assert set(winners) == set(OFFER_LADDER)
    assert 0 in winners and max(OFFER_LADDER) in winners


def test_top_planted_merchant_is_bought_from_most_by_heavy_buyers_far_more_than_chance(big):
    conversions = big.events[big.events["type"] == "conversion"]
    per_pair = conversions.groupby(["customer_id", "merchant_id"], observed=True).size().rename("n").reset_index()
    totals = per_pair.groupby("customer_id", observed=True)["n"].sum()
    heavy = totals[totals >= 5].index
    favourite = (
        per_pair[per_pair["customer_id"].isin(heavy)]
        .sort_values(["customer_id", "n"], ascending=[True, False])
        .drop_duplicates("customer_id")
    )
    hits = np.mean([
        big.truth["merchant_preference"][str(row.customer_id)][0] == str(row.merchant_id)
        for row in favourite.itertuples()
    ])
    assert len(heavy) > 200
    assert hits > 10 / big.config.merchants  # chance is 1 / merchants
    assert all(len(v) == 10 for v in big.truth["merchant_preference"].values())


def test_campaign_roi_is_planted_and_differs_between_campaigns(big):
    money = big.events.dropna(subset=["amount_cents"])
    totals = money.groupby(["campaign_id", "type"], observed=True)["amount_cents"].sum().unstack(fill_value=0)
    realised = ((totals["conversion"] - totals["spend"]) / totals["spend"]).astype(float)
    realised.index = realised.index.astype(str)
    planted = pd.Series(big.truth["campaign_roi"])
    assert set(realised.index) == set(planted.index)
    assert np.allclose(realised.sort_index(), planted.sort_index(), atol=1e-3)
    assert realised.min() < -0.3 and realised.max() > 1.0


# --- the Django loader ----------------------------------------------------------------------------

SIZE = {"customers": 120, "merchants": 8, "campaigns": 4, "days": 12, "end_date": END}


def wire(event: Event) -> dict:
    """An event as the ingestion API would receive it."""
    out = {
        "event_id": event.event_id, "type": event.type, "occurred_at": event.occurred_at.isoformat(),
        "customer_id": event.customer.customer_id if event.customer else None,
        "campaign_id": event.campaign.campaign_id,
        "merchant_id": event.merchant.merchant_id if event.merchant else None,
        "offer_id": event.offer.offer_id if event.offer else None,
        "variant": event.variant,
        "amount": str(event.amount) if event.amount is not None else None,
    }
    return {k: v for k, v in out.items() if v not in (None, "")}


@pytest.mark.django_db
def test_seed_demo_writes_every_generated_row_and_the_truth_file(tmp_path):
    expected = generate(DemoConfig(seed=5, id_prefix="demo_", **SIZE))
    truth = seed_demo(seed=5, truth_out=tmp_path / "truth.json", **SIZE)

    # Extensions (the A/B plant) may add rows of their own; the base rows are exactly the frames.
    def stored(model, field, ids):
        return set(model.objects.filter(**{f"{field}__in": list(ids)}).values_list(field, flat=True))

    assert stored(Customer, "customer_id", expected.customers["customer_id"]) == set(expected.customers["customer_id"])
    assert stored(Merchant, "merchant_id", expected.merchants["merchant_id"]) == set(expected.merchants["merchant_id"])
    assert stored(Campaign, "campaign_id", expected.campaigns["campaign_id"]) == set(expected.campaigns["campaign_id"])
    assert stored(Offer, "offer_id", expected.offers["offer_id"]) == set(expected.offers["offer_id"])
    base = Event.objects.filter(event_id__startswith="demo_evt_5_")
    by_type = dict(base.values_list("type").annotate(n=Count("id")))
    assert by_type == expected.events["type"].astype(str).value_counts().to_dict()
    sums = dict(base.filter(amount__isnull=False).values_list("type").annotate(s=Sum("amount")))
    frame_sums = expected.events.dropna(subset=["amount_cents"]).groupby("type", observed=True)["amount_cents"].sum()
    assert sums == {t: Decimal(int(c)).scaleb(-2) for t, c in frame_sums.items()}

    written = json.loads((tmp_path / "truth.json").read_text())
    assert written == json.loads(json.dumps(truth))
    for key in ("preferred_hour", "best_offer", "merchant_preference", "campaign_roi"):
        assert written[key], key
    assert set(written["preferred_hour"]) == set(expected.customers["customer_id"])

    customer = Customer.objects.select_related("segment").get(customer_id="demo_user_0")
    row = expected.customers.iloc[0]
    assert (customer.segment.name, customer.timezone, customer.signup_date) == (row.segment, row.timezone, row.signup_date)
    campaign = Campaign.objects.get(campaign_id="demo_camp_0")
    assert sorted(campaign.target_segments.values_list("name", flat=True)) == sorted(expected.campaigns.target_segments[0])


@pytest.mark.django_db
def test_loaded_events_pass_the_ingestion_validation():
    seed_demo(seed=6, **SIZE)
    events = list(Event.objects.select_related("customer", "campaign", "merchant", "offer"))
    valid, errors = validate_batch(
        [wire(e) for e in events], now=dt.datetime.combine(END, dt.time(23, 59), tzinfo=dt.UTC)
    )
    assert errors == []
    assert len(valid) == len(events)
    assert all(e.received_at >= e.occurred_at for e in events)


@pytest.mark.django_db
def test_rerun_with_the_same_seed_writes_nothing_and_another_seed_needs_replace():
    seed_demo(seed=5, **SIZE)
    before = Event.objects.count()
    with pytest.raises(DemoDataPresent) as same:
        seed_demo(seed=5, **SIZE)
    assert same.value.same_seed
    with pytest.raises(DemoDataPresent) as other:
        seed_demo(seed=9, **SIZE)
    assert not other.value.same_seed
    assert Event.objects.count() == before
    assert Customer.objects.filter(customer_id__startswith="demo_user_").count() == SIZE["customers"]


@pytest.mark.django_db
def test_replace_swaps_the_old_demo_data_for_the_new_and_keeps_other_rows():
    other = Merchant.objects.create(merchant_id="m_real", name="Real merchant")
    seed_demo(seed=5, **SIZE)
    seed_demo(seed=9, replace=True, **SIZE)
    expected = generate(DemoConfig(seed=9, **SIZE))
    assert Event.objects.filter(event_id__startswith="demo_evt_9_").count() == len(expected.events)
    assert not Event.objects.filter(event_id__startswith="demo_evt_5_").exists()
    assert Customer.objects.filter(customer_id__startswith="demo_user_").count() == SIZE["customers"]
    assert Merchant.objects.filter(pk=other.pk).exists()


@pytest.mark.django_db
def test_seed_demo_on_postgres_stores_exactly_the_generated_events(postgres, tmp_path):
    expected = generate(DemoConfig(seed=4, **SIZE))
    seed_demo(seed=4, truth_out=tmp_path / "t.json", **SIZE)
    stored = pd.DataFrame.from_records(
        Event.objects.filter(event_id__startswith="demo_evt_4_").order_by("event_id").values("event_id", "type", "occurred_at", "amount")
    )
    frame = expected.events.sort_values("event_id")
    assert stored["event_id"].tolist() == frame["event_id"].tolist()
    assert (pd.to_datetime(stored["occurred_at"], utc=True).to_numpy() == frame["occurred_at"].to_numpy()).all()
    cents = stored["amount"].map(lambda a: None if a is None else int(a * 100))
    assert cents.fillna(-1).astype(int).tolist() == frame["amount_cents"].fillna(-1).astype(int).tolist()


@pytest.mark.django_db
def test_command_builds_the_demo_and_refuses_other_demo_data_without_replace(tmp_path, capsys):
    out = tmp_path / "truth.json"
    args = ["--customers", "60", "--merchants", "5", "--campaigns", "3", "--days", "7", "--end-date", END.isoformat()]
    call_command("seed_demo", *args, "--seed", "2", "--truth-out", str(out), verbosity=0)
    assert json.loads(out.read_text())["seed"] == 2
    call_command("seed_demo", *args, "--seed", "2", verbosity=0)  # same seed: says so, writes nothing
    assert "already loaded" in capsys.readouterr().out
    with pytest.raises(CommandError, match="--replace"):
        call_command("seed_demo", *args, "--seed", "3", verbosity=0)
    call_command("seed_demo", *args, "--seed", "3", "--replace", verbosity=0)
    assert Event.objects.filter(event_id__startswith="demo_evt_3_").exists()
    with pytest.raises(CommandError):
        call_command("seed_demo", "--customers", "0", verbosity=0)


@pytest.mark.django_db
def test_default_window_ends_now_and_nothing_lies_in_the_future():
    from django.utils import timezone

    seed_demo(customers=40, merchants=4, campaigns=2, days=3, seed=8)
    latest = Event.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    assert latest <= timezone.now()
    assert latest.date() >= timezone.now().date() - dt.timedelta(days=1)


def test_every_event_carries_its_campaigns_channel():
    data = generate(small())
    channel_of = dict(zip(data.campaigns["campaign_id"], data.campaigns["channel"], strict=True))
    expected = data.events["campaign_id"].astype(str).map(channel_of)
    assert (data.events["channel"].astype(str) == expected).all()
    assert set(data.events["channel"].astype(str)) <= {"push", "email", "sms", "in_app"}

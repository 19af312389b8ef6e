"""The analysis rollup (``abtests/rollup.py``) kept up to date by ingestion and assignment equals a
from-scratch computation over the raw events: the per-variant sums (against ``arm_sums_from_events`` and
against ``rollup.rebuild``) and the whole analysis (verdict, metrics, CUPED) — on random data with
duplicate ids in a batch, re-sent batches, a re-sent id with another amount, pre-period events that
arrive after the assignment, late in-test events, events before the assignment and after the end, a
batch with a bad row and a batch rolled back after ingestion. Runs on PostgreSQL and SQLite."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from django.db import transaction
from django.utils import timezone

from abtests import rollup, selectors, services
from abtests.models import ABTestArmSums
from campaigns.models import Event
from campaigns.services import InvalidRows, ingest_events
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

TYPES = ["conversion", "notification_opened", "click"]


def _event(rng, n: int, customer: str, campaign: str, at: dt.datetime, kind: str | None = None) -> dict:
    kind = kind or str(rng.choice(TYPES + ["view"], p=[0.4, 0.3, 0.2, 0.1]))
    raw = {"event_id": f"e{n}", "type": kind, "occurred_at": at.isoformat(), "customer_id": customer,
           "campaign_id": campaign}
    if kind == "conversion":
        raw["amount"] = f"{rng.uniform(1, 200):.2f}"
    return raw


def _sums_rows(test) -> dict:
    return {(r["variant_id"], r["event_type"]): r for r in
            ABTestArmSums.objects.filter(test=test).values("variant_id", "event_type", "users", *rollup.SUM_FIELDS)}


def _assert_same_rows(kept: dict, rebuilt: dict) -> None:
    assert kept.keys() == rebuilt.keys()
    for key, row in kept.items():
        for name, value in row.items():
            assert value == pytest.approx(rebuilt[key][name], rel=1e-9, abs=1e-6), (key, name)


def _assert_analysis_from_scratch(test) -> None:
    test = selectors.abtest_get(test_id=test.test_id)
    assert rollup.is_kept(test)
    kept = selectors.arm_sums(test=test, event_types=TYPES)
    reference = selectors.arm_sums_from_events(test=test, event_types=TYPES)
    assert [a.users for a in kept] == [a.users for a in reference]
    for k, r in zip(kept, reference, strict=True):
        for t in TYPES:
            for name, value in dataclasses.asdict(k.by_type[t]).items():
                assert value == pytest.approx(getattr(r.by_type[t], name), rel=1e-9, abs=1e-6), (t, name)
    from_rollup = selectors.abtest_status(test=test)
    before = _sums_rows(test)
    rollup.rebuild(test=test)
    _assert_same_rows(before, _sums_rows(test))
    ABTestArmSums.objects.filter(test=test).delete()  # not kept: the analysis reads the raw events
    from_events = selectors.abtest_status(test=test)
    rollup.rebuild(test=test)
    assert from_rollup.keys() == from_events.keys()
    for key in from_rollup:
        assert _close(from_rollup[key], from_events[key]), key


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-7, abs=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_rollup_equals_a_from_scratch_computation(seed):
    rng = np.random.default_rng(seed)
    camp, other = CampaignFactory(), CampaignFactory()
    c, o = camp.campaign_id, other.campaign_id
    now = timezone.now()
    customers = [f"u{seed}_{i}" for i in range(120)]
    n = 0
    # Every customer exists (a view), and some convert / open / click in the 28 days before the test.
    batch = []
    for cust in customers:
        batch.append(_event(rng, n := n + 1, cust, c, now - dt.timedelta(days=40), "view"))
        for _ in range(int(rng.integers(0, 3))):
            batch.append(_event(rng, n := n + 1, cust, str(rng.choice([c, c, o])),
                                now - dt.timedelta(days=float(rng.uniform(0.1, 35)))))
    ingest_events(batch)
    test = services.abtest_create(
        campaign_id=c, test_name="rollup", sample_size_target=200,
        variants=[services.VariantSpec(name="A", weight=0.4), services.VariantSpec(name="B", weight=0.3),
                  services.VariantSpec(name="C", weight=0.3)],
        secondary_metrics=["revenue_per_user", "open_rate"], guardrail_metrics=["click_rate"],
    )
    # Events stored before the start and before the assignment but "occurring" later (clock skew).
    ingest_events([_event(rng, n := n + 1, cust, c, now + dt.timedelta(hours=20)) for cust in customers[:10]])
    test = services.abtest_start(test=test)
    assigned = customers[: int(len(customers) * 0.8)]
    for part in (assigned[:40], assigned[30:70], assigned[60:]):  # overlapping batches: repeats keep their row
        services.abtest_assign(test=test, customer_ids=part)
    _assert_analysis_from_scratch(test)

    # In-test events in batches with duplicate ids, re-sent batches, late pre-period and late in-test events.
    sent = []
    for _ in range(6):
        batch = []
        for _ in range(60):
            cust = str(rng.choice(customers))
            when = timezone.now() + dt.timedelta(hours=float(rng.uniform(-6, 20)))  # some before the assignment
            if rng.random() < 0.15:
                when = test.started_at - dt.timedelta(days=float(rng.uniform(0.01, 30)))  # late pre-period event
            batch.append(_event(rng, n := n + 1, cust, str(rng.choice([c, c, c, o])), when))
        batch += [dict(batch[i]) for i in rng.integers(0, len(batch), 5)]  # duplicate ids within the batch
        ingest_events(batch)
        sent.append(batch)
    ingest_events(sent[2])  # a retry: everything is a duplicate
    resent = [dict(r, amount="999.00") for r in sent[3] if r["type"] == "conversion"]  # same ids, other amounts
    assert ingest_events(resent).stored == 0
    _assert_analysis_from_scratch(test)

    # All or nothing: a bad row stores nothing; a batch rolled back after ingestion leaves no trace.
    before = _sums_rows(test)
    with pytest.raises(InvalidRows):
        ingest_events([_event(rng, n := n + 1, assigned[0], c, timezone.now(), "conversion"),
                       {"event_id": "bad", "type": "conversion"}])
    doomed = [_event(rng, n := n + 1, cust, c, timezone.now(), "conversion") for cust in assigned[:20]]
    with pytest.raises(RuntimeError), transaction.atomic():
        assert ingest_events(doomed).stored == len(doomed)
        assert _sums_rows(test) != before  # they counted inside the transaction
        raise RuntimeError("the caller's transaction fails after the batch")
    assert _sums_rows(test) == before
    assert not Event.objects.filter(event_id__in=[r["event_id"] for r in doomed]).exists()
    ingest_events(doomed)  # sent again later: now they count
    _assert_analysis_from_scratch(test)
    sums = selectors.arm_sums(test=test, event_types=TYPES)
    for t in TYPES:  # the data exercise every sum (not a comparison of zeros)
        assert sum(a.by_type[t].customers for a in sums) > 0 and sum(a.by_type[t].x_customers for a in sums) > 0
        assert sum(a.by_type[t].xy_customers for a in sums) > 0

    # The end (a moment after the assignment, in this test): events stored with times after it stop counting; late events from before it still count.
    ended = services.abtest_end(test=test).test
    _assert_analysis_from_scratch(ended)
    ingest_events([_event(rng, n := n + 1, cust, c, ended.ended_at - dt.timedelta(minutes=float(rng.uniform(1, 60))))
                   for cust in assigned[:30]]
                  + [_event(rng, n := n + 1, cust, c, ended.ended_at + dt.timedelta(minutes=5)) for cust in assigned[:30]])
    _assert_analysis_from_scratch(ended)


def test_a_test_without_a_kept_rollup_is_analysed_from_the_raw_events():
    camp = CampaignFactory()
    ingest_events([{"event_id": f"v{i}", "type": "view", "occurred_at": timezone.now().isoformat(),
                    "customer_id": f"w{i}", "campaign_id": camp.campaign_id} for i in range(20)])
    test = services.abtest_create(campaign_id=camp.campaign_id, test_name="raw", sample_size_target=20,
                                variants=[services.VariantSpec(name="A", weight=0.5),
                                          services.VariantSpec(name="B", weight=0.5)])
    test = services.abtest_start(test=test)
    services.abtest_assign(test=test, customer_ids=[f"w{i}" for i in range(20)])
    ingest_events([{"event_id": f"c{i}", "type": "conversion", "occurred_at": timezone.now().isoformat(),
                    "customer_id": f"w{i}", "campaign_id": camp.campaign_id, "amount": "5.00"} for i in range(7)])
    ABTestArmSums.objects.filter(test=test).delete()
    assert not rollup.is_kept(test)
    arms = selectors.arm_totals(test=test)
    assert sum(a.users for a in arms) == 20 and sum(a.conversions for a in arms) == 7
    assert sum(a.revenue for a in arms) == pytest.approx(35.0)


@pytest.mark.django_db(transaction=True)
def test_one_new_event_id_sent_for_two_customers_at_once_counts_once(postgres):
    """Two batches in flight at the same time carry the same new event id for two different assigned
    customers (a sender's bug). Only one insert keeps the event, so only that one may count in the
    rollup: the second batch waits for the first (``db.lock_keys_for_transaction``), then finds the id
    stored. (Without the wait both counted it: the sums had one converter the events do not have.)"""
    import threading
    import time

    from django.db import connections

    camp = CampaignFactory()
    c = camp.campaign_id
    now = timezone.now()
    ingest_events([{"event_id": f"v_{who}", "type": "view", "occurred_at": (now - dt.timedelta(days=1)).isoformat(),
                    "customer_id": who, "campaign_id": c} for who in ("x", "y")])
    test = services.abtest_create(campaign_id=c, test_name="race", sample_size_target=10,
                                  variants=[services.VariantSpec(name="A", weight=0.5), services.VariantSpec(name="B", weight=0.5)])
    test = services.abtest_start(test=test)
    services.abtest_assign(test=test, customer_ids=["x", "y"])
    conversion = {"event_id": "same_id", "type": "conversion", "occurred_at": (now + dt.timedelta(minutes=5)).isoformat(),
                  "campaign_id": c, "amount": "10.00"}

    first_written, errors = threading.Event(), []

    def first_batch() -> None:
        try:
            with transaction.atomic():
                assert ingest_events([dict(conversion, customer_id="x")]).stored == 1
                first_written.set()
                time.sleep(1.5)  # the second batch starts while this one is uncommitted
        except Exception as exc:  # noqa: BLE001 (reported to the test's thread)
            errors.append(exc)
            first_written.set()
        finally:
            connections.close_all()

    writer = threading.Thread(target=first_batch)
    writer.start()
    assert first_written.wait(30)
    second = ingest_events([dict(conversion, customer_id="y", amount="99.00")])
    writer.join(30)
    assert not errors and not writer.is_alive()
    assert (second.stored, second.duplicates) == (0, 1)

    kept = _sums_rows(test)
    converters = sum(row["customers"] for (_, kind), row in kept.items() if kind == "conversion")
    assert converters == 1
    rollup.rebuild(test=test)
    _assert_same_rows(kept, _sums_rows(test))

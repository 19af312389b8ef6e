"""analytics_campaign_customer_day, kept by the events' triggers, against pandas over the raw events."""

from __future__ import annotations

import datetime as dt
import random
import threading
from decimal import Decimal

import pandas as pd
import pytest
from django.core.management import call_command
from django.db import connection, connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from analytics import services
from analytics.models import CampaignCustomerDay
from campaigns.models import Event, Segment
from campaigns.services import ingest_events
from tests.analytics.factories import event_rows, occurred
from tests.factories import CampaignFactory, CustomerFactory

COUNTED = ["sends", "opens", "views", "clicks", "conversions", "revenue", "cost", "events"]
TYPE_COLUMN = {"notification_sent": "sends", "notification_opened": "opens", "view": "views", "click": "clicks",
               "conversion": "conversions"}


def expected_rollup() -> list[tuple]:
    """The rollup recomputed in pandas from the raw events (independent of the triggers' SQL)."""
    rows = list(Event.objects.values("campaign_id", "customer_id", "occurred_at", "type", "amount"))
    if not rows:
        return []
    df = pd.DataFrame(rows)
    df["date"] = [t.astimezone(dt.UTC).date() for t in df["occurred_at"]]
    df["customer_id"] = df["customer_id"].astype("Int64").fillna(0)
    for type_, column in TYPE_COLUMN.items():
        df[column] = (df["type"] == type_).astype(int)
    amount = df["amount"].map(lambda a: a if a is not None and a == a else Decimal(0))
    df["revenue"] = [a if t == "conversion" else Decimal(0) for a, t in zip(amount, df["type"], strict=True)]
    df["cost"] = [a if t == "spend" else Decimal(0) for a, t in zip(amount, df["type"], strict=True)]
    df["events"] = 1
    grouped = df.groupby(["campaign_id", "customer_id", "date"])[COUNTED].sum().reset_index()
    return sorted(_canonical(r) for r in grouped.to_dict("records"))


def stored_rollup() -> list[tuple]:
    rows = CampaignCustomerDay.objects.values("campaign_id", "customer_id", "date", *COUNTED)
    return sorted(_canonical({**r, "customer_id": r["customer_id"] or 0}) for r in rows)


def _canonical(r: dict) -> tuple:
    money = lambda v: Decimal(str(v)).quantize(Decimal("0.01"))  # noqa: E731
    return (int(r["campaign_id"]), int(r["customer_id"]), r["date"],
            *(money(r[c]) if c in ("revenue", "cost") else int(r[c]) for c in COUNTED))


class RollupFollowsEveryWrite(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.campaigns = [CampaignFactory() for _ in range(3)]
        segments = list(Segment.objects.order_by("name")) + [None]
        cls.customers = [CustomerFactory(segment=segments[i % 4]) for i in range(6)]

    def _insert(self, rows, prefix: str) -> None:
        Event.objects.bulk_create([
            Event(
                event_id=f"{prefix}{i}", type=type_, occurred_at=occurred(day, second),
                campaign=self.campaigns[c], customer=None if cust is None else self.customers[cust],
                amount=Decimal(cents) / 100 if type_ in (Event.Type.CONVERSION, Event.Type.SPEND) else None,
            )
            for i, (c, cust, type_, day, second, cents) in enumerate(rows)
        ])

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(first=event_rows, late=event_rows, drop_every=st.integers(2, 5), shift_every=st.integers(2, 5))
    def test_insert_update_delete_keep_the_rollup_equal_to_the_events(self, first, late, drop_every, shift_every):
        self._insert(first, "a")
        assert stored_rollup() == expected_rollup()
        self._insert(late, "b")
        assert stored_rollup() == expected_rollup()
        # An update that moves events to another campaign, day and type, and changes the amount.
        pks = [pk for i, pk in enumerate(Event.objects.order_by("pk").values_list("pk", flat=True)) if i % shift_every == 0]
        Event.objects.filter(pk__in=pks).update(
            campaign=self.campaigns[0], customer=self.customers[1], type=Event.Type.CONVERSION,
            occurred_at=occurred(3, 100), amount=Decimal("7.25"),
        )
        assert stored_rollup() == expected_rollup()
        pks = [pk for i, pk in enumerate(Event.objects.order_by("pk").values_list("pk", flat=True)) if i % drop_every == 0]
        Event.objects.filter(pk__in=pks).delete()
        assert stored_rollup() == expected_rollup()
        Event.objects.all().delete()
        assert stored_rollup() == []


@pytest.mark.django_db
def test_ingest_fills_the_rollup_and_a_duplicate_changes_nothing():
    campaign = CampaignFactory(campaign_id="camp_r")
    batch = [
        {"event_id": f"e{i}", "type": t, "occurred_at": f"2025-03-0{1 + i % 2}T23:30:00-01:00",
         "customer_id": f"user_{i % 3}", "campaign_id": "camp_r", "amount": "10.10" if t == "conversion" else None}
        for i, t in enumerate(["notification_sent", "view", "conversion", "view", "conversion", "click"])
    ]
    ingest_events(batch)
    assert stored_rollup() == expected_rollup()
    rows = CampaignCustomerDay.objects.filter(campaign=campaign)
    # -01:00 at 23:30 is 00:30 UTC the next day: UTC days 2 and 3 of March.
    assert {r.date for r in rows} == {dt.date(2025, 3, 2), dt.date(2025, 3, 3)}
    assert sum(r.events for r in rows) == 6 and sum(r.revenue for r in rows) == Decimal("20.20")
    ingest_events(batch)  # all duplicates: stored nothing, counted nothing
    assert sum(r.events for r in CampaignCustomerDay.objects.all()) == 6


@pytest.mark.django_db
def test_rebuild_repairs_a_rollup_that_drifted(capsys):
    campaign, customer = CampaignFactory(), CustomerFactory()
    Event.objects.bulk_create([
        Event(event_id=f"d{i}", type="view", occurred_at=occurred(i % 4, 60), campaign=campaign, customer=customer)
        for i in range(12)
    ])
    CampaignCustomerDay.objects.filter(date=occurred(0, 0).date()).update(views=99, events=99)
    CampaignCustomerDay.objects.filter(date=occurred(1, 0).date()).delete()
    assert stored_rollup() != expected_rollup()
    call_command("rebuild_event_rollup")
    assert stored_rollup() == expected_rollup()
    assert "4 rows" in capsys.readouterr().out


def test_truncate_of_the_events_empties_the_rollup(postgres):
    campaign, customer = CampaignFactory(), CustomerFactory()
    Event.objects.bulk_create([Event(event_id="t1", type="view", occurred_at=occurred(0, 1), campaign=campaign,
                                     customer=customer)])
    assert CampaignCustomerDay.objects.count() == 1
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Event._meta.db_table}")
    assert CampaignCustomerDay.objects.count() == 0


def test_triggers_fire_under_replica_role_as_seed_demo_copies(postgres):
    """seed_demo's COPY runs with session_replication_role = replica: the triggers must still count it."""
    campaign, customer = CampaignFactory(), CustomerFactory()
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            Event.objects.bulk_create([Event(event_id=f"p{i}", type="click", occurred_at=occurred(0, i),
                                             campaign=campaign, customer=customer) for i in range(3)])
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")
    assert stored_rollup() == expected_rollup()
    assert CampaignCustomerDay.objects.get().clicks == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_of_the_same_campaign_days_count_every_event(postgres):
    """Two connections ingest interleaved batches for the same campaign-days and customers at once:
    the rollup rows both touch are updated under their row locks (sorted: no deadlock), none is lost."""
    for n in range(2):
        CampaignFactory(campaign_id=f"camp_c{n}")
    rng = random.Random(3)

    def event(worker: int, b: int, i: int) -> dict:
        type_ = rng.choice(["view", "click", "conversion", "notification_sent"])
        return {"event_id": f"w{worker}b{b}e{i}", "type": type_,
                "occurred_at": occurred(rng.randrange(3), rng.randrange(86400)).isoformat(),
                "customer_id": f"user_{rng.randrange(40)}", "campaign_id": f"camp_c{rng.randrange(2)}",
                **({"amount": "1.25"} if type_ == "conversion" else {})}

    def batch(worker: int, b: int) -> list[dict]:
        return [event(worker, b, i) for i in range(300)]

    batches = {w: [batch(w, b) for b in range(6)] for w in range(2)}
    for c in range(40):  # the customers exist first: both writers only meet on rollup rows
        CustomerFactory(customer_id=f"user_{c}")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for b in batches[worker]:
                ingest_events(b)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert Event.objects.count() == 2 * 6 * 300
    assert stored_rollup() == expected_rollup()


@pytest.mark.django_db
def test_the_job_reads_the_rollup_so_a_rebuild_is_what_it_counts():
    """The daily table is computed from the rollup: equal to the raw events whenever the rollup is."""
    campaign, customer = CampaignFactory(), CustomerFactory()
    Event.objects.bulk_create([Event(event_id=f"j{i}", type="view", occurred_at=occurred(0, i), campaign=campaign,
                                     customer=customer) for i in range(5)])
    day = occurred(0, 0).date()
    services.aggregate_days(start=day, end=day)
    from analytics.models import CampaignAnalyticsDaily

    assert CampaignAnalyticsDaily.objects.get(campaign=campaign, date=day).views == 5
    CampaignCustomerDay.objects.update(views=2)  # drift (as if the triggers had been off)
    services.aggregate_days(start=day, end=day)
    assert CampaignAnalyticsDaily.objects.get(campaign=campaign, date=day).views == 2
    services.rebuild_rollup()
    services.aggregate_days(start=day, end=day)
    assert CampaignAnalyticsDaily.objects.get(campaign=campaign, date=day).views == 5

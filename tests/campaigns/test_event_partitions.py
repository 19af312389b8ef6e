"""The events table partitioned by month on PostgreSQL (campaigns/partitions.py, migration 0011): rows land in
their month's partition, event_id stays unique across partitions, the event_partitions job creates months ahead
(moving rows out of the DEFAULT partition) and drops months past the retention only once aggregated.
SQLite keeps the plain table; the job says so and does nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from abtests import rollup
from abtests import services as abtest_services
from abtests.models import ABTestArmSums
from analytics.models import AggregateRefresh
from analytics.services import aggregate_days
from campaigns import partitions
from campaigns.ingest.store import duplicate_hint, ingest_events
from campaigns.models import Event
from marketing_ai import jobs
from tests.factories import CampaignFactory, EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    return CampaignFactory(campaign_id="camp_1")


def wire(event_id: str, occurred_at: dt.datetime, **overrides) -> dict:
    return {"event_id": event_id, "type": "view", "occurred_at": occurred_at.isoformat(), "customer_id": "user_1",
            "campaign_id": "camp_1", **overrides}


def partition_of(event_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM campaigns_event WHERE event_id = %s", [event_id])
        return cursor.fetchone()[0]


def keys() -> dict[str, dt.datetime]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT event_id, occurred_at FROM campaigns_event_key")
        return dict(cursor.fetchall())


def arm_sums_rows(test) -> dict:
    return {(r["variant_id"], r["event_type"]): r for r in
            ABTestArmSums.objects.filter(test=test).values("variant_id", "event_type", "users", *rollup.SUM_FIELDS)}


def at(year: int, month: int, day: int = 10) -> dt.datetime:
    return dt.datetime(year, month, day, 12, 0, tzinfo=dt.UTC)


def test_migrate_partitions_the_events_table_by_month_with_a_default(postgres):
    this_month = partitions.month_of(timezone.now().date())
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'campaigns_event'")
        assert cursor.fetchone()[0] == "p"
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                       " WHERE i.inhparent = 'campaigns_event'::regclass AND c.relpartbound IS NOT NULL"
                       " AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'")
        assert [name for (name,) in cursor.fetchall()] == ["campaigns_event_default"]
    months = partitions.month_partitions()
    wanted = [partitions.add_months(this_month, n) for n in range(-1, 4)]  # EVENT_PARTITIONS_AHEAD_MONTHS = 3
    assert set(wanted) <= set(months)
    assert months[this_month] == f"campaigns_event_y{this_month:%Y}m{this_month:%m}"


def test_events_land_in_their_months_partition_and_others_in_the_default(postgres, campaign):
    now = timezone.now()
    last_month = partitions.add_months(partitions.month_of(now.date()), -1)
    result = ingest_events([
        wire("e_now", now - dt.timedelta(minutes=1)),
        wire("e_last_month", dt.datetime.combine(last_month, dt.time(8), tzinfo=dt.UTC)),
        wire("e_old", at(2021, 2)),
    ])
    assert result.stored == 3
    assert partition_of("e_now") == partitions.partition_name(partitions.month_of(now.date()))
    assert partition_of("e_last_month") == partitions.partition_name(last_month)
    assert partition_of("e_old") == "campaigns_event_default"
    assert set(keys()) == {"e_now", "e_last_month", "e_old"}
    # Django's pk still finds a row (the database's key is (id, occurred_at); id comes from one sequence).
    event = Event.objects.get(event_id="e_old")
    assert Event.objects.get(pk=event.pk).occurred_at == at(2021, 2)


@pytest.mark.parametrize("looked_up_first", [False, True], ids=["copy-then-staged", "looked-up-first"])
def test_the_same_event_id_in_two_months_is_a_duplicate_not_two_rows(postgres, campaign, looked_up_first):
    first = ingest_events([wire("e_1", at(2021, 1)), wire("e_2", at(2021, 1))])
    assert first.stored == 2
    # The resend names other months (a sender's clock fixed, or a replay): still the same events.
    duplicate_hint().expected = looked_up_first
    again = ingest_events([wire("e_1", at(2021, 5)), wire("e_2", at(2022, 7)), wire("e_3", at(2021, 5))])
    assert (again.stored, again.duplicates) == (1, 2)
    stored = dict(Event.objects.values_list("event_id", "occurred_at"))
    assert stored == {"e_1": at(2021, 1), "e_2": at(2021, 1), "e_3": at(2021, 5)}
    assert keys() == stored


def test_a_raw_insert_of_a_stored_id_in_another_month_is_refused(postgres, campaign):
    EventFactory(event_id="e_raw", campaign=campaign, occurred_at=at(2021, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        EventFactory(event_id="e_raw", campaign=campaign, occurred_at=at(2021, 9))
    assert Event.objects.filter(event_id="e_raw").count() == 1


def test_deleting_events_frees_their_ids_and_an_update_moves_its_key(postgres, campaign):
    ingest_events([wire("demo_evt_1", at(2021, 1)), wire("demo_evt_2", at(2021, 2)), wire("kept", at(2021, 2))])
    # The demo's --replace deletes by prefix (event_id LIKE 'demo_%').
    assert Event.objects.filter(event_id__startswith="demo_").delete()[0] == 2
    assert set(keys()) == {"kept"}
    assert ingest_events([wire("demo_evt_1", at(2021, 3))]).stored == 1
    Event.objects.filter(event_id="kept").update(event_id="renamed")
    assert set(keys()) == {"demo_evt_1", "renamed"}


def test_the_job_creates_months_ahead_and_a_second_run_creates_nothing(postgres):
    today = dt.date(2031, 11, 20)
    report = partitions.maintain(today=today, ahead=2, retention=None)
    assert sorted(report.created) == [dt.date(2031, 10, 1), dt.date(2031, 11, 1), dt.date(2031, 12, 1), dt.date(2032, 1, 1)]
    assert set(report.created.values()) == {0}
    assert {dt.date(2031, 10, 1), dt.date(2032, 1, 1)} <= set(partitions.month_partitions())
    again = partitions.maintain(today=today, ahead=2, retention=None)
    assert again.created == {} and again.dropped == []
    assert again.lines() == ["nothing to do: every month up to the horizon exists, nothing past retention"]


def test_the_registered_job_runs_and_records_its_count(postgres):
    run = jobs.run("event_partitions")
    assert run.status == "succeeded"
    assert run.rows_written == 0  # the migration created this month, last month and three ahead


def test_creating_a_month_moves_its_rows_out_of_the_default_partition(postgres, campaign):
    ingest_events([wire("old_1", at(2020, 4, 1)), wire("old_2", at(2020, 4, 30)), wire("other", at(2020, 5))])
    assert partition_of("old_1") == "campaigns_event_default"

    assert partitions.create_month(dt.date(2020, 4, 1)) == 2
    assert partition_of("old_1") == partition_of("old_2") == "campaigns_event_y2020m04"
    assert partition_of("other") == "campaigns_event_default"
    assert partitions.create_month(dt.date(2020, 4, 1)) is None  # exists: nothing to do
    # The moved rows keep their keys: a resend is still a duplicate.
    resend = ingest_events([wire("old_1", at(2020, 4, 1)), wire("other", at(2020, 5))])
    assert (resend.stored, resend.duplicates) == (0, 2)
    assert Event.objects.count() == 3


def _aggregated(start: dt.date, end: dt.date, computed_at: dt.datetime) -> None:
    AggregateRefresh.objects.create(start=start, end=end, computed_at=computed_at)


def test_retention_drops_only_past_months_whose_aggregates_exist(postgres, campaign):
    today = dt.date(2031, 6, 15)
    for month in range(1, 7):
        partitions.create_month(dt.date(2031, month, 1))
        EventFactory(event_id=f"e_{month}", campaign=campaign, occurred_at=at(2031, month))
    _aggregated(dt.date(2031, 1, 1), dt.date(2031, 1, 31), at(2031, 2, 1))  # January, after it ended
    _aggregated(dt.date(2031, 2, 1), dt.date(2031, 2, 28), at(2031, 2, 27))  # February, before it ended
    _aggregated(dt.date(2031, 3, 1), dt.date(2031, 3, 30), at(2031, 4, 2))  # March but its last day
    _aggregated(dt.date(2031, 4, 1), dt.date(2031, 6, 14), at(2031, 6, 15))  # April to now

    report = partitions.maintain(today=today, ahead=0, retention=2)

    assert report.dropped == [dt.date(2031, 1, 1)]
    # (The months the migration created around the real today are kept too: nothing aggregated them.)
    assert {m for m in report.kept if m.year == 2031} == {dt.date(2031, 2, 1), dt.date(2031, 3, 1)}
    assert "28 of its days" in report.kept[dt.date(2031, 2, 1)] and "1 of its days" in report.kept[dt.date(2031, 3, 1)]
    assert dt.date(2031, 1, 1) not in partitions.month_partitions()
    assert sorted(Event.objects.values_list("event_id", flat=True)) == [f"e_{m}" for m in range(2, 7)]
    assert "e_1" in keys()  # a resend of a dropped event is still a duplicate
    assert ingest_events([wire("e_1", at(2031, 1))], received_at=at(2031, 6, 15)).duplicates == 1


def test_a_resent_event_of_a_dropped_month_leaves_the_ab_rollup_unchanged(postgres, campaign):
    # A test running since before January: its kept sums count January's conversion; dropping January's
    # partition keeps them, and re-sending that event (as stored, or with another amount) is a duplicate.
    for month in range(1, 7):
        partitions.create_month(dt.date(2031, month, 1))
    ingest_events([wire("seen", timezone.now())])  # user_1 exists
    test = abtest_services.abtest_create(campaign_id="camp_1", test_name="dropped month", sample_size_target=100,
                                         variants=[abtest_services.VariantSpec(name="A", weight=0.5),
                                                   abtest_services.VariantSpec(name="B", weight=0.5)])
    test = abtest_services.abtest_start(test=test)
    abtest_services.abtest_assign(test=test, customer_ids=["user_1"])
    sent = [wire("e_jan", at(2031, 1), type="conversion", amount="50.00"),
            wire("e_may", at(2031, 5), type="conversion", amount="20.00")]
    assert ingest_events(sent, received_at=at(2031, 6, 15)).stored == 2
    before = arm_sums_rows(test)
    conversions = [row for (_, kind), row in before.items() if kind == "conversion" and row["customers"]]
    assert [row["y"] for row in conversions] == [pytest.approx(70.0)]  # user_1's two amounts, January's included
    _aggregated(dt.date(2031, 1, 1), dt.date(2031, 1, 31), at(2031, 2, 1))

    assert partitions.maintain(today=dt.date(2031, 6, 15), ahead=0, retention=2).dropped == [dt.date(2031, 1, 1)]
    assert arm_sums_rows(test) == before

    assert ingest_events([sent[0]], received_at=at(2031, 6, 15)).duplicates == 1
    assert ingest_events([dict(sent[0], amount="999.00")], received_at=at(2031, 6, 15)).duplicates == 1
    assert arm_sums_rows(test) == before
    assert not Event.objects.filter(event_id="e_jan").exists()


def test_retention_never_drops_the_current_or_previous_month(postgres, campaign):
    today = dt.date(2031, 6, 15)
    for month in (4, 5, 6):
        partitions.create_month(dt.date(2031, month, 1))
    _aggregated(dt.date(2031, 4, 1), dt.date(2031, 6, 30), at(2031, 7, 2))  # as if every day were done
    report = partitions.maintain(today=today, ahead=0, retention=1)
    assert report.dropped == [dt.date(2031, 4, 1)]
    assert {dt.date(2031, 5, 1), dt.date(2031, 6, 1)} <= set(partitions.month_partitions())


def test_retention_counts_a_real_daily_analytics_run(postgres, campaign):
    for month in (1, 2):
        partitions.create_month(dt.date(2020, month, 1))
        EventFactory(event_id=f"e_2020_{month}", campaign=campaign, occurred_at=at(2020, month))
    aggregate_days(start=dt.date(2020, 1, 1), end=dt.date(2020, 1, 31))

    report = partitions.maintain(ahead=0, retention=2)

    assert dt.date(2020, 1, 1) in report.dropped
    assert "29 of its days" in report.kept[dt.date(2020, 2, 1)]
    assert list(Event.objects.values_list("event_id", flat=True)) == ["e_2020_2"]
    assert any(line.startswith("dropped campaigns_event_y2020m01") for line in report.lines())


def test_the_job_does_nothing_on_sqlite():
    if connection.vendor == "postgresql":
        pytest.skip("the SQLite leg's behaviour")
    report = partitions.maintain(retention=2)
    assert report.created == {} and report.dropped == []
    assert report.lines() == ["event partitions are PostgreSQL-only: the events table here is a plain table; nothing to do"]
    run = jobs.run("event_partitions")
    assert (run.status, run.rows_written) == ("succeeded", 0)

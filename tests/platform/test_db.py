"""marketing_ai.db: each fast path and its portable path give the same answers.

CI runs this file on both legs (PostgreSQL with DATABASE_URL, SQLite with TEST_DATABASE_LEG=sqlite), so
each test checks whichever branch its database takes; the PostgreSQL-only behaviours (row locks, the
COPY fallback, another session holding a lock) have their own tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zlib
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.db import connection, transaction

from campaigns.models import Campaign, Customer, Event, Merchant, Segment
from marketing_ai import db as data_access
from optimizer.models import UserSendTime
from tests.db_sessions import other_session
from tests.factories import CampaignFactory, CustomerFactory

pytestmark = pytest.mark.django_db

q = connection.ops.quote_name


def test_rows_by_keys_finds_exactly_the_stored_keys_across_chunks(monkeypatch):
    monkeypatch.setattr(data_access, "KEYS_PER_QUERY", 7)  # several IN lists on the portable branch
    stored = [f"user_{n:04d}" for n in range(0, 40, 3)]
    Customer.objects.bulk_create([Customer(customer_id=c) for c in stored])
    asked = [f"user_{n:04d}" for n in range(40)] + ["nobody"]
    table, column = q(Customer._meta.db_table), q("customer_id")

    rows = data_access.rows_by_keys(table, column, f"{column}, id", asked)

    assert dict(rows) == dict(Customer.objects.values_list("customer_id", "pk"))
    assert data_access.rows_by_keys(table, column, column, []) == []


def test_rows_by_keys_takes_keys_that_an_array_literal_would_misread():
    # Quotes, backslashes, "NULL", spaces and commas: the array-literal shortcut must not apply or must
    # keep each key whole (it quotes every element; a quote or backslash sends the list instead).
    odd = ['a"b', "c\\d", "NULL", "with space", "x,y", "{z}", ""]
    Merchant.objects.bulk_create([Merchant(merchant_id=m, name=m or "empty") for m in odd])
    table, column = q(Merchant._meta.db_table), q("merchant_id")
    for asked in (odd, odd[2:], ["NULL"], ["nobody", "x,y"]):
        found = {m for (m,) in data_access.rows_by_keys(table, column, column, asked)}
        assert found == set(asked) & set(odd), asked
    pks = sorted(Merchant.objects.values_list("pk", flat=True))
    assert sorted(pk for (pk,) in data_access.rows_by_keys(table, "id", "id", [*pks, 10**9])) == pks


def test_rows_by_keys_all_answers_each_query_as_rows_by_keys_would():
    Customer.objects.bulk_create([Customer(customer_id=f"user_{n}") for n in range(5)])
    Merchant.objects.bulk_create([Merchant(merchant_id="m_1", name="m")])
    customers, merchants = q(Customer._meta.db_table), q(Merchant._meta.db_table)
    queries = [
        (customers, q("customer_id"), f"{q('customer_id')}, id", ["user_1", "user_3", "nobody"], True),
        (merchants, q("merchant_id"), "id", [], False),
        (merchants, q("merchant_id"), q("merchant_id"), ["m_1", "m_2"], False),
    ]
    answers = data_access.rows_by_keys_all(queries)
    assert [sorted(a) for a in answers] == [
        sorted(data_access.rows_by_keys(t, k, c, keys, lock=lock)) for t, k, c, keys, lock in queries
    ]
    assert sorted(x for x, _ in answers[0]) == ["user_1", "user_3"] and answers[1] == [] and answers[2] == [("m_1",)]


def test_insert_missing_keys_creates_only_the_missing_rows_with_the_given_values():
    Merchant.objects.create(merchant_id="m_old", name="Old name", category="food")
    stamp = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)
    values = {"category": ("", "varchar(64)"), "created_at": (stamp, "timestamp with time zone")}

    created = data_access.insert_missing_keys(Merchant._meta.db_table, "merchant_id", ["m_new", "m_old", "m_a"],
                                              values, key_copies=("name",))

    assert created == ["m_a", "m_new"]
    assert {m.merchant_id: (m.name, m.category, m.created_at) for m in Merchant.objects.all()} == {
        "m_old": ("Old name", "food", Merchant.objects.get(merchant_id="m_old").created_at),
        "m_new": ("m_new", "", stamp), "m_a": ("m_a", "", stamp),
    }
    assert data_access.insert_missing_keys(Merchant._meta.db_table, "merchant_id", ["m_a"], values,
                                           key_copies=("name",)) == []
    assert data_access.insert_missing_keys(Merchant._meta.db_table, "merchant_id", [], values) == []


@pytest.mark.django_db(transaction=True)
def test_rows_by_keys_with_lock_holds_off_a_delete_of_a_found_row(postgres):
    import psycopg

    customer = CustomerFactory()
    table = q(Customer._meta.db_table)
    with transaction.atomic():
        assert data_access.rows_by_keys(table, "id", "id", [customer.pk, 10**9], lock=True) == [(customer.pk,)]
        other = other_session()
        try:
            other.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(f"DELETE FROM {table} WHERE id = %s", [customer.pk])
        finally:
            other.close()


def test_fetch_frame_keeps_ids_as_text_numbers_as_numbers_and_null_as_missing():
    segment = Segment.objects.create(name="loyal")
    Customer.objects.create(customer_id="0042", timezone="Europe/Paris", segment=segment)
    Customer.objects.create(customer_id="NA", timezone="UTC", segment=None)
    sql, params = Customer.objects.order_by("customer_id").values_list("customer_id", "segment_id", "timezone").query.sql_with_params()

    frame = data_access.fetch_frame(sql, params, ["customer_id", "segment", "tz"])

    assert frame["customer_id"].tolist() == ["0042", "NA"]  # not 42, not missing
    assert frame["segment"].iloc[0] == segment.pk and pd.isna(frame["segment"].iloc[1])
    assert frame["tz"].tolist() == ["Europe/Paris", "UTC"]
    empty_sql, empty_params = Customer.objects.filter(pk=-1).values_list("customer_id").query.sql_with_params()
    assert data_access.fetch_frame(empty_sql, empty_params).empty


@pytest.mark.parametrize("block_rows", [2, 200_000], ids=["blocks-of-2", "one-block"])
def test_fetch_frame_parses_moments_as_utc_datetimes_in_blocks(monkeypatch, block_rows):
    monkeypatch.setattr(data_access, "FETCH_BLOCK_ROWS", block_rows)
    moments = [dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC), dt.datetime(2026, 10, 25, 1, 45, 30, 250000, tzinfo=dt.UTC),
               dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 3, 23, 59, tzinfo=dt.UTC), dt.datetime(2024, 2, 29, tzinfo=dt.UTC)]
    for i, moment in enumerate(moments):
        Customer.objects.create(customer_id=f"c{i}", timezone="UTC", created_at=moment)
    table = Customer._meta.db_table
    sql = (f"SELECT customer_id, CASE WHEN customer_id IN ('c1', 'c4') THEN NULL ELSE CAST(created_at AS TEXT) END AS at"
           f" FROM {table} ORDER BY customer_id")

    frame = data_access.fetch_frame(sql, [], moments=["at"])
    expected = [pd.Timestamp(m) if i not in (1, 4) else pd.NaT for i, m in enumerate(moments)]

    assert frame["customer_id"].tolist() == [f"c{i}" for i in range(5)]
    assert str(frame["at"].dtype) == "datetime64[ns, UTC]"
    assert [None if pd.isna(v) else v for v in frame["at"]] == [None if pd.isna(v) else v for v in expected]
    empty = data_access.fetch_frame(sql.replace("ORDER BY", "WHERE 1 = 0 ORDER BY"), [], ["customer_id", "at"], moments=["at"])
    assert empty.empty and list(empty.columns) == ["customer_id", "at"]


@pytest.mark.parametrize("rows", [0, 1, 3, 250_000])
def test_copy_out_gives_every_row_the_server_sends_in_order(postgres, rows):
    # Many rows arrive in one socket read, so most come from libpq's buffer, not through psycopg's read().
    statement = ("COPY (SELECT i, md5(i::text), CASE WHEN i %% 7 = 0 THEN NULL ELSE i * 0.5 END FROM generate_series(1, %s) i"
                 " ORDER BY i) TO STDOUT (FORMAT csv)")
    with data_access.psycopg_cursor() as cursor:
        ours = data_access.copy_out(cursor, statement, [rows]).getvalue()
        psycopgs = io.BytesIO()
        with cursor.copy(statement, [rows]) as copy:
            for block in copy:  # psycopg's own row-by-row read
                psycopgs.write(block)
    assert ours == psycopgs.getvalue()
    lines = ours.decode().splitlines()
    assert len(lines) == rows
    assert [line.split(",")[0] for line in lines] == [str(i) for i in range(1, rows + 1)]
    if rows:
        assert lines[0] == "1,c4ca4238a0b923820dcc509a6f75849b,0.5"
    if rows >= 7:
        assert lines[6] == f"7,{hashlib.md5(b'7').hexdigest()},"  # noqa: S324 (the server's md5, compared)


def test_copy_out_raises_an_error_the_server_meets_after_sending_rows_and_the_connection_goes_on(postgres):
    from django.db import DataError

    statement = "COPY (SELECT 1 / (150000 - i) FROM generate_series(1, 200000) i) TO STDOUT"  # fails at row 150,000
    with transaction.atomic():
        with pytest.raises(DataError, match="division by zero"), transaction.atomic(), data_access.psycopg_cursor() as cursor:
            data_access.copy_out(cursor, statement)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 42")
            assert cursor.fetchone() == (42,)


def test_moments_as_epoch_seconds_with_missing_ones_do_not_depend_on_what_freed_memory_held():
    # pandas' own unit="s" conversion left a missing value's slot of a np.empty array unset and then rounded it
    # with overflow checks on: after huge doubles were freed it raised FloatingPointError every time here.
    stored = [dt.datetime(2026, 12, 3, 16, 5, 9, 123456, tzinfo=dt.UTC) + dt.timedelta(seconds=i * 0.25) for i in range(3000)]
    seconds = pd.Series([np.nan if i % 3 == 0 else m.timestamp() for i, m in enumerate(stored)], name="at")
    for _ in range(20):
        junk = [np.full(3000, 1e300) for _ in range(6)]
        del junk
        moments = data_access.parse_utc_moments(seconds)
        assert str(moments.dtype) == "datetime64[ns, UTC]" and moments.name == "at"
        assert moments.isna().tolist() == [i % 3 == 0 for i in range(3000)]
        assert all(moments.iloc[i] == pd.Timestamp(m) for i, m in enumerate(stored) if i % 3)


def test_copy_in_writes_what_the_orm_reads_back():
    segment = Segment.objects.create(name="new")
    made = dt.datetime(2025, 3, 1, 9, 15, 30, 123456, tzinfo=dt.UTC)
    frame = pd.DataFrame({
        "customer_id": [f"c_{n}" for n in range(5)],
        "signup_date": [f"2025-01-0{n + 1}" if n != 2 else None for n in range(5)],
        "timezone": ["UTC", "Europe/Paris", "UTC", "Asia/Tokyo", "UTC"],
        "segment_id": pd.array([segment.pk, None, segment.pk, None, segment.pk], dtype="Int64"),
        "created_at": pd.Series([made + dt.timedelta(hours=n) for n in range(5)]).dt.tz_convert("Europe/Paris"),
    })
    advanced: list[int] = []

    written = data_access.copy_in(Customer._meta.db_table, [frame.iloc[:2], frame.iloc[2:]], advanced=advanced.append,
                         skip_fk_triggers=True)

    assert written == 5 and advanced == [2, 3]
    got = {c.customer_id: c for c in Customer.objects.all()}
    assert got["c_0"].signup_date == dt.date(2025, 1, 1) and got["c_2"].signup_date is None
    assert got["c_1"].segment_id is None and got["c_4"].segment_id == segment.pk
    assert got["c_3"].timezone == "Asia/Tokyo"
    assert [got[f"c_{n}"].created_at for n in range(5)] == [made + dt.timedelta(hours=n) for n in range(5)]
    assert data_access.copy_in(Customer._meta.db_table, []) == 0


def test_copy_in_writes_times_floats_and_missing_numbers():
    customers = [CustomerFactory() for _ in range(3)]
    frame = pd.DataFrame({
        "customer_id": np.array([c.pk for c in customers]),
        "local_send_time": [dt.time(9, 0), dt.time(18, 30), dt.time(0, 15)],
        "utc_send_time": [dt.time(8, 0), dt.time(17, 30), dt.time(23, 15)],
        "expected_improvement": np.array([12.5, 0.1, 1e-7]),
        "confidence": np.array([0.25, np.nan, 1.0]),
        "events_used": np.array([3, 0, 120]),
        "method": ["personal", "fallback", "personal"],
        "last_updated": pd.Timestamp("2025-03-01T00:00:00Z"),
    })
    frame["confidence"] = frame["confidence"].fillna(0.5)

    assert data_access.copy_in(UserSendTime._meta.db_table, [frame]) == 3

    got = {r.customer_id: r for r in UserSendTime.objects.all()}
    first, second, third = (got[c.pk] for c in customers)
    assert (first.local_send_time, second.utc_send_time) == (dt.time(9, 0), dt.time(17, 30))
    assert (first.expected_improvement, third.expected_improvement) == (12.5, 1e-7)
    assert (second.confidence, third.events_used, second.method) == (0.5, 120, "fallback")
    assert first.last_updated == dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def test_copy_text_marks_missing_values_and_refuses_a_tab():
    frame = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "x": [0.5, np.nan], "s": ["a", None]})
    assert data_access.copy_text(frame) == "1\t0.5\ta\n\\N\t\\N\t\\N\n"
    with pytest.raises(ValueError, match="tabs"):
        data_access.copy_text(pd.DataFrame({"s": ["a\tb"]}))


def _event_record(event_id: str, campaign: Campaign, customer: Customer, amount: str | None = None) -> tuple:
    at = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    kind = "conversion" if amount else "view"
    return (event_id, kind, at, at, customer.pk, campaign.pk, None, None, "B", Decimal(amount) if amount else None)


EVENT_COLUMNS = ("event_id", "type", "occurred_at", "received_at", "customer_id", "campaign_id", "merchant_id",
                 "offer_id", "variant", "amount")
EVENT_TYPES = ["varchar", "varchar", "timestamptz", "timestamptz", "int8", "int8", "int8", "int8", "varchar", "numeric"]
# PostgreSQL's events table is partitioned: event_id is unique through its key table (campaigns.partitions).
EVENT_KEYS = {"key_table": "campaigns_event_key", "partition_key": "occurred_at"}


@pytest.mark.parametrize("known_first", [0, 3], ids=["all-new", "some-stored"])
def test_insert_new_rows_skips_stored_keys_and_counts_exactly(known_first):
    campaign, customer = CampaignFactory(), CustomerFactory()
    records = [_event_record(f"e_{n}", campaign, customer, "19.90" if n % 2 else None) for n in range(6)]
    if known_first:
        assert data_access.insert_new_rows(Event._meta.db_table, EVENT_COLUMNS, records[:known_first], key="event_id",
                                  copy_types=EVENT_TYPES, **EVENT_KEYS) == known_first

    stored = data_access.insert_new_rows(Event._meta.db_table, EVENT_COLUMNS, records, key="event_id", copy_types=EVENT_TYPES,
                                         **EVENT_KEYS)

    assert stored == 6 - known_first
    events = {e.event_id: e for e in Event.objects.all()}
    assert sorted(events) == [f"e_{n}" for n in range(6)]
    assert events["e_1"].amount == Decimal("19.90") and events["e_2"].amount is None
    assert events["e_3"].occurred_at == dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    assert data_access.insert_new_rows(Event._meta.db_table, EVENT_COLUMNS, [], key="event_id", copy_types=EVENT_TYPES) == 0


def test_the_advisory_lock_admits_one_holder_and_frees_on_exit():
    key = zlib.crc32(b"test_db.one-holder")
    with data_access.advisory_lock(key) as first:
        assert first is True
        if connection.vendor == "postgresql":
            assert data_access.advisory_lock_holder(key) is not None
    with data_access.advisory_lock(key) as again:
        assert again is True
    assert data_access.advisory_lock_holder(key) is None


def test_the_advisory_lock_is_refused_while_another_session_holds_it(postgres):
    key = zlib.crc32(b"test_db.other-session")
    other = other_session()
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [key])
        holder = other.execute("SELECT pg_backend_pid()").fetchone()[0]
        called: list[int | None] = []
        with data_access.advisory_lock(key, wait=0.3, before_waiting=lambda: called.append(data_access.advisory_lock_holder(key))) as got:
            assert got is False
        assert called == [holder]
        other.execute("SELECT pg_advisory_unlock(%s)", [key])
        with data_access.advisory_lock(key) as got:
            assert got is True
    finally:
        other.close()


def test_the_process_lock_admits_one_holder():
    with data_access.process_lock("test_db") as first, data_access.process_lock("test_db") as second:
        assert (first, second) == (True, False)
    with data_access.process_lock("test_db") as again:
        assert again is True



def _count_views_target(day: dt.date, stamp: dt.datetime) -> data_access.UpsertTarget:
    from analytics.models import CampaignAnalyticsDaily

    return data_access.UpsertTarget(
        model=CampaignAnalyticsDaily,
        columns=("campaign_id", "date", "sends", "opens", "views", "clicks", "conversions", "revenue", "cost",
                 "created_at", "computed_at"),
        select="SELECT g.campaign_id, %s::date, 0, 0, g.n, 0, 0, 0, 0, %s, %s FROM g",
        params=(day, stamp, stamp),
        unique_fields=("campaign", "date"),
        update_fields=("views", "computed_at"),
        build=lambda groups: [
            CampaignAnalyticsDaily(campaign_id=g["campaign_id"], date=day, views=g["n"], computed_at=stamp)
            for g in groups
        ],
    )


@pytest.mark.parametrize("native", [None, False], ids=["this-database's-way", "portable-way"])
def test_upsert_from_query_inserts_then_updates_the_same_rows(native):
    from django.db.models import Count

    from analytics.models import CampaignAnalyticsDaily

    campaigns, customer = [CampaignFactory() for _ in range(3)], CustomerFactory()
    records = [_event_record(f"e_{c.pk}_{n}", c, customer) for i, c in enumerate(campaigns) for n in range(i + 1)]
    data_access.insert_new_rows(Event._meta.db_table, EVENT_COLUMNS, records, key="event_id", copy_types=EVENT_TYPES)
    views = Event.objects.values("campaign_id").annotate(n=Count("id")).order_by()
    day = dt.date(2025, 3, 1)
    first, later = dt.datetime(2025, 3, 2, tzinfo=dt.UTC), dt.datetime(2025, 3, 3, tzinfo=dt.UTC)

    assert data_access.upsert_from_query(views, [_count_views_target(day, first)], native=native) == 3
    Event.objects.filter(event_id=f"e_{campaigns[2].pk}_0").delete()
    assert data_access.upsert_from_query(views, [_count_views_target(day, later)], native=native) == 3

    rows = CampaignAnalyticsDaily.objects.order_by("campaign_id").values_list("campaign_id", "date", "views", "computed_at")
    assert list(rows) == [(c.pk, day, n, later) for c, n in zip(campaigns, [1, 2, 2], strict=True)]


def _fillfactor(table: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [table])
        options = cursor.fetchone()[0] or []
    return next((int(o.split("=")[1]) for o in options if o.startswith("fillfactor=")), None)


def test_the_aggregate_tables_leave_room_for_in_place_updates():
    # The migration (analytics 0005) set it; PostgreSQL keeps it in pg_class, SQLite has no such setting.
    postgresql = connection.vendor == "postgresql"
    for table in ("campaign_analytics_daily", "campaign_segment_analytics", "campaign_trend_data"):
        if postgresql:
            assert _fillfactor(table) == 50
    assert data_access.leave_room_for_updates("campaign_trend_data", 70) is postgresql
    if postgresql:
        assert _fillfactor("campaign_trend_data") == 70
    with pytest.raises(ValueError, match="between 10 and 100"):
        data_access.leave_room_for_updates("campaign_trend_data", 5)

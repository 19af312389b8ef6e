"""The one-day aggregation with the events table holding 1x, 2x and 4x the months (PostgreSQL, partitioned
by month: campaigns/partitions.py), each beside its floor measured in the same run; plus what the key table
(event_id unique across partitions) costs ingestion.

    python bench/partitions.py                            # 200k events per month
    python bench/partitions.py --per-month 100000 --no-report

One month of events comes from ``seed_demo`` (the previous calendar month, in a dedicated database rebuilt
each run). The table then grows to 2x and 4x by copying that month into earlier months (each in its own
partition, created by ``campaigns.partitions.create_month``). At each size, the median of ``--repeat`` runs, the floor
and the job interleaved (floor, job, floor, job, ...):

- floor: the same day's hand-written ``GROUP BY campaign`` of counts and sums (one SELECT, rows fetched);
- one day: ``analytics.services.aggregate_days`` for one day of the newest month (the nightly job's day,
  all three aggregate tables written).

Ingestion: ``--ingest-rows`` new events through the ingest write step (``campaigns.ingest.event_table.
_insert_events``: binary COPY, the key table filled by its trigger) into the partitioned table, against
the floor of the same binary COPY into a plain table shaped as the events table was before partitioning
(the same indexes, event_id unique through its own index) holding the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.aggregate import drop_database, ensure_database  # noqa: E402

EVENTS_PER_CUSTOMER_DAY = 1.64  # what seed_demo generates with its default sends_per_day (bench/aggregate.py)

DAY_FLOOR_SQL = """
SELECT campaign_id,
       COUNT(*) FILTER (WHERE type = 'notification_sent'),
       COUNT(*) FILTER (WHERE type = 'notification_opened'),
       COUNT(*) FILTER (WHERE type = 'view'),
       COUNT(*) FILTER (WHERE type = 'click'),
       COUNT(*) FILTER (WHERE type = 'conversion'),
       COUNT(DISTINCT customer_id),
       SUM(amount) FILTER (WHERE type = 'conversion'),
       SUM(amount) FILTER (WHERE type = 'spend')
FROM campaigns_event
WHERE occurred_at >= %s AND occurred_at < %s
GROUP BY 1
"""

# The events table as it was before migration 0011 (the ingestion floor's target).
PLAIN_TABLE = """
CREATE TABLE bench_plain_events (LIKE campaigns_event INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE bench_plain_events ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX bench_plain_event_id ON bench_plain_events (event_id varchar_pattern_ops);
CREATE INDEX bench_plain_occurred ON bench_plain_events (occurred_at);
CREATE INDEX bench_plain_campaign_occurred ON bench_plain_events (campaign_id, occurred_at);
CREATE INDEX bench_plain_merchant ON bench_plain_events (merchant_id) WHERE merchant_id IS NOT NULL;
CREATE INDEX bench_plain_offer ON bench_plain_events (offer_id) WHERE offer_id IS NOT NULL;
CREATE INDEX bench_plain_attribution ON bench_plain_events (campaign_id, customer_id, occurred_at) WHERE type = 'conversion';
INSERT INTO bench_plain_events SELECT * FROM campaigns_event;
SELECT setval(pg_get_serial_sequence('bench_plain_events', 'id'), (SELECT max(id) FROM bench_plain_events));
VACUUM ANALYZE bench_plain_events;
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-month", type=int, default=200_000, help="events per month (default 200k)")
    p.add_argument("--campaigns", type=int, default=40)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--ingest-rows", type=int, default=100_000)
    p.add_argument("--database", default="mai_bench_partitions", help="PostgreSQL database (rebuilt each run)")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md")
    return p.parse_args()


def interleaved(repeat: int, *fns) -> list[tuple[float, list[float]]]:
    """(median seconds, every run's seconds) of each fn, run in turn ``repeat`` times (a, b, a, b, ...):
    a change in the machine's load then falls on both sides alike."""
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times in zip(fns, runs, strict=True):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return [(statistics.median(times), times) for times in runs]


def load_text() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    args = parse_args()
    drop_database(args.server, args.database)  # rebuilt each run: the months are planted from scratch
    ensure_database(args.server, args.database)
    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from analytics import services
    from campaigns import partitions
    from campaigns.demo_load import seed_demo

    call_command("migrate", verbosity=0)
    this_month = partitions.month_of(timezone.now().date())
    base = partitions.add_months(this_month, -1)  # a whole past month, its partition made by the migration
    last_day = this_month - dt.timedelta(days=1)
    days = last_day.day
    customers = max(100, round(args.per_month / (days * EVENTS_PER_CUSTOMER_DAY)))
    t0 = time.perf_counter()
    seed_demo(customers=customers, merchants=100, campaigns=args.campaigns, days=days, seed=11, end_date=last_day)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM campaigns_event")
        per_month = cur.fetchone()[0]
    print(f"seed_demo: {per_month:,} events in {base:%Y-%m} ({time.perf_counter() - t0:.0f} s)")
    day = base + dt.timedelta(days=14)  # the measured day: mid-month of the newest data
    low = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    high = low + dt.timedelta(days=1)

    def add_month(k: int) -> None:
        """Copy the base month's events into the month k months earlier (new ids; a partition of its own)."""
        month = partitions.add_months(base, -k)
        partitions.create_month(month)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "INSERT INTO campaigns_event (event_id, type, occurred_at, received_at, customer_id, campaign_id,"
                " merchant_id, offer_id, variant, amount, channel)"
                " SELECT event_id || %s, type, occurred_at - make_interval(months => %s),"
                " received_at - make_interval(months => %s), customer_id, campaign_id, merchant_id, offer_id,"
                " variant, amount, channel FROM campaigns_event"
                " WHERE occurred_at >= %s AND occurred_at < %s",
                [f"_m{k}", k, k, dt.datetime.combine(base, dt.time(), tzinfo=dt.UTC),
                 dt.datetime.combine(this_month, dt.time(), tzinfo=dt.UTC)],
            )

    def floor() -> int:
        with connection.cursor() as cur:
            cur.execute(DAY_FLOOR_SQL, [low, high])
            return len(cur.fetchall())

    def one_day() -> int:
        return services.aggregate_days(start=day, end=day)

    services.aggregate_days(start=base, end=last_day)  # the other days' aggregates exist, as in production
    rows = []
    months = 1
    for target in (1, 2, 4):
        while months < target:
            add_month(months)
            months += 1
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE campaigns_event")
            cur.execute("SELECT count(*), pg_size_pretty(pg_total_relation_size('campaigns_event_key'))"
                        " FROM campaigns_event")
            total, key_size = cur.fetchone()
            cur.execute("SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i"
                        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'campaigns_event'::regclass")
            size = cur.fetchone()[0]
        floor()
        one_day()  # warm both the same way
        (f_median, f_runs), (d_median, d_runs) = interleaved(args.repeat, floor, one_day)
        load = load_text()
        print(f"{months} month(s), {total:,} events ({size}, keys {key_size}): floor {f_median:.3f} s, "
              f"one day {d_median:.3f} s, x floor {d_median / f_median:.2f}; load {load}")
        rows.append({
            "months": months, "events": f"{total:,}", "events table": size, "key table": key_size,
            "floor median s": f"{f_median:.3f}", "one day median s": f"{d_median:.3f}",
            "one day runs s": ", ".join(f"{r:.3f}" for r in d_runs), "x floor": f"{d_median / f_median:.2f}",
            "load (1/5/15)": load,
        })

    # Ingestion: the write step into the partitioned table (COPY + key trigger) vs COPY into the old plain shape.
    from campaigns.ingest.event_table import EVENT_COLUMNS, EVENT_COPY_TYPES, _insert_events
    from marketing_ai.db import psycopg_cursor

    with connection.cursor() as cur:
        cur.execute("SELECT id FROM campaigns_campaign ORDER BY id LIMIT 1")
        campaign_pk = cur.fetchone()[0]
        for statement in PLAIN_TABLE.strip().split(";\n"):  # same rows as the partitioned table holds now
            cur.execute(statement)
    now = timezone.now()

    def records(tag: str) -> list[tuple]:
        return [(f"bench_{tag}_{n:08d}", "view", now - dt.timedelta(seconds=n % 86400), now, None, campaign_pk,
                 None, None, "", None, "") for n in range(args.ingest_rows)]

    def ingest(tag: str) -> int:
        with transaction.atomic():
            return _insert_events(records(tag))

    def plain(tag: str) -> int:
        batch = records(tag)
        names = ", ".join(EVENT_COLUMNS)
        with transaction.atomic(), psycopg_cursor() as cur, \
                cur.copy(f"COPY bench_plain_events ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(EVENT_COPY_TYPES)
            for row in batch:
                copy.write_row(row)
        return len(batch)

    ingest_rows = []
    counter = iter(range(1000))
    steps = (("COPY into the plain table (floor)", plain), ("ingest write step into the partitioned table", ingest))
    measured = interleaved(args.repeat, *[lambda fn=fn: fn(str(next(counter))) for _, fn in steps])
    for (label, _), (median, runs) in zip(steps, measured, strict=True):
        ingest_rows.append({"step": label, "rows": f"{args.ingest_rows:,}", "median s": f"{median:.3f}",
                            "runs s": ", ".join(f"{r:.3f}" for r in runs)})
    ratio = float(ingest_rows[1]["median s"]) / float(ingest_rows[0]["median s"])
    for r in ingest_rows:
        print(f"{r['step']:48s} {r['rows']} rows median {r['median s']} s")
    print(f"ingest / floor: {ratio:.2f}x; load {load_text()}")
    if args.no_report:
        return
    from bench.report import table, write_section

    first, last = float(rows[0]["one day median s"]), float(rows[-1]["one day median s"])
    body = (
        f"One month = {per_month:,} events from `seed_demo` ({customers:,} customers, {args.campaigns} campaigns); "
        "2x and 4x add copies of that month in earlier months, each in its own partition. Measured day: "
        f"{day} (the newest month). Floor: that day's hand-written `GROUP BY campaign` of counts, distinct "
        "customers and sums (one SELECT). One day: `aggregate_days` for that day (the nightly job's day; the "
        "three aggregate tables written).\n\n"
        + table(rows, ["months", "events", "events table", "key table", "floor median s", "one day median s",
                       "one day runs s", "x floor", "load (1/5/15)"])
        + f"\n\nOne day at 4x the data / at 1x: **{last / first:.2f}**.\n\n"
        f"Ingestion ({args.ingest_rows:,} new events in one transaction): the write step into the partitioned "
        "table (binary COPY; the statement trigger fills `campaigns_event_key`) against the same binary COPY into a "
        "plain table with the pre-partitioning indexes (unique event_id index):\n\n"
        + table(ingest_rows, ["step", "rows", "median s", "runs s"])
        + f"\n\nWrite step / floor: **{ratio:.2f}x** (load {load_text()})."
    )
    write_section("partitions", "Event partitions: one-day aggregation vs table size (bench/partitions.py)", body)


if __name__ == "__main__":
    main()

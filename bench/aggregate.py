"""Benchmark the daily_analytics job on PostgreSQL against its floor, measured in the same run.

    python bench/aggregate.py                    # the issue's scale: ~10 million events over 90 days
    python bench/aggregate.py --events 1000000 --days 60   # what a busy shared machine affords

Events come from ``seed_demo`` (campaigns.demo_load) in a dedicated database (rebuilt when the
scale changes; reused otherwise). Timed ``--repeat`` times, interleaved; each figure is the median
of its runs (all runs shown):

- floor: hand-written PostgreSQL (``FLOOR_STEPS``, on a psycopg connection of its own) computing the
  SAME rows of the three aggregate tables from the same events, written into scratch copies of those
  tables (same columns, indexes and unique keys, ``floor_*``): the segment table with exact
  ``COUNT(DISTINCT customer)`` users, the daily table, and the trend table's hourly (recent days,
  non-zero), daily, weekly and monthly points. Like the job it first deletes the rows of the days and
  periods it recomputes, so the one-day floor is the nightly case too. After the runs, the job's rows
  and the floor's rows are compared (``EXCEPT`` both ways, every column but the timestamps): the
  bench fails if they differ;
- backfill: ``aggregate_days`` over the whole range into empty tables (all three tables);
- one day: ``aggregate_days`` for the last full day (tables already filled, the nightly case),
  beside the floor for that day;
- window: the job's default 3-day window.
Parts, to show where the time goes: the job's grouped SELECT alone and the trend step alone.
Goals (issue 15): backfill <= 1.5x the floor (medians); one day < 0.5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVENTS_PER_CUSTOMER_DAY = 1.64  # what seed_demo generates with its default sends_per_day (measured)
TABLES = ("campaign_analytics_daily", "campaign_segment_analytics", "campaign_trend_data")
# The columns the check compares (the timestamps created_at / computed_at differ by construction).
COMPARED = {
    "campaign_analytics_daily": "campaign_id, date, sends, opens, views, clicks, conversions, revenue, cost",
    "campaign_segment_analytics": "campaign_id, segment_id, date, users, views, conversions, revenue, cost",
    "campaign_trend_data": "campaign_id, period_start, hour, interval, metric_type, value",
}
METRICS = ("sends", "opens", "views", "clicks", "conversions", "revenue", "cost")
UNPIVOT = ", ".join(f"('{m}', g.{m}::numeric)" for m in METRICS)

# The floor: what a person fluent in SQL would write for the same rows, run in one transaction.
# Parameters: %(start)s, %(end)s (UTC days, inclusive; %(start_at)s, %(end_at)s: their bounds as UTC times),
# %(hour_start)s (first day of hourly points kept; %(hour_at)s: the first hour this run recomputes),
# %(week_start)s..%(week_end)s and %(month_start)s..%(month_end)s (whole weeks / months touching the days).
FLOOR_STEPS = [
    # the rows this run recomputes (none in a backfill into empty tables)
    "DELETE FROM floor_campaign_analytics_daily WHERE date BETWEEN %(start)s AND %(end)s",
    "DELETE FROM floor_campaign_segment_analytics WHERE date BETWEEN %(start)s AND %(end)s",
    """DELETE FROM floor_campaign_trend_data WHERE
         (interval = 'hourly' AND (period_start < %(hour_start)s OR period_start BETWEEN %(start)s AND %(end)s))
      OR (interval = 'daily' AND period_start BETWEEN %(start)s AND %(end)s)
      OR (interval = 'weekly' AND period_start BETWEEN %(week_start)s AND %(week_end)s)
      OR (interval = 'monthly' AND period_start BETWEEN %(month_start)s AND %(month_end)s)""",
    # one scan of the events: per campaign, UTC day and customer segment, with exact distinct users
    """CREATE TEMP TABLE floor_groups ON COMMIT DROP AS
       SELECT e.campaign_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day, c.segment_id,
              COUNT(DISTINCT e.customer_id) AS users,
              COUNT(*) FILTER (WHERE e.type = 'notification_sent') AS sends,
              COUNT(*) FILTER (WHERE e.type = 'notification_opened') AS opens,
              COUNT(*) FILTER (WHERE e.type = 'view') AS views,
              COUNT(*) FILTER (WHERE e.type = 'click') AS clicks,
              COUNT(*) FILTER (WHERE e.type = 'conversion') AS conversions,
              SUM(e.amount) FILTER (WHERE e.type = 'conversion') AS revenue,
              SUM(e.amount) FILTER (WHERE e.type = 'spend') AS cost
       FROM campaigns_event e LEFT JOIN campaigns_customer c ON c.id = e.customer_id
       WHERE e.occurred_at >= %(start_at)s AND e.occurred_at < %(end_at)s
       GROUP BY 1, 2, 3""",
    """INSERT INTO floor_campaign_segment_analytics
         (campaign_id, segment_id, date, users, views, conversions, revenue, cost, created_at, computed_at)
       SELECT campaign_id, segment_id, day, users, views, conversions, COALESCE(revenue, 0), COALESCE(cost, 0),
              now(), now()
       FROM floor_groups WHERE segment_id IS NOT NULL""",
    """INSERT INTO floor_campaign_analytics_daily
         (campaign_id, date, sends, opens, views, clicks, conversions, revenue, cost, created_at, computed_at)
       SELECT campaign_id, day, SUM(sends), SUM(opens), SUM(views), SUM(clicks), SUM(conversions),
              COALESCE(SUM(revenue), 0), COALESCE(SUM(cost), 0), now(), now()
       FROM floor_groups GROUP BY 1, 2""",
    # hourly points of the recent days, from the events (zeros not stored)
    f"""INSERT INTO floor_campaign_trend_data
         (campaign_id, period_start, hour, interval, metric_type, value, created_at, computed_at)
       SELECT g.campaign_id, g.day, g.hour, 'hourly', m.metric, m.value, now(), now()
       FROM (SELECT campaign_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
                    EXTRACT(HOUR FROM occurred_at AT TIME ZONE 'UTC') AS hour,
                    COUNT(*) FILTER (WHERE type = 'notification_sent') AS sends,
                    COUNT(*) FILTER (WHERE type = 'notification_opened') AS opens,
                    COUNT(*) FILTER (WHERE type = 'view') AS views,
                    COUNT(*) FILTER (WHERE type = 'click') AS clicks,
                    COUNT(*) FILTER (WHERE type = 'conversion') AS conversions,
                    SUM(amount) FILTER (WHERE type = 'conversion') AS revenue,
                    SUM(amount) FILTER (WHERE type = 'spend') AS cost
             FROM campaigns_event
             WHERE occurred_at >= %(hour_at)s AND occurred_at < %(end_at)s
             GROUP BY 1, 2, 3) g
       CROSS JOIN LATERAL (VALUES {UNPIVOT}) AS m(metric, value)
       WHERE m.value <> 0""",
    # daily, weekly and monthly points, summed from the (floor's) daily table, every metric stored
    *[
        f"""INSERT INTO floor_campaign_trend_data
             (campaign_id, period_start, hour, interval, metric_type, value, created_at, computed_at)
           SELECT g.campaign_id, g.period, 0, '{interval}', m.metric, COALESCE(m.value, 0), now(), now()
           FROM (SELECT campaign_id, {period} AS period, {', '.join(f'SUM({m}) AS {m}' for m in METRICS)}
                 FROM floor_campaign_analytics_daily WHERE date BETWEEN %({first})s AND %({last})s GROUP BY 1, 2) g
           CROSS JOIN LATERAL (VALUES {UNPIVOT}) AS m(metric, value)"""
        for interval, period, first, last in (
            ("daily", "date", "start", "end"),
            ("weekly", "date_trunc('week', date)::date", "week_start", "week_end"),
            ("monthly", "date_trunc('month', date)::date", "month_start", "month_end"),
        )
    ],
]


def floor_params(start: dt.date, end: dt.date, hourly_days: int) -> dict:
    """The floor's parameters: the days, and the whole ISO weeks and months that touch them."""
    next_month = (end.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    hour_start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=hourly_days - 1)
    midnight = lambda day: dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)  # noqa: E731
    return {
        "start": start, "end": end, "hour_start": hour_start,
        "start_at": midnight(start), "end_at": midnight(end + dt.timedelta(days=1)),
        "hour_at": midnight(max(start, hour_start)),
        "week_start": start - dt.timedelta(days=start.weekday()), "week_end": end + dt.timedelta(days=6 - end.weekday()),
        "month_start": start.replace(day=1), "month_end": next_month - dt.timedelta(days=1),
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000_000, help="target number of events (default 10M)")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--campaigns", type=int, default=150, help="the seed's ~150 campaigns")
    p.add_argument("--merchants", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3, help="runs of each timed step (medians reported)")
    p.add_argument("--chunk-study", action="store_true",
                   help="also time the backfill in one chunk and in 1-day chunks (DEFAULT_CHUNK_DAYS's evidence)")
    p.add_argument("--database", default="mai_bench_aggregate", help="PostgreSQL database (created if missing)")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md")
    return p.parse_args()


def ensure_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class Floor:
    """The hand-written SQL on a psycopg connection of its own, writing into ``floor_*`` copies of the tables."""

    def __init__(self, url: str, hourly_days: int) -> None:
        import psycopg

        self.conn = psycopg.connect(url)
        self.hourly_days = hourly_days
        with self.conn.transaction():
            self.conn.execute("SET TIME ZONE 'UTC'")  # date_trunc on dates, as Django's connection sees them
            for table in TABLES:  # same columns, defaults, indexes and unique keys as the job's tables
                self.conn.execute(f"DROP TABLE IF EXISTS floor_{table}")
                self.conn.execute(f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES"
                                  " INCLUDING CONSTRAINTS)")

    def empty(self) -> None:
        with self.conn.transaction():
            self.conn.execute(f"TRUNCATE {', '.join(f'floor_{t}' for t in TABLES)}")

    def run(self, start: dt.date, end: dt.date) -> int:
        params = floor_params(start, end, self.hourly_days)
        written = 0
        with self.conn.transaction():
            for sql in FLOOR_STEPS:
                cur = self.conn.execute(sql, params)
                if sql.lstrip().startswith("INSERT"):
                    written += cur.rowcount
        return written

    def differences(self) -> dict[str, tuple[int, int]]:
        """Per table: (job rows not in the floor's, floor rows not in the job's); all zeros when equal."""
        out = {}
        for table, cols in COMPARED.items():
            missing = self.scalar(f"SELECT count(*) FROM (SELECT {cols} FROM {table} EXCEPT ALL SELECT {cols} FROM floor_{table}) d")
            extra = self.scalar(f"SELECT count(*) FROM (SELECT {cols} FROM floor_{table} EXCEPT ALL SELECT {cols} FROM {table}) d")
            out[table] = (missing, extra)
        self.conn.commit()
        return out

    def counts(self) -> dict[str, int]:
        out = {t: self.scalar(f"SELECT count(*) FROM floor_{t}") for t in TABLES}
        self.conn.commit()
        return out

    def scalar(self, sql: str) -> int:
        row = self.conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        with self.conn.transaction():
            for table in TABLES:
                self.conn.execute(f"DROP TABLE IF EXISTS floor_{table}")
        self.conn.close()


def one_day_steps(connection: Any, services: Any, day: dt.date) -> list[dict]:
    """One more one-day run with every statement timed, summed by what it does: where the nightly run's time goes."""
    spent: dict[str, list[float]] = {}

    def kind(sql: str) -> str:
        head = " ".join(sql.split())[:400]
        if head.startswith(("SAVEPOINT", "RELEASE", "DROP TABLE")):
            return "savepoints, dropping the temporary tables"
        if head.startswith("CREATE TEMPORARY TABLE g") and '"campaigns_event"' in head:
            return ("grouping the day's events into a temporary table (per campaign, day and segment with "
                    "distinct users; per campaign and hour)")
        if head.startswith("CREATE TEMPORARY TABLE g"):
            return "summing the daily rows per day / week / month into a temporary table"
        if head.startswith('INSERT INTO "campaign_trend_data"'):
            return "upserting trend points (hourly, daily, weekly, monthly)"
        if head.startswith("INSERT INTO"):
            return "upserting the daily and segment rows / the run record"
        if head.startswith("DELETE"):
            return "deleting rows the run did not write"
        return "other statements"

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent.setdefault(kind(sql), []).append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with connection.execute_wrapper(wrapper):
        services.aggregate_days(start=day, end=day)
    total = time.perf_counter() - t0
    rows = [{"part of one one-day run": k, "statements": len(v), "seconds": f"{sum(v):.3f}"}
            for k, v in sorted(spent.items(), key=lambda kv: -sum(kv[1]))]
    in_sql = sum(sum(v) for v in spent.values())
    rows.append({"part of one one-day run": "Python around the statements (ORM, job bookkeeping)", "statements": "",
                 "seconds": f"{total - in_sql:.3f}"})
    rows.append({"part of one one-day run": "**total**", "statements": sum(len(v) for v in spent.values()),
                 "seconds": f"{total:.3f}"})
    return rows


def median(runs: list[float]) -> float:
    return statistics.median(runs)


def main() -> None:
    args = parse_args()
    url = f"{args.server}/{args.database}"
    ensure_database(args.server, args.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from campaigns.models import Event

    existing = Event.objects.count()
    customers = max(100, round(args.events / (args.days * EVENTS_PER_CUSTOMER_DAY)))
    if abs(existing - args.events) > 0.15 * args.events:
        print(f"building ~{args.events:,} events ({customers:,} customers x {args.days} days) with seed_demo ...")
        connection.close()
        drop_database(args.server, args.database)
        ensure_database(args.server, args.database)
        call_command("migrate", verbosity=0)
        from campaigns.demo_load import seed_demo

        t, _ = timed(lambda: seed_demo(customers=customers, merchants=args.merchants, campaigns=args.campaigns,
                                       days=args.days, seed=11, replace=True))
        print(f"seed_demo: {t:.0f} s")
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE campaigns_event")
        cur.execute("VACUUM ANALYZE campaigns_customer")
        cur.execute("SELECT count(*), min(occurred_at), max(occurred_at), pg_size_pretty((SELECT sum(pg_total_relation_size(relid))"
                    " FROM pg_partition_tree('campaigns_event'))) FROM campaigns_event")  # its partitions' sizes
        n_events, first_at, last_at, size = cur.fetchone()
    first_day, last_day = first_at.date(), last_at.date()
    last_full_day = last_day - dt.timedelta(days=1)
    print(f"{n_events:,} events, {first_day}..{last_day}, table {size}")
    load_before = os.getloadavg()
    print("load average before: " + " ".join(f"{x:.2f}" for x in load_before))

    from analytics import services
    from analytics.models import CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData

    floor = Floor(url, settings.ANALYTICS_HOURLY_DAYS)

    def empty_tables() -> None:
        with connection.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(m._meta.db_table for m in (CampaignTrendData, CampaignSegmentAnalytics, CampaignAnalyticsDaily))}")

    def backfill(chunk_days: int):
        def run() -> int:
            return services.aggregate_days(start=first_day, end=last_day, chunk_days=chunk_days)
        return run

    whole = (last_day - first_day).days + 1

    def grouped_select() -> int:  # where the backfill's time goes: the one scan with distinct users
        sql, params = services.grouped_events(first_day, last_day).query.sql_with_params()
        with connection.cursor() as cur:
            cur.execute(sql, params)
            return len(cur.fetchall())

    def trends_only() -> int:
        from django.utils import timezone

        return services.refresh_trends(first_day, last_day, computed_at=timezone.now())

    results: dict[str, list[float]] = {}
    rows: dict[str, int] = {}

    def measure(label: str, fn, before=None) -> None:
        if before:
            before()
        t, rows[label] = timed(fn)
        results.setdefault(label, []).append(t)

    FLOOR, BACKFILL = "floor: hand-written SQL, backfill", f"backfill ({services.DEFAULT_CHUNK_DAYS}-day chunks, the default)"
    FLOOR_DAY, ONE_DAY = "floor: hand-written SQL, one day", "one day"
    FLOOR_WINDOW, WINDOW = "floor: hand-written SQL, 3-day window", "3-day window"
    floor.empty()
    floor.run(first_day, last_day)  # warm the cache the same way for everyone
    diffs: dict[str, dict[str, tuple[int, int]]] = {}
    for _ in range(args.repeat):  # interleaved: the floor and the job see the same load
        measure(FLOOR, lambda: floor.run(first_day, last_day), floor.empty)
        measure(BACKFILL, backfill(services.DEFAULT_CHUNK_DAYS), empty_tables)
        if args.chunk_study:
            if whole > services.DEFAULT_CHUNK_DAYS:
                measure(f"backfill (one chunk of {whole} days)", backfill(whole), empty_tables)
            measure("backfill (1-day chunks)", backfill(1), empty_tables)
    diffs["backfill"] = floor.differences()
    for _ in range(args.repeat):  # tables filled: the nightly case
        measure(FLOOR_DAY, lambda: floor.run(last_full_day, last_full_day))
        measure(ONE_DAY, lambda: services.aggregate_days(start=last_full_day, end=last_full_day))
        measure(WINDOW, lambda: services.aggregate_days(start=last_day - dt.timedelta(days=2), end=last_day))
        # the floor over the same 3 days (also so that the tables compared below cover the same runs)
        measure(FLOOR_WINDOW, lambda: floor.run(last_day - dt.timedelta(days=2), last_day))
    diffs["after one-day and window runs"] = floor.differences()
    for _ in range(args.repeat):
        measure("(part) the job's grouped SELECT alone (campaign, day, segment, distinct users; nothing written)",
                grouped_select)
        measure("(part) the job's trend step alone (over the whole range, tables filled)", trends_only)
    table_counts = floor.counts()
    floor.close()
    steps = one_day_steps(connection, services, last_full_day)

    med = {k: median(v) for k, v in results.items()}
    floor_of = {k: FLOOR_DAY if k in (ONE_DAY, FLOOR_DAY) else FLOOR_WINDOW if k in (WINDOW, FLOOR_WINDOW) else FLOOR
                for k in results}
    table_rows = []
    for label, runs in results.items():
        ratio = med[label] / med[floor_of[label]]
        table_rows.append({
            "step": label, "median s": f"{med[label]:.3f}", "runs s": ", ".join(f"{r:.3f}" for r in runs),
            "x its floor (medians)": f"{ratio:.2f}" + {FLOOR: "", FLOOR_DAY: " (one-day floor)",
                                                       FLOOR_WINDOW: " (3-day floor)"}[floor_of[label]],
            "rows written": f"{rows[label]:,}",
        })
        print(f"{label:60s} median {med[label]:7.3f} s  x floor {ratio:5.2f}  runs {', '.join(f'{r:.3f}' for r in runs)}")
    equal = all(d == (0, 0) for per_table in diffs.values() for d in per_table.values())
    check = "; ".join(
        f"{when}: " + ", ".join(f"{t} {m} missing / {e} extra" for t, (m, e) in per_table.items())
        for when, per_table in diffs.items())
    ratio = med[BACKFILL] / med[FLOOR]
    verdict = [
        f"- backfill / floor (medians of {args.repeat}): **{ratio:.2f}x** (goal <= 1.5x): "
        + ("met" if ratio <= 1.5 else "NOT met"),
        f"- one day: **{med[ONE_DAY]:.3f} s** median (goal < 0.5 s): " + ("met" if med[ONE_DAY] < 0.5 else "NOT met")
        + f"; its floor {med[FLOOR_DAY]:.3f} s ({med[ONE_DAY] / med[FLOOR_DAY]:.2f}x)",
        f"- the job's rows equal the floor's: **{'yes' if equal else 'NO'}** ({check}; rows per floor table "
        + ", ".join(f"{t} {n:,}" for t, n in table_counts.items()) + ")",
    ]
    load_after = os.getloadavg()
    load_text = ("load average (1/5/15 min) before: " + " ".join(f"{x:.2f}" for x in load_before)
                 + "; after: " + " ".join(f"{x:.2f}" for x in load_after))
    for step in steps:
        print(f"  one day, {step['part of one one-day run']}: {step['seconds']} s ({step['statements']} statements)")
    print(load_text)
    print("\n".join(verdict))
    if not args.no_report:
        from bench.report import table, write_section

        body = (
            f"Scale run: **{n_events:,} events** over {whole} days ({first_day}..{last_day}), events table {size} ("
            + ("the issue's scale" if n_events >= 9_500_000 else "the issue's scale is 10M events; this run's scale was chosen for the shared 2-core machine")
            + f"). Machine shared with other work: {load_text}.\n\n"
            "Floor: hand-written PostgreSQL (`FLOOR_STEPS` in bench/aggregate.py, on a psycopg connection of its own) "
            "computing the same rows of the three tables from the same events and writing them into `floor_*` copies "
            "of the tables (same indexes and unique keys): one grouped scan per campaign, UTC day and segment with "
            "exact `COUNT(DISTINCT customer_id)` into a temporary table, the segment and daily rows from it, the hourly "
            "trend points from the recent days' events (zeros dropped), the daily/weekly/monthly points summed from the "
            "daily rows (every metric). Like the job it first deletes the rows of the days and periods it recomputes. "
            "The backfill writes into empty tables; the one-day runs are the nightly case, tables filled. Each "
            f"figure is the median of {args.repeat} interleaved runs (all runs shown); ratios are of medians. "
            "The check compares every column but the timestamps (`EXCEPT ALL` both ways).\n\n"
            + table(table_rows, ["step", "median s", "runs s", "x its floor (medians)", "rows written"])
            + "\n\n" + "\n".join(verdict)
            + "\n\nWhere one more one-day run's time goes (every statement timed, summed by what it does; the floor "
            "does the same work in 10 statements: 3 deletes, the grouping, 2 inserts, 4 trend inserts, each a "
            "delete-and-insert rather than an update of the stored rows):\n\n"
            + table(steps, ["part of one one-day run", "statements", "seconds"])
        )
        write_section("aggregate", "Daily analytics aggregation (bench/aggregate.py)", body)
    if not equal:
        sys.exit("the job's rows differ from the hand-written SQL's: " + check)


if __name__ == "__main__":
    main()

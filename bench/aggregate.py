"""Benchmark the daily_analytics job on PostgreSQL against its floor, measured in the same run.

    python bench/aggregate.py                    # the issue's scale: ~10 million events over 90 days
    python bench/aggregate.py --events 2000000   # what a busy shared machine affords

Events come from ``seed_demo`` (campaigns.demo_load) in a dedicated database (rebuilt when the
scale changes; reused otherwise). Timed, each ``--repeat`` times (best reported):

- floor: ONE hand-written ``GROUP BY campaign, day`` over all the events (fetching its rows);
- backfill: ``aggregate_days`` over the whole range into empty tables (all three tables);
- one day: ``aggregate_days`` for the last full day (tables already filled, the nightly case);
- window: the job's default 3-day window.
Parts, to show where the time goes: the job's grouped SELECT alone, the trend step alone, and the
distinct count alone: ``COUNT(DISTINCT customer) GROUP BY campaign, day`` (no join, no other counts,
nothing written; the cheapest of the distinct plans we measured). When it alone exceeds 1.5x the floor,
an exact ``users`` column computed by PostgreSQL from the raw events cannot meet the goal.
Goals (issue 4): backfill <= 1.5x the floor; one day < 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVENTS_PER_CUSTOMER_DAY = 1.64  # what seed_demo generates with its default sends_per_day (measured)

# The distinct count alone (the segment table's users), the cheapest way we found PostgreSQL computes it
# (sort-based COUNT(DISTINCT); a bare SELECT DISTINCT of the triples or a hash of them was slower):
# per campaign and day, with no join to the customer's segment, no other counts and no writes.
DISTINCT_BOUND_SQL = """
SELECT campaign_id, (occurred_at AT TIME ZONE 'UTC')::date, COUNT(DISTINCT customer_id)
FROM campaigns_event GROUP BY 1, 2
"""

FLOOR_SQL = """
SELECT campaign_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
       COUNT(*) FILTER (WHERE type = 'notification_sent'),
       COUNT(*) FILTER (WHERE type = 'notification_opened'),
       COUNT(*) FILTER (WHERE type = 'view'),
       COUNT(*) FILTER (WHERE type = 'click'),
       COUNT(*) FILTER (WHERE type = 'conversion'),
       SUM(amount) FILTER (WHERE type = 'conversion'),
       SUM(amount) FILTER (WHERE type = 'spend')
FROM campaigns_event
GROUP BY 1, 2
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000_000, help="target number of events (default 10M)")
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--campaigns", type=int, default=150, help="the seed's ~150 campaigns")
    p.add_argument("--merchants", type=int, default=200)
    p.add_argument("--repeat", type=int, default=2)
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


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    args = parse_args()
    url = f"{args.server}/{args.database}"
    ensure_database(args.server, args.database)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")
    import django

    django.setup()
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
        cur.execute("SELECT count(*), min(occurred_at), max(occurred_at), pg_size_pretty(pg_total_relation_size('campaigns_event')) FROM campaigns_event")
        n_events, first_at, last_at, size = cur.fetchone()
    first_day, last_day = first_at.date(), last_at.date()
    last_full_day = last_day - dt.timedelta(days=1)
    print(f"{n_events:,} events, {first_day}..{last_day}, table {size}")
    load_before = os.getloadavg()
    print("load average before: " + " ".join(f"{x:.2f}" for x in load_before))

    from analytics import services
    from analytics.models import CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData

    def floor() -> int:
        with connection.cursor() as cur:
            cur.execute(FLOOR_SQL)
            return len(cur.fetchall())

    def empty_tables() -> None:
        with connection.cursor() as cur:
            for model in (CampaignTrendData, CampaignSegmentAnalytics, CampaignAnalyticsDaily):
                cur.execute(f"TRUNCATE {model._meta.db_table}")

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

    def distinct_bound() -> int:
        with connection.cursor() as cur:
            cur.execute(DISTINCT_BOUND_SQL)
            return len(cur.fetchall())

    def trends_only() -> int:
        from django.utils import timezone

        return services.refresh_trends(first_day, last_day, computed_at=timezone.now())
    floor()  # warm the cache the same way for everyone
    results: dict[str, list[float]] = {}
    rows: dict[str, int] = {}
    for _ in range(args.repeat):
        t, rows["floor"] = timed(floor)
        results.setdefault("floor", []).append(t)
        variants = [(f"backfill ({services.DEFAULT_CHUNK_DAYS}-day chunks, the default)", services.DEFAULT_CHUNK_DAYS)]
        if whole > services.DEFAULT_CHUNK_DAYS:
            variants.append((f"backfill (one chunk of {whole} days)", whole))
        variants.append(("backfill (1-day chunks)", 1))
        for label, chunk in variants:
            empty_tables()
            t, rows[label] = timed(backfill(chunk))
            results.setdefault(label, []).append(t)
    bound_label = "(bound) COUNT(DISTINCT customer) per campaign and day alone"
    for _ in range(args.repeat):
        t, rows[bound_label] = timed(distinct_bound)
        results.setdefault(bound_label, []).append(t)
        t, rows["(part) grouped SELECT by campaign, day, segment with COUNT(DISTINCT customer)"] = timed(grouped_select)
        results.setdefault("(part) grouped SELECT by campaign, day, segment with COUNT(DISTINCT customer)", []).append(t)
        t, rows["(part) trend step alone"] = timed(trends_only)
        results.setdefault("(part) trend step alone", []).append(t)
        t, rows["one day"] = timed(lambda: services.aggregate_days(start=last_full_day, end=last_full_day))
        results.setdefault("one day", []).append(t)
        t, rows["3-day window"] = timed(
            lambda: services.aggregate_days(start=last_day - dt.timedelta(days=2), end=last_day))
        results.setdefault("3-day window", []).append(t)

    best = {k: min(v) for k, v in results.items()}
    table_rows = []
    for label, runs in results.items():
        ratio = best[label] / best["floor"]
        table_rows.append({
            "step": label, "best s": f"{best[label]:.2f}", "runs s": ", ".join(f"{r:.2f}" for r in runs),
            "x floor": f"{ratio:.2f}", "rows written": f"{rows[label]:,}",
        })
        print(f"{label:45s} best {best[label]:7.2f} s  x floor {ratio:5.2f}  rows {rows[label]:,}")
    backfill_best = min(v for k, v in best.items() if k.startswith("backfill"))
    verdict = [
        f"- backfill / floor: **{backfill_best / best['floor']:.2f}x** (goal <= 1.5x): "
        + ("met" if backfill_best <= 1.5 * best["floor"] else "NOT met"),
        f"- one day: **{best['one day']:.2f} s** (goal < 2 s): " + ("met" if best["one day"] < 2 else "NOT met"),
        f"- the distinct count alone (no segment join, no other counts, no writes) is **{best[bound_label] / best['floor']:.2f}x** "
        "the floor" + (" (above 1.5x: computing an exact users column from the raw events this way cannot meet the goal here)"
                       if best[bound_label] > 1.5 * best["floor"] else ""),
    ]
    load_after = os.getloadavg()
    load_text = ("load average (1/5/15 min) before: " + " ".join(f"{x:.2f}" for x in load_before)
                 + "; after: " + " ".join(f"{x:.2f}" for x in load_after))
    print(load_text)
    print("\n".join(verdict))
    if args.no_report:
        return
    from bench.report import table, write_section

    body = (
        f"Scale run: **{n_events:,} events** over {whole} days ({first_day}..{last_day}), {args.campaigns} campaigns, "
        f"events table {size} ("
        + ("the issue's scale" if n_events >= 9_500_000 else "the issue's scale is 10M events; this run's scale was chosen for the shared 2-core machine")
        + f"). Machine shared with other work: {load_text}.\n\n"
        "Floor: one hand-written `SELECT campaign_id, day, COUNT(*) FILTER ..., SUM(amount) FILTER ... GROUP BY 1, 2` over all "
        "events (one table's worth of output). The backfill writes all three tables (daily, segment with distinct "
        "users per segment and day, trends daily/weekly/monthly, and hourly for the last ANALYTICS_HOURLY_DAYS days) into empty tables; the one-day run is the nightly "
        "case with the tables already filled.\n\n"
        + table(table_rows, ["step", "best s", "runs s", "x floor", "rows written"])
        + "\n\n" + "\n".join(verdict)
    )
    write_section("aggregate", "Daily analytics aggregation (bench/aggregate.py)", body)


if __name__ == "__main__":
    main()

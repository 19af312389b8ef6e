"""The daily aggregation's backfill with 1, 2 and 3 worker processes (fan-out, marketing_ai/fanout.py).

    python bench/fanout.py                       # ~1 M events over 60 days
    python bench/fanout.py --events 10000000 --days 90

Needs PostgreSQL and Redis (``REDIS_URL``, default redis://127.0.0.1:6379/14). Events come from
``seed_demo`` in a dedicated database (kept between runs of the same size). This process is the run
that owns the job (as a Celery worker process would be); for 2 and 3 processes a real Celery worker
with 1 or 2 pool processes helps it through ``JOB_FANOUT_HELPERS``. Each variant's tables are
compared with the one-process run's (every column but ids and timestamps): the result must be equal.
The floor is the hand-written grouped SELECT of bench/aggregate.py over the same events; "one process,
the same parts" does exactly the parts the fanned-out runs share, alone, so the speed-up is read
against like work. On a 2-core machine a third process can only add contention.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.aggregate import EVENTS_PER_CUSTOMER_DAY, drop_database, ensure_database, timed  # noqa: E402

# The floor: one grouped SELECT of the daily counts and sums over all the events (bench/aggregate.py's floor
# now writes the three tables' rows instead; this bench compares its variants with each other and this read).
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


def start_worker(queue: str, *, name: str, concurrency: int, log_path: Path) -> subprocess.Popen:
    """A real Celery worker (prefork, ``concurrency`` processes) on ``queue``, started in its own session with
    the bench's environment, its log in ``log_path``; returns once it says it is ready (or exits the bench)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONN_MAX_AGE": "0"}
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "marketing_ai", "worker", "-Q", queue,
                                 "-n", f"{name}@%h", "--pool=prefork", f"--concurrency={concurrency}",
                                 "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "ready" not in log_path.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.terminate()
            raise SystemExit(f"the Celery worker did not start; see {log_path}")
        time.sleep(0.5)
    return proc


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--campaigns", type=int, default=100)
    p.add_argument("--merchants", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--database", default="mai_bench_fanout")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    p.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    queue = f"bench-fanout-{uuid.uuid4().hex[:8]}"
    url = f"{args.server}/{args.database}"
    ensure_database(args.server, args.database)
    os.environ.update(DATABASE_URL=url, REDIS_URL=args.redis, JOB_FANOUT_QUEUE=queue,
                      DJANGO_SETTINGS_MODULE="marketing_ai.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from analytics import services
    from analytics.models import CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData
    from campaigns.models import Event

    call_command("migrate", verbosity=0)
    customers = max(100, round(args.events / (args.days * EVENTS_PER_CUSTOMER_DAY)))
    if abs(Event.objects.count() - args.events) > 0.15 * args.events:
        print(f"building ~{args.events:,} events ({customers:,} customers x {args.days} days) with seed_demo ...")
        connection.close()
        drop_database(args.server, args.database)
        ensure_database(args.server, args.database)
        call_command("migrate", verbosity=0)
        from campaigns.demo_load import seed_demo

        seed_demo(customers=customers, merchants=args.merchants, campaigns=args.campaigns, days=args.days,
                  seed=11, replace=True)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE campaigns_event")
        cur.execute("SELECT count(*), min(occurred_at), max(occurred_at) FROM campaigns_event")
        n_events, first_at, last_at = cur.fetchone()
    first_day, last_day = first_at.date(), last_at.date()
    n_days = (last_day - first_day).days + 1
    print(f"{n_events:,} events, {first_day}..{last_day} ({n_days} days)")
    models = (CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData)

    def empty_tables() -> None:
        with connection.cursor() as cur:
            for model in models:
                cur.execute(f"TRUNCATE {model._meta.db_table}")

    def table_rows() -> dict[str, list]:
        out = {}
        for model in models:
            fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id" and not f.attname.endswith("_at")]
            out[model.__name__] = sorted(model.objects.values_list(*fields))
        return out

    def floor() -> int:
        with connection.cursor() as cur:
            cur.execute(FLOOR_SQL)
            return len(cur.fetchall())

    def backfill(helpers: int, chunk_days: int | None = None):
        def run() -> int:
            settings.JOB_FANOUT_HELPERS = helpers
            empty_tables()
            kwargs = {"chunk_days": chunk_days} if chunk_days else {}
            return services.aggregate_days(start=first_day, end=last_day, **kwargs)
        return run

    def worker(processes: int) -> subprocess.Popen:
        return start_worker(queue, name=f"{queue}-{processes}", concurrency=processes,
                            log_path=ROOT / "bench" / "out" / f"fanout-worker-{processes}.log")

    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    load_before = os.getloadavg()
    floor()  # warm the cache the same way for everyone
    # The parts the fanned-out runs share: 4 per process (aggregate_days' rule), here for 2 processes.
    shared_chunk = max(1, -(-n_days // (4 * 2)))
    results: dict[str, list[float]] = {}
    written: dict[str, int] = {}
    equal: dict[str, bool] = {}
    reference = None
    variants = [("floor: grouped SELECT", None), ("1 process (the default chunks)", (0, None)),
                (f"1 process, the same {shared_chunk}-day parts", (0, shared_chunk)),
                ("2 processes (job + 1 helper)", (1, None)), ("3 processes (job + 2 helpers)", (2, None))]
    helper_procs = {1: None, 2: None}
    try:
        for _ in range(args.repeat):
            for label, how in variants:
                if how is None:
                    t, written[label] = timed(floor)
                else:
                    helpers, chunk = how
                    if helpers and helper_procs[helpers] is None:
                        for other, p in helper_procs.items():  # one worker at a time: the others would help too
                            if p is not None:
                                p.terminate()
                                p.wait(30)
                                helper_procs[other] = None
                        helper_procs[helpers] = worker(helpers)
                    t, written[label] = timed(backfill(helpers, chunk))
                    rows = table_rows()
                    if reference is None:
                        reference = rows
                    equal[label] = equal.get(label, True) and rows == reference
                results.setdefault(label, []).append(t)
                print(f"{label:42s} {t:7.2f} s")
    finally:
        for p in helper_procs.values():
            if p is not None:
                p.terminate()
                p.wait(30)
        import redis

        redis.Redis.from_url(args.redis).delete(queue)
    load_after = os.getloadavg()

    med = {k: statistics.median(v) for k, v in results.items()}
    alone = med["1 process (the default chunks)"]
    lines = []
    for label, runs in results.items():
        lines.append({
            "run": label, "median s": f"{med[label]:.2f}", "runs s": ", ".join(f"{r:.2f}" for r in runs),
            "x 1 process": f"{med[label] / alone:.2f}",
            "same rows as 1 process": "" if label.startswith("floor") else ("yes" if equal[label] else "**NO**"),
            "rows written": f"{written[label]:,}",
        })
    from bench.report import table, write_section

    body = (
        f"{n_events:,} events over {n_days} days (seed_demo, {customers:,} customers), PostgreSQL, Redis; "
        f"medians of {args.repeat} rounds, variants interleaved. Load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after, on {os.cpu_count()} cores: on a shared 2-core machine extra processes "
        f"compete for the same cores, so the speed-up here is a lower bound of what separate worker machines give.\n\n"
        + table(lines, ["run", "median s", "runs s", "x 1 process", "same rows as 1 process", "rows written"])
    )
    print(body)
    if not args.no_report:
        write_section("fanout", "Fan-out: the aggregation backfill with 1, 2 and 3 worker processes", body)
    if not all(equal.values()):
        raise SystemExit("a fanned-out run wrote different rows than one process")


if __name__ == "__main__":
    main()

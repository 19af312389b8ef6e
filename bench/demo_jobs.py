"""Demo size: every job's time from a fresh `make demo`-like database, and the /optimize/ page's server time.

    python bench/demo_jobs.py                         # SQLite file var/bench_demo.sqlite3 (what `make demo` uses)
    python bench/demo_jobs.py --database-url postgres://postgres@127.0.0.1:5432/mai_bench_demo
    python bench/demo_jobs.py --no-seed               # reuse the data of an earlier run

Does what `make demo` does (``seed_demo`` at the demo's default size, then ``run_job --all`` over
the demo period, every job in dependency order) and times each job: wall seconds and the
process's CPU seconds (CPU time barely moves when other work shares the machine; wall time does).
Goal (issue 10/15): every job in seconds at demo size.

Then the optimisation page as a logged-in marketer sees it: the median server time of several
requests per view (no network: Django's test client), beside its floor measured in the same run,
the page's own SQL statements replayed on a bare cursor (the database part of the same work).
Goal: under 0.5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGE_VIEWS = ["/optimize/", "/optimize/?status=all", "/optimize/?type=offer&status=all", "/optimize/?status=all&page_offer=2"]
JOB_GOAL_S = 10.0
PAGE_GOAL_S = 0.5


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default=f"sqlite:///{ROOT / 'var' / 'bench_demo.sqlite3'}")
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--merchants", type=int, default=40)
    p.add_argument("--campaigns", type=int, default=12)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-seed", action="store_true", help="reuse the data already in the database")
    p.add_argument("--repeats", type=int, default=7, help="requests per page view (the median is reported)")
    p.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md")
    return p.parse_args()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    args = parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")
    os.environ.setdefault("MODEL_ARTIFACT_DIR", str(ROOT / "var" / "bench_demo_models"))
    import django

    django.setup()
    logging.disable(logging.WARNING)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.report import table, write_section
    from marketing_ai import jobs
    from marketing_ai.api import MARKETER

    call_command("migrate", verbosity=0)
    load_start = os.getloadavg()
    rows: list[dict] = []
    if not args.no_seed:
        from campaigns.demo_load import seed_demo

        t0, c0 = time.perf_counter(), cpu_seconds()
        seed_demo(customers=args.customers, merchants=args.merchants, campaigns=args.campaigns, days=args.days,
                  seed=args.seed, replace=True)
        rows.append({"step": "seed_demo", "wall s": f"{time.perf_counter() - t0:.1f}", "cpu s": f"{cpu_seconds() - c0:.1f}", "rows": ""})
        print(rows[-1], flush=True)
        today = dt.datetime.now(dt.UTC).date()
        for job in jobs.in_dependency_order():
            t0, c0 = time.perf_counter(), cpu_seconds()
            record = jobs.run(job.name, start=today - dt.timedelta(days=args.days), end=today, raise_errors=False) if job.takes_dates \
                else jobs.run(job.name, raise_errors=False)
            wall = time.perf_counter() - t0
            rows.append({"step": f"job {job.name}", "wall s": f"{wall:.1f}", "cpu s": f"{cpu_seconds() - c0:.1f}",
                         "rows": f"{record.rows_written:,} ({record.status})"})
            print(rows[-1], flush=True)

    settings.ALLOWED_HOSTS = ["*"]
    user, _ = get_user_model().objects.get_or_create(username="bench-marketer")
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get_or_create(name=MARKETER)[0])
    client = Client()
    client.force_login(user)
    page_rows = []
    for url in PAGE_VIEWS:
        client.get(url)  # first request: imports and per-process caches
        times = []
        for _ in range(args.repeats):
            with CaptureQueriesContext(connection) as queries:
                t0 = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - t0)
            assert response.status_code == 200, (url, response.status_code)
        floors = []
        for _ in range(args.repeats):  # the floor: the same SQL statements on a bare cursor
            t0 = time.perf_counter()
            with connection.cursor() as cursor:
                for q in queries.captured_queries:
                    if q["sql"].lstrip().upper().startswith("SELECT"):
                        cursor.execute(q["sql"])
                        cursor.fetchall()
            floors.append(time.perf_counter() - t0)
        median, floor = statistics.median(times), statistics.median(floors)
        page_rows.append({"view": f"`{url}`", "server s (median)": f"{median:.3f}", "max s": f"{max(times):.3f}",
                          "queries": len(queries.captured_queries), "floor s (its SQL)": f"{floor:.3f}",
                          "x floor": f"{median / floor:.1f}" if floor > 0 else "", "kB": f"{len(response.content) / 1024:.0f}"})
        print(page_rows[-1], flush=True)

    load_end = os.getloadavg()
    jobs_wall = [float(r["wall s"]) for r in rows if r["step"].startswith("job ")]
    pages = [float(r["server s (median)"]) for r in page_rows]
    body = "\n\n".join([
        f"Demo size: {args.customers:,} customers, {args.merchants} merchants, {args.campaigns} campaigns, {args.days} days "
        f"(seed {args.seed}), database `{connection.vendor}`. Wall and CPU seconds per step; CPU time is the one to compare "
        f"across runs on a shared machine.",
        table(rows, ["step", "wall s", "cpu s", "rows"]) if rows else "(jobs not re-run: --no-seed)",
        f"- slowest job: **{max(jobs_wall):.1f} s** wall (goal: seconds, < {JOB_GOAL_S:.0f} s): {'met' if max(jobs_wall) < JOB_GOAL_S else 'NOT met'}"
        if jobs_wall else "",
        "The /optimize/ page as a marketer (Django test client, server time only, median of "
        f"{args.repeats}); floor: the page's own SELECT statements replayed on a bare cursor.",
        table(page_rows, ["view", "server s (median)", "max s", "queries", "floor s (its SQL)", "x floor", "kB"]),
        f"- slowest view: **{max(pages):.3f} s** (goal < {PAGE_GOAL_S} s): {'met' if max(pages) < PAGE_GOAL_S else 'NOT met'}",
        f"Load average (1/5/15 min) at start {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}, "
        f"at end {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} (2 cores, shared).",
    ])
    if not args.no_report:
        print("wrote", write_section("demo_jobs", "Demo-size jobs and the /optimize/ page (bench/demo_jobs.py)", body))
    else:
        print(body)


if __name__ == "__main__":
    main()

"""Ingestion throughput on PostgreSQL: the HTTP API and ``import_events`` against PostgreSQL's own COPY.

    python bench/ingest.py --events 200000 [--workers 2] [--jobs 2] [--runs 3] [--jobs-too 1] [--database mai_ingest_bench]

One run generates N wire events (CSV file + JSON batches of 5,000), then measures, on the same
database and rows:

1. ``manage.py import_events`` of the CSV (in-process, the command's default batch size, ``--jobs`` default 2; median of
   ``--runs``), and its fixed cost apart: the same command on a header-only CSV in a new process;
2. the floor (issue 15): PostgreSQL's ``COPY`` of the same rows (the events the import stored, as CSV)
   into ``CREATE TABLE ... (LIKE campaigns_event INCLUDING ALL)``, i.e. the events table's columns,
   identity key, indexes and unique ``event_id`` (median of ``--runs``); for reference, COPY of the
   CSV itself into its own columns with those indexes rebuilt on them, and into a bare table;
3. ``POST /api/v1/events/`` through real HTTP to gunicorn, batches of 5,000, as an ``ingest``
   service account, ``--workers`` server processes and as many client threads;
4. re-sending everything (all duplicates) through both doors.

Events, customers and merchants are emptied between phases so each phase does the same work
(validation, id resolution, customers/merchants created on first sight, the insert).
Goals (issue 15): import >= 80 % of the indexed COPY floor and at least the API's rate, API >= 60 %.
"""

from __future__ import annotations

import argparse
import csv
import gc
import http.client
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLUMNS = ["event_id", "type", "occurred_at", "customer_id", "campaign_id", "merchant_id", "offer_id", "variant", "amount"]
TYPE_MIX = [("notification_sent", 40), ("notification_opened", 20), ("view", 18), ("click", 12),
            ("conversion", 7), ("spend", 3)]


def generate(n: int, seed: int) -> list[dict]:
    """n wire events: a realistic type mix, ~n/20 customers, 50 merchants, 20 campaigns, 90 days."""
    rng = random.Random(seed)
    kinds = rng.choices([k for k, _ in TYPE_MIX], weights=[w for _, w in TYPE_MIX], k=n)
    customers = max(n // 20, 1)
    events = []
    for i, kind in enumerate(kinds):
        day, second = rng.randrange(90), rng.randrange(86400)
        event = {
            "event_id": f"bench_{seed}_{i}",
            "type": kind,
            "occurred_at": f"2025-{1 + day // 30:02d}-{1 + day % 28:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:"
                           f"{second % 60:02d}+00:00",
            "customer_id": f"user_{rng.randrange(customers)}",
            "campaign_id": f"camp_{rng.randrange(20)}",
            "merchant_id": "",
            "offer_id": "",
            "variant": rng.choice(["A", "B"]),
            "amount": "",
        }
        if kind == "conversion":
            event.update(merchant_id=f"m_{rng.randrange(50)}", offer_id=f"off_{rng.choice([10, 20, 30])}pct",
                         amount=f"{rng.randrange(500, 20000) / 100:.2f}")
        elif kind == "spend":
            event.update(customer_id="", amount=f"{rng.randrange(100, 5000) / 100:.2f}")
        events.append(event)
    return events


def database_url(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_events() -> str:
    """Empty events, customers, merchants (CASCADE also empties campaigns: recreate them); return the token."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE campaigns_event, campaigns_customer, campaigns_merchant RESTART IDENTITY CASCADE")
    token = setup_domain()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return token


def setup_domain() -> str:
    """Campaigns and offers the events refer to, and an ingest service account; returns its token."""
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from campaigns.models import Campaign, Offer

    for pct in (10, 20, 30):
        Offer.objects.get_or_create(offer_id=f"off_{pct}pct", defaults={"value": pct})
    for c in range(20):
        Campaign.objects.get_or_create(campaign_id=f"camp_{c}", defaults={"name": f"Bench {c}", "status": "active"})
    user, _ = User.objects.get_or_create(username="bench-ingest")
    user.groups.add(Group.objects.get_or_create(name="ingest")[0])
    return Token.objects.get_or_create(user=user)[0].key


def event_count() -> int:
    from campaigns.models import Event

    return Event.objects.count()


# The events table's indexes (campaigns/models.py Event.Meta), on the CSV's same-named columns.
INDEXED_FLOOR_DDL = (
    "ALTER TABLE bench_bare_events ADD COLUMN id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    "ALTER TABLE bench_bare_events ADD COLUMN received_at timestamptz NOT NULL DEFAULT now()",
    "CREATE UNIQUE INDEX ON bench_bare_events (event_id varchar_pattern_ops)",
    "CREATE INDEX ON bench_bare_events (campaign_id, occurred_at)",
    "CREATE INDEX ON bench_bare_events (campaign_id, customer_id, occurred_at) WHERE type = 'conversion'",
    "CREATE INDEX ON bench_bare_events (merchant_id) WHERE merchant_id IS NOT NULL",
    "CREATE INDEX ON bench_bare_events (occurred_at)",
    "CREATE INDEX ON bench_bare_events (offer_id) WHERE offer_id IS NOT NULL",
)


def copy_floor(csv_path: Path, dsn: str, *, indexed: bool = False) -> float:
    """Seconds for PostgreSQL to COPY the CSV into a table with its columns: bare (no index/FK), or with
    the events table's key and indexes (``indexed``: the floor of issue 15)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_bare_events")
        conn.execute(
            "CREATE TABLE bench_bare_events (event_id varchar(64), type varchar(24), occurred_at timestamptz,"
            " customer_id varchar(64), campaign_id varchar(64), merchant_id varchar(64), offer_id varchar(64),"
            " variant varchar(64), amount numeric(14, 2))"
        )
        for ddl in INDEXED_FLOOR_DDL if indexed else ():
            conn.execute(ddl)
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(f"COPY bench_bare_events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv, HEADER true)") as cp:
                with csv_path.open("rb") as f:
                    while chunk := f.read(1 << 20):
                        cp.write(chunk)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_bare_events")
        conn.commit()
    return elapsed


def stored_events_csv(dsn: str) -> bytes:
    """The stored events as CSV in the events table's column order (what the floor writes)."""
    import psycopg

    buffer = io.BytesIO()
    # A query, not the table: COPY TO refuses a partitioned table.
    query = "COPY (SELECT * FROM campaigns_event) TO STDOUT (FORMAT csv)"
    with psycopg.connect(dsn) as conn, conn.cursor() as cur, cur.copy(query) as cp:
        for block in cp:
            buffer.write(block)
    return buffer.getvalue()


def table_copy_floor(dsn: str, data: bytes) -> float:
    """Seconds for PostgreSQL to COPY the events (``data``, from ``stored_events_csv``) into
    ``CREATE TABLE ... (LIKE campaigns_event INCLUDING ALL)``: the events table's own columns, identity
    key, defaults, indexes and unique ``event_id``, so the same rows into the same structure (ids
    resolved to pks, as the import writes them)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_floor_events")
        conn.execute("CREATE TABLE bench_floor_events (LIKE campaigns_event INCLUDING ALL)")
        # Where event_id's uniqueness is not an index of the events table (a partitioned table keeps it
        # in a side table through triggers, which LIKE does not copy), the floor gets the unique index.
        unique = conn.execute(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = 'bench_floor_events'::regclass AND i.indisunique AND i.indnatts = 1"
            " AND a.attname = 'event_id'"
        ).fetchone()
        if unique is None:
            conn.execute("CREATE UNIQUE INDEX ON bench_floor_events (event_id)")
        conn.commit()
        elapsed = _timed_csv_copy(conn, "bench_floor_events", data)
        conn.execute("DROP TABLE bench_floor_events")
        conn.commit()
    return elapsed


def real_table_copy(dsn: str, data: bytes) -> float:
    """Seconds for PostgreSQL to COPY the events (``data``, from ``stored_events_csv``) into the events table
    itself, emptied first: its monthly partitions, their indexes and the key table that its statement
    trigger fills (``event_id`` unique across partitions). What the database alone pays for the import's
    own table, beside the floor's single table with a unique index."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE campaigns_event")  # its trigger empties the key table too
        conn.commit()
        return _timed_csv_copy(conn, "campaigns_event", data)


def _timed_csv_copy(conn, table: str, data: bytes) -> float:
    """Seconds to COPY ``data`` (CSV) into ``table`` and commit, on ``conn``."""
    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as cp:
        for start in range(0, len(data), 1 << 20):
            cp.write(data[start : start + (1 << 20)])
    conn.commit()
    return time.perf_counter() - started


def startup_seconds(env: dict, workdir: Path) -> float:
    """The command's fixed cost: ``manage.py import_events`` of a header-only CSV in a new process
    (interpreter start, Django setup, the command's checks)."""
    empty = workdir / "empty.csv"
    empty.write_text(",".join(COLUMNS) + "\n")
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "import_events", str(empty), "--no-progress"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def indexed_reference() -> float:
    """Seconds for PostgreSQL alone to write the stored events into a copy of the events table with its
    indexes (no client, no parsing): what the real table costs next to the bare floor."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_indexed_events")
        # Same columns, defaults and indexes (the real table has no foreign-key constraints: migration 0004).
        cursor.execute("CREATE TABLE bench_indexed_events (LIKE campaigns_event INCLUDING ALL)")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_indexed_events SELECT * FROM campaigns_event")
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_indexed_events")
    return elapsed


def run_import(csv_path: Path, jobs: int) -> tuple[float, str]:
    from django.core.management import call_command

    from campaigns.ingest.store import duplicate_hint

    duplicate_hint().expected = False  # as in a new process: the hint is the process's

    out = io.StringIO()
    started = time.perf_counter()
    call_command("import_events", str(csv_path), "--no-progress", "--jobs", str(jobs), stdout=out)
    return time.perf_counter() - started, out.getvalue().strip()


def start_gunicorn(port: int, workers: int, env: dict) -> subprocess.Popen:
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "marketing_ai.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--timeout", "120", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    for _ in range(1500):  # ~5 min: workers take minutes to import Django on a loaded machine
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status < 500:
                return server
        except OSError:
            pass
        if server.poll() is not None:
            raise SystemExit("gunicorn exited during start-up")
        time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def post_batches(port: int, token: str, bodies: list[bytes], clients: int) -> tuple[float, int, int]:
    """Send every body (clients threads, keep-alive); return (seconds, stored, duplicates)."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    totals = {"stored": 0, "duplicates": 0}
    failures: list[str] = []
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            conn.request("POST", "/api/v1/events/", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status not in (200, 201):
                failures.append(f"{response.status}: {payload[:300]!r}")
                break
            result = json.loads(payload)
            with lock:
                totals["stored"] += result["stored"]
                totals["duplicates"] += result["duplicates"]
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"the API refused a batch: {failures[0]}")
    return elapsed, totals["stored"], totals["duplicates"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per phase (default 200000)")
    parser.add_argument("--batch", type=int, default=5000, help="events per API request (the import uses its default)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers = client threads (default 2)")
    parser.add_argument("--jobs", type=int, default=2, help="import_events --jobs: worker processes (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the import and of each floor; medians (default 3)")
    parser.add_argument("--jobs-too", type=int, default=1, help="also one import run with --jobs N (0: none; default 1)")
    parser.add_argument("--database", default="mai_ingest_bench", help="PostgreSQL database to use (created if missing)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args()

    url = database_url(args.database)
    ensure_database(args.database)
    server_env = {
        **os.environ, "DATABASE_URL": url, "DEBUG": "False", "SECRET_KEY": "bench-only-secret-key-not-for-production",
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_SSL_REDIRECT": "False", "LOG_LEVEL": "WARNING",
    }
    server_env.pop("REDIS_URL", None)
    os.environ.update({k: server_env[k] for k in ("DATABASE_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS",
                                                    "SECURE_SSL_REDIRECT", "LOG_LEVEL")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from bench.report import table, write_section

    call_command("migrate", verbosity=0)

    print(f"generating {args.events:,} events ...", flush=True)
    events = generate(args.events, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    csv_path = workdir / "events.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(events)
    bodies = [
        json.dumps([{k: v for k, v in e.items() if v != ""} for e in events[i : i + args.batch]]).encode()
        for i in range(0, len(events), args.batch)
    ]
    n = len(events)
    # Drop the generated dicts: hundreds of thousands of live objects would make every garbage
    # collection in the in-process import slow, a cost the real command (streaming a file) never pays.
    del events
    gc.collect()
    gc.freeze()
    rows = []

    def record(name: str, seconds: float, note: str = "") -> float:
        rate = n / seconds
        rows.append({"path": name, "seconds": f"{seconds:.2f}", "events/s": f"{rate:,.0f}", "note": note})
        print(f"{name[:60]:<60} {seconds:8.2f} s {rate:12,.0f} events/s  {note}", flush=True)
        return rate

    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.1f} (1 min), {load_before[1]:.1f} (5 min) on {os.cpu_count()} cores")
    reset_events()
    dsn = url.replace("postgres://", "postgresql://")
    runs = max(args.runs, 1)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    def spread(values: list[float]) -> str:
        return "runs: " + ", ".join(f"{v:.2f} s" for v in values)

    # Import and floor interleaved, run after run (the machine's load moves within minutes); the floor
    # writes the rows the first import stored (same rows, same table structure).
    import_times, floors, real_tables, summary, data = [], [], [], "", b""
    for _ in range(runs):
        reset_events()
        seconds, summary = run_import(csv_path, args.jobs)
        assert event_count() == n, summary
        import_times.append(seconds)
        data = data or stored_events_csv(dsn)
        floors.append(table_copy_floor(dsn, data))
        real_tables.append(real_table_copy(dsn, data))
        assert event_count() == n
    floor = record(f"floor: COPY of the same rows into CREATE TABLE (LIKE campaigns_event INCLUDING ALL) "
                   f"(median of {runs}, each after an import run)", median(floors), spread(floors))
    real_table = record(f"reference: COPY of the same rows into the events table itself (partitions, key table; "
                        f"median of {runs})", median(real_tables), spread(real_tables))
    from campaigns.management.commands.import_events import DEFAULT_BATCH_SIZE

    imported = record(f"import_events (CSV, batches of {DEFAULT_BATCH_SIZE:,}, --jobs {args.jobs}; median of {runs})",
                      median(import_times), summary.split(": ", 1)[-1].split(" (")[0] + "; " + spread(import_times))
    indexed = record("reference: INSERT ... SELECT into a copy of the events table (its indexes)",
                     indexed_reference(), "server-side, no parsing or validation")
    seconds, summary = run_import(csv_path, args.jobs)
    assert event_count() == n, summary
    record("import_events again (all duplicates)", seconds, summary.split(": ", 1)[-1].split(" (")[0])
    if args.jobs_too:
        reset_events()
        seconds, summary = run_import(csv_path, args.jobs_too)
        assert event_count() == n, summary
        record(f"import_events --jobs {args.jobs_too} (one run)", seconds,
               summary.split(": ", 1)[-1].split(" (")[0])
    # References: the CSV's own columns (ids as text) into a table with the events table's indexes
    # rebuilt on them, and into a bare table.
    csv_indexed = [copy_floor(csv_path, dsn, indexed=True) for _ in range(runs)]
    record(f"reference: COPY of the CSV into its columns + the events table's indexes (median of {runs})",
           median(csv_indexed), spread(csv_indexed))
    bare = [copy_floor(csv_path, dsn) for _ in range(runs)]
    bare_rate = record(f"reference: COPY of the CSV into a bare table (no index or key; median of {runs})",
                       median(bare), spread(bare))
    startup = startup_seconds(server_env, workdir)
    print(f"fixed cost: manage.py import_events of a header-only CSV in a new process: {startup:.2f} s", flush=True)

    token = reset_events()
    port = free_port()
    server = start_gunicorn(port, args.workers, server_env)
    try:
        seconds, stored, duplicates = post_batches(port, token, bodies, args.workers)
        assert stored == n and event_count() == n, (stored, duplicates)
        api = record(f"POST /api/v1/events/ ({args.workers} workers, HTTP)", seconds, f"stored {stored}")
        seconds, stored, duplicates = post_batches(port, token, bodies, args.workers)
        assert stored == 0 and duplicates == n
        record("POST /api/v1/events/ again (all duplicates)", seconds, f"duplicates {duplicates}")
    finally:
        server.terminate()
        server.wait(timeout=30)

    import_ratio, api_ratio = imported / floor, api / floor
    verdict = (
        f"- import_events / indexed COPY floor = **{import_ratio:.1%}** (goal >= 80 %: "
        f"{'met' if import_ratio >= 0.80 else 'NOT met'}); import / API rate = **{imported / api:.2f}** (goal >= 1: "
        f"{'met' if imported >= api else 'NOT met'})\n"
        f"- API / indexed COPY floor = **{api_ratio:.1%}** (goal >= 60 %: {'met' if api_ratio >= 0.60 else 'NOT met'})\n"
        f"- import_events / COPY into the events table itself (its partitions and the key table that keeps "
        f"event_id unique across them) = {imported / real_table:.1%}; that COPY runs at {real_table / floor:.1%} "
        "of the floor\n"
        f"- the indexed floor runs at {floor / bare_rate:.1%} of a COPY into a bare table; PostgreSQL's own INSERT ... SELECT "
        f"into a copy of the events table runs at {indexed / floor:.1%} of the indexed floor\n"
        f"- fixed cost, not in the rates above (the import runs in this process): `manage.py import_events` of a "
        f"header-only CSV in a new process takes {startup:.2f} s (interpreter start, Django setup)"
    )
    load_after = os.getloadavg()
    load_note = (f"Load average (1 min) {load_before[0]:.1f} before the run and {load_after[0]:.1f} after, "
                 f"on {os.cpu_count()} cores.")
    print(verdict.replace("**", ""))
    print(load_note)
    if not args.no_report:
        body = (
            f"{n:,} events per phase ({len(bodies)} batches of {args.batch:,}), PostgreSQL database "
            f"`{args.database}`; events, customers and merchants emptied between phases. The floor is "
            "PostgreSQL's own `COPY` of the same rows (the events the import stored, exported as CSV) into "
            "`CREATE TABLE ... (LIKE campaigns_event INCLUDING ALL)`: the events table's columns, identity key, "
            "indexes and unique `event_id`. Import and floor are medians of the runs listed, interleaved (import, floor, import, floor, ...).\n\n"
            + table(rows, ["path", "seconds", "events/s", "note"]) + "\n\n" + verdict + "\n\n"
            "The reference is one INSERT ... SELECT on one connection; the import and the API write with "
            f"{args.workers} connections at once, so they can pass it. "
            "The machine's 2 cores are shared with other work while this runs, so rates vary run to run; "
            "the ratios are measured in the same run. " + load_note
        )
        print(f"wrote {write_section('ingest', 'Ingestion: API and import_events vs PostgreSQL COPY', body)}")
    for path in workdir.iterdir():
        path.unlink()
    workdir.rmdir()


if __name__ == "__main__":
    main()

"""Load-test the analytics API under gunicorn on PostgreSQL, beside a bare Django view (the floor).

    python bench/api_load.py                          # 100 concurrent clients, 20 requests each per phase
    python bench/api_load.py --clients 100 --requests 10 --workers 3 --rounds 3

Serves the project with gunicorn (this module is also the WSGI entry: ``bench.api_load:application``
adds one bare view, ``/bench/floor``, that reads one row, to the project's URLs). In the same run, on the
same server:

0. warm-up: every API path the load uses, several times, so each worker has cached its answers;
1. floor, saturated: every client sends its requests back to back to the bare view;
2. API, saturated: the same against ``/api/analytics/campaign/<id>/metrics`` and ``/api/analytics/portfolio``
   (half each, random campaign and range, token-authenticated as a real client would be);
   phases 1 and 2 alternate for ``--rounds`` rounds, so drift in the shared machine's load hits both;
3. API, 100 users: the same clients with a think time between requests (people at a dashboard); one phase
   per ``--think`` value, the shorter ones offering a load closer to the server's capacity.
Reported: errors, p50/p95/max latency, throughput, and the API/floor throughput ratio.
Goals (issue 4): zero errors, p95 < 100 ms, API throughput >= half the floor's. Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# --- The WSGI side (imported by gunicorn) ---------------------------------------------------------
if os.environ.get("BENCH_API_LOAD_SERVER") == "1":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.http import JsonResponse
    from django.urls import include, path

    from campaigns.models import Campaign

    def floor_view(request):
        """The framework's floor: routing, middleware, one indexed row read, a JSON answer."""
        row = Campaign.objects.values("campaign_id", "status").order_by("pk").first()
        return JsonResponse(row or {})

    urlpatterns = [path("bench/floor", floor_view), path("", include("marketing_ai.urls"))]
    settings.ROOT_URLCONF = __name__
    application = get_wsgi_application()


# --- The client side --------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--requests", type=int, default=20, help="requests per client per phase")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the two saturated phases (alternating order)")
    p.add_argument("--think", type=float, nargs="+", default=[1.0, 0.25],
                   help="mean think time(s) (s) between requests in the users phases")
    p.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread)")
    p.add_argument("--database", default="mai_bench_aggregate", help="PostgreSQL database (bench/aggregate.py fills it)")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--no-report", action="store_true")
    return p.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(env: dict) -> tuple[str, list[str]]:
    """Migrate, make sure the aggregates exist, and return (API token, campaign ids)."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from analytics import services
    from analytics.models import CampaignAnalyticsDaily
    from campaigns.models import Campaign, Event

    call_command("migrate", verbosity=0)
    if not Campaign.objects.exists():
        from campaigns.demo_load import seed_demo

        print("empty database: loading a small demo data set")
        seed_demo(customers=2000, merchants=40, campaigns=150, days=90, seed=11, replace=True)
    from analytics.models import AggregateRefresh

    if not CampaignAnalyticsDaily.objects.exists() or not AggregateRefresh.objects.exists():
        span = Event.objects.order_by("occurred_at")
        services.aggregate_days(start=span.first().occurred_at.date(), end=span.last().occurred_at.date())
    user, _ = User.objects.get_or_create(username="bench-api-load")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    token = Token.objects.get_or_create(user=user)[0].key
    return token, list(Campaign.objects.values_list("campaign_id", flat=True))


def run_phase(port: int, paths_per_client: list[list[str]], headers: dict, think: float = 0.0) -> dict:
    """Each client thread sends its own list of paths, one after another; returns the figures."""
    clients = len(paths_per_client)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        rng = random.Random(i)
        mine, bad = [], []
        start_gate.wait()
        for path in paths_per_client[i]:
            if think:
                time.sleep(rng.expovariate(1 / think))
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status != 200:
                    bad.append(f"{resp.status} {path}")
            except OSError as exc:
                bad.append(f"{type(exc).__name__} {path}")
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()  # every thread started: the clock starts when they all may send
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - t0}


def summary(runs: list[dict]) -> dict:
    """Figures over one or more runs of a phase: throughput is all requests over all the runs' time."""
    lat = sorted(x for r in runs for x in r["latencies"])
    errors = [e for r in runs for e in r["errors"]]
    seconds = sum(r["seconds"] for r in runs)
    return {
        "requests": len(lat), "errors": len(errors), "error_samples": errors[:3], "seconds": seconds,
        "rps": len(lat) / seconds, "p50_ms": statistics.median(lat) * 1000,
        "p95_ms": lat[int(0.95 * (len(lat) - 1))] * 1000, "max_ms": lat[-1] * 1000,
        "round_rps": [len(r["latencies"]) / r["seconds"] for r in runs],
    }


def api_path(rng: random.Random, k: int, campaign_ids: list[str]) -> str:
    days = rng.choice((7, 30, 90))
    if k % 2:
        return f"/api/analytics/portfolio?days={days}"
    return f"/api/analytics/campaign/{rng.choice(campaign_ids)}/metrics?days={days}"


def warm_up(port: int, campaign_ids: list[str], clients: int, workers: int, headers: dict) -> dict:
    """Every API path the load uses, 3 x workers times (shuffled over the clients): gunicorn hands a request
    to whichever worker accepts it, so this leaves each path cached in each worker's local memory with
    probability 1 - (1 - 1/workers)^(3 workers) (97 % with 3 workers): the steady state between two
    aggregation runs. The cold cost (a miss) is measured separately by the API's own tests/docs."""
    paths = [f"/api/analytics/portfolio?days={d}" for d in (7, 30, 90)]
    paths += [f"/api/analytics/campaign/{c}/metrics?days={d}" for c in campaign_ids for d in (7, 30, 90)]
    load = paths * (3 * workers)
    random.Random(0).shuffle(load)
    return summary([run_phase(port, [load[i::clients] for i in range(clients)], headers)])


def cache_settings() -> str:
    """The server's cache knobs (marketing_ai/settings.py), as the environment sets them for this run."""
    from django.conf import settings

    return (f"AUTH_TOKEN_CACHE_SECONDS={settings.AUTH_TOKEN_CACHE_SECONDS}, "
            f"ANALYTICS_VERSION_CACHE_SECONDS={settings.ANALYTICS_VERSION_CACHE_SECONDS:g}, "
            f"CACHE_MAX_ENTRIES={settings.CACHES['default']['OPTIONS']['MAX_ENTRIES']}")


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    args = parse_args()
    import psycopg

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.database]).fetchone():
            conn.execute(f'CREATE DATABASE "{args.database}"')
    port = free_port()
    env = {
        "DATABASE_URL": f"{args.server}/{args.database}", "DJANGO_SETTINGS_MODULE": "marketing_ai.settings",
        "DEBUG": "false", "SECRET_KEY": "bench-api-load-only-not-a-secret", "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING",
    }
    token, campaign_ids = prepare(env)
    server_env = {**os.environ, **env, "BENCH_API_LOAD_SERVER": "1", "PYTHONPATH": str(ROOT)}
    # One server, one configuration, for the floor and the API alike.
    gunicorn = [sys.executable, "-m", "gunicorn", "bench.api_load:application", "--bind", f"127.0.0.1:{port}",
                "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
                "--backlog", "2048", "--log-level", "warning", "--chdir", str(ROOT)]
    load_before = load_average()
    print(f"caches: {cache_settings()}\nload average before: {load_before}")
    server = subprocess.Popen(gunicorn, env=server_env)
    try:
        deadline = time.time() + 300  # workers take minutes to import Django on a loaded machine
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/bench/floor")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("gunicorn did not answer within 300 s")
        headers = {"Authorization": f"Token {token}", "Host": "127.0.0.1"}

        warm = warm_up(port, campaign_ids, args.clients, args.workers, headers)
        print(f"warm-up: {warm['requests']} API requests, {warm['errors']} errors, {warm['rps']:.0f} rps")
        run_phase(port, [["/bench/floor"] * 5 for _ in range(args.clients)], headers)

        def floor_load(r: int) -> list[list[str]]:
            return [["/bench/floor"] * args.requests for _ in range(args.clients)]

        def api_load(r: int) -> list[list[str]]:
            rngs = [random.Random(1000 * r + i) for i in range(args.clients)]
            return [[api_path(rng, k, campaign_ids) for k in range(args.requests)] for rng in rngs]

        # Saturated phases alternate (floor, API, API, floor, ...) so that a change in the shared
        # machine's load during the run falls on both alike; each round has the same clients and requests.
        floor_runs, api_runs = [], []
        for r in range(args.rounds):
            order = [("floor", floor_load), ("api", api_load)]
            for kind, make in (order if r % 2 == 0 else order[::-1]):
                run = run_phase(port, make(r), headers)
                (floor_runs if kind == "floor" else api_runs).append(run)
                print(f"  round {r + 1} {kind:5s} {len(run['latencies']) / run['seconds']:7.0f} rps  "
                      f"load {load_average()}")
        users_name = f"API: {args.clients} users, think {args.think[0]:g} s"
        phases = {
            "floor: bare view, saturated": summary(floor_runs),
            "API: metrics + portfolio, saturated": summary(api_runs),
        }
        for i, think in enumerate(args.think):
            phases[f"API: {args.clients} users, think {think:g} s"] = summary(
                [run_phase(port, api_load(99 - i), headers, think=think)])
    finally:
        server.terminate()
        server.wait(timeout=30)
    load_after = load_average()
    print(f"load average after: {load_after}")

    floor = phases["floor: bare view, saturated"]
    floor_rps = floor["rps"]
    api_sat = phases["API: metrics + portfolio, saturated"]
    users = phases[users_name]
    rows = []
    for name, r in phases.items():
        rows.append({"phase": name, "requests": r["requests"], "errors": r["errors"], "throughput rps": f"{r['rps']:.0f}",
                     "per round rps": ", ".join(f"{x:.0f}" for x in r["round_rps"]) if len(r["round_rps"]) > 1 else "",
                     "x floor rps": f"{r['rps'] / floor_rps:.2f}", "p50 ms": f"{r['p50_ms']:.0f}",
                     "p95 ms": f"{r['p95_ms']:.0f}", "max ms": f"{r['max_ms']:.0f}"})
        print(f"{name:40s} {r['requests']:6d} req  {r['errors']} errors  {r['rps']:7.0f} rps  "
              f"p50 {r['p50_ms']:6.0f} ms  p95 {r['p95_ms']:6.0f} ms  max {r['max_ms']:6.0f} ms  {r['error_samples']}")
    total_errors = sum(r["errors"] for r in phases.values()) + warm["errors"]
    floor_rounds = phases["floor: bare view, saturated"]["round_rps"]
    ratios = [a / f for a, f in zip(api_sat["round_rps"], floor_rounds, strict=True)]
    verdict = [
        f"- errors: **{total_errors}** (goal 0, warm-up included): " + ("met" if total_errors == 0 else "NOT met"),
        f"- p95 with {args.clients} users (think {args.think[0]:g} s): **{users['p95_ms']:.0f} ms** (goal < 100 ms): "
        + ("met" if users["p95_ms"] < 100 else "NOT met")
        + "".join(f"; think {t:g} s: {phases[f'API: {args.clients} users, think {t:g} s']['p95_ms']:.0f} ms"
                  for t in args.think[1:]),
        f"- p95 saturated ({args.clients} clients back to back): API {api_sat['p95_ms']:.0f} ms, the bare floor "
        f"{floor['p95_ms']:.0f} ms: "
        + ("met" if api_sat["p95_ms"] < 100 else "not met, nor by the floor itself: with no think time, "
           f"{args.clients} clients queue (mean latency = clients / throughput = {1000 * args.clients / api_sat['rps']:.0f} ms "
           "for the API); < 100 ms would need several times the throughput these 2 shared cores give any Django view"),
        f"- API throughput / floor (both saturated): **{api_sat['rps'] / floor_rps:.2f}** "
        f"(per round: {', '.join(f'{x:.2f}' for x in ratios)}; goal >= 0.5): "
        + ("met" if api_sat["rps"] >= 0.5 * floor_rps else "NOT met"),
    ]
    print("\n".join(verdict))
    if args.no_report:
        return
    from django.db.models import Count

    from analytics.models import CampaignAnalyticsDaily

    daily_rows = CampaignAnalyticsDaily.objects.aggregate(n=Count("id"))["n"]
    from bench.report import table, write_section

    body = (
        f"gunicorn ({args.workers} gthread workers x {args.threads} threads, one server for every phase) on PostgreSQL "
        f"database `{args.database}` ({len(campaign_ids)} campaigns, {daily_rows:,} daily aggregate rows); "
        f"caches: {cache_settings()}; "
        f"{args.clients} client threads in one process (http.client, a new loopback connection per request, "
        "token-authenticated). Warm-up first: every API path the load uses, "
        f"3 x {args.workers} times ({warm['requests']:,} requests), so each worker's local-memory answer cache holds "
        "them (the steady state between two nightly aggregation runs). Then "
        f"{args.rounds} rounds of the two saturated phases, alternating which goes first, each with {args.clients} "
        f"clients x {args.requests} requests sent back to back; then the users phase (same clients, an exponential "
        f"think time of mean {' / '.join(f'{t:g}' for t in args.think)} s before each request). Load average (1/5/15 min) before the run: "
        f"{load_before}; after: {load_after}. The client runs on the same 2 shared cores as the server and "
        "PostgreSQL, so absolute figures are low; the ratio to the floor is the comparable figure. Latency in the "
        "saturated phases is mostly queueing (Little's law: ~ clients / throughput).\n\n"
        + table(rows, ["phase", "requests", "errors", "throughput rps", "per round rps", "x floor rps",
                       "p50 ms", "p95 ms", "max ms"])
        + "\n\n" + "\n".join(verdict)
    )
    write_section("api_load", "Analytics API under load (bench/api_load.py)", body)


if __name__ == "__main__":
    main()

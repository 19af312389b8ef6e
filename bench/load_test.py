"""The seed's load tests with locust against gunicorn on PostgreSQL (users in bench/locustfile.py).

    python bench/load_test.py --database mai_bench_load                 # the issue's user counts
    python bench/load_test.py --analytics-users 20 --ab-users 10 --spike 50 100 --duration 30   # a quick look

Scenarios, one after the other against one gunicorn server (``bench.api_load:application``, the project's
WSGI app plus the bare floor view; ``--workers`` gthread workers x ``--threads``):

1. analytics: ``--analytics-users`` (100) users at the analytics API (metrics, segments, trends, portfolio);
2. A/B: ``--ab-users`` (50) users at the A/B API (status, results, history, assign);
3. spike: ``--spike BASE PEAK`` (500 -> 1,000) users on the analytics mix plus event ingestion, BASE for
   ``--hold`` s, PEAK for ``--hold`` s, then BASE again for ``--after`` s.
Goals (issue 15): 100 % success and p95 < 100 ms in 1 and 2; in 3, no 5xx other than deliberate 429/503
with Retry-After, no lost writes (events in the database = events acknowledged with 2xx), and the p95 back
to its level before the spike within 60 s of the spike's end.

The floor (``--floor``, on by default): before each scenario, the same number of users with the same think
time (and, for the spike, the same shape) request ``/bench/floor``, a bare Django view reading one row on
the same server. Its p95 says what this machine gives any Django view under that load, so a goal the floor
itself misses is shown as the machine's, not the API's. Beside latency, each scenario reports the CPU the
gunicorn workers and the locust client spent per request (from /proc and getrusage): the server's cost
per request does not move with the machine's load the way latency does.

locust runs from ``--locust-python`` (default: ``BENCH_LOCUST_PYTHON`` or this interpreter), so it can live in
a virtualenv of its own (it pins its own versions of requests, flask and others).

Throttles (marketing_ai/throttles.py): ``--throttles off`` (the default) raises every THROTTLE_* rate to
10^9 for the server of this run only, so the load test measures the server rather than the limiter (all
locust users share one IP and three tokens, which real clients do not). ``--throttles on`` keeps the
configured rates: the limiter's 429s (with Retry-After) are then counted as deliberate shedding.
The data set must exist (``make bench`` seeds it); an empty database gets a small demo first.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_load import free_port  # noqa: E402  (one helper for both HTTP benches)

OUT = ROOT / "var" / "bench" / "locust"
THROTTLE_ENVS = ("THROTTLE_INGEST_PER_USER", "THROTTLE_INGEST_PER_IP", "THROTTLE_WRITE_PER_USER",
                 "THROTTLE_WRITE_PER_IP", "THROTTLE_JOBS_PER_USER", "THROTTLE_JOBS_PER_IP")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", default="mai_bench_load")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread)")
    p.add_argument("--analytics-users", type=int, default=100)
    p.add_argument("--ab-users", type=int, default=50)
    p.add_argument("--spike", type=int, nargs=2, default=[500, 1000], metavar=("BASE", "PEAK"))
    p.add_argument("--duration", type=int, default=60, help="seconds of scenarios 1 and 2 (after ramp-up)")
    p.add_argument("--hold", type=int, default=30, help="seconds at BASE and at PEAK users in the spike")
    p.add_argument("--after", type=int, default=90, help="seconds at BASE users after the spike")
    p.add_argument("--think", default="1,3", help="think time of scenarios 1 and 2, 'min,max' seconds")
    p.add_argument("--spike-think", default="5,15", help="think time of the spike's users, 'min,max' seconds")
    p.add_argument("--throttles", choices=["off", "on"], default="off")
    p.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                   help="run the bare-view floor with the same users before each scenario")
    p.add_argument("--keep-alive", type=int, default=30,
                   help="gunicorn's keep-alive (s): above the longest think time, so users keep their connection")
    p.add_argument("--locust-python", default=os.environ.get("BENCH_LOCUST_PYTHON", sys.executable),
                   help="the Python that has locust installed")
    p.add_argument("--no-report", action="store_true")
    return p.parse_args()




def prepare(env: dict) -> dict:
    """Migrate; seed a small demo if empty; make tokens; return ids the users need."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from abtests.models import ABTest, ABTestAssignment
    from analytics.models import CampaignAnalyticsDaily
    from campaigns.models import Campaign, Customer

    call_command("migrate", verbosity=0)
    if not Campaign.objects.exists():
        print("empty database: loading a small demo data set and running its jobs", flush=True)
        subprocess.run([sys.executable, "manage.py", "seed_demo", "--customers", "2000", "--merchants", "40",
                        "--campaigns", "12", "--days", "60", "--seed", "7", "--replace"], env={**os.environ}, cwd=ROOT, check=True)
    if not CampaignAnalyticsDaily.objects.exists():
        from analytics import services
        from campaigns.models import Event

        span = Event.objects.order_by("occurred_at")
        print("no aggregates yet: aggregating the whole period", flush=True)
        services.aggregate_days(start=span.first().occurred_at.date(), end=span.last().occurred_at.date())

    def token(username: str, group: str) -> str:
        user, _ = User.objects.get_or_create(username=username)
        user.groups.add(Group.objects.get_or_create(name=group)[0])
        return Token.objects.get_or_create(user=user)[0].key

    campaigns = list(CampaignAnalyticsDaily.objects.values_list("campaign__campaign_id", flat=True).distinct()[:200])
    tests = list(ABTest.objects.filter(status="running").values_list("test_id", flat=True)[:20])
    # Customers already assigned to a running test: assigning them again returns their stored row (no 409
    # from the one-running-test-per-campaign rule), so every assign request is a valid write.
    assigned = list(ABTestAssignment.objects.filter(test__test_id__in=tests[:1])
                    .values_list("customer__customer_id", flat=True)[:2000])
    customers = list(Customer.objects.values_list("customer_id", flat=True)[:2000])
    return {
        "BENCH_VIEWER_TOKEN": token("bench-load-viewer", "viewer"),
        "BENCH_ASSIGN_TOKEN": token("bench-load-marketer", "marketer"),
        "BENCH_INGEST_TOKEN": token("bench-load-ingest", "ingest"),
        "BENCH_CAMPAIGNS": ",".join(campaigns),
        "BENCH_TESTS": ",".join(tests[:1]),
        "BENCH_ASSIGNED": ",".join(assigned),
        "BENCH_CUSTOMERS": ",".join(customers),
    }


class LoadSampler(threading.Thread):
    """The 1-minute load average every 5 s while the scenarios run."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(5):
            self.samples.append(os.getloadavg()[0])


def server_cpu_seconds(master_pid: int) -> float:
    """User + system CPU seconds of the gunicorn master and its workers so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while the directory was read
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == master_pid or ppid == master_pid:
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished children: the locust runs
    return usage.ru_utime + usage.ru_stime


def run_locust(name: str, user_class: str, users: int, seconds: int, host: str, env: dict, *,
               locust_python: str, server_pid: int) -> dict:
    """One headless locust run; returns its aggregated figures (from locust's CSV output)."""
    OUT.mkdir(parents=True, exist_ok=True)
    prefix = OUT / name
    spawn_rate = max(10, users // 5)
    cmd = [locust_python, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
           "-u", str(users), "-r", str(spawn_rate), "-t", f"{seconds}s", "--host", host,
           "--csv", str(prefix), "--csv-full-history", "--only-summary", "--loglevel", "WARNING",
           # At the end, users finish the request they are in (else locust cuts it: an "HTTP 0" failure).
           "--stop-timeout", "120", user_class]
    shown = (f"locust -f bench/locustfile.py --headless -u {users} -r {spawn_rate} -t {seconds}s --stop-timeout 120 "
             f"--host {host} {user_class}")
    print(f"{name}: {shown}", flush=True)
    server_cpu, client_cpu = server_cpu_seconds(server_pid), client_cpu_seconds()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    server_cpu, client_cpu = server_cpu_seconds(server_pid) - server_cpu, client_cpu_seconds() - client_cpu
    if not (prefix.parent / f"{name}_stats.csv").exists():
        raise SystemExit(f"locust wrote no statistics for {name}: {proc.stderr[-2000:]}")
    stats = {row["Name"]: row for row in csv.DictReader(open(f"{prefix}_stats.csv"))}
    agg = stats["Aggregated"]
    failures = list(csv.DictReader(open(f"{prefix}_failures.csv")))
    five_xx = sum(int(f["Occurrences"]) for f in failures if f["Error"].startswith("HTTP 5"))
    other_failures = sum(int(f["Occurrences"]) for f in failures) - five_xx
    shed_file = Path(env.get("BENCH_ACK_FILE", "") + ".shed")
    shed = json.loads(shed_file.read_text()) if env.get("BENCH_ACK_FILE") and shed_file.exists() else {"count": 0, "without_retry_after": 0}
    requests = int(agg["Request Count"])
    failed = int(agg["Failure Count"])
    return {
        "scenario": name, "command": shown, "users": users, "requests": requests, "failed": failed,
        "five_xx": five_xx, "other_failures": other_failures, "shed": shed["count"],
        "success_pct": 100.0 * (requests - failed) / requests if requests else 0.0,
        "p50": float(agg["50%"] or 0), "p95": float(agg["95%"] or 0), "max": float(agg["Max Response Time"] or 0),
        "rps": float(agg["Requests/s"] or 0),
        "server_cpu_ms": 1000 * server_cpu / requests if requests else float("nan"),
        "client_cpu_ms": 1000 * client_cpu / requests if requests else float("nan"),
        "per_endpoint": [{"name": n, "requests": r["Request Count"], "failed": r["Failure Count"], "p50": r["50%"],
                          "p95": r["95%"]} for n, r in stats.items() if n != "Aggregated"],
        "failure_lines": [f"{f['Name']}: {f['Error'][:120]} x{f['Occurrences']}" for f in failures][:8],
        "history": str(prefix) + "_stats_history.csv",
    }


def spike_recovery(history_csv: str, hold: int, after: int) -> dict:
    """From locust's per-second history: p95 (10 s window) before the spike, at its peak, and the seconds
    after the spike's end until it is back within 1.5x (or +50 ms) of its level before and stays there."""
    rows = [r for r in csv.DictReader(open(history_csv)) if r["Name"] == "Aggregated" and r["95%"] not in ("", "N/A")]
    if not rows:
        return {}
    t0 = int(rows[0]["Timestamp"])
    points = [(int(r["Timestamp"]) - t0, float(r["95%"]), int(r["User Count"])) for r in rows]
    before = [p95 for t, p95, _ in points if hold / 2 <= t < hold]
    during = [p95 for t, p95, _ in points if hold <= t < 2 * hold]
    baseline = statistics.median(before) if before else float("nan")
    normal = max(1.5 * baseline, baseline + 50)
    spike_end = 2 * hold
    after_points = [(t, p95) for t, p95, _ in points if t >= spike_end]
    recovered = None
    for i, (t, _p) in enumerate(after_points):
        if all(p <= normal for _, p in after_points[i:]):
            recovered = t - spike_end
            break
    return {"baseline_p95": baseline, "peak_p95": max(during) if during else float("nan"), "normal_limit": normal,
            "recovered_after_s": recovered, "observed_after_s": after_points[-1][0] - spike_end if after_points else 0}


def count_written(run_id: str) -> int:
    from campaigns.models import Event

    return Event.objects.filter(event_id__startswith=f"{run_id}_").count()


def main() -> None:
    args = parse_args()
    import psycopg

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.database]).fetchone():
            conn.execute(f'CREATE DATABASE "{args.database}"')
    env = {
        "DATABASE_URL": f"{args.server}/{args.database}", "DJANGO_SETTINGS_MODULE": "marketing_ai.settings",
        "DEBUG": "false", "SECRET_KEY": "bench-load-test-only-not-a-secret", "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING",
    }
    if args.throttles == "off":
        env.update({name: str(10**9) for name in THROTTLE_ENVS})
    ids = prepare(env)
    if not ids["BENCH_CAMPAIGNS"]:
        raise SystemExit("no aggregated campaigns in the database: run the daily_analytics job first")
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    server_env = {**os.environ, **env, "BENCH_API_LOAD_SERVER": "1", "PYTHONPATH": str(ROOT)}
    gunicorn = [sys.executable, "-m", "gunicorn", "bench.api_load:application", "--bind", f"127.0.0.1:{port}",
                "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
                "--keep-alive", str(args.keep_alive), "--backlog", "2048", "--timeout", "120",
                "--log-level", "warning", "--chdir", str(ROOT)]
    probe = subprocess.run([args.locust_python, "-c", "import locust"], capture_output=True)
    if probe.returncode:
        raise SystemExit(f"{args.locust_python} cannot import locust: pip install -r requirements-bench.txt "
                         "(or point --locust-python / BENCH_LOCUST_PYTHON at a Python that has it)")
    load_before = os.getloadavg()
    server = subprocess.Popen(gunicorn, env=server_env)
    sampler = LoadSampler()
    results: list[dict] = []
    spike: dict = {}
    spike_floor: dict = {}
    writes: dict = {}
    try:
        deadline = time.time() + 300  # workers take minutes to import Django on a loaded machine
        while True:
            try:
                if urllib.request.urlopen(f"{host}/bench/floor", timeout=2).status == 200:
                    break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("gunicorn did not answer within 300 s") from None
                time.sleep(0.5)
        sampler.start()
        locust_env = {**os.environ, **env, **ids, "PYTHONPATH": str(ROOT)}
        ramp = 10

        def run(name: str, user_class: str, users: int, seconds: int, scenario_env: dict) -> dict:
            res = run_locust(name, user_class, users, seconds, host, scenario_env,
                             locust_python=args.locust_python, server_pid=server.pid)
            results.append(res)
            return res

        scenario_env = {**locust_env, "BENCH_THINK": args.think}
        if args.floor:
            run("floor_analytics", "FloorUser", args.analytics_users, args.duration + ramp, scenario_env)
        run("analytics", "AnalyticsUser", args.analytics_users, args.duration + ramp, scenario_env)
        if ids["BENCH_TESTS"]:
            if args.floor:
                run("floor_abtests", "FloorUser", args.ab_users, args.duration + ramp, scenario_env)
            run("abtests", "ABTestUser", args.ab_users, args.duration + ramp,
                {**scenario_env, "BENCH_CUSTOMERS": ids["BENCH_ASSIGNED"]})
        base, peak = args.spike
        shape = f"{base},{peak},5,{args.hold},{args.hold},{args.after}"
        total = 2 * args.hold + args.after

        def spike_run(name: str, user_class: str, spike_env: dict) -> dict:
            res = run(name, user_class, peak, total, spike_env)
            res["users"] = f"{base} -> {peak} -> {base}"
            res["command"] = res["command"].replace(f"-u {peak} ", "").replace(" -t", f" (shape: BENCH_SPIKE={shape}) -t")
            return res

        if args.floor:
            res = spike_run("floor_spike", "FloorUser", {**locust_env, "BENCH_THINK": args.spike_think, "BENCH_SPIKE": shape})
            spike_floor = spike_recovery(res["history"], args.hold, args.after)
        run_id = f"loadtest_{uuid.uuid4().hex[:8]}"
        ack_file = OUT / f"{run_id}.acks"
        res = spike_run("spike", "SpikeUser", {**locust_env, "BENCH_THINK": args.spike_think, "BENCH_RUN_ID": run_id,
                                               "BENCH_ACK_FILE": str(ack_file), "BENCH_SPIKE": shape})
        spike = spike_recovery(res["history"], args.hold, args.after)
        time.sleep(2)  # answers in flight at the end are written before they are counted
        acked = 0
        acked_batches = 0
        if ack_file.exists():
            for line in ack_file.read_text().split("\n"):
                if line.strip():
                    stored, dup = (int(x) for x in line.split())
                    acked += stored + dup
                    acked_batches += 1
        written = count_written(run_id)
        writes = {"acknowledged": acked, "batches": acked_batches, "written": written, "lost": max(0, acked - written),
                  "unacknowledged_written": max(0, written - acked)}
    finally:
        sampler.stop.set()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    load_after = os.getloadavg()
    summary = {"results": results, "spike": spike, "spike_floor": spike_floor, "writes": writes, "load_before": load_before, "load_after": load_after,
               "load_during": sampler.samples, "args": vars(args)}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    for r in results:
        print(f"{r['scenario']}: {r['requests']} requests, {r['success_pct']:.2f} % ok, {r['five_xx']} 5xx, "
              f"{r['shed']} shed, p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, {r['rps']:.1f} rps, "
              f"CPU per request: server {r['server_cpu_ms']:.1f} ms, locust {r['client_cpu_ms']:.1f} ms")
    print(f"spike: {spike}\nspike floor: {spike_floor}\nwrites: {writes}")
    if not args.no_report:
        write_report(args, summary)


def write_report(args, s: dict) -> None:
    from bench.report import table, write_section

    def fmt_load(x) -> str:
        return " / ".join(f"{v:.2f}" for v in x)

    by_name = {r["scenario"]: r for r in s["results"]}
    floors = {"analytics": "floor_analytics", "abtests": "floor_abtests", "spike": "floor_spike"}
    rows = []
    for r in s["results"]:
        floor = by_name.get(floors.get(r["scenario"], ""))
        goal_p95 = "" if r["scenario"] not in ("analytics", "abtests") else (
            " (goal < 100: met)" if r["p95"] < 100 else " (goal < 100: NOT met)")
        rows.append({"scenario": r["scenario"], "users": r["users"], "requests": f"{r['requests']:,}",
                     "success %": f"{r['success_pct']:.2f}", "5xx": r["five_xx"], "shed 429/503 + Retry-After": r["shed"],
                     "rps": f"{r['rps']:.1f}", "p50 ms": f"{r['p50']:.0f}", "p95 ms": f"{r['p95']:.0f}{goal_p95}",
                     "max ms": f"{r['max']:.0f}",
                     "p95 / floor's": f"{r['p95'] / floor['p95']:.2f}" if floor and floor["p95"] else "",
                     "server CPU ms/req": f"{r['server_cpu_ms']:.2f}", "locust CPU ms/req": f"{r['client_cpu_ms']:.2f}"})
    endpoint_rows = [{"scenario": r["scenario"], **e} for r in s["results"] for e in r["per_endpoint"]
                     if not r["scenario"].startswith("floor")]
    failure_lines = [f"- {r['scenario']}: {line}" for r in s["results"] for line in r["failure_lines"]]
    sp, spf, w = s["spike"], s.get("spike_floor") or {}, s["writes"]
    during = s["load_during"]
    scenarios = [r for r in s["results"] if r["scenario"] in ("analytics", "abtests")]
    ok_12 = all(r["success_pct"] == 100.0 for r in scenarios)
    spike_r = by_name["spike"]
    recovered = sp.get("recovered_after_s")

    def p95_line(r: dict) -> str:
        floor = by_name.get(floors[r["scenario"]])
        line = f"{r['scenario']} {r['p95']:.0f} ms"
        if floor:
            line += (f" (the bare view with the same {r['users']} users: {floor['p95']:.0f} ms"
                     f"{', so < 100 ms is out of reach for the floor itself on this machine at this load' if floor['p95'] >= 100 else ''})")
        return line

    def recovery(x: dict) -> str:
        got = x.get("recovered_after_s")
        return (f"p95 (locust's 10 s window) {x.get('baseline_p95', float('nan')):.0f} ms before the spike, up to "
                f"{x.get('peak_p95', float('nan')):.0f} ms at the peak; back within {x.get('normal_limit', float('nan')):.0f} ms "
                + (f"**{got} s**" if got is not None else f"**not within the {x.get('observed_after_s')} s observed**")
                + " after the spike's end")

    floor_note = ("Floor: before each scenario, the same users with the same think time (the spike: the same shape) "
                  "request `/bench/floor`, a bare Django view reading one row, on the same server: rows `floor_*`. "
                  if args.floor else "")
    body = f"""
gunicorn ({args.workers} gthread workers x {args.threads} threads, keep-alive {args.keep_alive} s,
`bench.api_load:application`) on PostgreSQL database `{args.database}`; locust (`FastHttpUser`, one process)
on the same machine. Think time {args.think} s (scenarios 1-2) and {args.spike_think} s (spike), uniform.
Throttles **{args.throttles}** for this run
({'every THROTTLE_* rate set to 10^9 in the server environment, so the limiter does not answer for the server: all users share one IP' if args.throttles == 'off' else 'the configured rates'}).
{floor_note}**Machine: 2 cores shared with other helpers' work**; load average (1/5/15 min) before {fmt_load(s['load_before'])},
after {fmt_load(s['load_after'])}; 1-min load during the run: median {statistics.median(during) if during else float('nan'):.1f}, max {max(during) if during else float('nan'):.1f}.
Latency includes the locust client sharing the cores. CPU per request: user + system seconds of the gunicorn
workers (/proc) and of the locust process (getrusage) over the scenario, divided by its requests (PostgreSQL's
own CPU is not in either). Commands (the runner adds `--csv var/bench/locust/<scenario>`):

{chr(10).join(f'- `{r["command"]}`' for r in s['results'])}

{table(rows, ["scenario", "users", "requests", "success %", "5xx", "shed 429/503 + Retry-After", "rps", "p50 ms", "p95 ms", "p95 / floor's", "max ms", "server CPU ms/req", "locust CPU ms/req"])}

- scenarios 1-2, 100 % success (goal): **{'met' if ok_12 else 'NOT met'}** ({', '.join(f"{r['scenario']} {r['success_pct']:.2f} %" for r in scenarios)})
- scenarios 1-2, p95 {'; '.join(p95_line(r) for r in scenarios)} (goal < 100 ms): **{'met' if all(r['p95'] < 100 for r in scenarios) else 'NOT met'}**
- spike, no 5xx (goal): **{'met' if spike_r['five_xx'] == 0 else 'NOT met'}** ({spike_r['five_xx']} 5xx, {spike_r['other_failures']} other failures, {spike_r['shed']} deliberate 429/503 with Retry-After)
- spike, no lost writes (goal): events acknowledged with 2xx **{w.get('acknowledged', 0):,}** ({w.get('batches', 0):,} batches of 20), events in the database **{w.get('written', 0):,}**: lost **{w.get('lost', 0)}** ({'met' if w.get('lost', 1) == 0 else 'NOT met'}; written but not acknowledged, e.g. a client time-out: {w.get('unacknowledged_written', 0)})
- spike, recovery (goal <= 60 s: {'met' if recovered is not None and recovered <= 60 else 'NOT met'}): {recovery(sp)}{'; the floor in the same shape: ' + recovery(spf) if spf else ''}

Per endpoint:

{table(endpoint_rows, ["scenario", "name", "requests", "failed", "p50", "p95"])}
{chr(10) + 'Failures (first lines):' + chr(10) + chr(10).join(failure_lines) if failure_lines else ''}
"""
    print("wrote", write_section("load_test", "Load tests: locust against gunicorn on PostgreSQL (bench/load_test.py)", body))


if __name__ == "__main__":
    main()

"""``make bench``: build the data set with seed_demo, run every bench script, rewrite docs/BENCHMARKS.md's generated part.

    make bench SCALE=small      # a few minutes on a quiet 2-core machine (the figures' sizes are in the summary)
    make bench                  # SCALE=full: 1 M customers, 5,000 merchants, 1,000 campaigns, 90 days, ~10 M events
    python bench/run_all.py --scale small --only load_test   # re-run some steps of the last run (the others' sections stay)

Needs PostgreSQL (``BENCH_DB_SERVER``, default postgres://postgres@127.0.0.1:5432) and Redis (``REDIS_URL``).
Databases: ``BENCH_DB`` (default ``mai_bench``) holds the data set that aggregate, optimizer, api_load and
load_test share; ingest, abtests, demo_jobs and the scaling curve use ``BENCH_DB_<step>`` databases of their
own (ingest empties its tables between phases; abtests builds a 1 M-assignment test by SQL; the scaling curve
needs four sizes). Steps run one at a time, the scaling curve too: its seconds have no floor in the same run, so
another step beside it would distort them. Each script writes its section into a scratch copy (``BENCH_DOC``); at the end the sections
of this run, under a summary (scale, machine, load, each step's command and time, every goal line), replace
everything between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in docs/BENCHMARKS.md. Text outside
the markers (hand-written readings, runs of one script at another size) is left alone. Logs: var/bench/logs/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.optimizer import ensure_database  # noqa: E402  (the same helper as the optimizer bench)

DOC = ROOT / "docs" / "BENCHMARKS.md"
WORK = ROOT / "var" / "bench"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# The data set of each scale (seed_demo's arguments) and each script's size at that scale.
SCALES = {
    "small": {"customers": 3_000, "merchants": 100, "campaigns": 20, "days": 30, "events": 150_000,
              "ingest_events": 100_000, "ab_users": 20_000, "ab_noise": 10_000, "ab_repeat": 3,
              "api_clients": 30, "api_requests": 10,
              "load": ["--analytics-users", "100", "--ab-users", "50", "--spike", "500", "1000",
                       "--duration", "30", "--hold", "20", "--after", "70"],
              "scaling": ["--customers", "500", "--merchants", "20", "--campaigns", "6", "--days", "14"],
              "calibration": ["--seeds", "1", "--sizes", "2000"]},
    "full": {"customers": 1_000_000, "merchants": 5_000, "campaigns": 1_000, "days": 90, "events": 10_000_000,
             "ingest_events": 1_000_000, "ab_users": 1_000_000, "ab_noise": 500_000, "ab_repeat": 5,
             "api_clients": 100, "api_requests": 20,
             "load": ["--analytics-users", "100", "--ab-users", "50", "--spike", "500", "1000",
                      "--duration", "120", "--hold", "60", "--after", "120"],
             # 0.053 sends a day gave 5.2 M events at 8x (2026-12-03): about half of EVENTS_PER_SEND's estimate
             # at this size, so 0.1 for the issue's ~10 M at 8x (1 M customers), and for the main set too
             # (seed_demo with these sizes and 0.1: 10,861,940 rows in 577 s, 2026-12-03).
             "sends_per_day": 0.1,
             "scaling": ["--customers", "125000", "--merchants", "625", "--campaigns", "125", "--days", "90",
                         "--sends-per-day", "0.1"],
             "calibration": []},
}
EVENTS_PER_SEND = 2.1  # seed_demo writes ~2.1 events per notification sent (docs/demo-data.md)
# Cheap and most-asked first, so a run cut short still has them; the demo-size and calibration studies last.
ORDER = ["seed", "load_test", "api_load", "aggregate", "ingest", "optimizer", "abtests", "abtests_stats",
         "scaling", "demo_jobs", "offer_calibration"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--only", nargs="+", choices=ORDER, help="run these steps only")
    p.add_argument("--skip", nargs="+", choices=ORDER, default=[], help="skip these steps")
    return p.parse_args()


def steps(scale: str, server: str, db: str, events: int) -> dict[str, list[str]]:
    """Each step's command line (events: the data set's actual count, known after the seed step)."""
    s = SCALES[scale]
    py = "python"
    return {
        "seed": [py, "manage.py", "seed_demo", "--customers", str(s["customers"]), "--merchants", str(s["merchants"]),
                 "--campaigns", str(s["campaigns"]), "--days", str(s["days"]), "--sends-per-day",
                 f"{s.get('sends_per_day') or s['events'] / (s['customers'] * s['days'] * EVENTS_PER_SEND):.3f}",
                 "--seed", "7", "--replace"],
        "abtests_stats": [py, "bench/abtests_stats.py"],
        "ingest": [py, "bench/ingest.py", "--events", str(s["ingest_events"]), "--database", f"{db}_ingest"],
        "aggregate": [py, "bench/aggregate.py", "--events", str(events), "--days", str(s["days"]),
                      "--campaigns", str(s["campaigns"]), "--merchants", str(s["merchants"]), "--repeat", "3",
                      "--database", db, "--server", server],
        "optimizer": [py, "bench/optimizer.py", "--customers", str(s["customers"]), "--merchants", str(s["merchants"]),
                      "--events", str(events), "--days", str(s["days"]), "--campaigns", str(s["campaigns"]),
                      "--database", db, "--server", server, "--reuse"],
        "abtests": [py, "bench/abtests.py", "--users", str(s["ab_users"]), "--noise-events", str(s["ab_noise"]),
                    "--repeat", str(s["ab_repeat"])],
        "api_load": [py, "bench/api_load.py", "--clients", str(s["api_clients"]), "--requests", str(s["api_requests"]),
                     "--database", db, "--server", server],
        "load_test": [py, "bench/load_test.py", "--database", db, "--server", server, *s["load"]],
        "scaling": [py, "bench/scaling.py", *s["scaling"], "--prefix", f"{db}_scaling", "--server", server,
                    "--plots", f"bench-{scale}"],
        "demo_jobs": [py, "bench/demo_jobs.py", "--database-url", f"{server}/{db}_demo"],
        "offer_calibration": [py, "bench/offer_calibration.py", *s["calibration"]],
    }


def step_env(name: str, server: str, db: str) -> dict:
    env = {**os.environ, "DATABASE_URL": f"{server}/{db}", "DJANGO_SETTINGS_MODULE": "marketing_ai.settings",
           "PYTHONPATH": str(ROOT), "BENCH_DOC": str(WORK / "generated.md"), "LOG_LEVEL": "WARNING"}
    if name == "abtests":
        env["DATABASE_URL"] = f"{server}/{db}_abtests"
    return env




def event_count(server: str, db: str) -> int:
    import psycopg

    with psycopg.connect(f"{server}/{db}") as conn:
        return conn.execute("SELECT count(*) FROM campaigns_event").fetchone()[0]


def start_step(name: str, cmd: list[str], env: dict) -> tuple[subprocess.Popen, float]:
    log = WORK / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable if cmd[0] == "python" else cmd[0], *cmd[1:]]
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {name}: {shlex.join(cmd)}", flush=True)
    with log.open("w") as out:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT), time.perf_counter()


def run_step(name: str, cmd: list[str], env: dict) -> dict:
    return finish_step(name, cmd, *start_step(name, cmd, env))


def finish_step(name: str, cmd: list[str], proc: subprocess.Popen, t0: float) -> dict:
    log = WORK / "logs" / f"{name}.log"
    code = proc.wait()
    seconds = time.perf_counter() - t0
    status = "ok" if code == 0 else f"FAILED (exit {code}; last line: {last_line(log)})"
    print(f"    {status} in {seconds:.0f} s (log {log.relative_to(ROOT)})", flush=True)
    return {"step": name, "command": shlex.join(cmd), "seconds": seconds, "status": status}


def last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:200].replace("|", "/")


def machine() -> str:
    import psycopg

    mem = ""
    try:
        kib = int(next(ln for ln in open("/proc/meminfo") if ln.startswith("MemTotal")).split()[1])
        mem = f" · {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        with psycopg.connect(f"{os.environ.get('BENCH_DB_SERVER', 'postgres://postgres@127.0.0.1:5432')}/postgres") as c:
            pg = c.execute("SHOW server_version").fetchone()[0].split()[0]
    except psycopg.Error:
        pg = "?"
    redis_version = "?"
    try:
        import redis

        redis_version = redis.Redis.from_url(os.environ["REDIS_URL"]).info("server")["redis_version"]
    except Exception:  # noqa: BLE001 (the version is only shown)
        pass
    return (f"{platform.node()} · {os.cpu_count()} cores{mem} · Python {platform.python_version()} · "
            f"PostgreSQL {pg} · Redis {redis_version}")


SECTION = re.compile(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->", re.S)


def assemble(scale: str, results: list[dict], facts: dict, load_before, load_after, started: dt.datetime,
             skipped: Sequence[str] = ()) -> str:
    """The generated part: the summary, then this run's sections (renamed so they never clash with the
    sections a script run alone writes outside the markers)."""
    from bench.report import table

    scratch = WORK / "generated.md"
    sections = SECTION.findall(scratch.read_text()) if scratch.exists() else []
    goal_lines = []
    for name, text in sections:
        for line in text.splitlines():
            if line.startswith("- ") and "goal" in line.lower():
                goal_lines.append(f"- {name}: {line[2:]}")
    s = SCALES[scale]
    other = sorted(p.stem for p in (ROOT / "bench").glob("*.py")
                   if p.stem not in ORDER and p.stem not in {"__init__", "report", "run_all", "locustfile"})
    rows = [{"step": r["step"], "command": f"`{r['command']}`", "seconds": f"{r['seconds']:.0f}", "status": r["status"]}
            for r in results]
    fmt = " / ".join
    summary = f"""## `make bench SCALE={scale}`: summary

Run: {started:%Y-%m-%d %H:%M} UTC, {sum(r['seconds'] for r in results) / 60:.0f} min · {machine()}
Load average (1/5/15 min) before {fmt(f'{x:.2f}' for x in load_before)}, after {fmt(f'{x:.2f}' for x in load_after)}
(each step's own section gives the load during it). Absolute times move with whatever else the machine does; the
ratios to the floors (measured in the same run, interleaved) much less.
{'Steps skipped in this run (`--only` / `--skip`): ' + ', '.join(skipped) + '.' if skipped else ''}

Data set (`seed_demo` into database `{facts.get('database')}`): {s['customers']:,} customers, {s['merchants']:,} merchants,
{s['campaigns']:,} campaigns, {s['days']} days, **{facts.get('events', 0):,} events**
(seed_demo {facts.get('seed_seconds', float('nan')):.0f} s). {'The issue’s scale.' if scale == 'full' else 'SCALE=small: the sizes below are what a few minutes on this machine allow; `make bench` (SCALE=full) runs the issue’s scale.'}

{table(rows, ["step", "command", "seconds", "status"])}

{'Not run by `make bench` (scripts it does not know): ' + ', '.join(f'`bench/{n}.py`' for n in other) + '.' if other else ''}

Every goal line of this run:

{chr(10).join(goal_lines) if goal_lines else '- (none printed)'}
"""
    parts = [summary]
    for name, text in sections:
        text = re.sub(r"^## ", f"## [{scale}] ", text, count=1, flags=re.M)
        parts.append(f"<!-- make-bench:{name} -->\n{text.rstrip()}\n<!-- /make-bench:{name} -->")
    return "\n\n".join(parts)


def write_generated(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    new = f"{BEGIN}\n<!-- Generated by `make bench` (bench/run_all.py): edits between these markers are overwritten. -->\n\n{block.strip()}\n{END}"
    # The markers count only on a line of their own (a sentence may name them).
    span = re.search(rf"^{re.escape(BEGIN)}$.*?^{re.escape(END)}$", text, re.S | re.M)
    if span:
        text = text[:span.start()] + new + text[span.end():]
    else:
        first_section = text.find("\n<!-- bench:")
        text = (text[:first_section] + "\n" + new + "\n" + text[first_section:]) if first_section >= 0 else text.rstrip() + "\n\n" + new + "\n"
    DOC.write_text(text)


def main() -> None:
    args = parse_args()
    if not os.environ.get("REDIS_URL"):
        sys.exit("make bench needs REDIS_URL (e.g. redis://127.0.0.1:6379/0) and PostgreSQL (BENCH_DB_SERVER)")
    server = os.environ.get("BENCH_DB_SERVER", "postgres://postgres@127.0.0.1:5432")
    db = os.environ.get("BENCH_DB", "mai_bench")
    wanted = [s for s in (args.only or ORDER) if s not in args.skip]
    WORK.mkdir(parents=True, exist_ok=True)
    state_file = WORK / "run_all.json"
    # --only re-runs some steps of the last run: their sections and rows replace that run's, the rest stay.
    state = json.loads(state_file.read_text()) if args.only and state_file.exists() else {}
    if state.get("scale") != args.scale or state.get("database") != db:
        state = {}
        (WORK / "generated.md").unlink(missing_ok=True)
    started = dt.datetime.fromisoformat(state["started"]) if state else dt.datetime.now(dt.UTC)
    load_before = state.get("load_before") or os.getloadavg()
    results: list[dict] = [r for r in state.get("results", []) if r["step"] not in wanted]
    facts: dict = state.get("facts") or {"database": db}

    def flush() -> None:
        """Write what has run so far (a run cut short still leaves its finished steps in the document)."""
        results.sort(key=lambda r: ORDER.index(r["step"]))
        state_file.write_text(json.dumps({"scale": args.scale, "database": db, "started": started.isoformat(),
                                          "load_before": list(load_before), "results": results, "facts": facts}))
        write_generated(assemble(args.scale, results, facts, load_before, os.getloadavg(), started,
                                 [step for step in ORDER if step not in wanted]))
    if "seed" in wanted:
        ensure_database(server, db, fresh=True)
        env = step_env("seed", server, db)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        result = run_step("seed", steps(args.scale, server, db, 0)["seed"], env)
        results.append(result)
        facts["seed_seconds"] = result["seconds"]
        subprocess.run([sys.executable, "manage.py", "dbshell", "--", "-c", "VACUUM ANALYZE"], env=env, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    facts["events"] = event_count(server, db)
    commands = steps(args.scale, server, db, facts["events"])
    # Every step runs alone, the scaling curve included: its figures are each job's own seconds and memory
    # (no floor in the same run to compare with), which another step running beside it would distort
    # (run beside the load test, send_times took 5-9 s on 100-200 customers instead of well under one).
    for name in ORDER:
        if name == "seed" or name not in wanted:
            continue
        if name == "abtests":
            ensure_database(server, f"{db}_abtests")
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], env=step_env(name, server, db),
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        if name == "demo_jobs":
            ensure_database(server, f"{db}_demo")
        results.append(run_step(name, commands[name], step_env(name, server, db)))
        flush()
    flush()
    print(f"wrote the generated part of {DOC.relative_to(ROOT)}")
    if any(r["status"] != "ok" for r in results):
        sys.exit("some steps failed: see the summary in docs/BENCHMARKS.md and var/bench/logs/")


if __name__ == "__main__":
    main()

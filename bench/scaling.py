"""Scaling curve and peak memory of every registered job, at 1x, 2x, 4x, 8x of a base size, on PostgreSQL.

    python bench/scaling.py --customers 500 --merchants 20 --campaigns 6 --days 14   # SCALE=small
    python bench/scaling.py --customers 125000 --merchants 625 --campaigns 125 --days 90 --sends-per-day 0.1
                                                 # SCALE=full: the 8x point is 1 M customers, 5,000 merchants, ~10 M events

For each factor it builds a data set with ``seed_demo`` in its own database (``<prefix>_x<factor>``):
customers and merchants are multiplied by the factor (events follow the customers, ~``sends-per-day`` x
2.1 per customer per day); campaigns and days stay fixed, so the factor is the data's size. Then every
registered job runs once per ``--repeat``, in dependency order, over the whole period, each run in a
**process of its own**: a child (``python bench/scaling.py --child JOB,JOB,...``) sets Django up once, as a
Celery worker process has before its first task, and forks one process per job, so each figure is that job's alone:

- seconds: the job's wall time in its process (``jobs.run``; median of the repeats);
- peak RSS: that process's ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the high-water mark of its
  resident set; a forked process starts with the set-up child's resident pages), beside the set-up child's
  RSS after Django and the apps were imported (psutil; the baseline every worker process pays before any job).

The growth exponent b of each job is the least-squares slope of log(seconds) on log(events) over the
four sizes (seconds ~ events^b: 1 is linear, below 1 is better than linear; fixed costs such as model
selection on small data push b below 1 at small sizes). Plots: docs/<stem>-scaling.png (seconds against
events, log-log, with b) and docs/<stem>-peak-rss.png (peak RSS per job at each size; ``--plots STEM``). The floor of each
job's time (the same work by the bare tool) is in the per-job sections of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT_DIR = ROOT / "var" / "bench"


def plot_paths(stem: str) -> tuple[Path, Path]:
    """The two plots' files in docs/: ``<stem>-scaling.png`` (time) and ``<stem>-peak-rss.png`` (memory)."""
    return ROOT / "docs" / f"{stem}-scaling.png", ROOT / "docs" / f"{stem}-peak-rss.png"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=400, help="customers at 1x")
    p.add_argument("--merchants", type=int, default=20, help="merchants at 1x")
    p.add_argument("--campaigns", type=int, default=12, help="campaigns at every size")
    p.add_argument("--days", type=int, default=30, help="days of data at every size")
    p.add_argument("--sends-per-day", type=float, default=1.5, help="seed_demo's notifications per customer per day")
    p.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--repeat", type=int, default=1, help="runs of each job per size (the median is reported)")
    p.add_argument("--prefix", default="mai_bench_scaling", help="database name prefix (one database per size)")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--reuse", action="store_true", help="reuse a size's database when it already holds data")
    p.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md or the plots")
    p.add_argument("--from-log", help="report from the lines an interrupted run printed (sizes it finished)")
    p.add_argument("--plots", default="bench", metavar="STEM",
                   help="plot files docs/STEM-scaling.png and docs/STEM-peak-rss.png (default: bench; make bench: bench-<scale>)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--start", help=argparse.SUPPRESS)
    p.add_argument("--end", help=argparse.SUPPRESS)
    return p.parse_args()


# --- the child: Django set up once per size, then one forked process per job ------------------------
def child(names: list[str], start: str, end: str) -> None:
    """Set up Django once (what a Celery worker process has done before its first task), then run each
    job in a process forked from this one, so each job's peak is its own on top of that baseline."""
    import datetime as dt
    import resource

    import psutil

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")
    import django

    django.setup()
    from django.db import connections

    from marketing_ai import jobs

    baseline = psutil.Process().memory_info().rss
    for name in names:
        connections.close_all()  # the forked process opens its own connection
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the job's process
            os.close(read_end)
            code = 0
            try:
                t0 = time.perf_counter()
                record = jobs.run(name, start=dt.date.fromisoformat(start), end=dt.date.fromisoformat(end),
                                  trigger="bench", raise_errors=False)
                seconds = time.perf_counter() - t0
                peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
                result = {"job": name, "status": record.status, "rows": record.rows_written, "seconds": seconds,
                          "baseline_mb": baseline / 2**20, "peak_mb": peak_kib / 1024, "error": (record.error or "")[-300:]}
            except BaseException as exc:  # noqa: BLE001 (reported, the next job still runs)
                result = {"job": name, "status": f"crashed: {exc!r}"[:200], "rows": 0, "seconds": float("nan"),
                          "baseline_mb": baseline / 2**20, "peak_mb": float("nan"), "error": repr(exc)[-300:]}
                code = 1
            os.write(write_end, json.dumps(result).encode())
            os.close(write_end)
            connections.close_all()
            os._exit(code)
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.close(read_end)
        os.waitpid(pid, 0)
        print("RESULT " + b"".join(chunks).decode(), flush=True)


def run_children(names: list[str], start: str, end: str, env: dict) -> list[dict]:
    """Run the jobs (one forked process each, from one set-up child); return each job's figures."""
    proc = subprocess.run([sys.executable, __file__, "--child", ",".join(names), "--start", start, "--end", end],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[len("RESULT "):])
            results[r["job"]] = r
    missing = {"status": f"no result (exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]})", "rows": 0,
               "seconds": float("nan"), "baseline_mb": float("nan"), "peak_mb": float("nan"), "error": ""}
    return [results.get(n, {"job": n, **missing}) for n in names]


# --- the parent --------------------------------------------------------------------------------
def manage(env: dict, *argv: str) -> None:
    proc = subprocess.run([sys.executable, "manage.py", *argv], env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"manage.py {' '.join(argv)} failed: {proc.stderr[-2000:]}")


def database_env(server: str, name: str) -> dict:
    # Model artifacts per database: the sizes' registries each number their versions from 1, and one shared
    # folder let a size's v1 overwrite another's (the registry then refuses the file: its sha256 differs).
    return {**os.environ, "DATABASE_URL": f"{server}/{name}", "DJANGO_SETTINGS_MODULE": "marketing_ai.settings",
            "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), "MODEL_ARTIFACT_DIR": str(OUT_DIR / "models" / name)}


def build(args, factor: int) -> tuple[dict, dict]:
    """The size's database (rebuilt unless --reuse finds data); returns (env, facts about the data)."""
    import psycopg

    name = f"{args.prefix}_x{factor}"
    template = f"{args.prefix}_template"
    env = database_env(args.server, name)
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not args.reuse:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            # Migrating takes a minute on a busy machine: migrate one empty template, copy it per size.
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone():
                conn.execute(f'CREATE DATABASE "{template}"')
                manage(database_env(args.server, template), "migrate", "--noinput")
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    manage(env, "migrate", "--noinput")  # a no-op unless migrations were added since the template was made
    seed_seconds = None
    with psycopg.connect(f"{args.server}/{name}") as conn:
        events = conn.execute("SELECT count(*) FROM campaigns_event").fetchone()[0]
    if not events:
        t0 = time.perf_counter()
        manage(env, "seed_demo", "--customers", str(args.customers * factor), "--merchants",
               str(args.merchants * factor), "--campaigns", str(args.campaigns), "--days", str(args.days),
               "--sends-per-day", str(args.sends_per_day), "--seed", "7", "--replace")
        seed_seconds = time.perf_counter() - t0
    with psycopg.connect(f"{args.server}/{name}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        events, first, last = conn.execute(
            "SELECT count(*), min(occurred_at)::date, max(occurred_at)::date FROM campaigns_event").fetchone()
        customers = conn.execute("SELECT count(*) FROM campaigns_customer").fetchone()[0]
    return env, {"factor": factor, "database": name, "events": events, "customers": customers,
                 "merchants": args.merchants * factor, "start": str(first), "end": str(last),
                 "seed_seconds": seed_seconds}


def job_names(env: dict) -> list[str]:
    code = ("import django; django.setup(); from marketing_ai import jobs; "
            "print(' '.join(j.name for j in jobs.in_dependency_order()))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.split()


def exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y on log x (None with fewer than two usable points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0 and math.isfinite(y)]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def plot(sizes: list[dict], results: dict[str, list[dict]], slopes: dict[str, float | None], stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = [s["events"] for s in sizes]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, rows in results.items():
        b = slopes[name]
        ax.plot(events, [r["seconds"] for r in rows], marker="o",
                label=f"{name} (b = {b:.2f})" if b is not None else name)
    ax.plot(events, [events[0] and 1.0 * e / events[0] for e in events], ls=":", color="grey", label="slope of linear growth (b = 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events in the data set (customers x " + " / ".join(f"{s['factor']}" for s in sizes) + ")")
    ax.set_ylabel("job wall time, s (child process, median)")
    ax.set_title("Job time against data size; b = fitted exponent (time ~ events^b)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plot_paths(stem)[0], dpi=110)
    plt.close(fig)

    names = list(results)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    width = 0.8 / len(sizes)
    for i, size in enumerate(sizes):
        peaks = [results[n][i]["peak_mb"] for n in names]
        ax.bar([k + i * width for k in range(len(names))], peaks, width, label=f"{size['factor']}x ({size['events']:,} events)")
    bases = [r["baseline_mb"] for rows in results.values() for r in rows if math.isfinite(r["baseline_mb"])]
    if bases:
        base = statistics.median(bases)
        ax.axhline(base, color="grey", ls=":", label=f"process after Django import ({base:.0f} MB)")
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(names))], names, rotation=20, ha="right")
    ax.set_ylabel("peak RSS of the job's process, MB (ru_maxrss)")
    ax.set_title("Peak resident memory per job, one process per job")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(plot_paths(stem)[1], dpi=110)
    plt.close(fig)


def parse_log(path: Path, args) -> tuple[list[dict], dict[str, list[dict]]]:
    """Sizes and results from the lines a run printed (a run cut short still printed its finished sizes)."""
    import re

    sizes: list[dict] = []
    results: dict[str, list[dict]] = {}
    size_re = re.compile(r"^(\d+)x: ([\d,]+) events, ([\d,]+) customers(?: \(seed_demo (\d+) s\))?")
    job_re = re.compile(r"^  (\w+): (\S+) ([\d.na]+) s, peak ([\d.na]+) MB, ([\d,]+) rows(?:, baseline ([\d.na]+) MB)?")
    pending: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        if m := size_re.match(line):
            if pending:
                for name, r in pending.items():
                    results.setdefault(name, []).append(r)
            pending = {}
            factor = int(m.group(1))
            sizes.append({"factor": factor, "database": f"{args.prefix}_x{factor}", "events": int(m.group(2).replace(",", "")),
                          "customers": int(m.group(3).replace(",", "")), "merchants": args.merchants * factor,
                          "start": "", "end": "", "seed_seconds": float(m.group(4)) if m.group(4) else None})
        elif m := job_re.match(line):
            pending[m.group(1)] = {"job": m.group(1), "status": m.group(2), "seconds": float(m.group(3)),
                                   "peak_mb": float(m.group(4)), "rows": int(m.group(5).replace(",", "")),
                                   "baseline_mb": float(m.group(6)) if m.group(6) else float("nan")}
    names = {n for n in pending} | set(results)
    if pending and all(n in pending for n in names):
        for name, r in pending.items():
            results.setdefault(name, []).append(r)
    else:
        sizes = sizes[:-1]  # the last size did not finish
    sizes = sizes[: min((len(v) for v in results.values()), default=0)]
    return sizes, results


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child.split(","), args.start, args.end)
        return
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    sizes: list[dict] = []
    results: dict[str, list[dict]] = {}
    if args.from_log:
        sizes, results = parse_log(Path(args.from_log), args)
        args.factors = [s["factor"] for s in sizes]
    for factor in [] if args.from_log else args.factors:
        env, facts = build(args, factor)
        sizes.append(facts)
        print(f"{factor}x: {facts['events']:,} events, {facts['customers']:,} customers"
              + (f" (seed_demo {facts['seed_seconds']:.0f} s)" if facts["seed_seconds"] else " (reused)"), flush=True)
        names = job_names(env)
        repeats = [run_children(names, facts["start"], facts["end"], env) for _ in range(args.repeat)]
        for i, name in enumerate(names):
            runs = [rep[i] for rep in repeats]
            ok = [r for r in runs if r["status"] == "succeeded"]
            chosen = dict(runs[-1])
            if ok:
                chosen["seconds"] = statistics.median(r["seconds"] for r in ok)
                chosen["peak_mb"] = max(r["peak_mb"] for r in ok)
            chosen["runs"] = [round(r["seconds"], 2) for r in runs]
            results.setdefault(name, []).append(chosen)
            print(f"  {name}: {chosen['status']} {chosen['seconds']:.2f} s, peak {chosen['peak_mb']:.0f} MB, "
                  f"{chosen['rows']:,} rows, baseline {chosen['baseline_mb']:.0f} MB", flush=True)
    load_after = os.getloadavg()
    slopes = {name: exponent([s["events"] for s in sizes], [r["seconds"] for r in rows]) for name, rows in results.items()}
    (OUT_DIR / "scaling.json").write_text(json.dumps({"sizes": sizes, "results": results, "slopes": slopes}, indent=1))
    if args.no_report:
        return
    plot(sizes, results, slopes, args.plots)
    time_png, rss_png = (path.name for path in plot_paths(args.plots))

    from bench.report import table, write_section

    size_rows = [{"size": f"{s['factor']}x", "customers": f"{s['customers']:,}", "merchants": f"{s['merchants']:,}",
                  "events": f"{s['events']:,}", "period": f"{s['start']}..{s['end']}",
                  "seed_demo s": f"{s['seed_seconds']:.0f}" if s["seed_seconds"] else "reused"} for s in sizes]
    rows = []
    for name, per_size in results.items():
        b = slopes[name]
        row = {"job": name, "exponent b": f"{b:.2f}" if b is not None else "n/a"}
        for s, r in zip(sizes, per_size, strict=True):
            mark = "" if r["status"] == "succeeded" else f" ({r['status']})"
            row[f"{s['factor']}x s"] = f"{r['seconds']:.2f}{mark}"
            row[f"{s['factor']}x peak MB"] = f"{r['peak_mb']:.0f}"
        rows.append(row)
    cols = ["job", "exponent b"] + [f"{s['factor']}x s" for s in sizes] + [f"{s['factor']}x peak MB" for s in sizes]
    bases = [r["baseline_mb"] for v in results.values() for r in v if math.isfinite(r["baseline_mb"])]
    base = statistics.median(bases) if bases else float("nan")
    largest = max((r["peak_mb"], n) for n, v in results.items() for r in v if math.isfinite(r["peak_mb"]))
    from_log_note = "Figures read back from the log of a run cut short (`--from-log`): the sizes it finished.\n\n" if args.from_log else ""
    body = f"""
Each job runs alone in its own process (forked from a child that set Django up once, like a Celery pool process), over the whole period, at {len(sizes)} sizes
(customers and merchants x {', '.join(str(f) for f in args.factors)}; {args.campaigns} campaigns and {args.days} days at every size).
Time: median of {args.repeat} run(s) per size. Peak RSS: the job's process's `ru_maxrss`; a process has
**{base:.0f} MB** resident after Django and the apps are imported, before any job. The exponent b is the least-squares slope of
log(seconds) on log(events) over the sizes (1 = linear; below 1 means fixed costs still dominate at these sizes).
Load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}; after: {' / '.join(f'{x:.2f}' for x in load_after)} (2 shared cores).

{from_log_note}{table(size_rows, ["size", "customers", "merchants", "events", "period", "seed_demo s"])}

{table(rows, cols)}

Largest peak: **{largest[0]:.0f} MB** ({largest[1]}). Plots: `docs/{time_png}` (time against events, log-log,
with b) and `docs/{rss_png}` (peak RSS per job and size).

![job time against data size]({time_png})
![peak RSS per job]({rss_png})
"""
    print("wrote", write_section("scaling", "Scaling and peak memory of every job (bench/scaling.py)", body))


if __name__ == "__main__":
    main()

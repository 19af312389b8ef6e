"""The first minute of a newcomer: `make demo` from a fresh clone, timed phase by phase up to the serving line.

    python bench/demo_clone.py                       # clones this checkout into /tmp/demo_clone (removed first)
    python bench/demo_clone.py --repo /path/to/clone/from --dest /tmp/x --port 8765
    python bench/demo_clone.py --cold-cache          # uv with an empty cache (downloads every wheel)

Runs `make demo` exactly as the README says (no DATABASE_URL, no REDIS_URL: SQLite and in-process jobs),
with make's SHELL swapped for a thin wrapper that records each recipe line's wall time and CPU time
(user + sys of the line and everything it started: /usr/bin/time). The clock stops at the line
"marketing_ai demo: http://..." followed by Django's "Quit the server" (the server answers from then on);
then the server, and only it, is stopped. Prints a Markdown table and the load average; CPU time is the figure
to compare across runs on a shared machine, wall time the one a newcomer feels.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = [  # (name, a piece of the recipe line that starts it)
    ("install (venv + uv)", "test -x"),
    ("install (venv + uv)", "pip install"),
    ("install (venv + uv)", "touch .venv/.installed"),
    ("migrate", "manage.py migrate"),
    ("seed_demo", "manage.py seed_demo"),
    ("run_job --all", "manage.py run_job"),
    ("demo_login", "manage.py demo_login"),
]


def phase_of(command: str) -> str:
    for name, piece in PHASES:
        if piece in command:
            return name
    return "other"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", default=str(ROOT))
    p.add_argument("--dest", default="/tmp/demo_clone")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--cold-cache", action="store_true", help="give uv an empty cache directory")
    p.add_argument("--timeout", type=float, default=900)
    args = p.parse_args()

    dest = Path(args.dest)
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", args.repo, str(dest)], check=True)
    log = dest / "var_phase_times.log"
    wrapper = Path(tempfile.mkdtemp()) / "timed_sh"
    # One record per recipe line: wall, user, sys, then the command (make runs "SHELL -c 'line'").
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/time -a -o {log} -f "%e %U %S|%C" /bin/sh "$@"\n')
    wrapper.chmod(0o755)

    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV", "PYTHONPATH"}}
    if args.cold_cache:
        env["UV_CACHE_DIR"] = tempfile.mkdtemp(prefix="uv-cold-")
    load_start = os.getloadavg()
    started = time.perf_counter()
    make = subprocess.Popen(["make", "demo", f"PORT={args.port}", f"SHELL={wrapper}"], cwd=dest, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    serving_at = None
    url_seen = False
    assert make.stdout is not None
    for line in make.stdout:
        sys.stdout.write(f"[{time.perf_counter() - started:6.1f}s] {line}")
        if "marketing_ai demo: http://" in line:
            url_seen = True
        if url_seen and "Quit the server" in line:
            serving_at = time.perf_counter() - started
            break
        if time.perf_counter() - started > args.timeout:
            break
    load_end = os.getloadavg()
    # Stop the development server only (make's last child); make then exits on its own.
    server = subprocess.run(["pgrep", "-f", f"runserver --noreload 127.0.0.1:{args.port}"], capture_output=True, text=True)
    for pid in server.stdout.split():
        os.kill(int(pid), signal.SIGINT)
    make.wait(timeout=30)

    totals: dict[str, list[float]] = {}
    for record in log.read_text().splitlines():
        if "|" not in record:
            continue
        figures, command = record.split("|", 1)
        wall, user, system = (float(x) for x in figures.split())
        phase = phase_of(command)
        if "runserver" in command:
            continue
        entry = totals.setdefault(phase, [0.0, 0.0])
        entry[0] += wall
        entry[1] += user + system
    print("\n| phase | wall s | CPU s (user+sys) |\n|---|---:|---:|")
    for name, (wall, cpu) in totals.items():
        print(f"| {name} | {wall:.1f} | {cpu:.1f} |")
    print(f"| **`make demo` to serving** | **{serving_at:.1f}** | {sum(c for _, c in totals.values()):.1f} |"
          if serving_at else "| `make demo` | did not reach the serving line | |")
    print(f"\nload average (1/5/15 min) at start {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}, "
          f"at end {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f}; {os.cpu_count()} cores; "
          f"uv cache: {'cold (empty)' if args.cold_cache else 'warm (~/.cache/uv)'}")


if __name__ == "__main__":
    main()

"""Write a benchmark's results into its own section of docs/BENCHMARKS.md.

Each script owns one section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
re-running a script replaces only its section, so scripts never overwrite each other. ``make bench``
(bench/run_all.py) points ``BENCH_DOC`` at a scratch file, so the scripts it runs write there, and then
puts their sections in the generated part of docs/BENCHMARKS.md (between ``<!-- bench:begin -->`` and
``<!-- bench:end -->``); a script run alone still writes its own section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import sys
from pathlib import Path

DOC = Path(os.environ.get("BENCH_DOC") or Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md")
HEADER = """# Benchmarks

Every figure here was printed by a script in `bench/`, run on this project's machine kind
(2 cores, 24 GiB). Each script measures its floor (the bare library or database operation) in the
same run and reports the ratio, so the figures compare like with like. Re-run a section with the
command shown under its heading.
"""


def machine() -> str:
    return f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()} · {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])


def write_section(name: str, title: str, body_markdown: str) -> Path:
    """Replace (or append) the section ``name`` with ``title``, the command that ran, and ``body_markdown``."""
    text = DOC.read_text() if DOC.exists() else HEADER
    block = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command_line()}`  \nRun: {machine()}\n\n{body_markdown.strip()}\n<!-- /bench:{name} -->"
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    return DOC


def table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table from dict rows."""
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(out)

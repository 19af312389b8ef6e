"""Every benchmark script still starts: ``python bench/X.py --help`` exits 0 with its usage.

The scripts run by hand or through ``make bench``, never in CI, so a renamed import broke one silently
(``bench/fanout.py`` imported a constant ``bench/aggregate.py`` no longer had). This catches that kind of
break without running the benchmarks."""

from __future__ import annotations

import subprocess
import sys

from tests.platform.processes import ROOT

SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if '__name__ == "__main__"' in p.read_text())


def test_every_bench_script_prints_its_usage():
    assert len(SCRIPTS) >= 10  # the glob found the scripts (not an empty loop)
    running = {p.name: subprocess.Popen([sys.executable, str(p), "--help"], cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True) for p in SCRIPTS}
    failed = {}
    for name, proc in running.items():
        out, _ = proc.communicate(timeout=180)
        if proc.returncode != 0 or "usage:" not in out:
            failed[name] = out[-500:]
    assert not failed, failed

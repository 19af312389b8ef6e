"""Benchmark: the A/B statistics engine alone (no database), each figure beside its floor.

The floor is ``scipy.stats.chi2_contingency`` on the same 5-arm table: the one library call that does part of
the same work. ``stats.proportions_test`` does more (per-arm z-tests, the score interval of each relative lift,
Holm), so its ratio says what that extra work costs. This replaces the wall-clock assertion that used to sit in
``tests/abtests/test_stats.py``: speed is measured here, never asserted in a test.

Usage::

    .venv/bin/python bench/abtests_stats.py [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy.stats import chi2_contingency  # noqa: E402

from abtests import stats  # noqa: E402
from bench.report import table, write_section  # noqa: E402


def per_call(fn, number: int) -> float:
    """Best of five rounds of ``number`` calls, in seconds per call (the least disturbed round)."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args()

    users = [200_000] * 5
    conversions = [10_000, 10_200, 9_900, 10_500, 10_100]
    contingency = np.array([conversions, [u - c for u, c in zip(users, conversions, strict=True)]])
    ours = stats.proportions_test(users, conversions)
    reference = chi2_contingency(contingency, correction=False)
    assert abs(ours.chi2 - reference[0]) <= 1e-9 * reference[0]  # same work before timing it

    floor = per_call(lambda: chi2_contingency(contingency, correction=False), 2000)
    rows = [("scipy.stats.chi2_contingency (floor)", floor)]
    for what, fn, number in [
        ("stats.proportions_test (chi2 + z-tests + score intervals + Holm)",
         lambda: stats.proportions_test(users, conversions), 500),
        ("stats.sequential_test (always-valid p + confidence sequences)",
         lambda: stats.sequential_test(users, conversions, planned_users=400_000), 2000),
        ("stats.welch_test (t-tests + Fieller intervals)",
         lambda: stats.welch_test([10.0, 10.2, 9.9, 10.5, 10.1], [90.0] * 5, users), 2000),
        ("stats.srm_p_value", lambda: stats.srm_p_value(users, [0.2] * 5), 2000),
        ("stats.chance_to_beat_control (quadrature)", lambda: stats.chance_to_beat_control(users, conversions), 200),
    ]:
        rows.append((what, per_call(fn, number)))
    out = [{"what": w, "per call": f"{t * 1e6:.0f} µs", "ratio": f"{t / floor:.2f}"} for w, t in rows]
    print(table(out, ["what", "per call", "ratio"]))
    if not args.no_write:
        body = ("5 arms of 200,000 users each; best of 5 rounds per figure (the machine is shared: the ratios move "
                "less than the absolute times).\n\n" + table(out, ["what", "per call", "ratio"]))
        print("wrote", write_section("abtests_stats", "A/B statistics engine alone (5 arms)", body))


if __name__ == "__main__":
    main()

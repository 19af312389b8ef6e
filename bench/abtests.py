"""Benchmark: analysing a running A/B test with 1 million assignments on PostgreSQL, and the statistics alone.

Two measurements, each beside a floor taken in the same run:

1. The whole analysis through the service (``services.abtest_analyze``: one grouped pass over the campaign's
   conversions, opens and clicks joined to the assignments, CUPED pre-period sums included, the statistics
   of the goal, two secondary metrics and a guardrail, the decision, the stored result row), beside a bare
   ``SELECT COUNT(*)`` of the test's assignments. Goal: under 300 ms. The data are checked first: each
   assignment converts independently at its planted rate, and the counted converters per arm must be
   within 6 standard deviations of the planted number.
2. The statistics alone for a 5-arm table (``stats.proportions_test``: chi-squared, per-arm z-tests,
   delta-method intervals, Holm), beside ``scipy.stats.chi2_contingency`` on the same table. Goal: within 2x.

Usage (PostgreSQL only; the data is built with set-based SQL and removed afterwards unless --keep)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mai_bench .venv/bin/python bench/abtests.py [--users 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from scipy.stats import chi2_contingency  # noqa: E402

from abtests import analysis, rollup, selectors, services, stats  # noqa: E402
from abtests.models import ABTest, ABTestArmSums, ABTestCustomerOutcome  # noqa: E402
from bench.report import table, write_section  # noqa: E402
from campaigns.models import Campaign, Customer, Event  # noqa: E402

PREFIX = "bench_ab_"
GOAL_S = 0.300  # the whole analysis of a 1M-assignment test, with the new metrics and CUPED


# Per-row draws come from a hash of the customer id and a salt, not random(): PostgreSQL may evaluate an
# uncorrelated random() once for a whole query (the earlier builder drew one time offset for all rows and
# one conversion draw per variant, and counted 0 converters). A hash gives each assignment its own,
# independent and reproducible uniform number in [0, 1).
def _uniform(salt: str) -> str:
    return f"((hashtext(a.customer_id::text || '{salt}') & 2147483647)::float8 / 2147483648.0)"


PRE_SHARE = 0.3  # customers who converted in the campaign in the 4 weeks before the test (CUPED's covariate)
PRE_FACTOR = 2.5  # they convert in the test this much more often than the average
OPEN_RATE, CLICK_RATE = 0.2, 0.05  # secondary metric and guardrail events, the same in every arm
CONVERSION_OFFSET_DAYS = (-0.5, 3.5)  # conversion time after assignment; the negative part is not counted
OTHER_CAMPAIGN_SHARE = 0.05  # conversions in another campaign: not counted


def build(users: int, arms: int, rate: float, lift: float, noise_events: int) -> ABTest:
    """A running test with ``users`` assignments. Each assignment converts independently: with
    probability ``rate`` (x (1 + lift) in the last arm), higher for customers with a pre-period conversion
    and lower for the others (the average stays ``rate``); plus opens and clicks, and conversions that must
    not count (before assignment, in another campaign)."""
    cleanup()
    campaign = Campaign.objects.create(campaign_id=f"{PREFIX}camp", name="A/B benchmark")
    other = Campaign.objects.create(campaign_id=f"{PREFIX}other", name="A/B benchmark (other campaign)")
    test = services.abtest_create(
        campaign_id=campaign.campaign_id, test_name="bench", sample_size_target=users,
        variants=[services.VariantSpec(name=f"v{i}", weight=1 / arms) for i in range(arms - 1)]
        + [services.VariantSpec(name=f"v{arms - 1}", weight=1 - (arms - 1) / arms)],
        secondary_metrics=["revenue_per_user", "open_rate"], guardrail_metrics=["click_rate"],
    )
    services.abtest_start(test=test)
    started = timezone.now() - dt.timedelta(days=10)
    ABTest.objects.filter(pk=test.pk).update(started_at=started)
    variant_pks = [v.pk for v in test.ordered_variants]
    rates = [rate] * (arms - 1) + [rate * (1 + lift)]
    low_factor = (1 - PRE_SHARE * PRE_FACTOR) / (1 - PRE_SHARE)
    assignments = selectors.ABTestAssignment._meta.db_table
    events = Event._meta.db_table
    lo, hi = CONVERSION_OFFSET_DAYS
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {Customer._meta.db_table} (customer_id, timezone, created_at) "
            "SELECT %s || g, 'UTC', now() FROM generate_series(1, %s) g",
            [PREFIX, users],
        )
        # Arms by a hash of the id (the same fair split the app's hashing gives; hashing is not what is timed).
        cur.execute(
            f"""
            INSERT INTO {assignments} (test_id, customer_id, variant_id, assigned_at)
            SELECT %s, c.id, (%s::bigint[])[1 + abs(hashtext(c.customer_id)) %% %s],
                   %s + ((hashtext(c.customer_id || 'at') & 2147483647)::float8 / 2147483648.0) * interval '5 days'
            FROM {Customer._meta.db_table} c WHERE c.customer_id LIKE %s
            """,
            [test.pk, variant_pks, arms, started, PREFIX + "%"],
        )
        pre = f"{_uniform('pre')} < {PRE_SHARE}"
        # Pre-period conversions (before the start, within CUPED's 4 weeks).
        cur.execute(
            f"""
            INSERT INTO {events} (event_id, type, occurred_at, received_at, customer_id, campaign_id, variant, amount)
            SELECT %s || 'p' || a.id, 'conversion', %s - (1 + 26 * {_uniform('pt')}) * interval '1 day', now(),
                   a.customer_id, %s, '', round((10 + 90 * {_uniform('pa')})::numeric, 2)
            FROM {assignments} a WHERE a.test_id = %s AND {pre}
            """,
            [PREFIX, started, campaign.pk, test.pk],
        )
        # In-test conversions: one independent draw per assignment at its own rate.
        cur.execute(
            f"""
            INSERT INTO {events} (event_id, type, occurred_at, received_at, customer_id, campaign_id, variant, amount)
            SELECT %s || 'c' || a.id, 'conversion', a.assigned_at + t.d, a.assigned_at + t.d, a.customer_id,
                   CASE WHEN {_uniform('oc')} < %s THEN %s ELSE %s END, '',
                   round((10 + 90 * {_uniform('ca')})::numeric, 2)
            FROM {assignments} a
            JOIN unnest(%s::bigint[], %s::float8[]) AS r(variant_id, rate) ON r.variant_id = a.variant_id
            CROSS JOIN LATERAL (SELECT (%s + (%s - %s) * {_uniform('ct')}) * interval '1 day' AS d) t
            WHERE a.test_id = %s
              AND {_uniform('cv')} < r.rate * CASE WHEN {pre} THEN %s ELSE %s END
            """,
            [PREFIX, OTHER_CAMPAIGN_SHARE, other.pk, campaign.pk, variant_pks, rates, lo, hi, lo, test.pk,
             PRE_FACTOR, low_factor],
        )
        for kind, tag, share in (("notification_opened", "o", OPEN_RATE), ("click", "k", CLICK_RATE)):
            cur.execute(
                f"""
                INSERT INTO {events} (event_id, type, occurred_at, received_at, customer_id, campaign_id, variant)
                SELECT %s || %s || a.id, %s, a.assigned_at + interval '2 hours', now(), a.customer_id, %s, ''
                FROM {assignments} a WHERE a.test_id = %s AND {_uniform(kind)} < %s
                """,
                [PREFIX, tag, kind, campaign.pk, test.pk, share],
            )
        cur.execute(
            f"""
            INSERT INTO {events}
                (event_id, type, occurred_at, received_at, customer_id, campaign_id, variant)
            SELECT %s || 'v' || g, 'view', now() - random() * interval '10 days', now(), c.id, %s, ''
            FROM generate_series(1, %s) g
            JOIN {Customer._meta.db_table} c ON c.customer_id = %s || (1 + g %% %s)
            """,
            [PREFIX, campaign.pk, noise_events, PREFIX, users],
        )
    # The rows above were written by set-based SQL, past the ingestion and assignment hooks: build the
    # test's rollup from them, as the data migration / ``manage.py rebuild_abtest_rollups`` do.
    t0 = time.perf_counter()
    rollup.rebuild(test=selectors.abtest_get(test_id=test.test_id))
    global REBUILD_S
    REBUILD_S = time.perf_counter() - t0
    # What autovacuum does to a live table: statistics, and the visibility map for index-only scans.
    with connection.cursor() as cur:
        for model in (Customer, Event, selectors.ABTestAssignment, ABTestCustomerOutcome, ABTestArmSums):
            cur.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return selectors.abtest_get(test_id=test.test_id)


REBUILD_S = 0.0


def check_plausible(test: ABTest, rates: list[float]) -> list[dict]:
    """Counted converters, opens and clicks per arm must match what was planted: within 6 standard
    deviations of users x rate x the share of conversions that count. A builder that plants nothing
    (or everything) stops the benchmark here."""
    arms = selectors.arm_totals(test=test)
    lo, hi = CONVERSION_OFFSET_DAYS
    counted_share = (hi / (hi - lo)) * (1 - OTHER_CAMPAIGN_SHARE)
    binary = selectors.metric_arms(test=test, names=["open_rate", "click_rate"])
    rows = []
    for i, arm in enumerate(arms):
        for what, observed, p in (("converters", arm.conversions, rates[i] * counted_share),
                                  ("openers", binary["open_rate"][i].total, OPEN_RATE),
                                  ("clickers", binary["click_rate"][i].total, CLICK_RATE)):
            expected = arm.users * p
            sd = (arm.users * p * (1 - p)) ** 0.5
            ok = abs(observed - expected) <= 6 * sd
            rows.append({"arm": arm.name, "what": what, "users": f"{arm.users:,}", "observed": f"{int(observed):,}",
                         "expected": f"{expected:,.0f}", "ok": "yes" if ok else "NO"})
            if not ok:
                raise SystemExit(f"implausible data: {arm.name} has {observed:,} {what}, expected about {expected:,.0f}")
    return rows


def cleanup() -> None:
    with transaction.atomic():
        ABTest.objects.filter(campaign__campaign_id__startswith=PREFIX).delete()
        with connection.cursor() as cur:
            cur.execute(f"DELETE FROM {Event._meta.db_table} WHERE event_id LIKE %s", [PREFIX + "%"])
            cur.execute(f"DELETE FROM {Customer._meta.db_table} WHERE customer_id LIKE %s", [PREFIX + "%"])
        Campaign.objects.filter(campaign_id__startswith=PREFIX).delete()


def timed(fn, repeat: int) -> tuple[float, list[float]]:
    """(first call, the following ``repeat`` calls) in seconds."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return first, runs


def interleaved(fns: list, repeat: int) -> list[tuple[float, list[float]]]:
    """(first call, the following ``repeat`` calls) per function, the calls of each round back to back."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat + 1):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [(t[0], t[1:]) for t in times]


def per_call(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000, help="assignments in the test (default 1,000,000)")
    parser.add_argument("--arms", type=int, default=2, help="arms of the database test (default 2)")
    parser.add_argument("--rate", type=float, default=0.05, help="control conversion rate")
    parser.add_argument("--lift", type=float, default=0.04, help="relative lift of the last arm")
    parser.add_argument("--noise-events", type=int, default=500_000, help="unrelated view events in the campaign")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs after the first")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark rows afterwards")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    parser.add_argument("--no-stats", action="store_true", help="skip part 2 (the statistics alone)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/abtests.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)

    load_before = os.getloadavg()[0]
    # --- 2. statistics alone, 5 arms ---------------------------------------------------------------
    t_scipy = t_ours = 1.0
    stats_rows: list[dict] = []
    if not args.no_stats:
        rng = np.random.default_rng(1)
        users5 = rng.integers(150_000, 250_000, 5)
        conv5 = rng.binomial(users5, [0.05, 0.051, 0.052, 0.05, 0.055])
        table5 = np.vstack([conv5, users5 - conv5]).T
        ours = stats.proportions_test(users5.tolist(), conv5.tolist())
        ref = chi2_contingency(table5, correction=False)
        assert abs(ours.chi2 - ref[0]) <= 1e-9 * ref[0] and abs(ours.p_value - ref[1]) <= 1e-9 * max(ref[1], 1e-300)
        users5_l, conv5_l = users5.tolist(), conv5.tolist()
        t_scipy = per_call(lambda: chi2_contingency(table5, correction=False), 2000)
        t_ours = per_call(lambda: stats.proportions_test(users5_l, conv5_l), 2000)
        arms5 = [analysis.Arm(name=f"v{i}", weight=0.2, users=u, conversions=c) for i, (u, c) in
                 enumerate(zip(users5_l, conv5_l, strict=True))]
        config5 = analysis.Config(confidence_level=0.95, sample_size_target=int(users5.sum()))
        t_decision = per_call(lambda: analysis.analyze(arms=arms5, config=config5), 200)
        stats_rows = [
            {"what": "scipy.stats.chi2_contingency (floor)", "per call": f"{t_scipy * 1e6:.0f} µs", "ratio": "1.00"},
            {"what": "stats.proportions_test (chi2 + z-tests + CIs + Holm)", "per call": f"{t_ours * 1e6:.0f} µs",
             "ratio": f"{t_ours / t_scipy:.2f}"},
            {"what": "analysis.analyze (+ SRM, Bayes, decision)", "per call": f"{t_decision * 1e6:.0f} µs",
             "ratio": f"{t_decision / t_scipy:.2f}"},
        ]
    print(table(stats_rows, ["what", "per call", "ratio"]))

    # --- 1. whole analysis on PostgreSQL ---------------------------------------------------------------
    t0 = time.perf_counter()
    test = build(args.users, args.arms, args.rate, args.lift, args.noise_events)
    build_s = time.perf_counter() - t0
    assigned = selectors.users_assigned(test=test)
    print(f"built {assigned:,} assignments in {build_s:.1f} s (rollup rebuild {REBUILD_S:.1f} s of it)")
    planted = [args.rate] * (args.arms - 1) + [args.rate * (1 + args.lift)]
    plausible_rows = check_plausible(test, planted)
    types = ["conversion", "notification_opened", "click"]
    kept, raw = selectors.arm_sums(test=test, event_types=types), selectors.arm_sums_from_events(test=test, event_types=types)
    for k, r in zip(kept, raw, strict=True):  # the rollup read equals the raw-event pass at this scale too
        assert k.users == r.users and all(
            abs(getattr(k.by_type[t], f) - getattr(r.by_type[t], f)) <= 1e-9 * max(1.0, abs(getattr(r.by_type[t], f)))
            for t in types for f in ("customers", "y", "y_sq", "x_customers", "x", "x_sq", "xy_customers", "xy")), (k, r)
    print("rollup sums equal the raw-event pass (rel 1e-9)")
    print(table(plausible_rows, ["arm", "what", "users", "observed", "expected", "ok"]))
    try:
        def count_floor():
            with connection.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {selectors.ABTestAssignment._meta.db_table} WHERE test_id = %s",
                            [test.pk])
                cur.fetchone()

        # Interleaved rounds, so drifting load on the shared machine hits every measurement alike.
        measured = [
            ("SELECT COUNT(*) of the test's assignments (floor)", count_floor),
            ("selectors.arm_sums_from_events (the previous path: one grouped pass over the raw events, 3 types + CUPED)",
             lambda: selectors.arm_sums_from_events(test=test, event_types=["conversion", "notification_opened", "click"])),
            ("selectors.arm_sums (the rollup kept at ingestion: the analysis' read, 3 types + CUPED)",
             lambda: selectors.arm_sums(test=test, event_types=["conversion", "notification_opened", "click"])),
            ("services.abtest_analyze (whole analysis: rollup read + stats + CUPED + metrics + risk + SRM + decision + row)",
             lambda: services.abtest_analyze(test=test)),
            ("selectors.abtest_status (GET .../status)", lambda: selectors.abtest_status(test=test)),
            ("selectors.results_over_time (GET .../over-time, 3 metrics by day; counted events grouped per customer-day)",
             lambda: selectors.results_over_time(test=test)),
            ("selectors._breakdown_rows by segment from the raw events (the path of a test without a kept rollup)",
             lambda: selectors._breakdown_rows(test, "segment", from_events=True)),
            ("selectors.breakdown by segment (the test page's; a kept test: its outcome rows)",
             lambda: selectors.breakdown(test=test, by="segment")),
        ]
        # Interleaved rounds, so drifting load on the shared machine hits every measurement alike.
        timings = interleaved([fn for _, fn in measured], args.repeat)
        result = services.abtest_analyze(test=test)
        med = statistics.median
        floor = med(timings[0][1])
        db_rows = [
            {"what": what, "first": f"{first * 1e3:.0f} ms", "median": f"{med(runs) * 1e3:.0f} ms",
             "ratio": f"{med(runs) / floor:.2f}"}
            for (what, _), (first, runs) in zip(measured, timings, strict=True)
        ]
        print(table(db_rows, ["what", "first", "median", "ratio"]))
        whole = med(next(runs for (what, _), (_, runs) in zip(measured, timings, strict=True)
                         if what.startswith("services.abtest_analyze")))
        verdict = "meets" if whole < GOAL_S else "misses"
        cuped = result.cuped
        cuped_line = (f"CUPED applied to the goal: variance reduction {100 * cuped['variance_reduction']:.1f} % "
                      f"(correlation {cuped['correlation']:.2f}, theta {cuped['theta']:.3f})" if cuped.get("applied")
                      else f"CUPED not applied: {cuped.get('reason')}")
        print(cuped_line)
        stats_verdict = "meets" if t_ours <= 2 * t_scipy else "misses"
        print(f"whole analysis {whole * 1e3:.0f} ms ({verdict} < {GOAL_S * 1e3:.0f} ms); statistics {t_ours / t_scipy:.2f}x scipy "
              f"({stats_verdict} <= 2x); decision: {result.decision} {result.reason}")
        if not args.no_write:
            body = (
                f"Scale: {assigned:,} assignments in {args.arms} arms, "
                f"{result.variants[0]['conversions'] + sum(v['conversions'] for v in result.variants[1:]):,} "
                f"converters, {args.noise_events:,} unrelated events in the campaign; PostgreSQL "
                f"{connection.pg_version // 10000}; data built by set-based SQL in {build_s:.0f} s (of which the rollup rebuild "
                f"from the raw rows, `rollup.rebuild`, {REBUILD_S:.1f} s); "
                f"load average during the run {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
                f"(the machine is shared: absolute times move with its load, the ratios much less; "
                f"the measurements run interleaved, median of {args.repeat} rounds after a first).\n\n"
                "The data are checked before timing: each assignment converts independently at its planted rate "
                "(hash-based draws), and the counted converters, openers and clickers per arm are within 6 "
                "standard deviations of what was planted:\n\n"
                + table(plausible_rows, ["arm", "what", "users", "observed", "expected", "ok"])
                + f"\n\nThe test has secondary metrics revenue per user and open rate, guardrail click rate; "
                f"{cuped_line}.\n\n"
                f"**Whole analysis** (`services.abtest_analyze`, median of {args.repeat} after a first run): "
                f"{whole * 1e3:.0f} ms — goal < {GOAL_S * 1e3:.0f} ms: {verdict}.\n\n"
                + table(db_rows, ["what", "first", "median", "ratio"])
                + f"\n\n**Statistics alone, 5 arms** (best of 5 x 2000 calls): {t_ours / t_scipy:.2f}x "
                f"`scipy.stats.chi2_contingency` — goal <= 2x: {stats_verdict}. Same chi2 and p-value to 1e-9.\n\n"
                + table(stats_rows, ["what", "per call", "ratio"])
            )
            print("wrote", write_section("abtests", "A/B testing: analysis of a 1M-assignment test", body))
    finally:
        if not args.keep:
            cleanup()


if __name__ == "__main__":
    main()

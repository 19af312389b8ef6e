"""Benchmark the optimiser's ML work on PostgreSQL: training and the two per-customer jobs.

    python bench/optimizer.py                                   # the issue's scale: 1M customers, 5,000 merchants, 10M events
    python bench/optimizer.py --customers 100000 --merchants 1000 --events 1000000   # what a busy shared machine affords

Data comes from ``seed_demo`` in a dedicated database (rebuilt when the scale changes, reused
otherwise). Timed in the same run:

- training of each model: our data preparation (``optimizer.features`` queries into pandas /
  sparse matrices), our fit (learner selection, holdout metrics) and registration (skops dump,
  sha256), next to the **bare library call on the same prepared matrices** (the chosen
  scikit-learn estimator's ``fit``; for affinity the sparse ``X.T @ X`` at its core; for send
  time the posterior/argmax numpy expression; for offer response the pandas group-by of the sends and conversions grid);
- the two propensity models (conversion, engagement) also beside their **floor** (issue 15): a data
  scientist's script, ``pandas.read_sql`` of one hand-written query yielding the same features and
  label per customer (``PROPENSITY_FEATURES_SQL``; the bench checks the frame equals ours), then the
  chosen scikit-learn estimator with the same hyper-parameters behind the same scaler, fitted once;
  ``--repeat`` interleaved runs of ours and of the floor, medians compared (goal <= 1.5x per model);
- ``send_times`` and ``merchant_affinity`` jobs end to end (read, score, write every customer's
  rows), next to the bare scoring call on the same prepared matrix.
"Overhead" is (ours - bare) / bare. Goals (issue 6): affinity for all customers < 10 min, send
times < 2 min; (issue 15) ``train_all`` < 60 s at 1M customers, each propensity model <= 1.5x its floor.
The send-time, affinity and offer-response models have no scikit-learn fit: they keep the bare-call column only.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# seed_demo makes ~1.09 events per customer-day per unit of sends_per_day (1.64 at its default 1.5).
EVENTS_PER_CUSTOMER_DAY_PER_SEND_RATE = 1.64 / 1.5


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--merchants", type=int, default=5_000)
    p.add_argument("--events", type=int, default=10_000_000, help="target number of events")
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--campaigns", type=int, default=150)
    p.add_argument("--database", default="mai_bench_optimizer", help="PostgreSQL database (created if missing)")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--reuse", action="store_true",
                   help="use the data already in --database whatever its scale (never rebuild; the default rebuilds when the scale differs)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of each propensity model's training and of its floor (medians reported)")
    p.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md")
    return p.parse_args()


def ensure_database(server: str, name: str, *, fresh: bool = False) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


# --- the floor of the two propensity models: a data scientist's script ---------------------------
# One SQL query (read with ``pandas.read_sql`` on a plain psycopg connection) that yields the model's
# features and labels per customer as of a cut-off, written from the feature definitions in
# optimizer/features.py; then the chosen scikit-learn estimator (same hyper-parameters) behind the same
# MinMaxScaler, fitted once. No learner selection, no holdout metrics, no registration: the bare work.
PROPENSITY_FEATURES_SQL = """
WITH h AS (
  SELECT customer_id,
         COUNT(*) FILTER (WHERE type = 'notification_sent') AS sent,
         COUNT(*) FILTER (WHERE type = 'notification_opened') AS opens,
         COUNT(*) FILTER (WHERE type = 'view') AS views,
         COUNT(*) FILTER (WHERE type = 'click') AS clicks,
         COUNT(*) FILTER (WHERE type = 'conversion') AS conversions,
         COALESCE(SUM(amount) FILTER (WHERE type = 'conversion'), 0)::float8 AS revenue,
         MAX(occurred_at) AS last_event, MIN(occurred_at) AS first_event,
         MAX(occurred_at) FILTER (WHERE type = 'conversion') AS last_conversion,
         MAX(occurred_at) FILTER (WHERE type = 'notification_opened') AS last_open
  FROM campaigns_event WHERE customer_id IS NOT NULL AND occurred_at < %(as_of)s GROUP BY customer_id
), labels AS (
  SELECT customer_id, bool_or(type = 'conversion') AS converted, bool_or(type = 'notification_opened') AS opened
  FROM campaigns_event
  WHERE customer_id IS NOT NULL AND occurred_at >= %(as_of)s AND occurred_at < %(until)s
    AND type IN ('conversion', 'notification_opened')
  GROUP BY customer_id
), local_hours AS (  -- opens per customer and hour of their own clock
  SELECT e.customer_id, EXTRACT(HOUR FROM e.occurred_at AT TIME ZONE c.timezone)::int AS hour, COUNT(*) AS n
  FROM campaigns_event e JOIN campaigns_customer c ON c.id = e.customer_id
  WHERE e.type = 'notification_opened' AND e.occurred_at < %(as_of)s GROUP BY 1, 2
), concentration AS (  -- the busiest 3-hour window (wrapping round midnight) / all opens
  SELECT w.customer_id, MAX(w.mass)::float8 / GREATEST(MAX(t.total), 1) AS share
  FROM (SELECT centre.customer_id, SUM(o.n) AS mass
        FROM (SELECT DISTINCT customer_id, (hour + d + 24) %% 24 AS hour FROM local_hours, (VALUES (-1), (0), (1)) AS s(d)) centre
        JOIN local_hours o ON o.customer_id = centre.customer_id
         AND LEAST(abs(o.hour - centre.hour), 24 - abs(o.hour - centre.hour)) <= 1
        GROUP BY centre.customer_id, centre.hour) w
  JOIN (SELECT customer_id, SUM(n) AS total FROM local_hours GROUP BY 1) t ON t.customer_id = w.customer_id
  GROUP BY w.customer_id
), f AS (
  SELECT c.id AS customer_pk, s.name AS segment, c.signup_date, c.created_at,
         COALESCE(h.sent, 0) AS sent, COALESCE(h.opens, 0) AS opens, COALESCE(h.views, 0) AS views,
         COALESCE(h.clicks, 0) AS clicks, COALESCE(h.conversions, 0) AS conversions, COALESCE(h.revenue, 0) AS revenue,
         EXTRACT(EPOCH FROM %(as_of)s - h.last_event)::float8 / 86400 AS recency_days,
         EXTRACT(EPOCH FROM %(as_of)s - h.last_conversion)::float8 / 86400 AS recency_conversion_days,
         EXTRACT(EPOCH FROM %(as_of)s - h.last_open)::float8 / 86400 AS recency_open_days,
         COALESCE(EXTRACT(EPOCH FROM h.last_event - h.first_event)::float8 / 86400, 0) AS active_span_days,
         GREATEST(EXTRACT(EPOCH FROM %(as_of)s - COALESCE(c.signup_date::timestamp AT TIME ZONE 'UTC', h.first_event,
                                                          c.created_at))::float8 / 86400, 0) AS tenure_days,
         COALESCE(q.share, 0) AS open_hour_concentration,
         COALESCE(l.converted, false)::int AS converted_next, COALESCE(l.opened, false)::int AS opened_next
  FROM campaigns_customer c
  LEFT JOIN campaigns_segment s ON s.id = c.segment_id
  LEFT JOIN h ON h.customer_id = c.id
  LEFT JOIN labels l ON l.customer_id = c.id
  LEFT JOIN concentration q ON q.customer_id = c.id
  WHERE c.signup_date IS NULL OR c.signup_date::timestamp AT TIME ZONE 'UTC' <= %(as_of)s
)
SELECT customer_pk, sent, opens, views, clicks, conversions, revenue,
       CASE WHEN conversions > 0 THEN revenue / conversions ELSE 0 END AS avg_order_value,
       recency_days, recency_conversion_days, recency_open_days, active_span_days, tenure_days,
       LEAST(CASE WHEN sent > 0 THEN opens::float8 / sent ELSE 0 END, 1) AS open_rate,
       LEAST(CASE WHEN GREATEST(views, opens) > 0 THEN clicks::float8 / GREATEST(views, opens) ELSE 0 END, 1) AS click_rate,
       LEAST(CASE WHEN sent > 0 THEN conversions::float8 / sent ELSE 0 END, 1) AS conversion_rate,
       COALESCE(opens / (1 + recency_days), 0) AS open_recency_score,
       COALESCE(conversions / (1 + recency_days), 0) AS conversion_recency_score,
       (segment IS NOT DISTINCT FROM 'new_users')::int AS segment_new_users,
       (segment IS NOT DISTINCT FROM 'returning_users')::int AS segment_returning_users,
       (segment IS NOT DISTINCT FROM 'high_value_users')::int AS segment_high_value_users,
       open_hour_concentration, converted_next, opened_next
FROM f ORDER BY customer_pk
"""


def script_matrix(frame, features: list[str]):
    """The script's own preparation: no history means a recency as long as the longest seen, other gaps 0."""
    x = frame[features].astype(float)
    for col in features:
        if col.startswith("recency"):
            x[col] = x[col].fillna(x[col].max() if x[col].notna().any() else 0.0)
    return x.fillna(0.0).to_numpy()


def script_fit(url: str, as_of, until, features: list[str], label: str, algorithm: str, threads: int):
    """The data scientist's script for one propensity model: read_sql of the features, then the same fit.

    Returns (read seconds, fit seconds, the frame read)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from threadpoolctl import threadpool_limits

    from optimizer.ml import propensity

    t_read, frame = script_read(url, as_of, until)
    t0 = time.perf_counter()
    x, y = script_matrix(frame, features), frame[label].to_numpy(int)
    estimator = propensity.candidates(0, len(x))[algorithm]  # the chosen learner's hyper-parameters
    with threadpool_limits(threads):
        make_pipeline(MinMaxScaler(clip=True), estimator).fit(x, y)
    return t_read, time.perf_counter() - t0, frame


def script_read(url: str, as_of, until):
    """The data scientist's read of one customer frame (``PROPENSITY_FEATURES_SQL``): (seconds, frame)."""
    import pandas as pd
    import psycopg

    with psycopg.connect(url) as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pandas only supports SQLAlchemy")  # a DB-API connection works
        t0 = time.perf_counter()
        frame = pd.read_sql(PROPENSITY_FEATURES_SQL, conn, params={"as_of": as_of, "until": until})
        return time.perf_counter() - t0, frame


def active_artifact(training, model_type: str) -> dict:
    loaded = training.load_active(model_type)
    assert loaded is not None, f"no active {model_type} model after training"
    return loaded.artifact


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    args = parse_args()
    ensure_database(args.server, args.database)
    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")
    os.environ.setdefault("MODEL_ARTIFACT_DIR", str(ROOT / "var" / "bench_models"))
    import django

    django.setup()
    logging.getLogger("optimizer").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from campaigns.models import Customer, Event, Merchant

    sends_per_day = args.events / (args.customers * args.days * EVENTS_PER_CUSTOMER_DAY_PER_SEND_RATE)
    # seed_demo overshoots the event target (12.97M for 10M at the default scale), hence the wide band.
    same_scale = (
        Customer.objects.count() == args.customers and Merchant.objects.count() == args.merchants
        and 0.8 * args.events <= Event.objects.count() <= 1.5 * args.events
    ) or (args.reuse and Customer.objects.exists())
    if not same_scale:
        print(f"building {args.customers:,} customers, {args.merchants:,} merchants, ~{args.events:,} events "
              f"(sends_per_day {sends_per_day:.3f}) with seed_demo ...", flush=True)
        connection.close()
        ensure_database(args.server, args.database, fresh=True)
        call_command("migrate", verbosity=0)
        from campaigns.demo_load import seed_demo

        t, _ = timed(lambda: seed_demo(customers=args.customers, merchants=args.merchants, campaigns=args.campaigns,
                                       days=args.days, seed=21, sends_per_day=sends_per_day, replace=True))
        print(f"seed_demo: {t:.0f} s", flush=True)
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    n_events = Event.objects.count()
    n_customers, n_merchants = Customer.objects.count(), Merchant.objects.count()
    print(f"{n_customers:,} customers, {n_merchants:,} merchants, {n_events:,} events", flush=True)
    load_start = os.getloadavg()
    print(f"load average at start (1/5/15 min): {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}", flush=True)

    import numpy as np
    from threadpoolctl import threadpool_limits

    from optimizer import features, registry
    from optimizer.ml import affinity, conversion, engagement, offer_response, propensity, send_time
    from optimizer.ml.metrics import window_mass
    from optimizer.models import ModelType
    from optimizer.services import training

    split = features.time_split()
    rows: list[dict] = []
    floor_rows: list[dict] = []
    floor_goals: list[str] = []

    def record(step: str, prepare: float, ours: float, bare: float, register: float = 0.0, note: str = "") -> None:
        total = prepare + ours + register
        overhead = (total - bare) / bare if bare > 0 else float("inf")
        rows.append({"step": step, "prepare s": f"{prepare:.2f}", "fit/score s": f"{ours:.2f}", "register/write s": f"{register:.2f}",
                     "total s": f"{total:.2f}", "bare s": f"{bare:.3f}", "overhead x bare": f"{overhead:.1f}", "note": note})
        print(f"{step:28s} prepare {prepare:7.2f}  ours {ours:7.2f}  reg/write {register:6.2f}  total {total:7.2f}  "
              f"bare {bare:7.3f}  overhead {overhead:6.1f}x  {note}", flush=True)

    # --- training, model by model ------------------------------------------------------------------
    training_total = 0.0
    # Conversion and engagement, each beside its floor (a data scientist's read_sql + the same fit), interleaved.
    propensity_models = ((ModelType.CONVERSION, conversion), (ModelType.ENGAGEMENT, engagement))
    ours_runs: dict[str, list[float]] = {m: [] for m, _ in propensity_models}
    floor_runs: dict[str, list[tuple[float, float]]] = {m: [] for m, _ in propensity_models}
    parts: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    selection_seconds: dict[str, float] = {}
    feature_check: dict[str, str] = {}
    # The one-time imports (scikit-learn's modules, its metrics, skops: ~1-3 s, once per process) are out of both
    # timings: the floor's script imports its libraries before its clock starts (script_fit), so ours does too.
    # Before, the first model trained (conversion) paid them alone, and the floor, run after it, found them loaded.
    def first_use_imports() -> None:
        import sklearn.metrics  # noqa: F401
        import skops.io  # noqa: F401  (its first import lists every scikit-learn estimator: the "register" second)

        propensity.load_scikit_learn()

    t_imports, _ = timed(first_use_imports)
    print(f"first-use imports (scikit-learn, skops; once per process, outside both timings): {t_imports:.2f} s", flush=True)
    for run in range(max(1, args.repeat)):
        t_prep, prop = timed(lambda: training.prepare_propensity(split))
        for model_type, module in propensity_models:
            t_fit, (artifact, metrics) = timed(lambda m=module, d=prop: m.fit(d.train, d.holdout, random_state=0))
            t_reg, _ = timed(lambda a=artifact, m=metrics, t=model_type: registry.register(t, a, m))
            ours_runs[model_type].append(t_prep / 2 + t_fit + t_reg)
            t_read, t_script_fit, frame = script_fit(
                os.environ["DATABASE_URL"], split.train_cutoff, split.cutoff, module.FEATURES, module.LABEL,
                metrics["algorithm"], propensity.THREADS)
            floor_runs[model_type].append((t_read, t_script_fit))
            if run == 0:
                x = artifact["scaler"].transform(propensity.matrix(prop.train, artifact["features"]))
                y = prop.train[artifact["label"]].to_numpy(int)
                bare_est = propensity.candidates(0, len(x))[metrics["algorithm"]]
                with threadpool_limits(propensity.THREADS):
                    t_bare, _ = timed(lambda e=bare_est, x=x, y=y: e.fit(x, y))
                # Where our fit's time goes: the learner selection (the race, propensity.race) alone, on the same rows.
                x_all = propensity.matrix(prop.train, module.FEATURES)
                with threadpool_limits(propensity.THREADS):
                    t_select, _ = timed(lambda x=x_all, y=y: propensity.race(x, y, random_state=0))
                selection_seconds[model_type] = t_select
                parts[model_type] = {"prepare": t_prep / 2, "fit": t_fit, "register": t_reg, "bare": t_bare}
                notes[model_type] = (
                    f"{metrics['algorithm']}, {len(x):,} rows, AUC {metrics['roc_auc']:.3f} (heuristic {metrics['heuristic_roc_auc']:.3f})")
                # The floor must compute the same features and labels: compare its frame with ours.
                ours_x = propensity.matrix(prop.train, [*module.FEATURES, module.LABEL])
                same_rows = frame["customer_pk"].to_numpy().tolist() == prop.train.index.to_numpy().tolist()
                diff = (float(np.max(np.abs(script_matrix(frame, [*module.FEATURES, module.LABEL]) - ours_x)))
                        if same_rows else float("inf"))
                feature_check[model_type] = (f"same {len(frame):,} customers and features (max abs difference {diff:.1e})"
                                             if diff < 1e-6 else f"DIFFERENT (rows equal: {same_rows}; max abs difference {diff:.1e})")
    for model_type, _ in propensity_models:
        p = parts[model_type]
        ours_med = statistics.median(ours_runs[model_type])
        read_med = statistics.median(r for r, _ in floor_runs[model_type])
        fit_med = statistics.median(f for _, f in floor_runs[model_type])
        floor_med = statistics.median(r + f for r, f in floor_runs[model_type])
        record(f"train {model_type}", p["prepare"], p["fit"], p["bare"], p["register"], notes[model_type])
        floor_rows.append({
            "model": model_type, "ours s (median)": f"{ours_med:.2f}",
            "ours runs s": ", ".join(f"{t:.2f}" for t in ours_runs[model_type]),
            "floor s (median)": f"{floor_med:.2f}", "floor read_sql s": f"{read_med:.2f}", "floor fit s": f"{fit_med:.2f}",
            "floor runs s": ", ".join(f"{r + f:.2f}" for r, f in floor_runs[model_type]),
            "ours / floor": f"{ours_med / floor_med:.2f}",
            "ours without the learner selection / floor": f"{(ours_med - selection_seconds[model_type]) / floor_med:.2f}", "floor computes the same features": feature_check[model_type],
        })
        floor_goals.append(f"- train {model_type} / its floor (read_sql + the same fit), medians of {len(ours_runs[model_type])}: "
                           f"**{ours_med / floor_med:.2f}x** (goal <= 1.5x): {'met' if ours_med <= 1.5 * floor_med else 'NOT met'}")
        training_total += ours_med

    t_prep, st = timed(lambda: training.prepare_send_time(split))
    t_fit, (artifact, metrics) = timed(lambda: send_time.fit(st.counts, st.segments, st.holdout_counts, n_segments=3))
    t_reg, _ = timed(lambda: registry.register(ModelType.SEND_TIME, artifact, metrics))
    t_bare, _ = timed(lambda: np.argmax(window_mass((st.counts + 5.0 * artifact["population"]) / (st.counts.sum(1, keepdims=True) + 5.0)), axis=1))
    record("train send_time", t_prep, t_fit, t_bare, t_reg, f"{int(st.counts.sum()):,} opens, hit rate {metrics['holdout_hit_rate']:.3f}")
    training_total += t_prep + t_fit + t_reg

    t_prep, aff = timed(lambda: training.prepare_affinity(split))
    t_fit, (artifact, metrics) = timed(lambda: affinity.fit(aff.weights, aff.holdout_purchases))
    artifact["merchant_pks"] = aff.merchant_pks
    t_reg, _ = timed(lambda: registry.register(ModelType.AFFINITY, artifact, metrics))
    t_bare, _ = timed(lambda: (aff.weights.T @ aff.weights).toarray())
    record("train affinity", t_prep, t_fit, t_bare, t_reg,
           f"{aff.weights.nnz:,} pairs, NDCG@10 {metrics['ndcg_at_10']:.3f} vs popularity {metrics['popularity_ndcg_at_10']:.3f}")
    training_total += t_prep + t_fit + t_reg

    t_prep, off = timed(lambda: training.prepare_offer_response(split))
    t_fit, (artifact, metrics) = timed(lambda: offer_response.fit(off.train, off.holdout))
    t_reg, _ = timed(lambda: registry.register(ModelType.OFFER_RESPONSE, artifact, metrics))
    # Floor: the posterior's core, the (segment x offer) sends and conversions grid from the same frame.
    t_bare, _ = timed(lambda: off.train.groupby(["segment", "offer_value"])[["sends", "conversions"]].sum())
    record("train offer_response", t_prep, t_fit, t_bare, t_reg, f"{int(off.train['sends'].sum()):,} sends, curve {artifact['curve']}")
    training_total += t_prep + t_fit + t_reg

    t_all, _ = timed(lambda: training.train_all())
    print(f"train_all (the job's function, end to end): {t_all:.1f} s", flush=True)
    # train_all's floor, its propensity part only: the script reads each of the split's two customer frames once
    # (the training frame above, the holdout frame here: promotion compares holdout metrics) and fits both models.
    # The other three models are left out, so this is a lower bound of a script that trains all five.
    t_read_holdout, _ = script_read(os.environ["DATABASE_URL"], split.cutoff, split.end)
    floor_propensity = (statistics.median(r for r, _ in floor_runs[ModelType.CONVERSION]) + t_read_holdout
                        + sum(statistics.median(f for _, f in floor_runs[m]) for m, _ in propensity_models))
    print(f"train_all's floor, propensity part (read_sql of the training and holdout frames + both fits): "
          f"{floor_propensity:.1f} s (holdout frame read {t_read_holdout:.1f} s)", flush=True)

    # --- the two per-customer jobs -----------------------------------------------------------------
    from marketing_ai import jobs

    t_job, _ = timed(lambda: jobs.run("send_times"))
    model = active_artifact(training, ModelType.SEND_TIME)
    counts = features.open_hour_counts(None, None).to_numpy()
    segs_codes = training.segment_codes(features.customers()["segment"])
    t_bare, _ = timed(lambda: send_time.recommend(model, counts, segs_codes))
    record("job send_times", 0.0, t_job, t_bare, 0.0, f"{n_customers:,} rows written (end to end; bare = recommend() on the prepared counts)")

    t_job, _ = timed(lambda: jobs.run("merchant_affinity"))
    model = active_artifact(training, ModelType.AFFINITY)
    inter = features.customer_merchant_interactions(None, split.end)
    weights = training.interaction_matrix(inter, features.customers().index.to_numpy(), np.asarray(model["merchant_pks"]), "weight")
    t_bare, _ = timed(lambda: affinity.top_k(model, weights))
    from optimizer.models import UserMerchantAffinity

    written = UserMerchantAffinity.objects.count()
    record("job merchant_affinity", 0.0, t_job, t_bare, 0.0,
           f"{written:,} rows written for customers with interactions (bare = top_k() on all {n_customers:,} customers' prepared matrix)")

    goals = [
        ("training all five (train_all)", t_all, 60),  # issue 15 (issue 6 asked < 300 s)
        ("send_times job", float(rows[-2]["total s"]), 120),
        ("merchant_affinity job", float(rows[-1]["total s"]), 600),
    ]
    full_scale = n_customers >= 1_000_000 and n_events >= 9_000_000
    verdict = floor_goals + [
        f"- {name}: **{secs:.1f} s** (goal < {limit} s at the issue's scale): {'met' if secs < limit else 'NOT met'}"
        + ("" if full_scale else f" at this reduced scale ({n_customers:,} customers), which does not show the goal is met at 1M")
        for name, secs, limit in goals]
    verdict.append(
        f"- train_all's floor, its propensity part alone (the script's read_sql of the training and holdout frames, "
        f"{statistics.median(r for r, _ in floor_runs[ModelType.CONVERSION]):.1f} + {t_read_holdout:.1f} s, and both fits): "
        f"**{floor_propensity:.1f} s**; train_all (all five models) / that part of its floor: **{t_all / floor_propensity:.2f}x**"
        + (": the 60 s goal is below what the floor takes for two of the five models" if floor_propensity >= 60 else ""))
    load_end = os.getloadavg()
    load_note = (f"Load average (1/5/15 min) at start {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}, "
                 f"at end {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} (2 cores, shared).")
    for row in floor_rows:
        print(f"{row['model']:16s} ours {row['ours s (median)']} s (runs {row['ours runs s']})  floor {row['floor s (median)']} s "
              f"(read_sql {row['floor read_sql s']} + fit {row['floor fit s']}; runs {row['floor runs s']})  "
              f"ours/floor {row['ours / floor']}  features: {row['floor computes the same features']}", flush=True)
    print("\n".join(verdict))
    print(load_note, flush=True)
    if args.no_report:
        return
    from bench.report import table, write_section

    scale_note = ("the issue's scale" if full_scale
                  else "a reduced scale chosen for the shared 2-core machine; the issue's is 1M customers, 5,000 merchants, 10M events")
    body = (
        f"Scale run: **{n_customers:,} customers, {n_merchants:,} merchants, {n_events:,} events** ({scale_note}).\n\n"
        "Per step: our data preparation (feature queries into pandas / sparse matrices), our fit or scoring, our "
        "registration (skops + sha256) or table write, and the bare library call on the same prepared matrices in "
        "the same run (for the propensity models: the first run). Overhead = (total - bare) / bare.\n\n"
        + table(rows, ["step", "prepare s", "fit/score s", "register/write s", "total s", "bare s", "overhead x bare", "note"])
        + "\n\nFloor of the two propensity models (issue 15): a data scientist's script, `pandas.read_sql` (plain psycopg "
        "connection) of one hand-written query yielding the same features and label per customer as of the training "
        "cut-off (`PROPENSITY_FEATURES_SQL` in bench/optimizer.py; checked equal to ours below), then the chosen "
        "scikit-learn estimator with the same hyper-parameters behind the same `MinMaxScaler(clip=True)`, fitted once. "
        "Ours: half of `prepare_propensity` (both cut-offs' frames for both models from one pass), `fit` (learner "
        "selection by a race of three candidates on stratified samples of at most "
        f"{propensity.SELECTION_ROWS:,} rows (propensity.race), the refit, holdout metrics) "
        "and registration. The one-time imports are outside both timings (the script imports its libraries before its "
        f"clock starts; ours were {t_imports:.2f} s here, once per process). "
        "Medians of interleaved runs. The learner selection alone (timed once more, on the same rows) "
        "is what the floor does not do: the column without it subtracts that time from our median.\n\n"
        + table(floor_rows, ["model", "ours s (median)", "ours runs s", "floor s (median)", "floor read_sql s", "floor fit s",
                             "floor runs s", "ours / floor", "ours without the learner selection / floor", "floor computes the same features"])
        + f"\n\n`train_all` end to end: {t_all:.1f} s (sum of the per-model steps above: {training_total:.1f} s).\n\n"
        + "\n".join(verdict)
        + f"\n\n{load_note}"
    )
    write_section("optimizer", "Optimiser training and jobs (bench/optimizer.py)", body)


if __name__ == "__main__":
    main()

"""send_times and merchant_affinity with 1 and 2 worker processes (fan-out, optimizer/services/staging.py).

    python bench/fanout_optimizer.py                          # 30,000 customers x 30 days (~1.5 M events)
    python bench/fanout_optimizer.py --customers 50000 --repeat 3

Needs PostgreSQL and Redis (``REDIS_URL``, default redis://127.0.0.1:6379/14). The data come from
``seed_demo`` in a dedicated database (kept between runs of the same size) and the models from one
``train_all``. This process is the run that owns the job (as a Celery worker process would be); for
2 processes a real Celery worker with one pool process helps it through ``JOB_FANOUT_HELPERS``.
Each variant's table is compared with the one-process run's (every column but the id and the write
moment): it must be equal.

Variants, interleaved round by round:
- floor: the scoring alone (``send_time.recommend`` / ``affinity.top_k`` on every customer's prepared
  arrays, read beforehand): the vectorised pass neither variant can avoid;
- 1 process: the job as it runs without helpers (one read, one scoring pass, one COPY);
- 1 process, the same parts: the fanned-out run's parts (staged, swapped) done alone, so the cost of
  parts and staging is read apart from what a second process adds;
- 2 processes: the job with one helper.
On a 2-core machine shared with other work, the second process competes for the same cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import start_worker  # noqa: E402
from bench.optimizer import ensure_database, timed  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=30_000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--merchants", type=int, default=100)
    p.add_argument("--campaigns", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--database", default="mai_bench_fanout_optimizer")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    p.add_argument("--no-report", action="store_true", help="do not write docs/BENCHMARKS.md")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    queue = f"bench-fanout-opt-{uuid.uuid4().hex[:8]}"
    ensure_database(args.server, args.database)
    os.environ.update(DATABASE_URL=f"{args.server}/{args.database}", REDIS_URL=args.redis, JOB_FANOUT_QUEUE=queue,
                      DJANGO_SETTINGS_MODULE="marketing_ai.settings",
                      MODEL_ARTIFACT_DIR=str(ROOT / "var" / "bench_fanout_models" / args.database))
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import Customer, Event
    from optimizer import features
    from optimizer.ml import affinity as affinity_ml
    from optimizer.ml import send_time as send_time_ml
    from optimizer.models import MLModel, ModelType, UserMerchantAffinity, UserSendTime
    from optimizer.services import affinity, send_times, staging, training

    logging.getLogger("optimizer").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    if Customer.objects.count() != args.customers or not MLModel.objects.filter(is_active=True).exists():
        print(f"building {args.customers:,} customers x {args.days} days with seed_demo, then train_all ...")
        from campaigns.demo_load import seed_demo

        seed_demo(customers=args.customers, merchants=args.merchants, campaigns=args.campaigns, days=args.days,
                  seed=17, replace=True)
        MLModel.objects.all().delete()
        training.train_all()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE campaigns_event")
    n_events = Event.objects.count()
    print(f"{args.customers:,} customers, {n_events:,} events")

    def table(model) -> list[tuple]:
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in ("id", "last_updated")]
        return sorted(model.objects.values_list(*fields))

    def send_time_floor():
        base = features.customers()
        counts = features.open_hour_counts(None, timezone.now(), frame=base).to_numpy()
        loaded = training.load_active(ModelType.SEND_TIME)
        assert loaded is not None, "train_all trained no send-time model"
        artifact = loaded.artifact
        segments = training.segment_codes(base["segment"])
        return lambda: len(send_time_ml.recommend(artifact, counts, segments)["hour"])

    def affinity_floor():
        loaded = training.load_active(ModelType.AFFINITY)
        assert loaded is not None, "train_all trained no affinity model"
        pks = features.customers().index.to_numpy()
        inter = features.customer_merchant_interactions(None, timezone.now())
        weights = training.interaction_matrix(inter, pks, loaded.artifact["merchant_pks"], "weight")
        return lambda: len(affinity_ml.top_k(loaded.artifact, weights)[0])

    jobs = {
        "send_times": (send_times, send_times.compute_send_times, UserSendTime, ModelType.SEND_TIME, send_time_floor),
        "merchant_affinity": (affinity, affinity.update_merchant_affinity, UserMerchantAffinity, ModelType.AFFINITY,
                              affinity_floor),
    }
    shared_parts = staging.PARTS_PER_PROCESS * 2  # what a run with one helper splits its customers into

    def variants(name: str):
        module, job, _, model_type, floor = jobs[name]

        def alone() -> int:
            settings.JOB_FANOUT_HELPERS = 0
            return job()

        def same_parts() -> int:
            champion = MLModel.objects.get(model_type=model_type, is_active=True)
            return module.compute_in_parts(model=champion, now=timezone.now(), helpers=0, parts=shared_parts)

        def with_helper() -> int:
            settings.JOB_FANOUT_HELPERS = 1
            try:
                return job()
            finally:
                settings.JOB_FANOUT_HELPERS = 0

        return [("floor: scoring alone (data read beforehand)", floor()), ("1 process", alone),
                (f"1 process, the same {shared_parts} parts staged", same_parts), ("2 processes (job + 1 helper)", with_helper)]

    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    log_path = ROOT / "bench" / "out" / "fanout-optimizer-worker.log"
    worker = start_worker(queue, name=queue, concurrency=1, log_path=log_path)
    results: dict[tuple[str, str], list[float]] = {}
    equal: dict[tuple[str, str], bool] = {}
    written: dict[tuple[str, str], int] = {}
    reference: dict[str, list[tuple]] = {}
    try:
        load_before = os.getloadavg()
        plan = {name: variants(name) for name in jobs}
        for _ in range(args.repeat):
            for name, (_, _, target, _, _) in jobs.items():
                for label, run in plan[name]:
                    t, out = timed(run)
                    key = (name, label)
                    results.setdefault(key, []).append(t)
                    written[key] = int(out)
                    if not label.startswith("floor"):
                        rows = table(target)
                        reference.setdefault(name, rows)
                        equal[key] = equal.get(key, True) and rows == reference[name]
                    print(f"{name:18s} {label:44s} {t:7.2f} s")
        load_after = os.getloadavg()
    finally:
        worker.terminate()
        worker.wait(30)
        import redis

        redis.Redis.from_url(args.redis).delete(queue)

    lines = []
    for (name, label), runs in results.items():
        med = statistics.median(runs)
        alone = statistics.median(results[(name, "1 process")])
        lines.append({
            "job": name, "run": label, "median s": f"{med:.2f}", "runs s": ", ".join(f"{r:.2f}" for r in runs),
            "x 1 process": f"{med / alone:.2f}",
            "same rows as 1 process": "" if label.startswith("floor") else ("yes" if equal[(name, label)] else "**NO**"),
            "rows": f"{written[(name, label)]:,}",
        })
    from bench.report import table as md_table
    from bench.report import write_section

    body = (
        f"{args.customers:,} customers, {n_events:,} events over {args.days} days (seed_demo), models from one "
        f"train_all; PostgreSQL, Redis, a real Celery worker with one pool process as the helper. Medians of "
        f"{args.repeat} rounds, variants interleaved. Load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after, on {os.cpu_count()} cores. \"rows\" for the floor is customers scored.\n\n"
        + md_table(lines, ["job", "run", "median s", "runs s", "x 1 process", "same rows as 1 process", "rows"])
    )
    print(body)
    if not args.no_report:
        write_section("fanout-optimizer", "Fan-out: send_times and merchant_affinity with 1 and 2 worker processes", body)
    if not all(equal.values()):
        raise SystemExit("a fanned-out run wrote different rows than one process")


if __name__ == "__main__":
    main()

"""send_times and merchant_affinity fanned out over a real Celery worker (PostgreSQL and Redis).

What must hold: with ``JOB_FANOUT_HELPERS``, each job run through the job registry (its lock, its
``job_runs`` row) shares its customer parts with the worker's processes and writes exactly the rows of
the one-process run; a reader polling the table meanwhile sees the old table or the new one, never a
part of it; and when the helpers' parts fail after their rows were written (a helper dying after its
commit), the run does those parts again and still writes every row once.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.db import connection, connections
from django.utils import timezone

from campaigns.demo_load import seed_demo
from marketing_ai import jobs
from marketing_ai.models import JobRun
from optimizer import registry
from optimizer.models import AffinityStage, SendTimeStage, UserMerchantAffinity, UserSendTime
from optimizer.services import staging, training
from tests.platform.processes import CELERY, background, subprocess_env, wait_for

JOBS = {"send_times": (UserSendTime, SendTimeStage, "send_times.part"),
        "merchant_affinity": (UserMerchantAffinity, AffinityStage, "merchant_affinity.part")}


def _worker_args(queue: str) -> list[str]:
    return [*CELERY, "worker", "-Q", queue, "-n", f"{queue}@%h", "--pool=prefork", "--concurrency=2",
            "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-I", "tests.platform.parts_for_tests"]


def table(model) -> list[tuple]:
    fields = [f.attname for f in model._meta.concrete_fields if f.attname not in ("id", "last_updated")]
    return sorted(model.objects.values_list(*fields))


class CountPoller:
    """Counts a table's rows over and over on its own connection, as a reader of the API would."""

    def __init__(self, model) -> None:
        self.model, self.seen, self.stop = model, set(), threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def poll(self) -> None:
        try:
            while not self.stop.is_set():
                self.seen.add(self.model.objects.count())
        finally:
            connections.close_all()

    def __enter__(self) -> CountPoller:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)


def run_job(name: str) -> JobRun:
    run = jobs.run(name)
    assert run.status == JobRun.Status.SUCCEEDED, run.error
    return run


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_jobs_fan_out_over_a_real_worker_and_write_the_rows_of_one_process(
    postgres, redis_url, settings, tmp_path, monkeypatch
):
    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"
    registry.artifact_cache().clear()
    seed_demo(customers=300, merchants=12, campaigns=4, days=30, seed=3,
              end_date=timezone.now().date() - dt.timedelta(days=1))
    training.train_all()

    expected = {}
    for name, (model, _, _) in JOBS.items():
        run_job(name)  # JOB_FANOUT_HELPERS = 0: one process
        expected[name] = table(model)
        assert expected[name]

    queue = f"fanout-opt-{uuid.uuid4().hex[:10]}"
    settings.JOB_FANOUT_QUEUE, settings.JOB_FANOUT_HELPERS = queue, 2
    # Many small parts, so the worker's two processes surely take some while the run does its share.
    monkeypatch.setattr(staging, "PARTS_PER_PROCESS", 6)

    # 1. Helpers that work: the same rows; a reader sees the old table or the new one, never a part.
    log = tmp_path / "worker.log"
    with background(_worker_args(queue), subprocess_env(redis_url), log) as worker:
        wait_for(lambda: "ready" in log.read_text(), timeout=120, proc=worker, log=log, what="worker start")
        for name, (model, stage, part) in JOBS.items():
            first = model.objects.order_by("customer_id").values_list("customer_id", flat=True).first()
            model.objects.filter(customer_id=first).delete()  # the old table differs from the new one
            old = model.objects.count()
            with CountPoller(model) as reader:
                run_job(name)
            assert table(model) == expected[name], name
            assert reader.seen <= {old, len(expected[name])} and old in reader.seen, (name, sorted(reader.seen))
            assert not stage.objects.exists()
            wait_for(lambda part=part: any(f"{part}:" in line and "done here" in line for line in log.read_text().splitlines()),
                     timeout=30, proc=worker, log=log, what=f"a helper's {name} part in the worker log")

    # 2. Helpers whose parts fail after their rows were written: the run redoes them, each row once.
    log = tmp_path / "failing-worker.log"
    env = subprocess_env(redis_url, FANOUT_TEST_FAIL_AFTER_WRITE="send_times.part,merchant_affinity.part")
    with background(_worker_args(queue), env, log) as worker:
        wait_for(lambda: "ready" in log.read_text(), timeout=120, proc=worker, log=log, what="failing worker start")
        for name, (model, stage, part) in JOBS.items():
            model.objects.all().delete()
            run_job(name)
            assert table(model) == expected[name], name
            assert model.objects.count() == len(expected[name])
            assert not stage.objects.exists()
            wait_for(lambda part=part: f"test: {part} part" in log.read_text(), timeout=30, proc=worker, log=log,
                     what=f"a helper's {name} part written, then failed")
    connection.close()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_with_redo_slow_the_run_does_a_part_a_slow_helper_holds_instead_of_waiting_for_it(
    postgres, redis_url, settings, tmp_path
):
    from marketing_ai import fanout
    from tests.platform import parts_for_tests  # noqa: F401  (the slow part worker, here too)

    queue = f"fanout-slow-{uuid.uuid4().hex[:10]}"
    settings.JOB_FANOUT_QUEUE, settings.JOB_FANOUT_PART_TIMEOUT = queue, 600
    log = tmp_path / "slow-worker.log"
    env = subprocess_env(redis_url, FANOUT_TEST_HELPER_SECONDS="300")
    with background(_worker_args(queue), env, log) as worker:
        wait_for(lambda: "ready" in log.read_text(), timeout=120, proc=worker, log=log, what="worker start")
        rows = fanout.run_parts("platform_slow_part", [{"rows": i, "seconds": 0.5} for i in range(10)],
                                helpers=1, redo_slow=3)
        assert rows == sum(range(10))
        # A helper took a part and still holds it (it sleeps 300 s): the run did that part itself and ended
        # (without redo_slow it would have waited JOB_FANOUT_PART_TIMEOUT, 600 s).
        wait_for(lambda: "taken by a slow helper" in log.read_text(), timeout=30, proc=worker, log=log,
                 what="a part taken by the slow helper")
        assert "done here" not in log.read_text()

"""A worker process killed (SIGKILL) in the middle of a SQL-heavy job: the run is done once, and told.

Celery delivers the task again (``acks_late`` + ``reject_on_worker_lost``) while the killed process's
database session still runs its statement and holds the job's advisory lock. The new attempt must mark
the lost one killed, take the lock over from the orphaned session (terminating it, so its statement
never commits) and do the work: one effect, one succeeded row, nothing left ``running``.
"""

from __future__ import annotations

import importlib
import os
import signal
import time
import uuid

import pytest
from django.db import connection

from marketing_ai import job_queue, jobs
from marketing_ai.models import JobRun
from tests.platform.processes import CELERY, background, subprocess_env, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SQL_SECONDS = 15  # the orphan must still be inside its statement when the redelivery arrives, even on a busy machine


@pytest.fixture
def effects_table(postgres):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE platform_probe_effects (done_at timestamptz NOT NULL)")
    yield "platform_probe_effects"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE platform_probe_effects")


def effects() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM platform_probe_effects")
        return cursor.fetchone()[0]


def test_a_run_whose_worker_is_killed_is_marked_killed_taken_over_and_done_once(
    postgres, redis_url, effects_table, monkeypatch, tmp_path
):
    monkeypatch.setattr(jobs, "REGISTRY", dict(jobs.REGISTRY))
    from tests.platform import jobs_for_tests

    importlib.reload(jobs_for_tests)  # registers the probes in this test's copy of the registry
    queue = f"platform-kill-{uuid.uuid4().hex[:10]}"
    args = [*CELERY, "worker", "-Q", queue, "-n", f"{queue}@%h", "--pool=prefork", "--concurrency=1",
            "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-I", "tests.platform.jobs_for_tests"]
    env = subprocess_env(redis_url, PROBE_SQL_SECONDS=str(SQL_SECONDS), JOB_LOCK_WAIT_SECONDS="30")
    log = tmp_path / "worker.log"
    with background(args, env, log) as worker:
        first = job_queue.enqueue("platform_probe_sql", trigger="api", queue=queue)
        running = wait_for(
            lambda: JobRun.objects.filter(pk=first.pk, status=JobRun.Status.RUNNING, db_pid__isnull=False).first(),
            timeout=120, proc=worker, log=log, what="the run to start", every=0.2,
        )
        orphan = running.db_pid
        child = int(running.worker.rsplit(":", 1)[1])
        assert child != worker.pid  # the pool process, not the worker's main process
        time.sleep(1)  # well inside the statement
        os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()

        done = wait_for(
            lambda: JobRun.objects.filter(job="platform_probe_sql", status=JobRun.Status.SUCCEEDED).first(),
            timeout=120, proc=worker, log=log, what="the redelivered run to succeed", every=0.5,
        )
        # Had the orphaned session been left alone, its statement would commit SQL_SECONDS after it began.
        time.sleep(max(0.0, SQL_SECONDS + 2 - (time.monotonic() - killed_at)))

    runs = list(JobRun.objects.filter(job="platform_probe_sql").order_by("pk"))
    assert [r.pk for r in runs] == [first.pk, done.pk]
    lost = runs[0]
    assert lost.status == JobRun.Status.FAILED and lost.finished_at is not None
    assert lost.error.startswith("killed: the worker running this attempt was lost")
    assert f"delivered again as run #{done.pk}" in lost.error
    assert done.task_id == first.task_id and done.rows_written == 1
    assert done.arguments["trigger"] == "api"  # who asked for the first attempt
    assert effects() == 1  # the work is done once: the orphan's statement never committed
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [orphan])
        assert cursor.fetchone()[0] == 0
    assert "terminating the orphaned session" in log.read_text()
    import redis

    redis.Redis.from_url(redis_url).delete(queue)

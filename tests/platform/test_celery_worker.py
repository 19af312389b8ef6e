"""A real Celery worker and a real beat (subprocesses) against the real Redis and the test database.

The worker consumes a queue unique to this test run and imports ``tests/platform/jobs_for_tests.py``
(``-I``); the test sends the task from this process and waits for the worker's ``job_runs`` row.
``transaction=True`` so both processes see committed rows of the same PostgreSQL test database.
"""

from __future__ import annotations

import uuid

import pytest

from marketing_ai import jobs
from marketing_ai.models import JobRun
from tests.platform.processes import CELERY, background, subprocess_env, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_runs_sent_jobs_and_beat_loads_the_schedules(postgres, redis_url, tmp_path):
    """Both production processes, started side by side (their start-up is most of this test's time)."""
    from django_celery_beat.models import PeriodicTask

    from marketing_ai.tasks import run_job

    queue = f"platform-test-{uuid.uuid4().hex[:10]}"
    worker_args = [
        *CELERY,
        "worker",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--pool=solo",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-I",
        "tests.platform.jobs_for_tests",
    ]
    beat_args = [*CELERY, "beat", "--loglevel=INFO", "-s", str(tmp_path / "beat-schedule"), "--max-interval", "1"]
    # Beat would send a task that falls due to the broker; a private database number keeps it off shared queues.
    beat_redis = redis_url.rsplit("/", 1)[0] + "/15"
    scheduled = {name: j for name, j in jobs.REGISTRY.items() if j.schedule is not None}
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"

    with (
        background(worker_args, subprocess_env(redis_url), worker_log) as worker,
        background(beat_args, subprocess_env(beat_redis), beat_log) as beat,
    ):
        run_job.apply_async(kwargs={"name": "platform_probe"}, queue=queue)
        run_job.apply_async(kwargs={"name": "platform_probe_fails"}, queue=queue)

        def both_finished():
            runs = {r.job: r for r in JobRun.objects.filter(job__startswith="platform_probe")}
            return runs if len(runs) == 2 and all(r.finished_at for r in runs.values()) else None

        runs = wait_for(both_finished, timeout=120, proc=worker, log=worker_log, what="worker job_runs")
        wait_for(
            lambda: PeriodicTask.objects.filter(name__in=scheduled).count() == len(scheduled),
            timeout=90,
            proc=beat,
            log=beat_log,
            what="beat's periodic tasks",
        )

    assert runs["platform_probe"].status == JobRun.Status.SUCCEEDED
    assert runs["platform_probe"].rows_written == 7
    assert runs["platform_probe"].arguments == {"trigger": "celery"}
    assert runs["platform_probe_fails"].status == JobRun.Status.FAILED
    assert "ValueError: probe failure for the worker test" in runs["platform_probe_fails"].error
    # A non-transient error is not retried: one attempt, one row.
    assert JobRun.objects.filter(job="platform_probe_fails").count() == 1
    import redis

    redis.Redis.from_url(redis_url).delete(queue)

    # Every registered schedule is in django-celery-beat's tables, where operators see and pause it.
    for task in PeriodicTask.objects.filter(name__in=scheduled).select_related("crontab"):  # the jobs' entries
        assert task.task == "marketing_ai.run_job"
        assert task.crontab.schedule == scheduled[task.name].schedule  # same minutes, hours, days, months
        assert task.kwargs == f'{{"name": "{task.name}", "scheduled": true}}'
        assert str(task.crontab.timezone) == "UTC"

"""Celery pool processes are recycled by memory (``worker_max_memory_per_child``, marketing_ai/celery.py).

A real worker (prefork, one pool process) on Redis runs two jobs. With the limit below any process's size,
each job runs in a fresh pool process; with the limit off, both run in the same one (the control: the
recycling comes from the setting, not from the pool).
"""

from __future__ import annotations

import importlib
import uuid

import pytest

from marketing_ai import job_queue, jobs
from marketing_ai.celery import app
from marketing_ai.models import JobRun
from tests.platform.processes import CELERY, background, subprocess_env, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_the_default_limit_is_set():
    assert app.conf.worker_max_memory_per_child == 600_000  # KiB


def pool_pids_of_two_runs(redis_url: str, tmp_path, limit_kib: str) -> list[int]:
    queue = f"platform-mem-{uuid.uuid4().hex[:10]}"
    args = [*CELERY, "worker", "-Q", queue, "-n", f"{queue}@%h", "--pool=prefork", "--concurrency=1",
            "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-I", "tests.platform.jobs_for_tests"]
    env = subprocess_env(redis_url, CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB=limit_kib)
    log = tmp_path / f"worker-{limit_kib}.log"
    pids = []
    with background(args, env, log) as worker:
        for _ in range(2):  # one after the other: the second is sent once the first has finished
            queued = job_queue.enqueue("platform_probe", trigger="api", queue=queue)
            done = wait_for(
                lambda pk=queued.pk: JobRun.objects.filter(pk=pk, status=JobRun.Status.SUCCEEDED).first(),
                timeout=180, proc=worker, log=log, what="the probe run to succeed", every=0.3,
            )
            pids.append(int(done.worker.rsplit(":", 1)[1]))
    return pids


def test_a_pool_process_over_the_limit_is_replaced_after_its_task(postgres, redis_url, monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "REGISTRY", dict(jobs.REGISTRY))
    from tests.platform import jobs_for_tests

    importlib.reload(jobs_for_tests)  # registers the probes in this test's copy of the registry
    first, second = pool_pids_of_two_runs(redis_url, tmp_path, limit_kib="1")
    assert first != second  # every process is over 1 KiB: replaced after each task
    first, second = pool_pids_of_two_runs(redis_url, tmp_path, limit_kib="0")
    assert first == second  # no limit: the same pool process runs both

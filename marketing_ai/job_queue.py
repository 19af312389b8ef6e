"""The Celery side of the job registry: send a run to the workers, and reconcile ``job_runs`` with reality.

``enqueue`` records the run (``queued``) before the broker sees it, so a run answered "202 queued"
always has a row: if the broker refuses (down, frozen: every call bounded by
``REDIS_SOCKET_TIMEOUT``) the row is ``failed`` and the caller gets ``EnqueueFailed``.

``reconcile`` (every 5 minutes from beat, and when a worker starts) settles rows no process will finish:
a ``queued`` row older than ``JOB_QUEUED_LOST_AFTER_SECONDS`` whose task is in neither the broker's
queue nor its unacknowledged set was lost (Redis restarted without persistence): it is marked
``failed`` and sent again; a ``running`` row whose database session no longer holds the job's
advisory lock (PostgreSQL) was killed without Celery delivering it again: it is marked ``failed``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.db import connection
from django.utils import timezone

from marketing_ai import jobs
from marketing_ai.models import JobRun

log = logging.getLogger(__name__)

RECONCILE_TASK = "marketing_ai.reconcile_job_runs"
BEAT_ENTRIES = {"reconcile_job_runs": {"task": RECONCILE_TASK, "schedule": crontab(minute="*/5")}}


class EnqueueFailed(Exception):
    """The broker did not take the task; the run's row is recorded ``failed``."""

    def __init__(self, message: str, record: JobRun):
        super().__init__(message)
        self.record = record


def _broker_errors() -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import redis.exceptions

    return (kombu.exceptions.KombuError, redis.exceptions.RedisError, OSError)


def enqueue(
    name: str, *, start: dt.date | None = None, end: dt.date | None = None, trigger: str = "api", queue: str | None = None
) -> JobRun:
    """Record a ``queued`` run of job ``name`` and send it to the workers (``queue``: Celery's default)."""
    from marketing_ai.tasks import run_job

    jobs.get(name)
    dates = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v}
    task_id = str(uuid.uuid4())
    record = JobRun.objects.create(job=name, arguments={"trigger": trigger, **dates}, status=JobRun.Status.QUEUED,
                                   task_id=task_id)
    try:
        run_job.apply_async(kwargs={"name": name, **dates}, task_id=task_id, queue=queue)
    except _broker_errors() as exc:
        reason = f"enqueue failed: the broker did not take the task ({type(exc).__name__}: {exc})"
        record.finish(JobRun.Status.FAILED, error=reason)
        log.error("job %s: %s", name, reason)
        raise EnqueueFailed(reason, record) from exc
    return record


def broker_task_ids() -> set[str] | None:
    """Ids of the tasks the Redis broker holds (waiting in a queue, or delivered and not acknowledged);
    None when the broker cannot be read (then nothing is decided about queued rows)."""
    if not settings.REDIS_URL:
        return None
    from marketing_ai.celery import app

    queue = app.conf.task_default_queue
    # kombu keeps priorities 3, 6 and 9 in lists beside the queue's own (name + "\x06\x16" + priority).
    lists = [queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9))]
    try:
        client = jobs.redis_client()
        raw = [m for name in lists for m in client.lrange(name, 0, -1)]
        raw += [json.dumps(json.loads(v)[0]) for v in client.hvals("unacked")]
    except _broker_errors() as exc:
        log.warning("reconcile: the broker cannot be read (%s); queued runs left as they are", exc)
        return None
    ids = set()
    for message in raw:
        try:
            ids.add(json.loads(message)["headers"]["id"])
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def reconcile(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Settle runs that no process will finish. Returns what was done (for the log and the tests)."""
    now = now or timezone.now()
    done: dict[str, Any] = {"lost": [], "resent": [], "killed": []}
    stale = JobRun.objects.filter(
        status=JobRun.Status.QUEUED, started_at__lt=now - dt.timedelta(seconds=settings.JOB_QUEUED_LOST_AFTER_SECONDS)
    )
    if stale.exists() and (held := broker_task_ids()) is not None:
        for run in stale.exclude(task_id__in=held):
            # Only one reconciler wins a row (two beats, or a worker start at the same time).
            if not JobRun.objects.filter(pk=run.pk, status=JobRun.Status.QUEUED).update(
                status=JobRun.Status.FAILED, finished_at=timezone.now(),
                error=f"lost: queued at {run.started_at:%Y-%m-%d %H:%M:%S} UTC but never started, and the broker no "
                      "longer holds it (Redis restarted without persistence?); sent again",
            ):
                continue
            done["lost"].append(run.pk)
            if run.job not in jobs.REGISTRY:
                continue
            dates = {k: dt.date.fromisoformat(run.arguments[k]) for k in ("start", "end") if run.arguments.get(k)}
            try:
                again = enqueue(run.job, trigger=run.arguments.get("trigger", "api"), **dates)
            except EnqueueFailed:
                continue
            JobRun.objects.filter(pk=run.pk).update(error=f"{run_error(run.pk)} as run #{again.pk}")
            done["resent"].append(again.pk)
    if connection.vendor == "postgresql":
        for run in JobRun.objects.filter(status=JobRun.Status.RUNNING, db_pid__isnull=False):
            if jobs.advisory_lock_holder(jobs.lock_scope(run.job)) == run.db_pid:
                continue  # still running
            if JobRun.objects.filter(pk=run.pk, status=JobRun.Status.RUNNING).update(
                status=JobRun.Status.FAILED, finished_at=timezone.now(),
                error=f"{jobs.KILLED} (its database session ended; found by the reconciliation)",
            ):
                done["killed"].append(run.pk)
    if any(done.values()):
        log.warning("reconcile job_runs: %s", done)
    return done


def run_error(pk: int) -> str:
    return JobRun.objects.values_list("error", flat=True).get(pk=pk)

"""The Celery door to the job registry: one task, the job's name (and optional ISO dates) as JSON arguments.

Transient failures (database or Redis connection lost, timeouts, a lock held by another run) are
retried with exponential back-off and jitter; every attempt is its own ``job_runs`` row (they share
the task id). Other errors fail the run once. The soft time limit raises ``SoftTimeLimitExceeded``
inside the job, which ``jobs.run`` records as ``failed``; the hard limit kills the worker process and
the reconciliation (or the next run) marks that row killed. A task whose worker died is delivered
again (``acks_late`` + ``reject_on_worker_lost``): the new attempt marks the lost one killed and takes
over the job lock from its orphaned database session. Beat's runs carry ``scheduled``: each
scheduled time of a job is run by one task only, however many beats sent it.
"""

from __future__ import annotations

import datetime as dt

import kombu.exceptions
import psycopg
import redis.exceptions
from celery import shared_task
from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from marketing_ai import jobs

TRANSIENT = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,  # raised by raw psycopg work that did not go through Django's wrapper
    psycopg.InterfaceError,
    ConnectionError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    jobs.JobLocked,
)
MAX_RETRIES = 5


@shared_task(
    bind=True,
    name="marketing_ai.run_job",
    autoretry_for=TRANSIENT,
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
    acks_late=True,
)
def run_job(self, name: str, start: str | None = None, end: str | None = None, scheduled: bool = False) -> dict:
    schedule = jobs.get(name).schedule
    try:
        record = jobs.run(
            name,
            start=dt.date.fromisoformat(start) if start else None,
            end=dt.date.fromisoformat(end) if end else None,
            trigger="beat" if scheduled else "celery",
            task_id=self.request.id or "",
            slot=jobs.slot_of(schedule, timezone.now()) if scheduled and schedule is not None else None,
            retry_when_locked=True,
            attempt=self.request.retries or 0,
        )
    except jobs.JobLocked as exc:
        if self.request.retries >= MAX_RETRIES and exc.record is not None:
            exc.record.finish(exc.record.Status.FAILED, error=f"gave up after {MAX_RETRIES + 1} attempts: {exc}")
        raise
    return {"job_run": record.pk, "job": name, "status": record.status, "rows": record.rows_written}


@shared_task(name="marketing_ai.reconcile_job_runs", acks_late=True)
def reconcile_job_runs() -> dict:
    from marketing_ai import job_queue

    return job_queue.reconcile()


@worker_ready.connect
def reconcile_at_worker_start(sender=None, **kwargs) -> None:
    """A worker (re)starting is when runs lost with the previous one are found."""
    import logging

    from marketing_ai import job_queue

    try:
        job_queue.reconcile()
    except Exception:  # never keep a worker from starting
        logging.getLogger(__name__).exception("reconcile at worker start failed")


@shared_task(name="marketing_ai.fanout_help", acks_late=False, ignore_result=True)
def fanout_help(board: str) -> int:
    """Help a running job with its parts (``marketing_ai.fanout``); a lost helper's part is redone by the job."""
    from marketing_ai import fanout

    return fanout.help_with(board)

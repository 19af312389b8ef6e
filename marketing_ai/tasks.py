"""The Celery door to the job registry: one task, the job's name (and optional ISO dates) as JSON arguments.

Transient failures (database or Redis connection lost, timeouts) are retried with exponential
back-off and jitter; every attempt is its own ``job_runs`` row. Other errors fail the run once.
The soft time limit raises ``SoftTimeLimitExceeded`` inside the job, which ``jobs.run`` records as
``failed``; the hard limit kills the worker process and the next run marks that row abandoned.
"""

from __future__ import annotations

import datetime as dt

import redis.exceptions
from celery import shared_task
from django.db import InterfaceError, OperationalError

from marketing_ai import jobs

TRANSIENT = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


@shared_task(
    name="marketing_ai.run_job",
    autoretry_for=TRANSIENT,
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
    acks_late=True,
)
def run_job(name: str, start: str | None = None, end: str | None = None) -> dict:
    record = jobs.run(
        name,
        start=dt.date.fromisoformat(start) if start else None,
        end=dt.date.fromisoformat(end) if end else None,
        trigger="celery",
    )
    return {"job_run": record.pk, "job": name, "status": record.status, "rows": record.rows_written}

"""Jobs that only the Celery worker started by test_celery_worker.py imports (``celery worker -I``)."""

from __future__ import annotations

import os

from celery.schedules import crontab
from django.db import connection

from marketing_ai.jobs import Progress, job


@job("platform_probe", schedule=None)
def probe(*, progress: Progress) -> int:
    """Writes nothing; reports 7 rows so the test can tell its job_runs row apart."""
    progress.total(7)
    progress.advance(7)
    return 7


@job("platform_probe_fails", schedule=None)
def probe_fails(*, progress: Progress) -> int:
    """Always fails with a non-transient error (so Celery does not retry it)."""
    raise ValueError("probe failure for the worker test")


@job("platform_probe_sql", schedule=None)
def probe_sql(*, progress: Progress) -> int:
    """SQL-heavy: one autocommit statement that works in the database for PROBE_SQL_SECONDS, then writes
    its effect. A session orphaned by a killed worker would still commit it unless it is terminated."""
    seconds = float(os.environ.get("PROBE_SQL_SECONDS", "6"))
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO platform_probe_effects (done_at) SELECT now() FROM pg_sleep(%s)", [seconds])
    return 1


@job("platform_probe_beat", schedule=crontab(minute="*"))
def probe_beat(*, progress: Progress) -> int:
    """Scheduled every minute (only the two-beats test's beats send it)."""
    return 1

"""The admin's *Periodic tasks* rows, written from the job registry when the database is migrated.

django-celery-beat's DatabaseScheduler writes them only when beat starts, so a demo or a fresh
deployment without beat showed an empty list where the README sends operators to pause a schedule.
The rows are written by the scheduler's own code (``ModelEntry.from_entry``), so beat finds them
as it would have written them; an operator's pause (``enabled``) is not touched.
"""

from __future__ import annotations


def sync_periodic_tasks(*, using: str = "default", **_) -> int:
    """Create or update one periodic task per beat entry, and delete our rows no entry names any more
    (a removed or renamed job); returns how many entries (0 before beat's tables exist)."""
    from django.db import connections
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    from marketing_ai.celery import app

    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return 0  # a partial migrate (one app) before django_celery_beat's own

    schedule = app.conf.beat_schedule
    for name, entry in schedule.items():
        ModelEntry.from_entry(name, app=app, **entry)
    # Rows of jobs that were removed or renamed would go on sending runs nobody answers: drop them.
    ours = {entry["task"] for entry in schedule.values()}
    PeriodicTask.objects.using(using).filter(task__in=ours).exclude(name__in=list(schedule)).delete()
    return len(schedule)

"""What job_runs says after faults, and what Celery does with a run that meets a held lock (in-process parts)."""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest
from celery.schedules import crontab
from django.db import OperationalError, connection

from marketing_ai import job_queue, jobs
from marketing_ai.models import JobRun, JobSlot
from marketing_ai.tasks import run_job
from tests.db_sessions import other_session


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_run_that_loses_its_database_connection_says_so_and_is_not_relabelled_killed(postgres, registry):
    @jobs.job("loses_db", schedule=None)
    def loses_db(*, progress):
        with other_session() as admin:  # what a PostgreSQL restart or failover does to the job's session
            admin.execute("SELECT pg_terminate_backend(%s)", [backend_pid()])
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return 1

    with pytest.raises(OperationalError):
        jobs.run("loses_db")

    lost = JobRun.objects.get(job="loses_db")
    assert lost.status == JobRun.Status.FAILED and lost.finished_at is not None
    assert lost.error.startswith("database connection lost: OperationalError")
    assert "killed" not in lost.error and "abandoned" not in lost.error

    registry["loses_db"] = jobs.Job(name="loses_db", func=lambda *, progress: 2, schedule=None)
    assert jobs.run("loses_db").status == JobRun.Status.SUCCEEDED
    lost.refresh_from_db()
    assert lost.error.startswith("database connection lost")  # the next run leaves a recorded end alone


def test_database_and_broker_connection_errors_are_retried_by_celery():
    for error in (psycopg.OperationalError, psycopg.InterfaceError, OperationalError, jobs.JobLocked):
        assert issubclass(error, run_job.autoretry_for), error
    assert not issubclass(ValueError, run_job.autoretry_for)


@pytest.mark.django_db(transaction=True)
def test_a_celery_run_meeting_the_lock_of_other_work_is_retried_and_of_the_same_work_is_skipped(
    postgres, registry, settings
):
    settings.JOB_LOCK_WAIT_SECONDS = 0.5
    inside, release = threading.Event(), threading.Event()

    @jobs.job("dated", schedule=None, window_days=1)
    def dated(*, start, end, progress):
        inside.set()
        assert release.wait(30)
        return 1

    def hold():
        try:
            jobs.run("dated", start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 1))
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(30)
        with pytest.raises(jobs.JobLocked):
            jobs.run("dated", start=dt.date(2026, 1, 2), end=dt.date(2026, 1, 2), trigger="celery",
                     task_id="t-other", retry_when_locked=True)
        same = jobs.run("dated", start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 1), trigger="celery",
                        task_id="t-same", retry_when_locked=True)
    finally:
        release.set()
        holder.join(30)

    other = JobRun.objects.get(task_id="t-other")
    holding = JobRun.objects.get(job="dated", arguments__trigger="manual")
    assert other.status == JobRun.Status.SKIPPED
    assert other.error == f"run #{holding.pk} holds the lock; this run is retried after it"
    assert same.status == JobRun.Status.SKIPPED
    assert same.error == f"run #{holding.pk} (same period) holds the lock"
    holding.refresh_from_db()
    assert holding.status == JobRun.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_the_reconciliation_marks_a_running_row_whose_session_is_gone_killed(postgres, registry):
    jobs.job("quick", schedule=None)(lambda *, progress: 1)
    session = other_session()
    pid = session.execute("SELECT pg_backend_pid()").fetchone()[0]
    session.execute("SELECT pg_advisory_lock(%s)", [jobs._advisory_key(jobs.lock_scope("quick"))])
    alive = JobRun.objects.create(job="quick", status=JobRun.Status.RUNNING, db_pid=pid)
    dead = JobRun.objects.create(job="other", status=JobRun.Status.RUNNING, db_pid=pid)  # holds no lock of "other"
    try:
        done = job_queue.reconcile()
    finally:
        session.close()
    alive.refresh_from_db()
    dead.refresh_from_db()
    assert done["killed"] == [dead.pk]
    assert alive.status == JobRun.Status.RUNNING
    assert dead.status == JobRun.Status.FAILED and dead.error.startswith("killed:")


def test_a_scheduled_slot_is_the_latest_matching_minute():
    at = dt.datetime(2026, 12, 2, 3, 17, 42, tzinfo=dt.UTC)  # a Wednesday
    assert jobs.slot_of(crontab(minute=0, hour=2), at) == dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)
    assert jobs.slot_of(crontab(minute="*/5"), at) == dt.datetime(2026, 12, 2, 3, 15, tzinfo=dt.UTC)
    monday_three = crontab(minute=0, hour=3, day_of_week=1)
    assert jobs.slot_of(monday_three, at) == dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.UTC)
    sunday = crontab(minute=30, hour=23, day_of_week=0)
    assert jobs.slot_of(sunday, at) == dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_a_slot_belongs_to_the_first_task_and_its_redeliveries(registry):
    slot = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)
    assert jobs.claim_slot("nightly", slot, "task-a") is None
    assert jobs.claim_slot("nightly", slot, "task-a") is None  # a redelivery or retry of the same task
    assert jobs.claim_slot("nightly", slot, "task-b") == "task-a"
    assert jobs.claim_slot("nightly", slot + dt.timedelta(days=1), "task-b") is None
    assert JobSlot.objects.count() == 2


def test_every_redis_cache_gives_up_within_the_redis_socket_timeout(settings):
    """A frozen Redis must not hold a request in a cache call either (e.g. throttling counters in Redis)."""
    redis_caches = {alias: c for alias, c in settings.CACHES.items() if "redis" in c["BACKEND"].lower()}
    for alias, cache in redis_caches.items():
        options = {k.lower(): v for k, v in cache.get("OPTIONS", {}).items()}
        for key in ("socket_timeout", "socket_connect_timeout"):
            assert options.get(key) is not None, f"CACHES[{alias!r}] has no {key}: a frozen Redis would hang requests"
            assert options[key] <= settings.REDIS_SOCKET_TIMEOUT, (alias, key, options[key])
    broker = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert broker["socket_timeout"] == broker["socket_connect_timeout"] == settings.REDIS_SOCKET_TIMEOUT
    assert 1 < settings.REDIS_SOCKET_TIMEOUT <= 5  # above kombu's 1 s BRPOP poll, short for a request


@pytest.mark.django_db
def test_an_unfinished_earlier_attempt_is_labelled_by_how_celery_sent_this_one(registry):
    """A retry (higher attempt) follows an error its worker saw but could not write: the database was down.
    The same attempt again is a redelivery: its worker died."""
    jobs.job("sturdy", schedule=None)(lambda *, progress: 1)
    jobs.job("steady", schedule=None)(lambda *, progress: 1)  # a second job: a run settles its own job's rows
    retried = JobRun.objects.create(job="sturdy", status=JobRun.Status.RUNNING, task_id="t-retry",
                                    arguments={"trigger": "api"})
    redelivered = JobRun.objects.create(job="steady", status=JobRun.Status.RUNNING, task_id="t-again",
                                        arguments={"trigger": "beat", "attempt": 2})

    second = jobs.run("sturdy", trigger="celery", task_id="t-retry", attempt=1)
    third = jobs.run("steady", trigger="celery", task_id="t-again", attempt=2)

    retried.refresh_from_db()
    redelivered.refresh_from_db()
    assert retried.status == redelivered.status == JobRun.Status.FAILED
    assert retried.error.startswith("database connection lost (its end could not be written")
    assert retried.error.endswith(f"retried as run #{second.pk}")
    assert redelivered.error.startswith("killed: the worker running this attempt was lost")
    assert redelivered.error.endswith(f"delivered again as run #{third.pk}")
    assert (second.arguments, third.arguments) == ({"trigger": "api", "attempt": 1}, {"trigger": "beat", "attempt": 2})
    assert second.status == third.status == JobRun.Status.SUCCEEDED

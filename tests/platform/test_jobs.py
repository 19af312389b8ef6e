"""The job registry: run records, locks, dependency order, and the seed's schedules."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from celery.schedules import crontab
from django.db import connection
from django.utils import timezone

from marketing_ai import jobs
from marketing_ai.models import JobRun
from tests.db_sessions import other_session


def test_a_successful_run_is_recorded_with_rows_period_and_duration(db, registry):
    seen = {}

    @jobs.job("count_days", schedule=None, window_days=3)
    def count_days(*, start, end, progress):
        seen.update(start=start, end=end)
        return (end - start).days + 1

    record = jobs.run("count_days", end=dt.date(2024, 3, 10))

    record.refresh_from_db()
    assert seen == {"start": dt.date(2024, 3, 8), "end": dt.date(2024, 3, 10)}
    assert record.status == JobRun.Status.SUCCEEDED
    assert record.rows_written == 3
    assert record.arguments == {"trigger": "manual", "start": "2024-03-08", "end": "2024-03-10"}
    assert record.finished_at >= record.started_at
    assert record.error == ""


def test_the_default_window_ends_today_and_spans_window_days(db, registry):
    @jobs.job("window", schedule=None, window_days=7)
    def window(*, start, end, progress):
        return (end - start).days + 1

    record = jobs.run("window")
    today = timezone.now().date()
    assert record.arguments["end"] == today.isoformat()
    assert record.arguments["start"] == (today - dt.timedelta(days=6)).isoformat()
    assert record.rows_written == 7


def test_start_after_end_is_refused(db, registry):
    jobs.job("dated", schedule=None, window_days=1)(lambda *, start, end, progress: 0)
    with pytest.raises(ValueError, match="after end"):
        jobs.run("dated", start=dt.date(2024, 2, 1), end=dt.date(2024, 1, 1))


def test_a_failing_job_is_recorded_failed_with_its_error(db, registry):
    @jobs.job("breaks", schedule=None)
    def breaks(*, progress):
        raise ZeroDivisionError("no customers to divide by")

    with pytest.raises(ZeroDivisionError):
        jobs.run("breaks")
    record = jobs.run("breaks", raise_errors=False)

    assert JobRun.objects.filter(job="breaks", status=JobRun.Status.FAILED).count() == 2
    assert "ZeroDivisionError: no customers to divide by" in record.error
    assert record.finished_at is not None


def test_an_unknown_job_names_the_registered_ones(registry):
    jobs.job("known", schedule=None)(lambda *, progress: 0)
    with pytest.raises(KeyError, match="unknown job 'nope'; registered jobs: known"):
        jobs.get("nope")


def test_registering_two_functions_under_one_name_is_an_error(registry):
    def first(*, progress):
        return 0

    def second(*, progress):
        return 0

    jobs.job("twice", schedule=None)(first)
    with pytest.raises(RuntimeError, match="registered twice"):
        jobs.job("twice", schedule=None)(second)


def test_a_later_run_marks_a_run_that_died_without_finishing_as_abandoned(db, registry):
    jobs.job("crashy", schedule=None)(lambda *, progress: 1)
    died = JobRun.objects.create(job="crashy", status=JobRun.Status.RUNNING)
    other_job = JobRun.objects.create(job="other", status=JobRun.Status.RUNNING)

    jobs.run("crashy")

    died.refresh_from_db()
    other_job.refresh_from_db()
    assert died.status == JobRun.Status.FAILED and "abandoned" in died.error
    assert other_job.status == JobRun.Status.RUNNING


def test_dependency_order_puts_each_job_after_the_ones_it_names(registry):
    for name, after in [
        ("recommend", ("train", "aggregate")),
        ("train", ("aggregate",)),
        ("aggregate", ()),
        ("solo", ()),
    ]:
        jobs.job(name, schedule=None, after=after)(lambda *, progress: 0)

    order = [j.name for j in jobs.in_dependency_order()]

    assert sorted(order) == ["aggregate", "recommend", "solo", "train"]
    assert order.index("aggregate") < order.index("train") < order.index("recommend")


def test_a_dependency_cycle_is_reported(registry):
    jobs.job("a", schedule=None, after=("b",))(lambda *, progress: 0)
    jobs.job("b", schedule=None, after=("a",))(lambda *, progress: 0)
    with pytest.raises(RuntimeError, match="cycle"):
        jobs.in_dependency_order()


# --- Locks: two runs of one job never overlap ---------------------------------------------------


def _run_in_thread_until_released(name: str) -> tuple[threading.Thread, threading.Event, threading.Event, list]:
    """Start ``jobs.run(name)`` in another thread (its own DB connection) and wait until the job is inside."""
    inside, release, result = threading.Event(), threading.Event(), []

    @jobs.job(name, schedule=None)
    def hold(*, progress):
        inside.set()
        assert release.wait(30), "test never released the job"
        return 1

    def target():
        try:
            result.append(jobs.run(name))
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    assert inside.wait(30), "the first run never started"
    return thread, inside, release, result


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_the_first_holds_the_postgres_advisory_lock_is_skipped(postgres, registry):
    thread, _, release, first = _run_in_thread_until_released("long_job")
    try:
        second = jobs.run("long_job")
    finally:
        release.set()
        thread.join(30)

    assert second.status == JobRun.Status.SKIPPED
    assert "holds the lock" in second.error
    assert first[0].status == JobRun.Status.SUCCEEDED
    # The lock is free again once the first run ended.
    assert jobs.run("long_job").status == JobRun.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_the_advisory_lock_is_freed_when_the_holding_session_dies(postgres):
    import zlib

    scope = jobs.lock_scope("crash_test")
    other = other_session()
    other.execute("SELECT pg_advisory_lock(%s)", [zlib.crc32(f"marketing_ai.job.{scope}".encode())])
    with jobs.postgres_lock(scope) as got:
        assert got is False
    other.close()  # what the server sees when a worker process dies
    # The server ends that backend (and frees its locks) asynchronously; allow it a few seconds.
    deadline = time.monotonic() + 10
    while True:
        with jobs.postgres_lock(scope) as got:
            if got or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    assert got is True


def test_the_redis_lock_admits_one_holder_and_expires_after_a_crash(redis_url):
    scope = f"redis-lock-test-{time.time_ns()}"
    with jobs.redis_lock(scope) as first:
        with jobs.redis_lock(scope) as second:
            assert (first, second) == (True, False)
    with jobs.redis_lock(scope) as again:
        assert again is True

    # A holder that never releases (its worker died) stops blocking once the expiry passes.
    import redis

    redis.Redis.from_url(redis_url).lock(f"marketing_ai:job:{scope}", timeout=1).acquire(blocking=False)
    with jobs.redis_lock(scope) as while_held:
        assert while_held is False
    time.sleep(1.2)
    with jobs.redis_lock(scope) as after_expiry:
        assert after_expiry is True


def test_the_in_process_lock_admits_one_holder():
    with jobs.local_lock("local-test") as first, jobs.local_lock("local-test") as second:
        assert (first, second) == (True, False)
    with jobs.local_lock("local-test") as again:
        assert again is True


# --- Schedules --------------------------------------------------------------------------------


def test_the_seed_schedules_are_the_specified_utc_times():
    s = jobs.SEED_SCHEDULES
    assert (s["daily_analytics"].hour, s["daily_analytics"].minute) == ({2}, {0})
    assert (s["model_retraining"].day_of_week, s["model_retraining"].hour, s["model_retraining"].minute) == (
        {1},
        {3},
        {0},
    )
    assert (s["merchant_affinity"].hour, s["merchant_affinity"].minute) == ({0, 6, 12, 18}, {0})
    assert (s["send_times"].hour, s["send_times"].minute) == ({4}, {0})
    assert (s["campaign_optimizations"].hour, s["campaign_optimizations"].minute) == ({5}, {0})
    for schedule in s.values():
        assert schedule.day_of_month == set(range(1, 32)) and schedule.month_of_year == set(range(1, 13))


def test_every_registered_seed_job_keeps_its_seed_schedule():
    for name, expected in jobs.SEED_SCHEDULES.items():
        if name in jobs.REGISTRY:
            assert jobs.REGISTRY[name].schedule == expected, (
                f"{name} is scheduled {jobs.REGISTRY[name].schedule_text()}"
            )


def test_celery_beat_is_configured_with_every_scheduled_job():
    from marketing_ai.celery import app

    scheduled = {name for name, j in jobs.REGISTRY.items() if j.schedule is not None}
    # Beside the jobs: the reconciliation of job_runs with the broker, every 5 minutes.
    assert set(app.conf.beat_schedule) == scheduled | {"reconcile_job_runs"}
    assert app.conf.beat_schedule["reconcile_job_runs"]["task"] == "marketing_ai.reconcile_job_runs"
    for name in scheduled:
        entry = app.conf.beat_schedule[name]
        assert entry == {
            "task": "marketing_ai.run_job",
            "schedule": jobs.REGISTRY[name].schedule,
            "kwargs": {"name": name, "scheduled": True},
        }


@pytest.mark.django_db(transaction=True)
def test_beats_database_scheduler_writes_the_schedules_and_keeps_a_pause(registry, monkeypatch):
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from marketing_ai.celery import app

    jobs.job("nightly", schedule=crontab(minute=0, hour=2))(lambda *, progress: 0)
    jobs.job("six_hourly", schedule=crontab(minute=0, hour="0,6,12,18"))(lambda *, progress: 0)
    jobs.job("manual", schedule=None)(lambda *, progress: 0)
    monkeypatch.setattr(app.conf, "beat_schedule", jobs.beat_schedule())
    PeriodicTask.objects.all().delete()  # migrate wrote the real jobs' rows (schedule_rows.py): start from none

    def load():
        scheduler = DatabaseScheduler(app=app)
        scheduler._finalize.cancel()  # no sync at garbage collection, after the test database is gone
        return scheduler

    load()
    tasks = {t.name: t for t in PeriodicTask.objects.select_related("crontab")}
    assert set(tasks) == {"nightly", "six_hourly"}
    nightly = tasks["nightly"]
    assert (nightly.task, nightly.kwargs, nightly.enabled) == (
        "marketing_ai.run_job", '{"name": "nightly", "scheduled": true}', True)
    assert (nightly.crontab.minute, nightly.crontab.hour, nightly.crontab.day_of_week) == ("0", "2", "*")
    assert str(nightly.crontab.timezone) == "UTC"
    assert tasks["six_hourly"].crontab.hour == "0,6,12,18"

    # An operator pauses a job in the admin; restarting beat must not switch it back on.
    PeriodicTask.objects.filter(name="nightly").update(enabled=False)
    load()
    assert PeriodicTask.objects.get(name="nightly").enabled is False
    assert PeriodicTask.objects.count() == 2


# --- Celery configuration ---------------------------------------------------------------------


def test_celery_uses_json_late_acks_and_time_limits():
    from django.conf import settings

    from marketing_ai.celery import app

    conf = app.conf
    assert (conf.task_serializer, conf.result_serializer, list(conf.accept_content)) == ("json", "json", ["json"])
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    # A task still running when Redis's visibility timeout ends would be delivered a second time.
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_always_eager is (settings.REDIS_URL is None)  # no broker: run in-process
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert conf.timezone == "UTC"


@pytest.mark.django_db(transaction=True)
def test_a_transient_database_error_is_retried_and_each_attempt_recorded(registry, settings):
    from django.db import OperationalError

    from marketing_ai.tasks import run_job

    attempts = []

    @jobs.job("flaky", schedule=None)
    def flaky(*, progress):
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return 5

    # apply() runs the task here with its retry policy; the retry runs at once (no back-off wait in-process).
    run_job.apply(kwargs={"name": "flaky"}, throw=False)

    runs = list(JobRun.objects.filter(job="flaky").order_by("started_at", "id").values_list("status", "rows_written"))
    assert runs == [("failed", 0), ("succeeded", 5)]


def test_a_permanent_error_is_not_retried(db, registry):
    from marketing_ai.tasks import run_job

    jobs.job("broken", schedule=None)(lambda *, progress: 1 / 0)
    result = run_job.apply(kwargs={"name": "broken"}, throw=False)
    assert result.failed()
    assert JobRun.objects.filter(job="broken").count() == 1


def test_a_jobs_description_is_the_first_line_of_its_docstring(registry):
    def documented(*, progress):
        """Refresh the thing.

        Longer explanation."""
        return 0

    def blank_doc(*, progress):
        """ """
        return 0

    jobs.job("documented", schedule=None)(documented)
    jobs.job("blank_doc", schedule=None)(blank_doc)
    jobs.job("explicit", schedule=None, description="Said so")(documented)
    assert [jobs.get(n).description for n in ("documented", "blank_doc", "explicit")] == ["Refresh the thing.", "", "Said so"]


def test_a_job_lock_of_an_in_memory_sqlite_database_is_this_process_s_own(db):
    """The SQLite test leg's parallel workers each have an in-memory database of the same name: with one
    Redis, a job run in one worker was once skipped as 'already running' because the other ran it. Another
    process gets another lock for such a database, and the same lock for one they share."""
    import multiprocessing

    from django.db import connection

    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        theirs = pool.apply(jobs.lock_scope, ("model_retraining",))
    mine = jobs.lock_scope("model_retraining")
    assert mine.endswith(":model_retraining") and connection.settings_dict["NAME"] in mine
    in_memory = connection.vendor == "sqlite" and connection.is_in_memory_db()
    assert (theirs != mine) == in_memory

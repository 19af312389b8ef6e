"""The job registry: every scheduled job is one plain service function.

A job is a plain service function; its app registers it explicitly, in its ``AppConfig``::

    class AnalyticsConfig(AppConfig):
        def register_jobs(self) -> None:
            from analytics import services

            jobs.register(services.aggregate_days, "daily_analytics", schedule=crontab(hour=2, minute=0), window_days=3)

The platform's ``AppConfig.ready`` calls every app's ``register_jobs`` and then builds the beat schedule
from the registry, so importing a service module registers nothing (no import side effect) and the
schedule does not depend on the order of ``INSTALLED_APPS``.

Three doors lead to the same function: the Celery task (``marketing_ai.tasks.run_job``, which
beat calls on the declared crontab), ``manage.py run_job NAME`` and ``manage.py run_job --all``.
``run()`` is the one place that records a ``job_runs`` row, takes the no-overlap lock and
fills in the default date window, so every door behaves the same.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import traceback
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from celery.schedules import crontab
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from marketing_ai import db

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What a job may report while it runs (the command draws it as a progress bar)."""

    def total(self, n: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class NullProgress:
    def total(self, n: int) -> None:  # noqa: D102 - nothing to draw
        pass

    def advance(self, n: int = 1) -> None:  # noqa: D102
        pass


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[..., int]
    schedule: crontab | None
    after: tuple[str, ...] = ()
    # Jobs over a date range get start/end; the default range is the last `window_days` days.
    window_days: int | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def takes_dates(self) -> bool:
        return self.window_days is not None

    def schedule_text(self) -> str:
        if self.schedule is None:
            return "manual only"
        s = self.schedule
        return f"{s._orig_minute} {s._orig_hour} {s._orig_day_of_month} {s._orig_month_of_year} {s._orig_day_of_week} (UTC)"


REGISTRY: dict[str, Job] = {}

# The seed's five schedules (UTC), the contract: each feature app declares its job's crontab where the job
# lives, and a test (tests/platform/test_jobs.py) checks that any job registered under one of these names
# has exactly its seed schedule.
SEED_SCHEDULES: dict[str, crontab] = {
    "daily_analytics": crontab(minute=0, hour=2),
    "model_retraining": crontab(minute=0, hour=3, day_of_week=1),
    "merchant_affinity": crontab(minute=0, hour="0,6,12,18"),
    "send_times": crontab(minute=0, hour=4),
    "campaign_optimizations": crontab(minute=0, hour=5),
}


def register(
    func: Callable[..., int],
    name: str,
    *,
    schedule: crontab | None,
    after: tuple[str, ...] | list[str] = (),
    window_days: int | None = None,
    description: str = "",
) -> Job:
    """Register ``func`` as the job ``name``. The function must return the number of rows written.

    Apps call this from their ``AppConfig.register_jobs``; registering the same function again (a second
    ``django.setup``) is a no-op, another function under a taken name an error.
    """
    existing = REGISTRY.get(name)
    if existing is not None and existing.func.__qualname__ != func.__qualname__:
        raise RuntimeError(f"job {name!r} registered twice ({existing.func.__qualname__}, {func.__qualname__})")
    REGISTRY[name] = Job(
        name=name,
        func=func,
        schedule=schedule,
        after=tuple(after),
        window_days=window_days,
        description=description or next(iter((func.__doc__ or "").strip().splitlines()), ""),
    )
    return REGISTRY[name]


def job(
    name: str,
    *,
    schedule: crontab | None,
    after: tuple[str, ...] | list[str] = (),
    window_days: int | None = None,
    description: str = "",
) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """``register`` as a decorator, registering when it runs: for tests and scripts, not for app modules
    (an app registers its jobs in its ``AppConfig``, so that importing a module has no side effect)."""

    def decorate(func: Callable[..., int]) -> Callable[..., int]:
        register(func, name, schedule=schedule, after=after, window_days=window_days, description=description)
        return func

    return decorate


def register_app_jobs() -> None:
    """Register the jobs of every installed app: each app config's ``register_jobs()``, where it has one."""
    from django.apps import apps

    for config in apps.get_app_configs():
        register_jobs = getattr(config, "register_jobs", None)
        if register_jobs is not None:
            register_jobs()


def get(name: str) -> Job:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise KeyError(f"unknown job {name!r}; registered jobs: {known}") from None


def in_dependency_order() -> list[Job]:
    """Every registered job, each after the jobs it names in ``after`` (unknown names are ignored)."""
    ordered: list[Job] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen or name not in REGISTRY:
            return
        if name in path:
            raise RuntimeError(f"job dependency cycle: {' -> '.join(path + (name,))}")
        for dep in REGISTRY[name].after:
            visit(dep, path + (name,))
        seen.add(name)
        ordered.append(REGISTRY[name])

    for name in sorted(REGISTRY):
        visit(name, ())
    return ordered


def default_window(j: Job, start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    end = end or timezone.now().date()
    start = start or end - dt.timedelta(days=(j.window_days or 1) - 1)
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    return start, end


def lock_scope(name: str) -> str:
    # Scoped by database name: advisory locks are cluster-wide and Redis is shared, while test
    # databases (and several deployments) run side by side. An in-memory SQLite database is one
    # process's own, under the same name in every process (the SQLite test leg's parallel workers):
    # its scope names the process too, or two workers' runs of one job took each other for a lock.
    database = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        database = f"{database}:pid{os.getpid()}"
    return f"{database}:{name}"


class JobLocked(Exception):
    """Another run holds the job's lock and this run must not be dropped: retry it once that run ends.

    Celery retries it (``marketing_ai.tasks.TRANSIENT``), so a delivery that meets a lock never
    counts as a success that did nothing. ``record`` is this attempt's job_runs row.
    """

    def __init__(self, message: str, record=None):
        super().__init__(message)
        self.record = record


@contextmanager
def exclusive(name: str, *, orphan_pids: tuple[int, ...] = (), wait: float = 0) -> Iterator[bool]:
    """Yield True if this process holds the job's lock, False if another run holds it.

    PostgreSQL: a session-level advisory lock, released by the server if the worker dies.
    Elsewhere with Redis: a Redis lock with an expiry (the hard time limit), so a crash frees it.
    SQLite without Redis (demo, bare tests): one process, so a module-level set suffices.
    ``orphan_pids``: database sessions of earlier attempts of this very run, whose worker died
    (PostgreSQL ends such a session only when its current statement ends): if one of them holds the
    lock it is terminated, so the new attempt takes over instead of waiting for work that will be lost.
    ``wait``: seconds to keep trying before giving up.
    """
    if connection.vendor == "postgresql":
        lock = postgres_lock(lock_scope(name), orphan_pids=orphan_pids, wait=wait)
    elif settings.REDIS_URL:
        lock = redis_lock(lock_scope(name), wait=wait)
    else:
        lock = local_lock(lock_scope(name))
    with lock as got:
        yield got


def _advisory_key(scope: str) -> int:
    return zlib.crc32(f"marketing_ai.job.{scope}".encode())


def advisory_lock_holder(scope: str) -> int | None:
    """PostgreSQL: the backend pid holding the job's advisory lock, or None."""
    return db.advisory_lock_holder(_advisory_key(scope))


@contextmanager
def postgres_lock(scope: str, *, orphan_pids: tuple[int, ...] = (), wait: float = 0) -> Iterator[bool]:
    """The job's advisory lock (``marketing_ai.db.advisory_lock``); if an orphaned session of an earlier
    attempt holds it, that session is terminated before waiting."""

    def end_orphan() -> None:
        if orphan_pids and (holder := advisory_lock_holder(scope)) in orphan_pids:
            log.warning("job lock %s: terminating the orphaned session %s of a killed attempt", scope, holder)
            with connection.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", [holder])

    with db.advisory_lock(_advisory_key(scope), wait=wait, before_waiting=end_orphan) as got:
        yield got


def redis_client():
    """A client for the locks: every call bounded by REDIS_SOCKET_TIMEOUT (a frozen Redis must not hang us)."""
    import redis

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT, socket_timeout=settings.REDIS_SOCKET_TIMEOUT
    )


@contextmanager
def redis_lock(scope: str, *, timeout: int | None = None, wait: float = 0) -> Iterator[bool]:
    import redis

    # The expiry is the task's hard time limit: a run that long has been killed, so its lock is stale.
    lock = redis_client().lock(f"marketing_ai:job:{scope}", timeout=timeout or settings.CELERY_TASK_TIME_LIMIT)
    got = lock.acquire(blocking=wait > 0, blocking_timeout=wait or None)
    try:
        yield got
    finally:
        if got:
            try:
                lock.release()
            except redis.exceptions.LockError:  # expired while running: nothing left to free
                pass


@contextmanager
def local_lock(scope: str) -> Iterator[bool]:
    with db.process_lock(scope) as got:
        yield got


# Failures that could not be written because the database itself was gone: {job_runs id: (status, error)}.
# The next run in this process writes them first, so the row tells what happened (not "killed").
_UNRECORDED: dict[int, tuple[str, str]] = {}

DATABASE_LOST = "database connection lost"
KILLED = "killed: the worker running this attempt was lost (process killed or crashed) before recording an end"


def _is_database_loss(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError))


def _finish(record, status: str, *, rows: int = 0, error: str = "") -> None:
    """Record the end of a run, reconnecting once if the database connection was lost meanwhile."""
    try:
        record.finish(status, rows=rows, error=error)
        return
    except DatabaseError:
        connection.close()  # a dead connection: the next query opens a new one
    try:
        record.finish(status, rows=rows, error=error)
    except DatabaseError:
        _UNRECORDED[record.pk] = (status, error)
        log.error("job run %s: could not record its end (%s); will write it with the next run", record.pk, status)
        connection.close()


def _write_unrecorded() -> None:
    from marketing_ai.models import JobRun

    for pk, (status, error) in list(_UNRECORDED.items()):
        JobRun.objects.filter(pk=pk, finished_at__isnull=True).update(
            status=status, error=error, finished_at=timezone.now()
        )
        del _UNRECORDED[pk]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _start_record(name: str, arguments: dict[str, Any], task_id: str):
    """The run's job_runs row, now ``running``: the row queued for this task if there is one, else a new row."""
    from marketing_ai.models import JobRun

    now = timezone.now()
    if task_id:
        queued = JobRun.objects.filter(task_id=task_id, job=name, status=JobRun.Status.QUEUED).first()
        if queued is not None:
            queued.status, queued.started_at, queued.worker = JobRun.Status.RUNNING, now, worker_name()
            queued.arguments = {**queued.arguments, **arguments, "trigger": queued.arguments.get("trigger", arguments["trigger"])}
            queued.save(update_fields=["status", "started_at", "worker", "arguments"])
            return queued
        # A retry or redelivery: who asked is who asked for the first attempt.
        first = JobRun.objects.filter(task_id=task_id, job=name).order_by("pk").first()
        if first is not None:
            arguments = {**arguments, "trigger": first.arguments.get("trigger", arguments["trigger"])}
    return JobRun.objects.create(job=name, arguments=arguments, status=JobRun.Status.RUNNING, task_id=task_id,
                                 worker=worker_name(), started_at=now)


def _killed_attempts(record) -> tuple[int, ...]:
    """Earlier attempts of this very task still ``running``: Celery delivered the task again, so their
    worker is gone. They are marked killed; their database sessions (maybe still running) are returned."""
    from marketing_ai.models import JobRun

    if not record.task_id:
        return ()
    lost = list(JobRun.objects.filter(task_id=record.task_id, status=JobRun.Status.RUNNING).exclude(pk=record.pk))
    attempt = record.arguments.get("attempt", 0)
    for run in lost:
        if run.arguments.get("attempt", 0) < attempt:
            # Celery retried it, so its worker lived and saw an error: one it could not write down, which
            # is the database being unreachable (another worker process kept it in _UNRECORDED).
            error = f"{DATABASE_LOST} (its end could not be written while the database was down); retried as run #{record.pk}"
        else:  # the same message delivered again: its worker died
            error = f"{KILLED}; delivered again as run #{record.pk}"
        run.finish(JobRun.Status.FAILED, rows=run.rows_written, error=error)
    return tuple(run.db_pid for run in lost if run.db_pid and run.arguments.get("attempt", 0) >= attempt)


def _same_work(a, b) -> bool:
    def work(arguments: dict) -> dict:
        return {k: v for k, v in arguments.items() if k not in ("trigger", "attempt")}

    return work(a.arguments) == work(b.arguments)


def run(
    name: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    progress: Progress | None = None,
    trigger: str = "manual",
    raise_errors: bool = True,
    task_id: str = "",
    slot: dt.datetime | None = None,
    retry_when_locked: bool = False,
    attempt: int = 0,
):
    """Run one job now, recorded in ``job_runs``. Returns the JobRun row.

    ``task_id``: the Celery task (its queued row becomes this run's row; earlier attempts of it
    still ``running`` were killed). ``slot``: the scheduled time a beat sent this run for; only
    one task runs each slot. ``retry_when_locked``: when another run holds the lock for
    different work, raise ``JobLocked`` (Celery retries) instead of recording a plain skip.
    ``attempt``: Celery's retry count (a redelivery repeats it, a retry increments it).
    """
    from marketing_ai.models import JobRun

    _write_unrecorded()
    j = get(name)
    kwargs: dict[str, Any] = {"progress": progress or NullProgress()}
    arguments: dict[str, Any] = {"trigger": trigger}
    if j.takes_dates:
        start, end = default_window(j, start, end)
        kwargs.update(start=start, end=end)
        arguments.update(start=start.isoformat(), end=end.isoformat())
    if slot is not None:
        arguments["slot"] = slot.isoformat()
    if attempt:
        arguments["attempt"] = attempt  # Celery's retry count: 1 for the first retry
    record = _start_record(name, arguments, task_id)
    if slot is not None and (taken := claim_slot(name, slot, task_id)) is not None:
        record.finish(JobRun.Status.SKIPPED, error=f"the run scheduled for {slot:%Y-%m-%d %H:%M} UTC was taken by task {taken} (another beat)")
        log.warning("job %s skipped: slot %s already taken by %s", name, slot, taken)
        return record
    orphans = _killed_attempts(record)
    wait = settings.JOB_LOCK_WAIT_SECONDS if (orphans or retry_when_locked) else 0
    with exclusive(name, orphan_pids=orphans, wait=wait) as got:
        if not got:
            holder = JobRun.objects.filter(job=name, status=JobRun.Status.RUNNING).exclude(pk=record.pk).order_by("-started_at").first()
            if retry_when_locked and not (holder is not None and _same_work(holder, record)):
                held_by = f"run #{holder.pk}" if holder else "a run without a job_runs row"
                record.finish(JobRun.Status.SKIPPED, error=f"{held_by} holds the lock; this run is retried after it")
                raise JobLocked(f"job {name}: {held_by} holds the lock", record)
            held_by = f"run #{holder.pk} (same period)" if holder is not None and _same_work(holder, record) else "another run of this job"
            record.finish(JobRun.Status.SKIPPED, error=f"{held_by} holds the lock")
            log.warning("job %s skipped: already running", name)
            return record
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                record.db_pid = cur.fetchone()[0]
            record.save(update_fields=["db_pid"])
        # We hold the lock, so any other "running" row of this job belongs to a run that died without
        # recording its end (worker killed, hard time limit, or its database lost for good).
        JobRun.objects.filter(job=name, status=JobRun.Status.RUNNING).exclude(pk=record.pk).update(
            status=JobRun.Status.FAILED,
            finished_at=timezone.now(),
            error=f"abandoned: {KILLED}, or its database connection was lost for good",
        )
        try:
            rows = j.func(**kwargs)
        except Exception as exc:  # recorded, then re-raised for Celery's retry and the command's exit code
            text = "".join(traceback.format_exception(exc))[-10000:]
            if _is_database_loss(exc):
                text = f"{DATABASE_LOST}: {type(exc).__name__}: {exc}\n{text}"[-10000:]
            _finish(record, JobRun.Status.FAILED, error=text)
            log.exception("job %s failed", name)
            if raise_errors:
                raise
            return record
    _finish(record, JobRun.Status.SUCCEEDED, rows=int(rows or 0))
    log.info("job %s wrote %s rows", name, rows)
    return record


def claim_slot(name: str, slot: dt.datetime, task_id: str) -> str | None:
    """Claim the scheduled time ``slot`` of job ``name`` for ``task_id``; None if ours, else the task that has it.

    A redelivery or retry of the claiming task (same id) keeps its claim.
    """
    from marketing_ai.models import JobSlot

    claim, _ = JobSlot.objects.get_or_create(job=name, slot=slot, defaults={"task_id": task_id})
    return None if claim.task_id == task_id else claim.task_id


def slot_of(schedule: crontab, now: dt.datetime) -> dt.datetime:
    """The latest time at or before ``now`` (UTC, to the minute) that ``schedule`` fires at."""
    t = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    for _ in range(60 * 24 * 366):  # a crontab fires at least once a year
        if (
            t.minute in schedule.minute
            and t.hour in schedule.hour
            and t.day in schedule.day_of_month
            and t.month in schedule.month_of_year
            and (t.isoweekday() % 7) in schedule.day_of_week  # crontab: 0 = Sunday
        ):
            return t
        t -= dt.timedelta(minutes=1)
    raise ValueError(f"schedule {schedule} never fires")


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The Celery beat schedule of every registered job with a crontab."""
    return {
        j.name: {"task": "marketing_ai.run_job", "schedule": j.schedule, "kwargs": {"name": j.name, "scheduled": True}}
        for j in REGISTRY.values()
        if j.schedule is not None
    }

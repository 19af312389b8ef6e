"""The job registry: every scheduled job is one plain service function.

A job is declared where its work lives, with the ``@job`` decorator::

    @job("daily_analytics", schedule=crontab(hour=2, minute=0), window_days=3)
    def aggregate_days(*, start: date, end: date, progress: Progress) -> int: ...

Three doors lead to the same function: the Celery task (``marketing_ai.tasks.run_job``, which
beat calls on the declared crontab), ``manage.py run_job NAME`` and ``manage.py run_job --all``.
``run()`` is the one place that records a ``job_runs`` row, takes the no-overlap lock and
fills in the default date window, so every door behaves the same.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from celery.schedules import crontab
from django.conf import settings
from django.db import connection
from django.utils import timezone

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

# The seed's five schedules (UTC). Feature apps declare their jobs with these, e.g.
# ``@job("daily_analytics", schedule=SEED_SCHEDULES["daily_analytics"])``; a test checks that any job
# registered under one of these names keeps its seed schedule.
SEED_SCHEDULES: dict[str, crontab] = {
    "daily_analytics": crontab(minute=0, hour=2),
    "model_retraining": crontab(minute=0, hour=3, day_of_week=1),
    "merchant_affinity": crontab(minute=0, hour="0,6,12,18"),
    "send_times": crontab(minute=0, hour=4),
    "campaign_optimizations": crontab(minute=0, hour=5),
}


def job(
    name: str,
    *,
    schedule: crontab | None,
    after: tuple[str, ...] | list[str] = (),
    window_days: int | None = None,
    description: str = "",
) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register ``func`` as the job ``name``. The function must return the number of rows written."""

    def register(func: Callable[..., int]) -> Callable[..., int]:
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
        return func

    return register


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
    # databases (and several deployments) run side by side.
    return f"{connection.settings_dict['NAME']}:{name}"


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """Yield True if this process holds the job's lock, False if another run holds it.

    PostgreSQL: a session-level advisory lock, released by the server if the worker dies.
    Elsewhere with Redis: a Redis lock with an expiry (the hard time limit), so a crash frees it.
    SQLite without Redis (demo, bare tests): one process, so a module-level set suffices.
    """
    if connection.vendor == "postgresql":
        lock = postgres_lock
    elif settings.REDIS_URL:
        lock = redis_lock
    else:
        lock = local_lock
    with lock(lock_scope(name)) as got:
        yield got


@contextmanager
def postgres_lock(scope: str) -> Iterator[bool]:
    key = zlib.crc32(f"marketing_ai.job.{scope}".encode())
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [key])
        got = cur.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", [key])


@contextmanager
def redis_lock(scope: str, *, timeout: int | None = None) -> Iterator[bool]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5)
    # The expiry is the task's hard time limit: a run that long has been killed, so its lock is stale.
    lock = client.lock(f"marketing_ai:job:{scope}", timeout=timeout or settings.CELERY_TASK_TIME_LIMIT)
    got = lock.acquire(blocking=False)
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
    got = scope not in _LOCAL_LOCKS
    if got:
        _LOCAL_LOCKS.add(scope)
    try:
        yield got
    finally:
        if got:
            _LOCAL_LOCKS.discard(scope)


_LOCAL_LOCKS: set[str] = set()


def run(
    name: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    progress: Progress | None = None,
    trigger: str = "manual",
    raise_errors: bool = True,
):
    """Run one job now, recorded in ``job_runs``. Returns the JobRun row."""
    from marketing_ai.models import JobRun

    j = get(name)
    kwargs: dict[str, Any] = {"progress": progress or NullProgress()}
    arguments: dict[str, Any] = {"trigger": trigger}
    if j.takes_dates:
        start, end = default_window(j, start, end)
        kwargs.update(start=start, end=end)
        arguments.update(start=start.isoformat(), end=end.isoformat())
    record = JobRun.objects.create(job=name, arguments=arguments, status=JobRun.Status.RUNNING)
    with exclusive(name) as got:
        if not got:
            record.finish(JobRun.Status.SKIPPED, error="another run of this job holds the lock")
            log.warning("job %s skipped: already running", name)
            return record
        # We hold the lock, so any other "running" row of this job belongs to a run that died
        # (worker killed, hard time limit) without recording its end.
        JobRun.objects.filter(job=name, status=JobRun.Status.RUNNING).exclude(pk=record.pk).update(
            status=JobRun.Status.FAILED,
            finished_at=timezone.now(),
            error="abandoned: the run ended without recording a result (worker lost or killed)",
        )
        try:
            rows = j.func(**kwargs)
        except Exception as exc:  # recorded, then re-raised for Celery's retry and the command's exit code
            record.finish(JobRun.Status.FAILED, error="".join(traceback.format_exception(exc))[-10000:])
            log.exception("job %s failed", name)
            if raise_errors:
                raise
            return record
    record.finish(JobRun.Status.SUCCEEDED, rows=int(rows or 0))
    log.info("job %s wrote %s rows", name, rows)
    return record


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The Celery beat schedule of every registered job with a crontab."""
    return {
        j.name: {"task": "marketing_ai.run_job", "schedule": j.schedule, "kwargs": {"name": j.name}}
        for j in REGISTRY.values()
        if j.schedule is not None
    }

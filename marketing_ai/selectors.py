"""Reads for the platform's own pages: the overview of recent activity and job runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from marketing_ai.models import JobRun


@dataclass(frozen=True)
class DailyEventCounts:
    days: list[dt.date]  # every day of the window, oldest first, including days without events
    counts: dict[str, list[int]]  # event type -> one count per day in ``days``

    @property
    def total(self) -> int:
        return sum(sum(per_day) for per_day in self.counts.values())

    @property
    def totals(self) -> dict[str, int]:
        return {event_type: sum(per_day) for event_type, per_day in self.counts.items()}


def events_per_day_by_type(*, days: int = 30, today: dt.date | None = None) -> DailyEventCounts:
    """Events per UTC day and type over the last ``days`` days (today included), in one grouped query."""
    from campaigns.models import Event

    today = today or timezone.now().date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    rows = (
        Event.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .annotate(day=TruncDate("occurred_at", tzinfo=dt.UTC))
        .values("day", "type")
        .annotate(n=Count("id"))
        .order_by()
    )
    window = [first + dt.timedelta(days=i) for i in range(days)]
    index = {day: i for i, day in enumerate(window)}
    counts: dict[str, list[int]] = {}
    for row in rows:
        counts.setdefault(row["type"], [0] * days)[index[row["day"]]] += row["n"]
    # Keep the funnel's order (sent -> opened -> view -> click -> conversion, then spend).
    order = {t: i for i, t in enumerate(Event.Type.values)}
    return DailyEventCounts(days=window, counts=dict(sorted(counts.items(), key=lambda kv: order.get(kv[0], 99))))


def latest_job_runs(*, limit: int = 10) -> list[JobRun]:
    return list(JobRun.objects.order_by("-started_at")[:limit])


def last_run_per_job(names: Iterable[str]) -> dict[str, JobRun]:
    """The most recent run of each named job that has run at least once.

    One indexed lookup per job (``job_runs_job_started``): the table grows by every run, the job list does not.
    """
    latest: dict[str, JobRun] = {}
    for name in names:
        run = JobRun.objects.filter(job=name).order_by("-started_at", "-id").first()
        if run is not None:
            latest[name] = run
    return latest


def event_day_span() -> tuple[dt.date, dt.date] | None:
    """The first and last UTC days with events (two index probes), or ``None`` without events."""
    from django.db.models import Max, Min

    from campaigns.models import Event

    span = Event.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    if span["first"] is None:
        return None
    return span["first"].astimezone(dt.UTC).date(), span["last"].astimezone(dt.UTC).date()

"""The daily analytics aggregation: raw events -> the three aggregate tables.

Set-based: for each chunk of days, ONE grouped query over the events (grouped by campaign, UTC day
and the customer's segment) feeds both the daily table (its segment groups summed) and the segment
table; then one grouped query per interval over the daily table feeds the trend table's daily, weekly
and monthly points, and one grouped query per campaign and UTC hour over the events of the recent days
(``ANALYTICS_HOURLY_DAYS``) its hourly points. Every write is an upsert on the table's unique key;
rows in the recomputed days/periods that were not written by this run (their events are gone) are
deleted, so a re-run gives the same rows and never duplicates.

The grouped queries are written once, with the ORM, and written through ``marketing_ai.db.upsert_from_query``:
on PostgreSQL their compiled SQL fills a temporary table that ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``
statements read, so no row travels through Python (one scan of the events fills both the daily and the
segment table); on other databases (SQLite: demo, bare tests) the rows are fetched and upserted
with ``bulk_create``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import ExtractHour, TruncDate, TruncMonth, TruncWeek
from django.db.models.functions.datetime import TruncBase
from django.utils import timezone

from analytics.models import AggregateRefresh, CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData
from campaigns.models import Event
from marketing_ai import fanout
from marketing_ai.db import UpsertTarget, upsert_from_query
from marketing_ai.jobs import NullProgress, Progress

ZERO = Decimal("0")
COUNTS = ("sends", "opens", "views", "clicks", "conversions")
MONEY_FIELDS = ("revenue", "cost")
DAILY_METRICS = COUNTS + MONEY_FIELDS
SEGMENT_COLUMNS = ("users", "views", "conversions", "revenue", "cost")
# How many days one grouped query covers in a backfill. Measured at 10M events / 90 days
# (docs/BENCHMARKS.md, aggregate): one statement over the whole range 20.6-27.7 s, 31-day chunks
# 24-28 s, 1-day chunks 32 s, 7-day chunks 49 s. Larger statements get a parallel scan and sort,
# per-day ones pay a fixed cost 90 times. A quarter covers the usual 90-day backfill in one statement
# while a year-long backfill still commits every quarter; progress still advances day by day.
# (Measured before issue 15 replaced the one writing-CTE statement by a temporary table, see
# marketing_ai.db.upsert_from_query; larger chunks still win: parallel workers scan the events.)
DEFAULT_CHUNK_DAYS = 92

T = Event.Type


def utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _event_counts() -> dict:
    """The daily table's metrics as aggregates over events (one definition for every grouping)."""
    return {
        "sends": Count("id", filter=Q(type=T.NOTIFICATION_SENT)),
        "opens": Count("id", filter=Q(type=T.NOTIFICATION_OPENED)),
        "views": Count("id", filter=Q(type=T.VIEW)),
        "clicks": Count("id", filter=Q(type=T.CLICK)),
        "conversions": Count("id", filter=Q(type=T.CONVERSION)),
        "revenue": Sum("amount", filter=Q(type=T.CONVERSION)),
        "cost": Sum("amount", filter=Q(type=T.SPEND)),
    }


def _events_of_days(start: dt.date, end: dt.date) -> QuerySet:
    return Event.objects.filter(occurred_at__gte=utc_midnight(start), occurred_at__lt=utc_midnight(end + dt.timedelta(days=1)))


def grouped_events(start: dt.date, end: dt.date) -> QuerySet:
    """Events of the UTC days [start, end] grouped by campaign, day and customer segment (one query)."""
    return (
        _events_of_days(start, end)
        .annotate(day=TruncDate("occurred_at", tzinfo=dt.UTC))
        .values("campaign_id", "day", "customer__segment_id")
        .annotate(users=Count("customer_id", distinct=True), **_event_counts())
        .order_by()
    )


def grouped_hours(start: dt.date, end: dt.date) -> QuerySet:
    """Events of the UTC days [start, end] grouped by campaign and UTC hour (one query)."""
    return (
        _events_of_days(start, end)
        .annotate(period=TruncDate("occurred_at", tzinfo=dt.UTC), hour=ExtractHour("occurred_at", tzinfo=dt.UTC))
        .values("campaign_id", "period", "hour")
        .annotate(**_event_counts())
        .order_by()
    )


def native_sql() -> bool:
    """Whether to run the upserts as INSERT ... SELECT in the database (PostgreSQL) rather than via Python."""
    return connection.vendor == "postgresql"


@transaction.atomic
def aggregate_chunk(start: dt.date, end: dt.date, *, computed_at: dt.datetime, native: bool | None = None) -> int:
    """Recompute the daily and segment rows of the days [start, end]; returns rows written.

    Both tables from one scan of the events (``marketing_ai.db.upsert_from_query``): the ORM's grouped
    query feeds the segment rows as they are and the daily rows summed over segments.
    """
    zero_money = lambda name: f"COALESCE(SUM(g.{name}), 0)"  # noqa: E731 - NULL when no such events
    segment_target = UpsertTarget(
        model=CampaignSegmentAnalytics,
        columns=("campaign_id", "segment_id", "date", *SEGMENT_COLUMNS, "created_at", "computed_at"),
        select="SELECT g.campaign_id, g.customer__segment_id, g.day, g.users, g.views, g.conversions,"
               " COALESCE(g.revenue, 0), COALESCE(g.cost, 0), %s, %s FROM g WHERE g.customer__segment_id IS NOT NULL",
        params=(computed_at, computed_at),
        unique_fields=("campaign", "segment", "date"),
        update_fields=(*SEGMENT_COLUMNS, "computed_at"),
        build=lambda groups: _segment_rows(groups, computed_at),
    )
    daily_target = UpsertTarget(
        model=CampaignAnalyticsDaily,
        columns=("campaign_id", "date", *DAILY_METRICS, "created_at", "computed_at"),
        select=f"SELECT g.campaign_id, g.day, {', '.join(f'SUM(g.{c})' for c in COUNTS)},"
               f" {zero_money('revenue')}, {zero_money('cost')}, %s, %s FROM g GROUP BY g.campaign_id, g.day",
        params=(computed_at, computed_at),
        unique_fields=("campaign", "date"),
        update_fields=(*DAILY_METRICS, "computed_at"),
        build=lambda groups: _daily_rows(groups, computed_at),
    )
    written = upsert_from_query(grouped_events(start, end), [segment_target, daily_target], native=native)
    # Days that lost their events (or a campaign/segment that did): rows this run did not write.
    for model in (CampaignAnalyticsDaily, CampaignSegmentAnalytics):
        model.objects.filter(date__gte=start, date__lte=end).exclude(computed_at=computed_at).delete()
    return written


def aggregate_chunk_part(spec: dict) -> int:
    """One chunk of ``aggregate_days``, from its JSON description (a fan-out helper may run it; the app
    registers it as the part worker ``daily_analytics.chunk``, analytics/apps.py)."""
    return aggregate_chunk(dt.date.fromisoformat(spec["start"]), dt.date.fromisoformat(spec["end"]),
                           computed_at=dt.datetime.fromisoformat(spec["computed_at"]), native=spec["native"])


def _segment_rows(groups: list[dict], computed_at: dt.datetime) -> list[CampaignSegmentAnalytics]:
    return [
        CampaignSegmentAnalytics(
            campaign_id=g["campaign_id"], segment_id=g["customer__segment_id"], date=g["day"],
            users=g["users"], views=g["views"], conversions=g["conversions"],
            revenue=g["revenue"] or ZERO, cost=g["cost"] or ZERO, computed_at=computed_at,
        )
        for g in groups
        if g["customer__segment_id"] is not None
    ]


def _daily_rows(groups: list[dict], computed_at: dt.datetime) -> list[CampaignAnalyticsDaily]:
    daily: dict[tuple[int, dt.date], dict] = defaultdict(lambda: dict.fromkeys(DAILY_METRICS, 0))
    for g in groups:
        totals = daily[(g["campaign_id"], g["day"])]
        for name in COUNTS:
            totals[name] += g[name]
        totals["revenue"] += g["revenue"] or ZERO
        totals["cost"] += g["cost"] or ZERO
    return [
        CampaignAnalyticsDaily(campaign_id=campaign_id, date=day, computed_at=computed_at, **totals)
        for (campaign_id, day), totals in daily.items()
    ]


def period_bounds(interval: str, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of the whole periods of ``interval`` that touch [start, end]."""
    if interval == CampaignTrendData.Interval.DAILY:
        return start, end
    if interval == CampaignTrendData.Interval.WEEKLY:  # ISO weeks, Monday first
        return start - dt.timedelta(days=start.weekday()), end + dt.timedelta(days=6 - end.weekday())
    if interval == CampaignTrendData.Interval.MONTHLY:
        next_month = (end.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        return start.replace(day=1), next_month - dt.timedelta(days=1)
    raise ValueError(f"unknown interval {interval!r}")


TRUNC: dict[str, type[TruncBase]] = {
    CampaignTrendData.Interval.WEEKLY: TruncWeek,
    CampaignTrendData.Interval.MONTHLY: TruncMonth,
}


def grouped_daily(interval: str, first: dt.date, last: dt.date) -> QuerySet:
    """Daily-table rows of [first, last] summed per campaign and period of ``interval`` (one query)."""
    rows = CampaignAnalyticsDaily.objects.filter(date__gte=first, date__lte=last)
    if interval == CampaignTrendData.Interval.DAILY:
        return rows.values("campaign_id", *DAILY_METRICS, period=F("date"), hour=Value(0)).order_by()  # no sort needed
    return (
        rows.annotate(period=TRUNC[interval]("date"), hour=Value(0))
        .values("campaign_id", "period", "hour")
        .annotate(**{name: Sum(name) for name in DAILY_METRICS})
        .order_by()
    )


TREND_KEY = ["campaign", "period_start", "hour", "interval", "metric_type"]


def hourly_first_day(today: dt.date | None = None) -> dt.date:
    """The first UTC day whose hourly trend points are kept (``ANALYTICS_HOURLY_DAYS`` days up to today)."""
    today = today or timezone.now().date()
    return today - dt.timedelta(days=settings.ANALYTICS_HOURLY_DAYS - 1)


@transaction.atomic
def refresh_trends(start: dt.date, end: dt.date, *, computed_at: dt.datetime, native: bool | None = None) -> int:
    """Recompute the trend points of every daily/weekly/monthly period touching [start, end], and the
    hourly points of its days within the hourly retention (dropping hourly points older than that)."""
    native = native_sql() if native is None else native
    hourly = CampaignTrendData.Interval.HOURLY
    first_kept = hourly_first_day()
    CampaignTrendData.objects.filter(interval=hourly, period_start__lt=first_kept).delete()
    written = 0
    first_hour_day = max(start, first_kept)
    if first_hour_day <= end:
        # Zeros are not stored for hours (most of a campaign's 24 x 7 points a day): readers fill them in.
        written += _write_points(hourly, grouped_hours(first_hour_day, end), first_hour_day, end, computed_at,
                                 native=native, zeros=False)
    for interval in (CampaignTrendData.Interval.DAILY, CampaignTrendData.Interval.WEEKLY, CampaignTrendData.Interval.MONTHLY):
        first, last = period_bounds(interval, start, end)
        written += _write_points(interval, grouped_daily(interval, first, last), first, last, computed_at,
                                 native=native, zeros=True)
    return written


def _write_points(interval: str, grouped: QuerySet, first: dt.date, last: dt.date, computed_at: dt.datetime, *,
                  native: bool, zeros: bool) -> int:
    """Upsert one trend row per metric of each ``grouped`` row (campaign_id, period, hour, the metrics), then
    drop the points of [first, last] of this interval that this run did not write; returns rows written.

    PostgreSQL unpivots in the database (LATERAL VALUES); the portable way in Python."""
    metric_values = ", ".join(f"('{name}', g.{name}::numeric)" for name in DAILY_METRICS)
    target = UpsertTarget(
        model=CampaignTrendData,
        columns=("campaign_id", "period_start", "hour", "interval", "metric_type", "value", "created_at", "computed_at"),
        select=f"SELECT g.campaign_id, g.period::date, g.hour, %s, m.metric, COALESCE(m.value, 0), %s, %s"
               f" FROM g CROSS JOIN LATERAL (VALUES {metric_values}) AS m(metric, value)"
               f"{'' if zeros else ' WHERE m.value <> 0'}",
        params=(interval, computed_at, computed_at),
        unique_fields=TREND_KEY,
        update_fields=("value", "computed_at"),
        build=lambda groups: [
            CampaignTrendData(
                campaign_id=g["campaign_id"], period_start=_as_date(g["period"]), hour=g["hour"], interval=interval,
                metric_type=name, value=g[name] or 0, computed_at=computed_at,
            )
            for g in groups
            for name in DAILY_METRICS
            if zeros or g[name]
        ],
    )
    written = upsert_from_query(grouped, [target], native=native)
    CampaignTrendData.objects.filter(
        interval=interval, period_start__gte=first, period_start__lte=last
    ).exclude(computed_at=computed_at).delete()
    return written


def _as_date(value) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def aggregate_days(
    *,
    start: dt.date,
    end: dt.date,
    progress: Progress | None = None,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    native: bool | None = None,
) -> int:
    """Aggregate the UTC days [start, end] into the three analytics tables; returns rows written."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    if chunk_days < 1:
        raise ValueError(f"chunk_days must be at least 1, got {chunk_days}")
    progress = progress or NullProgress()
    days = days_between(start, end)
    computed_at = timezone.now()
    helpers = fanout.helpers_configured()
    if helpers:
        # Several parts per process, so a process that finishes early takes another instead of idling.
        chunk_days = max(1, min(chunk_days, -(-len(days) // (4 * (helpers + 1)))))
    chunks = [days[i : i + chunk_days] for i in range(0, len(days), chunk_days)]
    progress.total(len(days) + 1)  # a step per day, +1: the trend step
    # Chunks are independent and idempotent: with JOB_FANOUT_HELPERS, idle workers share them.
    specs = [{"start": c[0].isoformat(), "end": c[-1].isoformat(), "computed_at": computed_at.isoformat(),
              "native": native, "weight": len(c)} for c in chunks]
    written = fanout.run_parts("daily_analytics.chunk", specs, advance=progress.advance, helpers=helpers)
    written += refresh_trends(start, end, computed_at=computed_at, native=native)
    AggregateRefresh.objects.create(computed_at=computed_at, start=start, end=end, rows_written=written)
    progress.advance(1)
    return written

# The alerts job is declared in its own module; importing it here registers it with the jobs
# (the registry imports every app's services module at start-up).
from analytics import alerts  # noqa: E402, F401

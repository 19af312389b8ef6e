"""Reads for the analytics API and pages. Only the aggregate tables are read, never raw events.

Every function takes a ``Period`` (parsed once from the query string) and optionally one campaign;
without a campaign the figures are the whole portfolio's. The page and the API call the same
functions, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from analytics import metrics
from analytics.models import AggregateRefresh, CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData
from analytics.services import DAILY_METRICS, hourly_first_day, period_bounds
from campaigns.models import Campaign, Segment
from marketing_ai.errors import InvalidInput, NotFound

ALLOWED_DAYS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_RANGE_DAYS = 366  # a year (a leap year's too): bounds one request's work; a typo'd year is refused, not summed
INTERVALS = tuple(CampaignTrendData.Interval.values)  # hourly, daily, weekly, monthly
ZERO = Decimal("0")
CENT = Decimal("0.01")


def money(value) -> Decimal:
    """Money to the cent (SQLite's SUM of decimals comes back unscaled: 200 rather than 200.00)."""
    return Decimal(value or 0).quantize(CENT)


@dataclass(frozen=True)
class Period:
    """An inclusive range of UTC days; ``days`` is set when it came from ``?days=``."""

    start: dt.date
    end: dt.date
    days: int | None = None

    @property
    def length(self) -> int:
        return (self.end - self.start).days + 1

    def as_query(self) -> str:
        return f"days={self.days}" if self.days else f"from={self.start.isoformat()}&to={self.end.isoformat()}"

    @classmethod
    def from_query(cls, params: Mapping[str, str], *, today: dt.date | None = None) -> Period:
        """``?days=7|30|90`` (ending today, UTC) or ``?from=YYYY-MM-DD&to=YYYY-MM-DD``; 30 days by default.

        Bad values raise ``InvalidInput`` naming the field and what is allowed.
        """
        today = today or timezone.now().date()
        days, start, end = params.get("days"), params.get("from"), params.get("to")
        allowed = ", ".join(map(str, ALLOWED_DAYS))
        if days not in (None, "") and (start or end):
            raise InvalidInput({"days": ["give either days or from/to, not both"]})
        if start or end:
            if not start:
                raise InvalidInput({"from": ["required when to is given (an ISO date, YYYY-MM-DD)"]})
            first = _iso_date("from", start)
            last = _iso_date("to", end) if end else today
            for name, day in (("from", first), ("to", last)):
                if day > today:
                    raise InvalidInput({name: [f"must not be after today ({today.isoformat()}, UTC): "
                                             f"there are no figures for days to come (got {day.isoformat()})"]})
            if last < first:
                raise InvalidInput({"to": [f"must be on or after from ({first.isoformat()})"]})
            if (last - first).days + 1 > MAX_RANGE_DAYS:
                raise InvalidInput({"from": [f"the range may span at most {MAX_RANGE_DAYS} days (one year); "
                                           f"this one spans {(last - first).days + 1}: ask one year at a time"]})
            return cls(first, last)
        if days in (None, ""):
            n = DEFAULT_DAYS
        elif days.strip().isascii() and days.strip().isdigit() and int(days) in ALLOWED_DAYS:  # not "²"
            n = int(days)
        else:
            raise InvalidInput({"days": [f"must be one of {allowed} (got {days!r})"]})
        return cls(today - dt.timedelta(days=n - 1), today, n)


def _iso_date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput({name: [f"must be an ISO date, YYYY-MM-DD (got {value!r})"]}) from None


def parse_interval(value: str | None, period: Period | None = None) -> str:
    """The trend interval (daily by default); with a ``period``, also check that hourly points cover it."""
    interval = (value or CampaignTrendData.Interval.DAILY).strip().lower()
    if interval not in INTERVALS:
        raise InvalidInput({"interval": [f"must be one of {', '.join(INTERVALS)} (got {value!r})"]})
    if interval == CampaignTrendData.Interval.HOURLY and period is not None and not hourly_covers(period):
        raise InvalidInput({"interval": [
            f"hourly points are kept for the last {settings.ANALYTICS_HOURLY_DAYS} days "
            f"(from {hourly_first_day().isoformat()}); ask ?days={min(ALLOWED_DAYS)} or a from/to within them, "
            "or another interval"
        ]})
    return interval


def hourly_covers(period: Period) -> bool:
    """Whether the hourly points kept (the last ``ANALYTICS_HOURLY_DAYS`` days) cover the whole range."""
    return period.start >= hourly_first_day()


def campaign_by_external_id(campaign_id: str) -> Campaign:
    try:
        return Campaign.objects.get(campaign_id=campaign_id)
    except Campaign.DoesNotExist:
        raise NotFound(f"No campaign with campaign_id {campaign_id!r}.") from None


@dataclass(frozen=True)
class Totals:
    """Summed counts and money, with the derived metrics of ``analytics.metrics``."""

    sends: int = 0
    opens: int = 0
    views: int = 0
    clicks: int = 0
    conversions: int = 0
    revenue: Decimal = ZERO
    cost: Decimal = ZERO

    @classmethod
    def from_row(cls, row: Mapping) -> Totals:
        return cls(**{name: money(row.get(name)) if name in ("revenue", "cost") else int(row.get(name) or 0)
                      for name in DAILY_METRICS})

    @property
    def conversion_rate(self) -> float:
        return metrics.conversion_rate(self.conversions, self.views)

    @property
    def conversion_rate_percent(self) -> float:
        return self.conversion_rate * 100

    @property
    def conversion_rate_ci(self) -> metrics.Interval:
        return metrics.wilson_interval(self.conversions, self.views)

    @property
    def conversion_rate_ci_percent(self) -> metrics.Interval:
        ci = self.conversion_rate_ci
        return metrics.Interval(ci.low * 100, ci.high * 100)

    @property
    def roi(self) -> metrics.Roi:
        return metrics.roi(self.revenue, self.cost)

    @property
    def profit(self) -> Decimal:
        return self.revenue - self.cost

    def funnel(self) -> list[tuple[str, int]]:
        return [("sent", self.sends), ("opened", self.opens), ("viewed", self.views),
                ("clicked", self.clicks), ("converted", self.conversions)]


SUMS = {name: Sum(name) for name in DAILY_METRICS}


def _daily(period: Period, campaign: Campaign | None) -> QuerySet:
    rows = CampaignAnalyticsDaily.objects.filter(date__gte=period.start, date__lte=period.end)
    return rows.filter(campaign=campaign) if campaign is not None else rows


def totals(period: Period, campaign: Campaign | None = None) -> Totals:
    """One campaign's (or the portfolio's) totals over the period."""
    return Totals.from_row(_daily(period, campaign).aggregate(**SUMS))


@dataclass(frozen=True)
class Change:
    """One KPI's change against the previous period; ``None`` with a reason when it is undefined."""

    value: float | None  # percent for counts and money; percentage points for rates
    unit: str  # "%" or "pp"
    reason: str | None = None


@dataclass(frozen=True)
class Comparison:
    """The range's complete days against the same number of days just before them.

    Today is still under way, so it is left out of both sides: comparing a partial day with a whole
    one would read as a collapse.
    """

    current: Period
    previous: Period
    current_totals: Totals
    previous_totals: Totals
    today_left_out: bool

    def change(self, metric: str) -> Change:
        now, before = self.current_totals, self.previous_totals
        if metric in ("conversion_rate", "roi"):
            if metric == "conversion_rate":
                a = now.conversion_rate * 100 if now.views else None
                b = before.conversion_rate * 100 if before.views else None
                why = "no views"
            else:
                a, b, why = now.roi.percentage, before.roi.percentage, "no cost"
            if a is None or b is None:
                return Change(None, "pp", f"{why} in the {'previous' if b is None else 'current'} period")
            return Change(a - b, "pp")
        a, b = getattr(now, metric), getattr(before, metric)
        if b == 0:
            return Change(None, "%", "none in the previous period" if a else "none in either period")
        return Change(float((a - b) / b * 100), "%")


def comparison(period: Period, campaign: Campaign | None = None, *, today: dt.date | None = None) -> Comparison | None:
    """``Comparison`` of the period's complete days with the days before; None when only today is in range."""
    today = today or timezone.now().date()
    end = min(period.end, today - dt.timedelta(days=1))
    if end < period.start:
        return None
    current = Period(period.start, end)
    previous = Period(current.start - dt.timedelta(days=current.length), current.start - dt.timedelta(days=1))
    return Comparison(current, previous, totals(current, campaign), totals(previous, campaign), period.end >= today)


@dataclass(frozen=True)
class SegmentRow:
    segment_name: str
    users_count: int  # customer-days: distinct customers active each day, summed over the days
    totals: Totals


def segments(period: Period, campaign: Campaign | None = None) -> list[SegmentRow]:
    """Every segment (zeros when it had no activity), from the segment table."""
    rows = CampaignSegmentAnalytics.objects.filter(date__gte=period.start, date__lte=period.end)
    if campaign is not None:
        rows = rows.filter(campaign=campaign)
    by_segment = {
        r["segment_id"]: r
        for r in rows.values("segment_id").annotate(
            users=Sum("users"), views=Sum("views"), conversions=Sum("conversions"), revenue=Sum("revenue"), cost=Sum("cost")
        ).order_by()
    }
    out = []
    for seg in Segment.objects.order_by("name"):
        r = by_segment.get(seg.pk, {})
        out.append(SegmentRow(seg.name, int(r.get("users") or 0), Totals.from_row(r)))
    return out


@dataclass(frozen=True)
class BestSegment:
    """The segment with the highest conversion rate, and whether the data can tell it from the runner-up."""

    row: SegmentRow
    runner_up: SegmentRow | None
    separated: bool  # its 95 % interval lies above the runner-up's (else the data cannot rank them yet)


def best_segment(rows: list[SegmentRow]) -> BestSegment | None:
    """The highest conversion rate among segments with views; None when no segment has any."""
    ranked = sorted((r for r in rows if r.totals.views), key=lambda r: (-r.totals.conversion_rate, r.segment_name))
    if not ranked:
        return None
    best, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    separated = runner_up is None or best.totals.conversion_rate_ci.low > runner_up.totals.conversion_rate_ci.high
    return BestSegment(best, runner_up, separated)


@dataclass(frozen=True)
class TrendPoint:
    date: dt.date | dt.datetime  # start of the period: its first day, or its first instant (UTC) for hourly
    totals: Totals
    partial: bool = False  # the period is still under way (today, this week, this month, this hour)


def current_period_start(interval: str, now: dt.datetime | None = None) -> dt.date | dt.datetime:
    """The start of the period of ``interval`` that is still under way at ``now`` (UTC): its points are partial."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    if interval == CampaignTrendData.Interval.HOURLY:
        return now.replace(minute=0, second=0, microsecond=0)
    today = now.date()
    if interval == CampaignTrendData.Interval.WEEKLY:
        return today - dt.timedelta(days=today.weekday())
    if interval == CampaignTrendData.Interval.MONTHLY:
        return today.replace(day=1)
    return today


def _period_starts(interval: str, first: dt.date, last: dt.date) -> list[dt.date]:
    starts, day = [], first
    while day <= last:
        starts.append(day)
        if interval == CampaignTrendData.Interval.DAILY:
            day += dt.timedelta(days=1)
        elif interval == CampaignTrendData.Interval.WEEKLY:
            day += dt.timedelta(days=7)
        else:
            day = (day + dt.timedelta(days=32)).replace(day=1)
    return starts


def _point(start: dt.date | dt.datetime, v: Mapping[str, Decimal], current: dt.date | dt.datetime) -> TrendPoint:
    return TrendPoint(start, Totals(
        **{name: int(v.get(name) or 0) for name in DAILY_METRICS if name not in ("revenue", "cost")},
        revenue=money(v.get("revenue")), cost=money(v.get("cost")),
    ), partial=start >= current)


def trends(period: Period, interval: str, campaign: Campaign | None = None) -> list[TrendPoint]:
    """One point per whole period of ``interval`` touching the range (weeks start on Monday), zero-filled;
    hourly: one per UTC hour of the range's days, up to the current hour."""
    hourly = interval == CampaignTrendData.Interval.HOURLY
    first, last = (period.start, period.end) if hourly else period_bounds(interval, period.start, period.end)
    points = CampaignTrendData.objects.filter(interval=interval, period_start__gte=first, period_start__lte=last)
    if campaign is not None:
        points = points.filter(campaign=campaign)
    values: dict[tuple[dt.date, int], dict[str, Decimal]] = {}
    current = current_period_start(interval)
    for p in points.values("period_start", "hour", "metric_type").annotate(total=Sum("value")).order_by():
        values.setdefault((p["period_start"], p["hour"]), {})[p["metric_type"]] = p["total"]
    if hourly:
        # Hours still to come are not zeros: the series stops at the current hour (or a later one with
        # events: ingestion accepts times up to a day ahead).
        stop = max([timezone.now(), *(dt.datetime.combine(d, dt.time(h), tzinfo=dt.UTC) for d, h in values)])
        starts = (dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
                  for day in _period_starts(CampaignTrendData.Interval.DAILY, first, last) for hour in range(24))
        return [_point(start, values.get((start.date(), start.hour), {}), current) for start in starts if start <= stop]
    return [_point(start, values.get((start, 0), {}), current) for start in _period_starts(interval, first, last)]


@dataclass(frozen=True)
class CampaignRow:
    campaign_id: str
    name: str
    status: str
    totals: Totals


@dataclass(frozen=True)
class Portfolio:
    total_campaigns: int
    active_campaigns: int
    totals: Totals
    campaigns: list[CampaignRow] = field(default_factory=list)


def portfolio(period: Period) -> Portfolio:
    """All campaigns (with their status), by revenue over the period, and the portfolio's totals."""
    counts = Campaign.objects.aggregate(total=Count("id"), active=Count("id", filter=Q(status=Campaign.Status.ACTIVE)))
    per_campaign = {r["campaign_id"]: r for r in _daily(period, None).values("campaign_id").annotate(**SUMS).order_by()}
    rows = [
        CampaignRow(c.campaign_id, c.name, c.status, Totals.from_row(per_campaign.get(c.pk, {})))
        for c in Campaign.objects.only("id", "campaign_id", "name", "status").order_by("campaign_id")
    ]
    rows.sort(key=lambda r: r.totals.revenue, reverse=True)  # stable: ties stay in campaign_id order
    overall = Totals(**{
        name: sum((getattr(r.totals, name) for r in rows), CENT * 0 if name in ("revenue", "cost") else 0)
        for name in DAILY_METRICS
    })
    return Portfolio(counts["total"], counts["active"], overall, rows)


def campaign_choices() -> list[tuple[str, str]]:
    """(campaign_id, label) for the dashboard's campaign picker."""
    return [(c.campaign_id, f"{c.name} ({c.campaign_id})") for c in Campaign.objects.only("campaign_id", "name").order_by("name")]


def last_aggregation():
    """The latest finished daily_analytics run (for the page's "data as of"), or None."""
    from marketing_ai.models import JobRun

    return JobRun.objects.filter(job="daily_analytics", finished_at__isnull=False).order_by("-finished_at").first()


# The version is read at most once per ANALYTICS_VERSION_CACHE_SECONDS from the database: on a cached answer
# that query was a third of the request's database work. It is kept in the settings' "default" cache (local
# memory per process); a run saved in this process forgets it at once (forget_data_version, connected in
# analytics/apps.py).
VERSION_CACHE_KEY = "analytics:data_version"
_NOT_CACHED = object()


def data_version() -> tuple | None:
    """(id, computed_at) of the latest aggregation run, or None before the first: the API's cache version.

    Reused for ``ANALYTICS_VERSION_CACHE_SECONDS`` within a process, so a run made by another process (the
    Celery worker) reaches the API within that bound. Inside a transaction (tests, a job) it is always read.
    """
    seconds = settings.ANALYTICS_VERSION_CACHE_SECONDS
    if seconds <= 0 or connection.in_atomic_block:
        return _read_data_version()
    version = cache.get(VERSION_CACHE_KEY, _NOT_CACHED)  # None is a version too: no run yet
    if version is _NOT_CACHED:
        version = _read_data_version()
        cache.set(VERSION_CACHE_KEY, version, seconds)
    return version


def _read_data_version() -> tuple | None:
    return AggregateRefresh.objects.order_by("-id").values_list("id", "computed_at").first()


def forget_data_version(**_) -> None:
    """A post_save receiver of AggregateRefresh: the next data_version() reads the new run."""
    cache.delete(VERSION_CACHE_KEY)


def days_aggregated_after(first: dt.date, last: dt.date, *, computed_after: dt.datetime) -> set[dt.date]:
    """The days of [first, last] inside some completed aggregation run computed after ``computed_after``
    (the event partitions' retention asks this of a month before dropping its events)."""
    covered: set[dt.date] = set()
    runs = AggregateRefresh.objects.filter(computed_at__gte=computed_after, start__lte=last, end__gte=first)
    for start, end in runs.values_list("start", "end"):
        day = max(start, first)
        while day <= min(end, last):
            covered.add(day)
            day += dt.timedelta(days=1)
    return covered

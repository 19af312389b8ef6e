"""Aggregate tables the analytics API and dashboard read (never the raw events).

All three are written only by ``analytics.services.aggregate_days`` (the ``daily_analytics`` job),
which upserts on each table's unique key and stamps ``computed_at`` with the run's time so that
rows for a (campaign, day) that no longer has events are removed on re-run.
Days are UTC calendar days of ``Event.occurred_at``.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Coalesce

from campaigns.models import MONEY, Campaign, Customer, Segment


class CampaignCustomerDay(models.Model):
    """The events of one campaign, one customer and one UTC day, counted: the job's source.

    Kept current by database triggers on the events table (migration 0003: statement-level with
    transition tables on PostgreSQL, row-level on SQLite), in the same transaction as every insert,
    delete, update or truncate of events, whatever wrote them (ingest, import, demo COPY, admin, SQL).
    One row per customer and campaign-day makes the segment table's distinct ``users`` a plain
    ``COUNT(*)``; sorting the raw events for ``COUNT(DISTINCT customer)`` cost the backfill 1.5-3x a
    whole grouped scan by itself (docs/analytics.md). ``customer`` is null for events without a customer
    (spend); the unique key treats those as one customer. ``rebuild_event_rollup`` recomputes the table.
    """

    campaign = models.ForeignKey(
        Campaign, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    date = models.DateField()
    sends = models.IntegerField(default=0)
    opens = models.IntegerField(default=0)
    views = models.IntegerField(default=0)
    clicks = models.IntegerField(default=0)
    conversions = models.IntegerField(default=0)
    # Wider than one amount (MONEY): a sum of many maximal amounts must never fail an ingest.
    revenue = models.DecimalField(max_digits=24, decimal_places=2, default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=2, default=0)
    events = models.IntegerField(default=0, help_text="all events; the row goes when it reaches 0")

    class Meta:
        db_table = "analytics_campaign_customer_day"
        constraints = [
            # The triggers' ON CONFLICT target: COALESCE makes the events without a customer one key.
            # Date first: the job reads day ranges, and new events land at the index's recent end.
            models.UniqueConstraint("date", "campaign", Coalesce("customer", 0), name="campaign_customer_day_key"),
        ]
        verbose_name = "campaign customer day"

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.customer_id} {self.date}"


class CampaignAnalyticsDaily(models.Model):
    """One campaign's counts and money for one UTC day."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="analytics_daily")
    date = models.DateField()
    sends = models.BigIntegerField(default=0, help_text="notification_sent events")
    opens = models.BigIntegerField(default=0, help_text="notification_opened events")
    views = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)
    conversions = models.BigIntegerField(default=0)
    revenue = models.DecimalField(**MONEY, default=0, help_text="sum of conversion amounts")
    cost = models.DecimalField(**MONEY, default=0, help_text="sum of spend amounts")
    created_at = models.DateTimeField(auto_now_add=True)
    computed_at = models.DateTimeField(help_text="when the job last (re)computed this row")

    class Meta:
        db_table = "campaign_analytics_daily"
        ordering = ["campaign_id", "date"]
        constraints = [models.UniqueConstraint(fields=["campaign", "date"], name="analytics_daily_campaign_date")]
        indexes = [models.Index(fields=["date"], name="analytics_daily_date")]
        verbose_name_plural = "campaign analytics (daily)"

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.date}"


class CampaignSegmentAnalytics(models.Model):
    """One campaign's figures among the customers of one segment, for one UTC day.

    ``users`` counts distinct customers (of the segment) with any event that day. Events without a
    customer, or whose customer has no segment, are in the daily table but in no segment row.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="segment_analytics")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="campaign_analytics")
    date = models.DateField()
    users = models.BigIntegerField(default=0)
    views = models.BigIntegerField(default=0)
    conversions = models.BigIntegerField(default=0)
    revenue = models.DecimalField(**MONEY, default=0)
    cost = models.DecimalField(**MONEY, default=0, help_text="spend events attributed to a customer of the segment")
    created_at = models.DateTimeField(auto_now_add=True)
    computed_at = models.DateTimeField()

    class Meta:
        db_table = "campaign_segment_analytics"
        ordering = ["campaign_id", "date", "segment_id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "segment", "date"], name="segment_analytics_campaign_segment_date")
        ]
        indexes = [models.Index(fields=["date"], name="segment_analytics_date")]
        verbose_name_plural = "campaign segment analytics"

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.segment_id} {self.date}"


class CampaignTrendData(models.Model):
    """One metric of one campaign summed over one period (a day, an ISO week from Monday, a month)."""

    class Interval(models.TextChoices):
        HOURLY = "hourly"  # reserved: the job does not fill hourly rows (the daily table is its source)
        DAILY = "daily"
        WEEKLY = "weekly"
        MONTHLY = "monthly"

    class Metric(models.TextChoices):
        SENDS = "sends"
        OPENS = "opens"
        VIEWS = "views"
        CLICKS = "clicks"
        CONVERSIONS = "conversions"
        REVENUE = "revenue"
        COST = "cost"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="trend_data")
    period_start = models.DateField()
    interval = models.CharField(max_length=8, choices=Interval.choices)
    metric_type = models.CharField(max_length=16, choices=Metric.choices)
    value = models.DecimalField(max_digits=18, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)
    computed_at = models.DateTimeField()

    class Meta:
        db_table = "campaign_trend_data"
        ordering = ["campaign_id", "interval", "period_start", "metric_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "period_start", "interval", "metric_type"], name="trend_data_unique_point"
            )
        ]
        indexes = [models.Index(fields=["interval", "period_start"], name="trend_data_interval_start")]
        verbose_name_plural = "campaign trend data"

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.interval} {self.period_start} {self.metric_type}={self.value}"


class AggregateRefresh(models.Model):
    """One completed run of the aggregation. The latest row versions the aggregate tables: the API
    caches its answers under that version, so a new run (or re-aggregation) is seen at once."""

    computed_at = models.DateTimeField()
    start = models.DateField()
    end = models.DateField()
    rows_written = models.BigIntegerField(default=0)

    class Meta:
        db_table = "analytics_refresh"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"aggregated {self.start}..{self.end} at {self.computed_at:%Y-%m-%d %H:%M:%S}"

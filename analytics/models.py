"""Aggregate tables the analytics API and dashboard read (never the raw events).

All three are written only by ``analytics.services.aggregate_days`` (the ``daily_analytics`` job),
which upserts on each table's unique key and stamps ``computed_at`` with the run's time so that
rows for a (campaign, day) that no longer has events are removed on re-run.
Days are UTC calendar days of ``Event.occurred_at``. On PostgreSQL the three tables keep half of each page
free (migration 0005): a re-run updates every row of its days in place, and the room keeps those updates
HOT (no index writes), which halved the nightly one-day run (``marketing_ai.db.leave_room_for_updates``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

from campaigns.models import MONEY, Campaign, Segment


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
    """One metric of one campaign summed over one period: an hour, a UTC day, an ISO week from Monday, a month.

    ``period_start`` is the period's first UTC day and ``hour`` its first UTC hour (0 but for hourly points).
    Hourly points come from the events themselves and are kept for the last ``ANALYTICS_HOURLY_DAYS``
    days only, and only where the value is not 0 (readers fill the gaps with zeros); the other
    intervals are summed from the daily table, with every metric stored.
    """

    class Interval(models.TextChoices):
        HOURLY = "hourly"
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
    hour = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(23)], help_text="UTC hour (hourly)")
    interval = models.CharField(max_length=8, choices=Interval.choices)
    metric_type = models.CharField(max_length=16, choices=Metric.choices)
    value = models.DecimalField(max_digits=18, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)
    computed_at = models.DateTimeField()

    class Meta:
        db_table = "campaign_trend_data"
        ordering = ["campaign_id", "interval", "period_start", "hour", "metric_type"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "period_start", "hour", "interval", "metric_type"], name="trend_data_unique_point"
            )
        ]
        indexes = [models.Index(fields=["interval", "period_start"], name="trend_data_interval_start")]
        verbose_name_plural = "campaign trend data"

    def __str__(self) -> str:
        hour = f" {self.hour:02d}h" if self.interval == self.Interval.HOURLY else ""
        return f"{self.campaign_id} {self.interval} {self.period_start}{hour} {self.metric_type}={self.value}"


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


class AlertSubscription(models.Model):
    """A user asks for an e-mail when something of ``kind`` happens (for one campaign, or any when empty)."""

    class Kind(models.TextChoices):
        ABTEST_DECISION = "abtest_decision", "a running A/B test reaches a decision"
        ABTEST_SRM = "abtest_srm", "a running A/B test shows a sample ratio mismatch"
        JOB_FAILED = "job_failed", "a scheduled job fails"
        CONVERSIONS_UNUSUAL = "conversions_unusual", "a campaign's daily conversions fall outside their usual range"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_subscriptions")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    campaign = models.ForeignKey("campaigns.Campaign", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="alert_subscriptions", help_text="empty: every campaign")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "alert_subscriptions"
        constraints = [  # NULL campaigns are distinct in SQL: "every campaign" gets its own partial constraint
            models.UniqueConstraint(fields=["user", "kind", "campaign"], condition=models.Q(campaign__isnull=False),
                                    name="alert_subscription_per_campaign"),
            models.UniqueConstraint(fields=["user", "kind"], condition=models.Q(campaign__isnull=True),
                                    name="alert_subscription_every_campaign"),
        ]

    def __str__(self) -> str:
        return f"{self.user} <- {self.kind}{f' ({self.campaign_id})' if self.campaign_id else ''}"


class AlertSent(models.Model):
    """One e-mail sent for one subscription about one thing (``key``): the same thing is never mailed twice."""

    subscription = models.ForeignKey(AlertSubscription, on_delete=models.CASCADE, related_name="sent")
    key = models.CharField(max_length=200, help_text="what it was about, e.g. abtest:<test_id>:decision:winner:B")
    subject = models.CharField(max_length=300)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "alerts_sent"
        ordering = ["-sent_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["subscription", "key"], name="alert_sent_once")]

    def __str__(self) -> str:
        return self.subject

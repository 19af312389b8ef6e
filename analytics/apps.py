from celery.schedules import crontab
from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Campaign analytics"

    def register_jobs(self) -> None:
        """The app's jobs (the platform's ready() calls this; marketing_ai/jobs.py)."""
        from django.conf import settings

        from analytics import alerts, services
        from marketing_ai import fanout, jobs

        jobs.register(
            services.aggregate_days,
            "daily_analytics",
            schedule=crontab(hour=2, minute=0),
            window_days=settings.ANALYTICS_WINDOW_DAYS,
            description="Aggregate events into campaign_analytics_daily, campaign_segment_analytics and campaign_trend_data",
        )
        fanout.register_part_worker("daily_analytics.chunk", services.aggregate_chunk_part)
        jobs.register(alerts.send_alerts, "alerts", schedule=crontab(minute=30), after=("daily_analytics",))

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from analytics import selectors
        from analytics.models import AggregateRefresh

        # A run saved in this process is seen by the API at once (not after ANALYTICS_VERSION_CACHE_SECONDS).
        post_save.connect(selectors.forget_data_version, sender=AggregateRefresh, dispatch_uid="analytics-version-memo")

from dataclasses import dataclass

from django.apps import AppConfig


@dataclass
class DuplicateHint:
    """Did this process's last ingestion batch meet event_ids stored already? A hint for the next batch
    only (campaigns.ingest.store: look the ids up first, or go straight to the COPY)."""

    expected: bool = False


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns and events"

    def register_jobs(self) -> None:
        """The app's jobs (the platform's ready() calls this; marketing_ai/jobs.py)."""
        from celery.schedules import crontab

        from campaigns import partitions
        from marketing_ai import jobs

        # Before daily_analytics (02:00): next month's partition exists long before its first event.
        jobs.register(
            partitions.event_partitions,
            "event_partitions",
            schedule=crontab(hour=1, minute=15),
            description="PostgreSQL: create monthly event partitions ahead; drop months past EVENT_RETENTION_MONTHS once aggregated",
        )

    def ready(self) -> None:
        self.duplicate_hint = DuplicateHint()

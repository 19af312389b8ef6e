from celery.schedules import crontab
from django.apps import AppConfig


class AbtestsConfig(AppConfig):
    name = "abtests"
    verbose_name = "A/B tests"

    def register_jobs(self) -> None:
        """The app's jobs (the platform's ready() calls this; marketing_ai/jobs.py)."""
        from abtests import services
        from marketing_ai import jobs

        jobs.register(services.refresh_running_results, "abtest_results", schedule=crontab(minute=15))

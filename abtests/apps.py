from celery.schedules import crontab
from django.apps import AppConfig


class AbtestsConfig(AppConfig):
    name = "abtests"
    verbose_name = "A/B tests"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from abtests.models import ABTestResult, ABTestVariant, variant_or_result_written

        # Variants (admin, services) and stored results (analyze, the hourly job, loaders) are read by the
        # A/B answers: any write through the ORM moves the test's data_version (abtests/answers.py).
        for model in (ABTestVariant, ABTestResult):
            post_save.connect(variant_or_result_written, sender=model, dispatch_uid=f"abtests-version-{model.__name__}")
            post_delete.connect(variant_or_result_written, sender=model,
                                dispatch_uid=f"abtests-version-del-{model.__name__}")

    def register_jobs(self) -> None:
        """The app's jobs (the platform's ready() calls this; marketing_ai/jobs.py)."""
        from abtests import services
        from marketing_ai import jobs

        jobs.register(services.refresh_running_results, "abtest_results", schedule=crontab(minute=15))

from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from optimizer.registry import ArtifactCache


class OptimizerConfig(AppConfig):
    name = "optimizer"
    verbose_name = "Optimisation"
    artifact_cache: ArtifactCache  # the trained models this process loaded last (optimizer.registry)

    def ready(self) -> None:
        from django.conf import settings

        from optimizer.registry import ArtifactCache

        self.artifact_cache = ArtifactCache(settings.MODEL_ARTIFACT_CACHE_SIZE)

    def register_jobs(self) -> None:
        """The app's jobs (the platform's ready() calls this; marketing_ai/jobs.py).

        The service modules load scikit-learn, skops and scipy.stats on first use only, so start-up stays light.
        """
        from celery.schedules import crontab

        from marketing_ai import fanout, jobs
        from optimizer.services import affinity, recommendations, send_times, training

        # The crontabs are the seed's (a test compares them with jobs.SEED_SCHEDULES).
        jobs.register(training.retrain_models, "model_retraining", schedule=crontab(hour=3, minute=0, day_of_week=1),
                      after=("daily_analytics",))
        jobs.register(send_times.compute_send_times, "send_times", schedule=crontab(hour=4, minute=0),
                      after=("model_retraining",))
        jobs.register(affinity.update_merchant_affinity, "merchant_affinity",
                      schedule=crontab(minute=0, hour="0,6,12,18"), after=("model_retraining",))
        # Their fan-out parts (optimizer.services.staging), known to every process that may help.
        fanout.register_part_worker(send_times.PART_WORKER, send_times.stage_part)
        fanout.register_part_worker(affinity.PART_WORKER, affinity.stage_part)
        jobs.register(
            recommendations.generate_optimizations,
            "campaign_optimizations",
            schedule=crontab(hour=5, minute=0),
            after=("daily_analytics", "model_retraining", "send_times", "merchant_affinity"),
        )

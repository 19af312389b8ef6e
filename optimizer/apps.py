from django.apps import AppConfig


class OptimizerConfig(AppConfig):
    name = "optimizer"
    verbose_name = "Optimisation"

    def register_jobs(self) -> None:
        """The app's jobs (the platform's ready() calls this; marketing_ai/jobs.py).

        The service modules load scikit-learn, skops and scipy.stats on first use only, so start-up stays light.
        """
        from marketing_ai import jobs
        from optimizer.services import affinity, recommendations, send_times, training

        seed = jobs.SEED_SCHEDULES
        jobs.register(training.retrain_models, "model_retraining", schedule=seed["model_retraining"], after=("daily_analytics",))
        jobs.register(send_times.compute_send_times, "send_times", schedule=seed["send_times"], after=("model_retraining",))
        jobs.register(
            affinity.update_merchant_affinity, "merchant_affinity", schedule=seed["merchant_affinity"], after=("model_retraining",)
        )
        jobs.register(
            recommendations.generate_optimizations,
            "campaign_optimizations",
            schedule=seed["campaign_optimizations"],
            after=("daily_analytics", "model_retraining", "send_times", "merchant_affinity"),
        )

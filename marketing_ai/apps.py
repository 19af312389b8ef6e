from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class MarketingAiConfig(AppConfig):
    name = "marketing_ai"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Jobs are declared with @job in each app's services module; importing registers them.
        autodiscover_modules("services")
        from marketing_ai import jobs
        from marketing_ai.celery import app

        # django-celery-beat's DatabaseScheduler copies this into its tables at start-up.
        app.conf.beat_schedule = jobs.beat_schedule()

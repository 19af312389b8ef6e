from django.apps import AppConfig


def say_logged_out(sender, request, user, **kwargs) -> None:
    from django.contrib import messages

    # The test client's logout() passes a bare request without the messages middleware.
    if request is not None:
        messages.info(request, "You are logged out.", fail_silently=True)


class MarketingAiConfig(AppConfig):
    name = "marketing_ai"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from marketing_ai import job_queue, jobs
        from marketing_ai.celery import app

        # Every app registers its jobs (AppConfig.register_jobs), all of them before the beat schedule is
        # built from the registry: this app's ready() runs first, so the other apps' ready() would be too late.
        jobs.register_app_jobs()
        # django-celery-beat's DatabaseScheduler copies this into its tables at start-up.
        app.conf.beat_schedule = {**jobs.beat_schedule(), **job_queue.BEAT_ENTRIES}
        user_logged_out.connect(say_logged_out, dispatch_uid="marketing_ai.say_logged_out")
        from django.db.models.signals import post_migrate

        from marketing_ai.schedule_rows import sync_periodic_tasks

        # After django_celery_beat's own tables exist: its migrations run before this signal.
        post_migrate.connect(sync_periodic_tasks, sender=self, dispatch_uid="marketing_ai.sync_periodic_tasks")

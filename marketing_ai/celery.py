"""The Celery app. Redis is the broker (REDIS_URL); without it tasks run eagerly in-process."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")

app = Celery("marketing_ai")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["marketing_ai"])

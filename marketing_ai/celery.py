"""The Celery app. Redis is the broker (REDIS_URL); without it tasks run eagerly in-process.

Worker processes are recycled by memory: a pool process that has grown past
``CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB`` (resident set, KiB; default 600,000 ≈ 586 MiB) is replaced by a
fresh one after the task it is running finishes. A training or affinity job leaves ~300 MB of numpy/pandas
arenas behind in its process (measured in docs/BENCHMARKS.md, "Peak memory per job"); without this, every
pool process keeps that until ``CELERY_WORKER_MAX_TASKS_PER_CHILD`` tasks have run. Celery checks the limit
only after a task, so a job's own peak (docs/BENCHMARKS.md) must still fit in memory; 0 disables the check.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing_ai.settings")

app = Celery("marketing_ai")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["marketing_ai"])
app.conf.worker_max_memory_per_child = int(os.environ.get("CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB", "600000")) or None

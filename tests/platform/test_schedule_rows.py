"""The admin lists every scheduled job as a periodic task after migrate (no beat needed), and a pause survives."""

import json
import re

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from marketing_ai import job_queue, jobs
from marketing_ai.celery import app
from marketing_ai.schedule_rows import sync_periodic_tasks

pytestmark = pytest.mark.django_db


def _cron(task: PeriodicTask) -> str:
    c = task.crontab
    return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


def test_migrate_writes_one_periodic_task_per_scheduled_job():
    scheduled = {name: j for name, j in jobs.REGISTRY.items() if j.schedule is not None}
    tasks = {t.name: t for t in PeriodicTask.objects.select_related("crontab")}  # the test database was migrated
    assert set(scheduled) <= set(tasks)
    for name, job in scheduled.items():
        assert tasks[name].task == "marketing_ai.run_job" and json.loads(tasks[name].kwargs) == {"name": name, "scheduled": True}
        assert _cron(tasks[name]) == job.schedule_text().removesuffix(" (UTC)"), name
        assert tasks[name].enabled


def test_a_paused_schedule_stays_paused_when_migrate_runs_again():
    PeriodicTask.objects.filter(name="daily_analytics").update(enabled=False)
    call_command("migrate", verbosity=0)
    # Every job's entry plus the platform's own (the job_runs reconciler).
    assert sync_periodic_tasks() == len(app.conf.beat_schedule) == len(jobs.beat_schedule()) + len(job_queue.BEAT_ENTRIES)
    assert not PeriodicTask.objects.get(name="daily_analytics").enabled
    assert PeriodicTask.objects.filter(name="daily_analytics").count() == 1


def test_admin_periodic_tasks_page_lists_them(client, make_user):
    admin = make_user("ops", is_staff=True, is_superuser=True)
    client.force_login(admin)
    html = client.get("/admin/django_celery_beat/periodictask/").content.decode()
    listed = set(re.findall(r'<th class="field-name"><a href="[^"]+">([^<]+)</a>', html))
    assert listed == set(app.conf.beat_schedule)  # every scheduled job and the reconciler, nothing else
    assert "model_retraining" in listed and "reconcile_job_runs" in listed


def test_rows_of_removed_or_renamed_jobs_are_deleted_when_migrate_runs():
    PeriodicTask.objects.create(name="old_job_name", task="marketing_ai.run_job", kwargs='{"name": "old_job_name"}',
                                crontab=PeriodicTask.objects.get(name="daily_analytics").crontab)
    PeriodicTask.objects.create(name="someone_elses", task="other.app.task",
                                crontab=PeriodicTask.objects.get(name="daily_analytics").crontab)
    call_command("migrate", verbosity=0)
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert "old_job_name" not in names and "someone_elses" in names and "daily_analytics" in names

"""Two beat processes (a failover pair both up, or a second one started by mistake) do not duplicate work.

Both real ``celery beat`` processes read the same schedule (django-celery-beat's tables) and send
the every-minute probe job at each minute to a private redis-server; one real worker runs what they
send. Each scheduled minute (slot) must be worked by exactly one task; the other beat's copy is
recorded ``skipped`` naming the task that took the slot.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict

import pytest

from marketing_ai.models import JobRun, JobSlot
from tests.platform.processes import CELERY, background, private_redis, subprocess_env, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

JOB = "platform_probe_beat"


def test_two_beats_sending_every_minute_get_each_slot_worked_once(postgres, redis_url, tmp_path):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    queue = f"platform-beats-{uuid.uuid4().hex[:10]}"
    every_minute = CrontabSchedule.objects.create(minute="*", hour="*", day_of_week="*", day_of_month="*",
                                                  month_of_year="*", timezone="UTC")
    PeriodicTask.objects.create(name=JOB, task="marketing_ai.run_job", crontab=every_minute, queue=queue,
                                kwargs=json.dumps({"name": JOB, "scheduled": True}))

    with private_redis(tmp_path) as broker:
        env = subprocess_env(broker.url)
        worker_args = [*CELERY, "worker", "-Q", queue, "-n", f"{queue}@%h", "--pool=solo", "--loglevel=INFO",
                       "--without-gossip", "--without-mingle", "--without-heartbeat", "-I", "tests.platform.jobs_for_tests"]

        def beat_args(n: int) -> list[str]:
            return [*CELERY, "beat", "--loglevel=INFO", "-s", str(tmp_path / f"beat-{n}"), "--max-interval", "1"]

        def a_slot_sent_twice_and_settled():
            by_slot = defaultdict(list)
            for run in JobRun.objects.filter(job=JOB):
                by_slot[run.arguments.get("slot")].append(run)
            settled = all(r.finished_at for runs in by_slot.values() for r in runs)
            return settled and any(len(runs) >= 2 for runs in by_slot.values()) and by_slot

        logs = [tmp_path / "worker.log", tmp_path / "beat-1.log", tmp_path / "beat-2.log"]
        with (
            background(worker_args, env, logs[0]) as worker,
            background(beat_args(1), env, logs[1]),
            background(beat_args(2), env, logs[2]),
        ):
            # Start-up (tens of seconds on a busy machine) plus up to a minute to the next slot.
            by_slot = wait_for(a_slot_sent_twice_and_settled, timeout=170, proc=worker, log=logs[0],
                               what="two sends of one minute, both settled")

    assert None not in by_slot  # every run came from a beat and names its slot
    for slot, runs in by_slot.items():
        statuses = sorted(r.status for r in runs)
        assert statuses.count(JobRun.Status.SUCCEEDED) == 1, (slot, statuses)  # worked once
        assert set(statuses) <= {JobRun.Status.SUCCEEDED, JobRun.Status.SKIPPED}, (slot, [r.error for r in runs])
        winner = next(r for r in runs if r.status == JobRun.Status.SUCCEEDED)
        assert JobSlot.objects.get(job=JOB, slot=winner.arguments["slot"]).task_id == winner.task_id
        for loser in runs:
            if loser.status == JobRun.Status.SKIPPED:
                assert f"taken by task {winner.task_id} (another beat)" in loser.error
                assert loser.task_id != winner.task_id
        assert all(r.arguments["trigger"] == "beat" for r in runs)

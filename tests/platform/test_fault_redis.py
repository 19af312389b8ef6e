"""A frozen Redis must not take down the web tier; a Redis that loses its queue must not lose a queued run.

The broker is a PRIVATE redis-server (``processes.private_redis``), frozen with SIGSTOP (the process
keeps its sockets open and answers nothing, like a hung host) and killed and restarted without
persistence. The web tier is a real gunicorn on the test database.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from rest_framework.authtoken.models import Token

from campaigns.models import Event
from marketing_ai.models import JobRun
from tests.factories import CampaignFactory
from tests.platform.processes import http, manage, private_redis, subprocess_env, web_server

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

JOB = "daily_analytics"  # a registered job; no worker consumes the private broker, so it never runs
TIMEOUT = 1.0  # REDIS_SOCKET_TIMEOUT for the server under test


def events(prefix: str, n: int = 50) -> list[dict]:
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    return [{"event_id": f"{prefix}-{i}", "type": "view", "occurred_at": at, "customer_id": f"c{i}",
             "campaign_id": "camp_redis"} for i in range(n)]


def test_a_frozen_redis_costs_job_requests_a_fast_503_and_nothing_else_waits(postgres, redis_url, marketer, tmp_path):
    CampaignFactory(campaign_id="camp_redis")
    token = Token.objects.create(user=marketer).key
    with private_redis(tmp_path) as broker:
        env = subprocess_env(broker.url, REDIS_SOCKET_TIMEOUT=str(TIMEOUT))
        with web_server(env, tmp_path / "web.log", threads=4) as base:
            queued = http("POST", f"{base}/api/v1/jobs/{JOB}/run", body={}, token=token)
            assert queued.status == 202, queued
            assert JobRun.objects.get(pk=queued.body["job_run"]).status == JobRun.Status.QUEUED

            broker.freeze()
            try:
                # Three enqueues at once (of four server threads), while other clients keep using the site.
                enqueues: list = []
                senders = [threading.Thread(target=lambda: enqueues.append(
                    http("POST", f"{base}/api/v1/jobs/{JOB}/run", body={}, token=token, timeout=60))) for _ in range(3)]
                for t in senders:
                    t.start()
                time.sleep(0.2)
                health = http("GET", f"{base}/healthz", timeout=10)
                ready = http("GET", f"{base}/readyz", timeout=30)
                stored = http("POST", f"{base}/api/v1/events/", body=events("frozen"), token=token, timeout=30)
                read = http("GET", f"{base}/api/v1/campaigns/", token=token, timeout=30)
                for t in senders:
                    t.join(60)
            finally:
                broker.thaw()

            assert health.status == 200 and health.seconds < 2, health
            assert ready.status == 503 and ready.body["failing"] == ["redis"], ready
            assert ready.seconds < 4 * TIMEOUT + 2
            assert stored.status == 201 and stored.seconds < 10, stored
            assert read.status == 200 and read.seconds < 10, read
            assert len(enqueues) == 3
            for answer in enqueues:
                assert answer.status == 503, answer
                assert answer.body["error"]["code"] == "service_unavailable"
                assert set(answer.body["error"]) == {"code", "message", "fields"}
                assert int(answer.headers["Retry-After"]) > 0
                # Connect/read timeouts of one publish and its one retry, with room for a busy machine.
                assert answer.seconds < 4 * TIMEOUT + 4, answer.seconds
            failed = JobRun.objects.filter(job=JOB, status=JobRun.Status.FAILED)
            assert failed.count() == 3
            assert all(r.error.startswith("enqueue failed") and r.finished_at for r in failed)
            assert Event.objects.filter(event_id__startswith="frozen-").count() == 50

            # Thawed: enqueues are accepted again.
            assert http("POST", f"{base}/api/v1/jobs/{JOB}/run", body={}, token=token).status == 202


def test_a_queued_run_lost_by_a_redis_restart_is_found_and_sent_again(postgres, redis_url, marketer, tmp_path):
    token = Token.objects.create(user=marketer).key
    with private_redis(tmp_path) as broker:
        env = subprocess_env(broker.url)
        with web_server(env, tmp_path / "web.log", threads=2) as base:
            answer = http("POST", f"{base}/api/v1/jobs/{JOB}/run", body={"start": "2026-01-01", "end": "2026-01-02"},
                          token=token)
        assert answer.status == 202, answer
        lost = JobRun.objects.get(pk=answer.body["job_run"])
        assert lost.status == JobRun.Status.QUEUED

        broker.restart()  # no persistence: the queued message is gone, the job_runs row is not

        # The reconciliation (beat every 5 minutes, and every worker start), here with no grace period.
        out = manage("shell", "-c", "from marketing_ai import job_queue; import json; print(json.dumps(job_queue.reconcile()))",
                     env={**env, "JOB_QUEUED_LOST_AFTER_SECONDS": "0"})
        done = json.loads(out.strip().splitlines()[-1])
        assert done["lost"] == [lost.pk] and len(done["resent"]) == 1

        lost.refresh_from_db()
        assert lost.status == JobRun.Status.FAILED and lost.error.startswith("lost: queued at")
        assert f"as run #{done['resent'][0]}" in lost.error
        again = JobRun.objects.get(pk=done["resent"][0])
        assert (again.status, again.arguments) == (JobRun.Status.QUEUED, lost.arguments)
        import redis

        waiting = redis.Redis.from_url(broker.url).lrange("celery", 0, -1)
        assert [json.loads(m)["headers"]["id"] for m in waiting] == [again.task_id]

        # A second reconciliation finds the re-sent run in the broker and leaves it queued.
        out = manage("shell", "-c", "from marketing_ai import job_queue; import json; print(json.dumps(job_queue.reconcile()))",
                     env={**env, "JOB_QUEUED_LOST_AFTER_SECONDS": "0"})
        assert json.loads(out.strip().splitlines()[-1]) == {"lost": [], "resent": [], "killed": []}
        again.refresh_from_db()
        assert again.status == JobRun.Status.QUEUED

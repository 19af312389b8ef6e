"""A PostgreSQL restart under ingestion load: fast 503s in the error shape, then reconnection, nothing lost.

The server is a PRIVATE throw-away cluster (``processes.private_postgres``) behind a real gunicorn
with persistent connections (``CONN_MAX_AGE``), so every server thread holds a connection that the
restart kills. Ingestion's first database access is a raw psycopg cursor (COPY, server-bound key
arrays), the path that used to bypass Django's health check and error handling.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest

from campaigns.models import Event
from tests.platform.processes import http, manage, private_postgres, subprocess_env, web_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EVENTS = Event._meta.db_table
SENDERS = 4
BATCH = 200


def batch(prefix: str, n: int = BATCH) -> list[dict]:
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    return [{"event_id": f"{prefix}-{i}", "type": "view", "occurred_at": at, "customer_id": f"cust-{i % 50}",
             "campaign_id": "camp_fault"} for i in range(n)]


def send_rounds(base: str, token: str, rounds: int, label: str, answers: list) -> None:
    """SENDERS client threads, each sending ``rounds`` batches one after another."""

    def sender(k: int) -> None:
        for r in range(rounds):
            events = batch(f"{label}-{k}-{r}-{uuid.uuid4().hex[:6]}")
            answer = http("POST", f"{base}/api/v1/events/", body=events, token=token, timeout=30)
            answers.append((label, k, r, answer, [e["event_id"] for e in events]))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def assert_unavailable(answer, *, code: str = "database_unavailable") -> None:
    assert answer.status == 503, answer
    assert answer.body["error"]["code"] == code, answer.body
    assert set(answer.body["error"]) == {"code", "message", "fields"}
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.seconds < 10, f"a 503 should be fast, took {answer.seconds:.1f}s"


def test_a_postgres_restart_costs_at_most_a_fast_503_per_connection_and_loses_no_event(postgres, tmp_path):
    with private_postgres() as pg:
        env = subprocess_env(None, pg.url, CONN_MAX_AGE="600", AUTH_TOKEN_CACHE_SECONDS="300")
        manage("migrate", "--noinput", env=env)
        token = manage("create_api_token", "ops", "--create", "--role", "marketer", env=env).split()[-1]
        with web_server(env, tmp_path / "web.log", threads=SENDERS) as base:
            created = http("POST", f"{base}/api/v1/campaigns/", body={"campaign_id": "camp_fault", "name": "Faults"},
                           token=token)
            assert created.status == 201, created

            answers: list = []
            send_rounds(base, token, 3, "before", answers)  # every server thread now holds a connection
            pg.restart()
            send_rounds(base, token, 6, "after", answers)

            statuses = [a.status for _, _, _, a, _ in answers]
            assert len(answers) == SENDERS * 9
            assert set(statuses) <= {201, 503}, [(a.status, a.body) for *_, a, _ in answers if a.status not in (201, 503)]
            failed = [a for *_, a, _ in answers if a.status == 503]
            for answer in failed:
                assert_unavailable(answer)
            # At most one failed request per server connection; afterwards every request is served.
            assert len(failed) <= SENDERS
            for k in range(SENDERS):
                tail = [a.status for label, kk, r, a, _ in answers if label == "after" and kk == k and r >= 2]
                assert tail == [201] * 4, tail

            # Every event answered 201 is stored once; a batch answered 503 stored nothing.
            accepted = {i for *_, a, ids in answers if a.status == 201 for i in ids}
            refused = {i for *_, a, ids in answers if a.status == 503 for i in ids}
            stored = {row[0] for row in pg.sql(f"SELECT event_id FROM {EVENTS}")}
            assert stored == accepted and not (stored & refused)
            assert pg.sql(f"SELECT count(*) FROM {EVENTS}")[0][0] == len(accepted)

            # While the database is down: readiness says so, requests get fast 503s, liveness stays up.
            pg.stop()
            ready = http("GET", f"{base}/readyz", timeout=15)
            assert ready.status == 503 and ready.body["failing"] == ["database"], ready
            assert ready.seconds < 10
            assert_unavailable(http("POST", f"{base}/api/v1/events/", body=batch("down"), token=token))
            assert_unavailable(http("GET", f"{base}/api/v1/campaigns/", token=token))
            assert http("GET", f"{base}/healthz", timeout=5).status == 200

            pg.start()
            started = time.monotonic()
            assert http("GET", f"{base}/readyz").status == 200
            assert http("POST", f"{base}/api/v1/events/", body=batch("back"), token=token).status == 201
            assert time.monotonic() - started < 10

"""Sustained ingestion while the daily aggregation runs: nothing lost, nothing doubled, no errors.

Several senders (threads, each with its own database connection) post batches of 1,000 events,
re-sending some batches (their own and another sender's); meanwhile the ``daily_analytics`` job runs
again and again over the same days. Afterwards every event is stored once, duplicates are counted as
such, and one more aggregation gives exactly what pandas computes from the events that were sent.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from decimal import Decimal

import pandas as pd
import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analytics.models import CampaignAnalyticsDaily
from campaigns.models import Event
from marketing_ai import jobs
from marketing_ai.models import JobRun
from tests.factories import CampaignFactory

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SENDERS = 4
BATCHES = 5  # new batches per sender
BATCH = 1000
TYPES = ["view", "click", "conversion", "notification_sent"]


def make_batches(seed: int, now: dt.datetime) -> list[list[dict]]:
    rng = random.Random(seed)
    batches = []
    for b in range(BATCHES):
        batch = []
        for i in range(BATCH):
            kind = rng.choice(TYPES)
            event = {"event_id": f"s{seed}-b{b}-{i}", "type": kind, "customer_id": f"cust-{rng.randrange(500)}",
                     "campaign_id": rng.choice(["camp_a", "camp_b"]),
                     # Within the job's window (today and the two days before), never in the future.
                     "occurred_at": (now - dt.timedelta(seconds=rng.randrange(60, 47 * 3600))).isoformat()}
            if kind == "conversion":
                event["amount"] = f"{rng.randrange(1, 10000) / 100:.2f}"
            batch.append(event)
        batches.append(batch)
    return batches


def test_concurrent_senders_with_resends_and_a_running_aggregation_lose_and_double_nothing(postgres, make_user):
    for campaign_id in ("camp_a", "camp_b"):
        CampaignFactory(campaign_id=campaign_id)
    token = Token.objects.create(user=make_user("collector", "ingest")).key
    now = dt.datetime.now(dt.UTC)
    planned = {k: make_batches(k, now) for k in range(SENDERS)}
    answers: list[tuple[int, int, dict]] = []  # (status, events sent, body)
    errors: list[BaseException] = []
    senders_done = threading.Event()

    def sender(k: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        mine = planned[k]
        # Own batches in order, re-sending the previous one now and then and one of the next sender's.
        plan = [mine[0], mine[1], mine[0], mine[2], planned[(k + 1) % SENDERS][0], mine[3], mine[4], mine[3]]
        try:
            for events in plan:
                response = client.post("/api/v1/events/", events, format="json")
                answers.append((response.status_code, len(events), response.json()))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    runs: list[JobRun] = []

    def aggregator() -> None:
        try:
            while not senders_done.is_set() and len(runs) < 30:
                runs.append(jobs.run("daily_analytics", raise_errors=False))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    aggregating = threading.Thread(target=aggregator)
    aggregating.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    senders_done.set()
    aggregating.join(300)
    assert not any(t.is_alive() for t in [*threads, aggregating]), "a thread did not finish in time"

    assert errors == []
    assert [status for status, _, _ in answers if status not in (200, 201)] == []
    assert len(answers) == SENDERS * 8
    assert runs and all(r.status == JobRun.Status.SUCCEEDED for r in runs), [(r.status, r.error[-300:]) for r in runs]

    sent = {e["event_id"]: e for batches in planned.values() for batch in batches for e in batch}
    stored_total = sum(body["stored"] for _, _, body in answers)
    duplicates_total = sum(body["duplicates"] for _, _, body in answers)
    assert stored_total == len(sent) == SENDERS * BATCHES * BATCH  # each event stored by exactly one answer
    assert stored_total + duplicates_total == sum(n for _, n, _ in answers)  # the rest were counted as duplicates
    assert Event.objects.count() == len(sent)
    assert set(Event.objects.values_list("event_id", flat=True)) == set(sent)

    # The aggregation after the last batch equals pandas over what was sent.
    final = jobs.run("daily_analytics")
    assert final.status == JobRun.Status.SUCCEEDED
    frame = pd.DataFrame(sent.values())
    frame["date"] = pd.to_datetime(frame["occurred_at"], utc=True, format="ISO8601").dt.date
    frame["revenue"] = frame["amount"].map(lambda a: Decimal(a) if isinstance(a, str) else Decimal(0))
    expected = {}
    for (campaign_id, day), group in frame.groupby(["campaign_id", "date"]):
        counts = group["type"].value_counts()
        expected[(campaign_id, day)] = (int(counts.get("notification_sent", 0)), int(counts.get("view", 0)),
                                        int(counts.get("click", 0)), int(counts.get("conversion", 0)),
                                        sum(group["revenue"], Decimal(0)))
    got = {(r.campaign.campaign_id, r.date): (r.sends, r.views, r.clicks, r.conversions, r.revenue)
           for r in CampaignAnalyticsDaily.objects.select_related("campaign")}
    assert got == expected

"""Fan-out (marketing_ai/fanout.py): a long job shares its parts with idle Celery workers.

What must hold: the run ends with every part done exactly once in its result (however many helpers
come, late, or never), a helper's lost or failed part is done again by the run, and the daily
aggregation fanned out over a real worker writes the same rows as one process alone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from analytics import services as analytics
from analytics.models import CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData
from marketing_ai import fanout
from tests.factories import CampaignFactory, CustomerFactory, EventFactory
from tests.platform import parts_for_tests  # noqa: F401  (registers the slow part worker here too)
from tests.platform.processes import CELERY, background, subprocess_env, wait_for


@pytest.fixture
def recorded(monkeypatch):
    """A part worker that records the parts it did, in order."""
    calls: list[int] = []

    def work(spec):
        calls.append(spec["i"])
        return spec["i"] * 10

    monkeypatch.setitem(fanout.PART_WORKERS, "test_recorded", work)
    return calls


def test_without_helpers_the_parts_run_here_in_order_and_report_their_weight(recorded):
    advanced: list[int] = []
    specs = [{"i": i, "weight": i + 1} for i in range(4)]
    assert fanout.run_parts("test_recorded", specs, advance=advanced.append, helpers=0) == 0 + 10 + 20 + 30
    assert recorded == [0, 1, 2, 3]
    assert sum(advanced) == 1 + 2 + 3 + 4


def test_helpers_that_never_come_cost_nothing_the_run_does_every_part(recorded, redis_url, settings):
    import redis

    settings.JOB_FANOUT_QUEUE = f"fanout-nobody-{uuid.uuid4().hex[:8]}"  # a queue no worker consumes
    advanced: list[int] = []
    try:
        rows = fanout.run_parts("test_recorded", [{"i": i} for i in range(5)], advance=advanced.append, helpers=3)
        client = redis.Redis.from_url(redis_url)
        assert client.llen(settings.JOB_FANOUT_QUEUE) == 3  # the helpers were sent...
        assert not client.keys("marketing_ai:fanout:test_recorded:*")  # ...and the board is gone
    finally:
        redis.Redis.from_url(redis_url).delete(settings.JOB_FANOUT_QUEUE)
    assert rows == 100 and sorted(recorded) == [0, 1, 2, 3, 4] and sum(advanced) == 5


def test_a_part_a_helper_took_and_lost_or_failed_is_orphaned_and_counted_once(redis_url):
    from marketing_ai.jobs import redis_client

    board = fanout.Board(redis_client(), f"marketing_ai:fanout:test:{uuid.uuid4().hex}")
    try:
        board.post("test", [{"i": 0}, {"i": 1}, {"i": 2}])
        lost, failed, done = board.take(), board.take(), board.take()
        assert (lost, failed, done) == (0, 1, 2) and board.take() is None
        board.fail(failed, "ValueError: boom")
        board.finish(done, 5)
        finished = board.finished()
        assert board.orphaned(600, finished) == [1]  # failed at once; the lost one is still within its time
        assert board.orphaned(0, finished) == [0, 1]  # past the part timeout: the lost one too
        board.finish(done, 99)  # done again by a slow helper: the first count stays
        assert board.finished()[done]["rows"] == 5
    finally:
        board.clear()
    assert board.load() is None


def _worker_args(queue: str) -> list[str]:
    return [*CELERY, "worker", "-Q", queue, "-n", f"{queue}@%h", "--pool=prefork", "--concurrency=2",
            "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-I", "tests.platform.parts_for_tests"]


def _table_rows() -> dict[str, list[tuple]]:
    rows = {}
    for model in (CampaignAnalyticsDaily, CampaignSegmentAnalytics, CampaignTrendData):
        # Everything but the key and when a row was written (computed_at, updated_at).
        fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id" and not f.attname.endswith("_at")]
        rows[model.__name__] = sorted(model.objects.values_list(*fields))
    return rows


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_shares_the_parts_and_the_aggregation_equals_one_process(postgres, redis_url, settings, tmp_path):
    queue = f"fanout-test-{uuid.uuid4().hex[:10]}"
    settings.JOB_FANOUT_QUEUE = queue
    log = tmp_path / "worker.log"
    first = dt.date(2026, 10, 1)
    campaigns = [CampaignFactory() for _ in range(3)]
    customers = [CustomerFactory() for _ in range(20)]
    for i in range(600):
        EventFactory(campaign=campaigns[i % 3], customer=customers[i % 20],
                     type=("view", "click", "conversion", "spend")[i % 4],
                     amount=Decimal("9.50") if i % 4 >= 2 else None,
                     occurred_at=dt.datetime.combine(first + dt.timedelta(days=i % 28), dt.time(i % 24), tzinfo=dt.UTC))
    last = first + dt.timedelta(days=27)

    alone = analytics.aggregate_days(start=first, end=last)  # JOB_FANOUT_HELPERS = 0: one process
    expected = _table_rows()

    with background(_worker_args(queue), subprocess_env(redis_url), log) as worker:
        wait_for(lambda: "ready" in log.read_text(), timeout=120, proc=worker, log=log, what="worker start")

        # Slow parts: the two helper processes surely take some, and every part counts once.
        rows = fanout.run_parts("platform_slow_part", [{"rows": i, "seconds": 0.4} for i in range(12)], helpers=2)
        assert rows == sum(range(12))
        wait_for(lambda: log.read_text().count("done here") >= 1, timeout=30, proc=worker, log=log,
                 what="a helper's part in the worker log")

        # The aggregation over 28 days in parts, shared with the worker (how many parts it takes depends
        # on timing; the slow parts above show that it takes some): the same rows as one process alone.
        settings.JOB_FANOUT_HELPERS = 2
        CampaignAnalyticsDaily.objects.all().delete()
        CampaignSegmentAnalytics.objects.all().delete()
        CampaignTrendData.objects.all().delete()
        shared = analytics.aggregate_days(start=first, end=last)  # 10 parts of up to 3 days
    assert shared == alone
    got = _table_rows()
    for table, rows in expected.items():
        assert got[table] == rows, (table, sorted(set(got[table]) ^ set(rows))[:6])

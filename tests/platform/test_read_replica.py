"""The optional read replica (``DATABASE_REPLICA_URL``): analytics reads go to it, everything else to the primary.

The real-server test gives the two databases deliberately different contents (the same campaign under
two names), so each answer shows which database it was read from. The replica here is a second
database of a private cluster, not a streaming standby: routing is what is under test, not replication.
"""

from __future__ import annotations

import pytest

from analytics.models import CampaignAnalyticsDaily
from campaigns.models import Campaign
from marketing_ai import replica
from marketing_ai.replica import REPLICA, ReadReplicaRouter, replica_reads
from tests.platform.processes import http, manage, private_postgres, subprocess_env, web_server

CREATE = "from campaigns.models import Campaign; Campaign.objects.create(campaign_id='camp_r', name={name!r})"


def test_without_a_replica_every_read_uses_the_primary(settings):
    assert REPLICA not in settings.DATABASES
    router = ReadReplicaRouter()
    with replica_reads():
        assert router.db_for_read(Campaign) is None
        assert router.db_for_read(CampaignAnalyticsDaily) is None


def test_the_router_sends_only_replica_read_requests_for_analytics_apps_to_the_replica(monkeypatch):
    from django.contrib.auth.models import User

    monkeypatch.setattr(replica, "replica_configured", lambda: True)
    router = ReadReplicaRouter()
    assert router.db_for_read(CampaignAnalyticsDaily) is None  # a job, an API write: the primary
    with replica_reads():
        assert router.db_for_read(CampaignAnalyticsDaily) == REPLICA
        assert router.db_for_read(Campaign) == REPLICA
        assert router.db_for_read(User) is None  # users, tokens, sessions: always the latest state
        assert router.db_for_write(Campaign) is None
    assert router.db_for_read(Campaign) is None  # the context ends with the request
    assert router.allow_migrate(REPLICA, "campaigns") is False
    assert router.allow_migrate("default", "campaigns") is None


@pytest.mark.postgres
@pytest.mark.slow
def test_a_server_with_a_replica_reads_analytics_from_it_and_writes_to_the_primary(postgres, tmp_path):
    with private_postgres() as pg:
        pg.sql("CREATE DATABASE replica_copy", dbname="postgres")
        primary, replica_url = pg.url, pg.url.rsplit("/", 1)[0] + "/replica_copy"
        for url, name in ((primary, "On the primary"), (replica_url, "On the replica")):
            env = subprocess_env(None, url)
            manage("migrate", "--noinput", env=env)
            manage("shell", "-c", CREATE.format(name=name), env=env)
        env = subprocess_env(None, primary, DATABASE_REPLICA_URL=replica_url)
        token = manage("create_api_token", "ops", "--create", "--role", "marketer", env=env).split()[-1]

        with web_server(env, tmp_path / "web.log") as base:
            ready = http("GET", f"{base}/readyz")
            assert ready.status == 200 and ready.body["checks"]["replica"] == "ok", ready

            # The token exists only on the primary: authentication never reads the replica.
            portfolio = http("GET", f"{base}/api/v1/analytics/portfolio?days=30", token=token)
            assert portfolio.status == 200, portfolio
            assert [c["name"] for c in portfolio.body["campaigns"]] == ["On the replica"]

            detail = http("GET", f"{base}/api/v1/campaigns/camp_r/", token=token)
            assert detail.status == 200 and detail.body["name"] == "On the primary", detail

            renamed = http("PATCH", f"{base}/api/v1/campaigns/camp_r/", body={"name": "Renamed"}, token=token)
            assert renamed.status == 200, renamed

        query = f"SELECT name FROM {Campaign._meta.db_table} WHERE campaign_id = 'camp_r'"
        assert pg.sql(query) == [("Renamed",)]
        assert pg.sql(query, dbname="replica_copy") == [("On the replica",)]

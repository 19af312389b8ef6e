"""Locust users for the seed's three load scenarios (run by bench/load_test.py, which sets the environment).

- ``AnalyticsUser``: a marketer at the analytics dashboard: campaign metrics, segments, trends, portfolio.
- ``ABTestUser``: the A/B pages: a test's status and results, the history, and assignment of customers (a write).
- ``SpikeUser``: the analytics mix plus event ingestion (``POST /api/v1/events/``, 20 events per batch with
  unique ids), for the 500 -> 1,000 users spike; ``SpikeShape`` drives the user count.
- ``FloorUser``: the floor, the same users and think time at ``/bench/floor`` (a bare Django view reading one
  row, served by the same gunicorn: ``bench.api_load``), so each scenario has the framework's own figures
  from the same machine minutes apart.

Users are ``FastHttpUser`` (geventhttpclient): locust shares the 2 cores with the server, and its client
costs several times less CPU per request than ``HttpUser``'s requests/urllib3, so less of the latency
measured is the client's own queueing. Connections are kept alive between requests (the runner sets
gunicorn's keep-alive above the longest think time, so an idle connection is not closed under a user).

Every answer other than 2xx is a failure, except 429/503 that carry ``Retry-After`` (deliberate shedding):
those are counted apart (``shed``) and the user waits ``Retry-After`` before its next request. Each
acknowledged event batch (2xx) appends its number of stored + duplicate events to ``BENCH_ACK_FILE``, so the
runner can compare events written in the database with events acknowledged (no lost writes).

Environment: BENCH_VIEWER_TOKEN, BENCH_INGEST_TOKEN, BENCH_ASSIGN_TOKEN, BENCH_CAMPAIGNS, BENCH_TESTS,
BENCH_CUSTOMERS (comma lists), BENCH_RUN_ID (event id prefix), BENCH_ACK_FILE, BENCH_THINK ("min,max" seconds),
BENCH_SPIKE ("base,peak,ramp_s,hold_base_s,hold_peak_s,after_s").
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import threading

import gevent
from locust import FastHttpUser, LoadTestShape, between, events, tag, task

THINK = [float(x) for x in os.environ.get("BENCH_THINK", "1,3").split(",")]
CAMPAIGNS = [c for c in os.environ.get("BENCH_CAMPAIGNS", "").split(",") if c]
TESTS = [t for t in os.environ.get("BENCH_TESTS", "").split(",") if t]
CUSTOMERS = [c for c in os.environ.get("BENCH_CUSTOMERS", "").split(",") if c]
RUN_ID = os.environ.get("BENCH_RUN_ID", "loadtest")
ACK_FILE = os.environ.get("BENCH_ACK_FILE", "")
SHED = {"count": 0, "without_retry_after": 0}
_ack_lock = threading.Lock()
_batch_numbers = itertools.count()


@events.quitting.add_listener
def _report_shed(environment, **_kw):
    if ACK_FILE:
        with open(ACK_FILE + ".shed", "w") as f:
            json.dump(SHED, f)


def _date_range(rng: random.Random) -> dict:
    return {"days": rng.choice(["7", "30", "90"])}


class _ApiUser(FastHttpUser):
    abstract = True
    wait_time = between(*THINK)
    token_env = "BENCH_VIEWER_TOKEN"
    # A request slower than this is a failure (status 0); above the scenarios' slowest answers on a loaded
    # machine, so latency is measured rather than cut (the runner's --stop-timeout is the same).
    network_timeout = connection_timeout = 120.0

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Token {os.environ[self.token_env]}"}
        self.rng = random.Random()

    def call(self, method: str, path: str, name: str, headers: dict | None = None, **kw):
        with self.client.request(method, path, name=name, catch_response=True, headers=headers or self.auth,
                                 **kw) as response:
            if 200 <= response.status_code < 300:
                response.success()
            elif response.status_code in (429, 503) and response.headers.get("Retry-After"):
                SHED["count"] += 1
                response.success()  # deliberate shedding, counted apart; honour Retry-After
                gevent.sleep(min(float(response.headers["Retry-After"]), 60.0))
            else:
                if response.status_code in (429, 503):
                    SHED["without_retry_after"] += 1
                # Status 0: no answer (the client's time-out, a refused or reset connection): say which.
                error = getattr(response, "error", None)
                why = f" (client: {type(error).__name__}: {str(error)[:80]})" if not response.status_code and error else ""
                response.failure(f"HTTP {response.status_code}{why}")
            return response

    def analytics(self) -> None:
        campaign = self.rng.choice(CAMPAIGNS)
        which = self.rng.random()
        if which < 0.4:
            self.call("GET", f"/api/v1/analytics/campaigns/{campaign}/metrics/", "analytics metrics", params=_date_range(self.rng))
        elif which < 0.6:
            self.call("GET", f"/api/v1/analytics/campaigns/{campaign}/segments/", "analytics segments", params=_date_range(self.rng))
        elif which < 0.8:
            self.call("GET", f"/api/v1/analytics/campaigns/{campaign}/trends/", "analytics trends",
                      params={"interval": self.rng.choice(["daily", "weekly"]), **_date_range(self.rng)})
        else:
            self.call("GET", "/api/v1/analytics/portfolio/", "analytics portfolio", params=_date_range(self.rng))


class FloorUser(_ApiUser):
    @tag("floor")
    @task
    def floor(self) -> None:
        self.call("GET", "/bench/floor", "floor (bare view, one row)")


class AnalyticsUser(_ApiUser):
    @tag("analytics")
    @task
    def dashboard(self) -> None:
        self.analytics()


class ABTestUser(_ApiUser):
    token_env = "BENCH_ASSIGN_TOKEN"

    @tag("abtests")
    @task(4)
    def status(self) -> None:
        self.call("GET", f"/api/v1/ab-tests/{self.rng.choice(TESTS)}/status/", "ab status")

    @tag("abtests")
    @task(3)
    def results(self) -> None:
        self.call("GET", f"/api/v1/ab-tests/{self.rng.choice(TESTS)}/results/", "ab results")

    @tag("abtests")
    @task(2)
    def history(self) -> None:
        self.call("GET", "/api/v1/ab-tests/history/", "ab history")

    @tag("abtests")
    @task(1)
    def assign(self) -> None:
        # Asking again for an already assigned customer returns the stored row: a safe repeated write.
        self.call("POST", f"/api/v1/ab-tests/{self.rng.choice(TESTS)}/assign/", "ab assign",
                  json={"customer_id": self.rng.choice(CUSTOMERS)})


class SpikeUser(_ApiUser):
    @tag("spike")
    @task(4)
    def dashboard(self) -> None:
        self.analytics()

    @tag("spike")
    @task(1)
    def ingest(self) -> None:
        batch = next(_batch_numbers)
        now = dt.datetime.now(dt.UTC).isoformat()
        body = [{"event_id": f"{RUN_ID}_{os.getpid()}_{batch}_{i}", "type": "view", "occurred_at": now,
                 "customer_id": self.rng.choice(CUSTOMERS), "campaign_id": self.rng.choice(CAMPAIGNS)}
                for i in range(20)]
        response = self.call("POST", "/api/v1/events/", "events ingest", json=body,
                             headers={"Authorization": f"Token {os.environ['BENCH_INGEST_TOKEN']}"})
        if 200 <= response.status_code < 300 and ACK_FILE:
            payload = response.json()
            with _ack_lock, open(ACK_FILE, "a") as f:
                f.write(f"{payload.get('stored', 0)} {payload.get('duplicates', 0)}\n")


class SpikeShape(LoadTestShape):
    """base users, then a jump to peak, then back to base; only when BENCH_SPIKE is set."""

    abstract = "BENCH_SPIKE" not in os.environ

    def __init__(self) -> None:
        super().__init__()
        base, peak, ramp, hold_base, hold_peak, after = (float(x) for x in os.environ.get("BENCH_SPIKE", "500,1000,10,30,30,60").split(","))
        self.plan = [(hold_base, base), (hold_base + hold_peak, peak), (hold_base + hold_peak + after, base)]
        self.rate = max(base, peak) / max(ramp, 1.0)

    def tick(self):
        t = self.get_run_time()
        for until, users in self.plan:
            if t < until:
                return int(users), self.rate
        return None

"""Health checks: /healthz (process), /readyz (database and Redis), /api/phase4/health (the seed's)."""

import datetime as dt

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


def test_phase4_health_answers_without_login_with_the_seed_fields(anon_api):
    for path in ("/api/phase4/health", "/api/phase4/health/"):
        response = anon_api.get(path)
        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "healthy"
        assert body["version"] == "4.0.0"
        stamp = dt.datetime.fromisoformat(body["timestamp"])
        assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60


def test_healthz_says_the_process_is_up_without_touching_services():
    response = Client().get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@override_settings(REDIS_URL=None)
def test_readyz_is_ready_when_the_database_answers_and_redis_is_not_configured():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "not configured"}}


def test_readyz_checks_the_configured_redis(redis_url):
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
def test_readyz_is_503_naming_redis_when_redis_is_down():
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert "ConnectionError" in body["checks"]["redis"]


def test_readyz_is_503_naming_the_database_when_it_is_down(monkeypatch):
    from django.db import connection

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("database is down")

    monkeypatch.setattr(connection, "cursor", refuse)  # the server's socket, not our code, is replaced
    with override_settings(REDIS_URL=None):
        response = Client().get("/readyz")
        health = Client().get("/api/phase4/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    assert "database is down" in response.json()["checks"]["database"]
    assert (health.status_code, health.json()["status"]) == (503, "unhealthy")

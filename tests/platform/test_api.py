"""API conventions: authentication, roles, one error shape for every 4xx, pagination, schema and docs."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from marketing_ai import jobs
from marketing_ai.models import JobRun

pytestmark = pytest.mark.django_db


def assert_error_shape(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.fixture
def probe_job(registry):
    jobs.job("probe", schedule=None)(lambda *, progress: 3)
    jobs.job("dated_probe", schedule=None, window_days=2)(lambda *, start, end, progress: (end - start).days + 1)


# --- Authentication and roles ---------------------------------------------------------------------


def test_anonymous_requests_get_401_in_the_error_shape(anon_api):
    response = anon_api.get("/api/v1/job-runs/")
    assert_error_shape(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_is_401(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error_shape(anon_api.get("/api/v1/job-runs/"), 401, "authentication_failed")


def test_a_viewer_reads_but_may_not_write(viewer_api, probe_job):
    assert viewer_api.get("/api/v1/jobs/").status_code == 200
    error = assert_error_shape(viewer_api.post("/api/v1/jobs/probe/run", {}, format="json"), 403, "permission_denied")
    assert "marketer" in error["message"]
    assert not JobRun.objects.exists()


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_without_a_broker_a_marketer_runs_a_job_now_and_sees_the_recorded_run(api, probe_job):
    response = api.post("/api/v1/jobs/dated_probe/run", {"start": "2024-01-01", "end": "2024-01-03"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["job"], body["status"], body["rows_written"]) == ("dated_probe", "succeeded", 3)
    assert body["arguments"] == {"trigger": "api", "start": "2024-01-01", "end": "2024-01-03"}


def test_with_a_broker_running_a_job_queues_it_for_the_workers(api, probe_job, redis_url):
    import redis

    from marketing_ai.celery import app

    # A start alone runs to today: a recent one, within the longest range a run may cover (jobs_api.MAX_RUN_DAYS).
    start = (timezone.now().date() - dt.timedelta(days=3)).isoformat()
    response = api.post("/api/v1/jobs/dated_probe/run", {"start": start}, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["job"], body["queued"]) == ("dated_probe", True)
    # The message is on the broker's default queue; take it off again so no worker ever runs it.
    client = redis.Redis.from_url(redis_url)
    queue = app.conf.task_default_queue
    ours = [m for m in client.lrange(queue, 0, -1) if json.loads(m)["headers"]["id"] == body["task_id"]]
    assert len(ours) == 1
    message = json.loads(ours[0])
    assert message["headers"]["task"] == "marketing_ai.run_job"
    client.lrem(queue, 1, ours[0])
    # Nothing ran in the web process: the run is recorded queued, under the task's id, until a worker starts it.
    run = JobRun.objects.get()
    assert (run.pk, run.status, run.task_id, run.started_at is not None) == (body["job_run"], "queued", body["task_id"], True)
    assert run.arguments == {"trigger": "api", "start": start} and run.finished_at is None


def test_an_ingest_service_account_may_not_read_other_endpoints(make_user):
    account = make_user("collector", "ingest")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=account).key}")
    error = assert_error_shape(client.get("/api/v1/job-runs/"), 403, "permission_denied")
    assert "only send events" in error["message"]


def test_session_authentication_works_and_enforces_csrf_on_writes(marketer, probe_job):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(marketer)
    assert client.get("/api/v1/jobs/").status_code == 200
    error = assert_error_shape(client.post("/api/v1/jobs/probe/run", {}, format="json"), 403, "permission_denied")
    assert "CSRF" in error["message"]


def _sample_api_paths() -> list[tuple[str, object]]:
    """One concrete path per URL pattern under /api/ (path parameters filled with "1")."""
    found: list[tuple[str, object]] = []

    def sample(regex: str) -> str:
        regex = regex.lstrip("^").rstrip("$").replace("\\Z", "")
        regex = re.sub(r"\\\.\(\?P<format>[^)]*\)/?\??", "", regex)
        regex = re.sub(r"\(\?P<\w+>[^)]*\)", "1", regex)
        regex = re.sub(r"<(?:\w+:)?\w+>", "1", regex)
        return regex.replace("/?", "/").replace("\\", "")

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            part = sample(str(p.pattern))
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + part)
            elif isinstance(p, URLPattern):
                found.append((prefix + part, p.callback))

    walk(get_resolver().url_patterns, "/")
    return [(path, callback) for path, callback in found if path.startswith("/api/")]


PUBLIC = {"/api/phase4/health", "/api/phase4/health/"}


def test_every_api_endpoint_except_health_needs_authentication(anon_api):
    checked = []
    for path, callback in _sample_api_paths():
        if path in PUBLIC or "(" in path or "[" in path:
            continue
        try:
            if resolve(path).func is not callback:
                continue  # the sample path is caught by an earlier pattern; that one is checked on its own
        except Exception:
            continue
        for method in ("get", "post"):
            response = getattr(anon_api, method)(path)
            assert response.status_code == 401, f"{method.upper()} {path} answered {response.status_code} without auth"
        checked.append(path)
    assert "/api/v1/job-runs/" in checked and "/api/schema/" in checked and "/api/docs/" in checked
    assert len(checked) >= 6


def test_health_answers_without_authentication(anon_api):
    health = anon_api.get("/api/phase4/health")
    assert (health.status_code, health.json()["status"]) == (200, "healthy")
    healthz = Client().get("/healthz")
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
    readyz = Client().get("/readyz")  # anonymous too: the load balancer's probe has no credentials
    assert readyz.status_code == 200 and readyz.json()["checks"]["database"] == "ok"


# --- One error shape ------------------------------------------------------------------------------


def test_validation_errors_name_the_field_and_the_reason(api, probe_job):
    error = assert_error_shape(
        api.post("/api/v1/jobs/dated_probe/run", {"start": "2024-02-01", "end": "2024-01-01"}, format="json"),
        400,
        "invalid",
    )
    assert error["fields"] == {"start": ["must not be after end"]}
    error = assert_error_shape(api.post("/api/v1/jobs/dated_probe/run", {"start": "soon"}, format="json"), 400)
    assert list(error["fields"]) == ["start"] and "date" in error["fields"]["start"][0].lower()
    error = assert_error_shape(api.get("/api/v1/job-runs/?status=lost"), 400, "invalid")
    assert "must be one of" in error["fields"]["status"][0]


def test_malformed_json_is_a_400_parse_error(api, probe_job):
    response = api.post("/api/v1/jobs/probe/run", "{not json", content_type="application/json")
    assert_error_shape(response, 400, "parse_error")


@pytest.mark.parametrize("body, content_type", [
    (b'{"start": NaN}', "application/json"),  # strict JSON, as DRF's own parser
    (b'{"start": "\xff\xfe"}', "application/json"),  # not UTF-8
    (b'{"start": "2025-01-01"}', "application/json; charset=bz2_codec"),  # not a text encoding
])
def test_bodies_the_json_parser_refuses_are_400_parse_errors(api, probe_job, body, content_type):
    response = api.generic("POST", "/api/v1/jobs/probe/run", body, content_type=content_type)
    assert_error_shape(response, 400, "parse_error")


def test_the_json_parser_reads_what_drfs_own_parser_reads():
    import io

    from rest_framework.parsers import JSONParser

    from marketing_ai.api import WholeBodyJSONParser

    body = '[{"event_id": "é\\u00e9", "amount": 19.9, "n": [1, 2.5, null, true]}, "x"]'.encode()
    context = {"encoding": "utf-8"}
    assert WholeBodyJSONParser().parse(io.BytesIO(body), None, context) == JSONParser().parse(io.BytesIO(body), None, context)


def test_an_unknown_object_is_a_404_naming_it(api, probe_job):
    error = assert_error_shape(api.get("/api/v1/jobs/nope/"), 404, "not_found")
    assert "nope" in error["message"]
    assert_error_shape(api.get("/api/v1/job-runs/999999/"), 404, "not_found")


def test_an_unknown_path_is_djangos_404_in_the_error_shape(api, anon_api):
    assert_error_shape(api.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert_error_shape(anon_api.get("/api/nothing/here"), 404, "not_found")


def test_a_wrong_method_is_a_405_in_the_error_shape(api, probe_job):
    response = api.get("/api/v1/jobs/probe/run")
    assert_error_shape(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]
    # Django's own 405 (a plain view with require_GET) gets the same shape.
    response = api.post("/api/phase4/health")
    assert_error_shape(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET"


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_paths_answer_with_and_without_the_trailing_slash_even_for_posts(api, probe_job):
    assert api.get("/api/v1/jobs").status_code == 200
    assert api.get("/api/v1/jobs/probe").json()["name"] == "probe"
    assert api.post("/api/v1/jobs/probe/run", {}, format="json").json()["rows_written"] == 3
    assert api.post("/api/v1/jobs/probe/run/", {}, format="json").json()["rows_written"] == 3


# --- Pagination -----------------------------------------------------------------------------------


def test_lists_are_paginated_with_page_and_page_size(api):
    for i in range(5):
        JobRun.objects.create(job=f"job{i}", status=JobRun.Status.SUCCEEDED)

    first = api.get("/api/v1/job-runs/?page_size=2").json()
    last = api.get("/api/v1/job-runs/?page_size=2&page=3").json()

    assert first["count"] == 5 and len(first["results"]) == 2
    assert "page=2" in first["next"] and first["previous"] is None
    assert len(last["results"]) == 1 and last["next"] is None
    seen = [
        r["job"] for page in (1, 2, 3) for r in api.get(f"/api/v1/job-runs/?page_size=2&page={page}").json()["results"]
    ]
    assert sorted(seen) == [f"job{i}" for i in range(5)]
    assert_error_shape(api.get("/api/v1/job-runs/?page_size=2&page=9"), 404, "not_found")


def test_the_page_size_is_capped(api):
    from marketing_ai.api import Pagination

    JobRun.objects.bulk_create(JobRun(job="bulk", status="succeeded") for _ in range(Pagination.max_page_size + 5))
    body = api.get(f"/api/v1/job-runs/?page_size={Pagination.max_page_size * 10}").json()
    assert len(body["results"]) == Pagination.max_page_size


def test_job_runs_filter_by_job_and_status(api):
    JobRun.objects.create(job="a", status="succeeded")
    JobRun.objects.create(job="a", status="failed", error="boom")
    JobRun.objects.create(job="b", status="failed")
    body = api.get("/api/v1/job-runs/?job=a&status=failed").json()
    assert [(r["job"], r["status"], r["error"]) for r in body["results"]] == [("a", "failed", "boom")]


# --- Schema and docs ------------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_v1_routes(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["info"]["version"] == "4.0.0"
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
    # Every v1 route of the URLconf, with each of its methods, is in the schema, and the schema has no other v1
    # operation (drf-spectacular writes a primary key parameter as {id}).
    from drf_spectacular.generators import EndpointEnumerator

    routed = {
        (path.replace("{pk}", "{id}"), method.lower())
        for path, _, method, _ in EndpointEnumerator().get_api_endpoints()
        if path.startswith("/api/v1/")
    }
    described = {(path, method) for path, operations in schema["paths"].items() if path.startswith("/api/v1/")
                 for method in operations if method in ("get", "post", "put", "patch", "delete")}
    assert routed == described
    assert {("/api/v1/jobs/{name}/run/", "post"), ("/api/v1/job-runs/", "get"), ("/api/v1/events/", "post")} <= routed
    assert len(routed) >= 50


def test_swagger_ui_loads_only_local_assets(marketer):
    client = Client()
    client.force_login(marketer)
    html = client.get("/api/docs/").content.decode()

    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert "cdn" not in html.lower() and "//unpkg" not in html and "jsdelivr" not in html
    scripts = [a for a in assets if a.startswith("/api/docs/?script")]
    assert scripts, "the page's own script is served as a file (the Content-Security-Policy allows no inline script)"
    for asset in assets:
        if asset in scripts:
            continue
        assert asset.startswith("/static/"), f"{asset} is not served by this app"
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not among the static files"
    script = client.get(scripts[0].replace("&amp;", "&"))
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    assert '"/api/schema"' in script.content.decode()  # reverse()'s form of the schema's address (both answer)


def test_the_job_list_shows_each_jobs_schedule_and_latest_run(api, registry):
    from celery.schedules import crontab

    jobs.job("nightly", schedule=crontab(minute=0, hour=2), window_days=3)(lambda *, start, end, progress: 4)
    jobs.job("after_nightly", schedule=None, after=("nightly",))(lambda *, progress: 0)
    JobRun.objects.create(job="nightly", status="failed", error="old")
    jobs.run("nightly")

    body = api.get("/api/v1/jobs/").json()

    by_name = {j["name"]: j for j in body["results"]}
    assert [j["name"] for j in body["results"]] == ["nightly", "after_nightly"]
    assert by_name["nightly"]["schedule"] == "0 2 * * * (UTC)" and by_name["nightly"]["window_days"] == 3
    assert (by_name["nightly"]["last_run"]["status"], by_name["nightly"]["last_run"]["rows_written"]) == (
        "succeeded",
        4,
    )
    assert by_name["after_nightly"]["after"] == ["nightly"] and by_name["after_nightly"]["last_run"] is None


def test_a_disallowed_host_under_api_is_a_400_in_the_error_shape(api):
    response = api.get("/api/v1/jobs/", HTTP_HOST="attacker.example")
    assert_error_shape(response, 400, "bad_request")


def test_pages_outside_the_api_keep_djangos_html_errors(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_api_path_answers_with_and_without_the_trailing_slash():
    from marketing_ai.routing import api_path

    def view(request, campaign_id):
        return None

    pattern = api_path("analytics/campaign/<campaign_id>/metrics", view)
    for path in ("analytics/campaign/camp_1/metrics", "analytics/campaign/camp_1/metrics/"):
        match = pattern.resolve(path)
        assert match.func is view and match.kwargs == {"campaign_id": "camp_1"}
    for path in ("analytics/campaign/a/b/metrics", "analytics/campaign/camp_1/metrics/extra"):
        assert pattern.resolve(path) is None

"""/api/v1/ answers with its entry points (each of which exists), and the favicon is served, not a 404."""

import pytest

pytestmark = pytest.mark.django_db


def test_api_root_lists_entry_points_that_answer(api):
    response = api.get("/api/v1/")
    assert response.status_code == 200
    body = response.json()
    # reverse()'s form of each address (marketing_ai/routing.py: every API path answers with or without "/").
    assert body["schema"].endswith("/api/schema") and body["docs"].endswith("/api/docs")
    assert api.get(body["schema"] + "/").status_code == api.get(body["schema"]).status_code == 200
    endpoints = body["endpoints"]
    for name in ("campaign-list", "abtest-list", "job-list", "analytics-portfolio", "optimization-list"):
        assert name in endpoints, name
    for name, url in endpoints.items():
        # It exists: 200, or 400 asking for its parameters (sample size), or 405 for a POST-only one (ingest).
        assert api.get(url).status_code in (200, 400, 405), name


def test_api_root_needs_a_login(anon_api):
    assert anon_api.get("/api/v1/").status_code in (401, 403)


def test_favicon_ico_points_to_the_served_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)

import pytest


@pytest.mark.django_db
def test_phase4_health_answers_without_login_with_the_seed_fields(anon_api):
    for path in ("/api/phase4/health", "/api/phase4/health/"):
        body = anon_api.get(path).json()
        assert body["status"] == "healthy"
        assert body["version"] == "4.0.0"
        assert body["timestamp"].startswith("20")


@pytest.mark.django_db
def test_unknown_api_path_is_a_json_404_in_the_error_shape(anon_api):
    response = anon_api.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"

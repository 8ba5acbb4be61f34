"""Every error the API returns is RFC 9457 problem+json."""

import pytest
from django.test import override_settings

from apps.core.problems import problem_exception_handler

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def assert_problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"] and isinstance(body["detail"], str)
    return body


def test_malformed_json_is_400(client_for, alice):
    client = client_for(alice)
    resp = client.post("/api/v1/jobs/", data="{not json", content_type="application/json")
    body = assert_problem(resp, 400)
    assert "JSON" in body["detail"]


def test_validation_error_lists_fields(client_for, alice):
    resp = client_for(alice).post("/api/v1/jobs/", {"variant": "x/y"}, format="json")
    body = assert_problem(resp, 400)
    assert body["errors"]["benchmark"] == ["This field is required."]


def test_unknown_api_path_is_problem_404(api):
    assert_problem(api.get("/api/v1/no-such-thing/"), 404)


def test_method_not_allowed_is_405(client_for, alice):
    assert_problem(client_for(alice).delete("/api/v1/me/"), 405)


def test_unsupported_media_type_is_415(client_for, alice):
    resp = client_for(alice).post("/api/v1/jobs/", data="a,b", content_type="text/csv")
    assert_problem(resp, 415)


def test_unauthenticated_is_401_with_challenge(api):
    resp = api.get("/api/v1/me/")
    assert_problem(resp, 401)
    assert resp["WWW-Authenticate"].startswith("Bearer")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_too_large_body_is_413(client_for, alice):
    resp = client_for(alice).post("/api/v1/jobs/", {"variant": "a/b", "benchmark": "x" * 5000}, format="json")
    assert_problem(resp, 413)


def test_unhandled_exception_becomes_problem_500():
    resp = problem_exception_handler(RuntimeError("boom"), {"request": None})
    assert resp.status_code == 500
    assert resp.data["status"] == 500
    assert "boom" not in resp.data["detail"]  # internals are logged, not leaked


def test_api_404_handler_for_django_views(client):
    resp = client.get("/api/nope")
    assert_problem(resp, 404)


def test_html_404_outside_api(client):
    resp = client.get("/definitely-not-a-page/")
    assert resp.status_code == 404
    assert not resp["Content-Type"].startswith(PROBLEM)


def test_request_id_is_echoed(api):
    resp = api.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert resp["X-Request-ID"] == "abc-123"
    resp = api.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")
    assert resp["X-Request-ID"] != "bad id with spaces" and len(resp["X-Request-ID"]) == 32

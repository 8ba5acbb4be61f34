"""Every error the API returns is RFC 9457 problem+json."""

import json

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


def test_an_anonymous_request_that_reaches_a_service_is_401_not_403():
    """`signed_in` guards the services' actor: should a view let an anonymous request through, it answers as an
    unauthenticated request is answered (401 with a challenge), through DRF and through a plain Django view."""
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from apps.accounts.types import signed_in
    from apps.core.errors import NotAuthenticated
    from apps.core.problems import problem_for_exception

    with pytest.raises(NotAuthenticated):
        signed_in(AnonymousUser())

    class Careless(APIView):
        permission_classes = [AllowAny]
        authentication_classes: list[type] = []

        def get(self, request):  # type: ignore[no-untyped-def]
            return Response({"actor": signed_in(request.user).username})

    resp = Careless.as_view()(APIRequestFactory().get("/api/v1/careless/"))
    resp.render()
    assert resp.status_code == 401 and resp["Content-Type"].startswith(PROBLEM)
    body = json.loads(resp.content)
    assert body["status"] == 401 and body["type"].endswith("/not-authenticated") and body["detail"] == "Sign in first."
    assert resp["WWW-Authenticate"].startswith("Bearer")
    plain = problem_for_exception(RequestFactory().get("/api/v1/careless/"), NotAuthenticated("Sign in first."))
    assert plain is not None and plain.status_code == 401 and json.loads(plain.content)["status"] == 401
    assert plain["WWW-Authenticate"].startswith("Bearer")


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


# --- Problem details everywhere under /api/, DEBUG included (issue 12, finding 14) ----------------------

BOOM = "apps.core.tests.boom_urls"
DEBUG_MODES = pytest.mark.parametrize("debug", [False, True], ids=["DEBUG-off", "DEBUG-on"])


@pytest.fixture
def plain():
    """A Django test client that answers with the response even when a view raises."""
    from django.test import Client

    return Client(raise_request_exception=False)


@DEBUG_MODES
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/no-such-thing/",
        "/api/nope",
        "/api/v1/jobs/abc/",
        "/api/v1/jobs/-1/",
        "/api/v1/flags/1.5/resolve/",
        "/api/v1/variants/alice/x/revisions/two/",
        "/api/v1/users/a/b/c/d/",
    ],
    ids=["unknown", "unknown-short", "non-int-id", "negative-id", "float-id", "non-int-number", "too-deep"],
)
def test_unknown_paths_and_unroutable_ids_are_problem_404(plain, settings, debug, url):
    settings.DEBUG = debug
    for method in ("get", "post", "delete"):
        resp = getattr(plain, method)(url)
        body = assert_problem(resp, 404)
        assert body["instance"] == url


@DEBUG_MODES
def test_missing_trailing_slash(plain, settings, debug):
    """GET is redirected like APPEND_SLASH would; a POST gets a 404 with a hint (DEBUG used to raise a
    RuntimeError, a 500 page, for a POST without the slash)."""
    settings.DEBUG = debug
    resp = plain.get("/api/v1/benchmarks")
    assert resp.status_code == 301 and resp["Location"] == "/api/v1/benchmarks/"
    body = assert_problem(plain.post("/api/v1/jobs", data="{}", content_type="application/json"), 404)
    assert "/api/v1/jobs/" in body["detail"]


@DEBUG_MODES
def test_405_is_a_problem(plain, settings, debug, alice):
    settings.DEBUG = debug
    plain.force_login(alice)
    resp = plain.delete("/api/v1/me/")
    assert_problem(resp, 405)
    assert "GET" in resp["Allow"]
    assert_problem(plain.put("/api/v1/benchmarks/"), 405)


@DEBUG_MODES
@override_settings(ROOT_URLCONF=BOOM)
def test_plain_django_views_under_api_answer_problems(plain, settings, debug):
    settings.DEBUG = debug
    from apps.core.tests.boom_urls import SECRET

    for url, status in [
        ("/api/v1/__boom__/django/", 500),
        ("/api/v1/__boom__/drf/", 500),
        ("/api/v1/__boom__/too-big/", 413),
        ("/api/v1/__boom__/missing/", 404),
    ]:
        resp = plain.get(url)
        assert_problem(resp, status)
        if status != 413:  # a too-large message is for the client; internals are not
            assert SECRET not in resp.content.decode()
    resp = plain.post("/api/v1/__boom__/get-only/")
    assert_problem(resp, 405)
    assert resp["Allow"] == "GET"


@DEBUG_MODES
def test_request_data_too_big_is_413(client_for, alice, settings, debug):
    settings.DEBUG = debug
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    resp = client_for(alice).post(
        "/api/v1/jobs/", data="benchmark=" + "x" * 5000, content_type="application/x-www-form-urlencoded"
    )
    assert_problem(resp, 413)


def test_pages_keep_html_errors(plain, settings):
    settings.DEBUG = True
    resp = plain.get("/variants/alice/nothing-here/")
    assert resp.status_code == 404 and not resp["Content-Type"].startswith(PROBLEM)

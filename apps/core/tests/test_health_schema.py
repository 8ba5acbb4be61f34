import pytest

pytestmark = pytest.mark.django_db


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


def test_readyz_checks_database_and_broker(client):
    resp = client.get("/readyz")
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_reports_unreachable_broker(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["checks"]["database"] == "ok"
    assert resp.json()["checks"]["broker"] != "ok"


def test_readyz_says_which_runner_sandbox_is_on(client, settings):
    import os

    from workers.runners.tests.sandbox_support import KERNEL_REFUSES_NAMESPACES

    sandbox = client.get("/readyz").json()["sandbox"]
    assert sandbox["mode"] == "strict" and sandbox["namespaces"] is True
    if KERNEL_REFUSES_NAMESPACES is None:
        assert sandbox["available"] is True, sandbox
        # A root worker drops its children to `nobody`; any other worker cannot switch users, and readyz says so.
        assert sandbox["user"] == ("nobody" if os.geteuid() == 0 else None)
        assert ("children run as 'nobody'" if os.geteuid() == 0 else "cannot switch users") in sandbox["detail"]

    settings.MC_SANDBOX = "weak"
    settings.MC_SANDBOX_USER = ""
    weak = client.get("/readyz").json()["sandbox"]
    assert weak["mode"] == "weak" and weak["namespaces"] is False and weak["available"] is True
    assert "no namespaces" in weak["detail"]


def test_readyz_says_when_sandboxed_jobs_are_refused_without_details(client, settings):
    settings.MC_SANDBOX_READONLY_PATHS = ["/nonexistent-readyz-test"]  # a policy of its own: probed afresh
    settings.MC_SANDBOX_USER = "no-such-user-readyz"
    resp = client.get("/readyz")
    assert resp.status_code == 200  # the site still serves; its workers refuse sandboxed jobs
    sandbox = resp.json()["sandbox"]
    if sandbox["user"] is None and sandbox["available"]:
        pytest.skip("a worker that is not root does not switch users: the unknown user does not matter")
    assert sandbox["available"] is False
    assert sandbox["detail"] == "sandboxed jobs are refused on this host; the worker log says why"


def test_openapi_schema_documents_problem_responses(client):
    resp = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert resp.status_code == 200
    schema = resp.json()
    assert schema["openapi"].startswith("3.")
    assert "Problem" in schema["components"]["schemas"]
    jobs_post = schema["paths"]["/api/v1/jobs/"]["post"]
    assert "application/problem+json" in jobs_post["responses"]["429"]["content"]


def test_api_docs_page_serves_vendored_assets(client):
    resp = client.get("/api/docs/")
    assert resp.status_code == 200
    assert b"cdn.jsdelivr" not in resp.content


def test_home_page_links_to_api(client):
    resp = client.get("/")
    assert resp.status_code == 200
    assert b"/api/docs/" in resp.content

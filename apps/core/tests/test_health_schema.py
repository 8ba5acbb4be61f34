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

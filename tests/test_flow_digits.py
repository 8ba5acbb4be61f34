"""The vertical slice end to end: API submit -> broker -> real `celery worker` process -> onnxruntime -> API."""

import pytest

from tests.fixtures import wait_for

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]


def test_digits_job_runs_on_a_real_worker(celery_worker_process, client_for):
    from apps.demo.seed import seed_demo

    seed_demo("commons-demo")
    from apps.accounts.models import User

    client = client_for(User.objects.get(username="alice"))
    resp = client.post(
        "/api/v1/jobs/",
        {"variant": "alice/digits-mlp-int8", "benchmark": "digits", "config": {"batch_size": 50}},
        format="json",
    )
    assert resp.status_code == 201, resp.json()
    job = resp.json()
    assert job["status"] == "queued" and job["variant"] == "alice/digits-mlp-int8" and job["revision"] == 1

    def finished():
        body = client.get(f"/api/v1/jobs/{job['id']}/").json()
        return body if body["status"] in ("succeeded", "failed", "timed_out", "cancelled") else None

    body = wait_for(finished, timeout=90, message="the digits job to finish")
    assert body["status"] == "succeeded", (body, celery_worker_process.output()[-3000:])
    metrics = body["result"]["metrics"]
    assert 0.9 < metrics["accuracy"] <= 1.0
    assert 0.9 < metrics["macro_f1"] <= 1.0
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p95_ms"]
    assert metrics["model_size_bytes"] == 7844
    env = body["result"]["environment"]
    assert env["python"].startswith("3.11") and "onnxruntime" in str(env)
    assert body["progress"] == {"done": 450, "total": 450, "percent": 100.0, "eta_s": None}
    assert body["attempts"] == 1 and body["failure"] is None
    assert "accuracy" in body["log_tail"]

    # the same submission again returns the same job
    again = client.post(
        "/api/v1/jobs/",
        {"variant": "alice/digits-mlp-int8", "benchmark": "digits", "config": {"batch_size": 50}},
        format="json",
    )
    assert again.status_code == 200 and again.json()["id"] == job["id"]

"""Webhooks through a real Celery worker and a real local receiver: signed deliveries, retries with exponential
backoff (Celery `retry` with a countdown), the delivery log, redelivery on request, and the SSRF guard."""

from __future__ import annotations

import pytest

from tests.fixtures import WorkerProcess, purge_broker, wait_for

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fast_retry_worker(transactional_db):  # type: ignore[no-untyped-def]
    """A worker of the `webhooks` queue only, as in the Procfile: deliveries and their retries must reach it."""
    purge_broker()
    worker = WorkerProcess(
        queues="webhooks",
        extra_env={"MC_WEBHOOK_RETRY_BASE_S": "0.5", "MC_WEBHOOK_MAX_ATTEMPTS": "4", "MC_WEBHOOK_TIMEOUT_S": "2"},
    )
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def test_retries_with_backoff_then_delivers_once_and_redelivers_on_request(fast_retry_worker, alice, client_for):
    from apps.notifications.receiver import WebhookReceiver

    client = client_for(alice)
    hook = client.post(
        "/api/v1/webhooks/", {"url": "http://127.0.0.1:1/", "events": ["job.finished"]}, format="json"
    ).json()
    receiver = WebhookReceiver(hook["secret"], fail_first=2)
    receiver.start()
    try:
        client.patch(f"/api/v1/webhooks/{hook['id']}/", {"url": receiver.url}, format="json")
        ping = client.post(f"/api/v1/webhooks/{hook['id']}/ping/").json()
        base = f"/api/v1/webhooks/{hook['id']}/deliveries/"

        def settled():  # type: ignore[no-untyped-def]
            body = client.get(f"{base}{ping['id']}/").json()
            return body if body["status"] in ("succeeded", "failed") else None

        delivery = wait_for(settled, timeout=60, message="the ping to be delivered")
        assert delivery["status"] == "succeeded", (delivery, fast_retry_worker.output()[-3000:])
        assert delivery["attempts"] == 3
        log = delivery["attempt_log"]
        assert [a["status_code"] for a in log] == [503, 503, 200]
        # exponential backoff between attempts: about 0.5 s, then about 1 s (never less than the countdown)
        from datetime import datetime

        starts = [datetime.fromisoformat(a["started_at"].replace("Z", "+00:00")) for a in log]
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
        assert gaps[0] >= 0.5 and gaps[1] >= 1.0, gaps
        assert len(receiver.log.processed) == 1 and receiver.log.failed_on_purpose == 2
        assert receiver.log.processed[0]["payload"]["type"] == "ping"

        again = client.post(f"{base}{ping['id']}/redeliver/")
        assert again.status_code == 202 and again.json()["message_id"] == ping["message_id"]
        wait_for(
            lambda: client.get(f"{base}{again.json()['id']}/").json()["status"] == "succeeded",
            timeout=30,
            message="the redelivery",
        )
        assert receiver.log.duplicates == [ping["message_id"]]  # de-duplicated by id, processed once
        assert len(receiver.log.processed) == 1 and receiver.log.refused == []
    finally:
        receiver.stop()


def test_a_dead_receiver_fails_after_max_attempts_and_a_private_target_is_refused(
    fast_retry_worker, alice, client_for, settings
):
    import socket

    settings.MC_WEBHOOK_MAX_ATTEMPTS = 4  # the delivery row carries its attempt budget from the web process
    client = client_for(alice)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = client.post("/api/v1/webhooks/", {"url": f"http://127.0.0.1:{port}/", "events": ["*"]}, format="json").json()
    ping = client.post(f"/api/v1/webhooks/{hook['id']}/ping/").json()
    detail = f"/api/v1/webhooks/{hook['id']}/deliveries/{ping['id']}/"
    body = wait_for(
        lambda: (lambda b: b if b["status"] == "failed" else None)(client.get(detail).json()),
        timeout=60,
        message="the delivery to give up",
    )
    assert body["attempts"] == 4 and len(body["attempt_log"]) == 4
    assert all(a["status_code"] is None and a["error"] for a in body["attempt_log"])

    settings.MC_WEBHOOKS_ALLOW_PRIVATE = False  # the web process now refuses loopback targets
    refused = client.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:8000/", "events": ["*"]}, format="json")
    assert refused.status_code == 400 and "loopback" in refused.json()["errors"]["url"][0]


def test_a_trickling_receiver_is_cut_off_and_the_worker_goes_on(
    fast_retry_worker, alice, client_for, settings, slow_server
):
    """Finding 5 of issue 12: a receiver sending one byte a second held a worker for as long as it liked. The
    worker (one slot, deadline 2 s) cuts it off, logs the attempt, and delivers the next ping."""
    from apps.notifications.receiver import WebhookReceiver

    settings.MC_WEBHOOK_MAX_ATTEMPTS = 1
    client = client_for(alice)
    trickle = slow_server()
    hook = client.post("/api/v1/webhooks/", {"url": trickle.url, "events": ["job.finished"]}, format="json").json()
    base = f"/api/v1/webhooks/{hook['id']}/deliveries/"
    ping = client.post(f"/api/v1/webhooks/{hook['id']}/ping/").json()

    def given_up():  # type: ignore[no-untyped-def]
        body = client.get(f"{base}{ping['id']}/").json()
        return body if body["status"] == "failed" else None

    body = wait_for(given_up, timeout=60, message="the trickled delivery to be given up")
    [attempt] = body["attempt_log"]
    assert attempt["status_code"] is None and "deadline" in attempt["error"], attempt
    assert trickle.client_gone.wait(15), "the worker kept the trickling connection open"
    with WebhookReceiver(hook["secret"]) as receiver:
        client.patch(f"/api/v1/webhooks/{hook['id']}/", {"url": receiver.url}, format="json")
        second = client.post(f"/api/v1/webhooks/{hook['id']}/ping/").json()
        wait_for(
            lambda: client.get(f"{base}{second['id']}/").json()["status"] == "succeeded",
            timeout=60,
            message="the next delivery on the same worker slot",
        )
        assert [p["payload"]["type"] for p in receiver.log.processed] == ["ping"]


def test_job_finished_is_announced_from_the_worker(celery_worker_process, client_for):
    from apps.accounts.models import User
    from apps.demo.seed import seed_demo
    from apps.notifications.receiver import WebhookReceiver

    seed_demo("commons-demo")
    alice = client_for(User.objects.get(username="alice"))
    hook = alice.post(
        "/api/v1/webhooks/", {"url": "http://127.0.0.1:1/", "events": ["job.finished"]}, format="json"
    ).json()
    with WebhookReceiver(hook["secret"]) as receiver:
        alice.patch(f"/api/v1/webhooks/{hook['id']}/", {"url": receiver.url}, format="json")
        job = alice.post(
            "/api/v1/jobs/",
            {"variant": "alice/digits-mlp-int8", "benchmark": "digits", "config": {"limit": 50}},
            format="json",
        ).json()
        wait_for(lambda: receiver.log.processed, timeout=120, message="job.finished")
        [event] = receiver.log.processed
        data = event["payload"]["data"]
        assert event["payload"]["type"] == "job.finished" and data["job"] == job["id"]
        assert data["status"] == "succeeded" and 0.8 < data["metrics"]["accuracy"] <= 1.0
        note = alice.get("/api/v1/notifications/?kind=job_finished").json()["results"]
        assert len(note) == 1 and note[0]["data"]["job"] == job["id"]

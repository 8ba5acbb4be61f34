"""Notifications and webhooks over HTTP: everything is the caller's own (others' objects are 404), flat lists."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.notifications import services
from apps.notifications.models import Notification, WebhookDelivery

pytestmark = pytest.mark.django_db


def _flat(client, url, grow, expected):  # type: ignore[no-untyped-def]
    client.get("/api/v1/me/")
    with CaptureQueriesContext(connection) as one:
        first = client.get(url)
    assert first.status_code == 200 and len(first.json()["results"]) == 1, first.content
    grow()
    with CaptureQueriesContext(connection) as many:
        body = client.get(url + ("&" if "?" in url else "?") + "page_size=100").json()
    assert len(body["results"]) == expected
    assert len(one) == len(many), (len(one), len(many))


def test_notifications_are_private_and_can_be_marked_read(alice, bob, client_for, api):
    assert api.get("/api/v1/notifications/").status_code == 401
    services.notify(users=[alice], kind="job_finished", title="Job 1 succeeded")
    [mine] = Notification.objects.filter(user=alice)
    a, b = client_for(alice), client_for(bob)
    rows = a.get("/api/v1/notifications/?unread=true").json()["results"]
    assert [r["title"] for r in rows] == ["Job 1 succeeded"] and rows[0]["read"] is False
    assert b.get("/api/v1/notifications/").json()["count"] == 0
    assert b.post(f"/api/v1/notifications/{mine.pk}/read/").status_code == 404
    assert b.get(f"/api/v1/notifications/{mine.pk}/").status_code == 404
    assert a.post(f"/api/v1/notifications/{mine.pk}/read/").json()["read"] is True
    assert a.get("/api/v1/notifications/?unread=true").json()["count"] == 0
    services.notify(users=[alice], kind="review_decided", title="x")
    services.notify(users=[alice], kind="review_decided", title="y")
    assert a.post("/api/v1/notifications/read-all/", {}, format="json").json() == {"marked": 2}
    assert a.get("/api/v1/notifications/?unread=maybe").status_code == 400
    assert a.get("/api/v1/notifications/99999999999999999999/").status_code == 404


def test_notification_list_query_count_is_flat(alice, client_for):
    services.notify(users=[alice], kind="job_finished", title="first")
    _flat(client_for(alice), "/api/v1/notifications/",
          lambda: [services.notify(users=[alice], kind="job_finished", title=f"n{i}") for i in range(11)], 12)


def test_preferences_turn_kinds_off(alice, client_for):
    client = client_for(alice)
    assert client.get("/api/v1/notifications/preferences/").json()["job_finished"] == {"in_app": True,
                                                                                      "email": True}
    resp = client.patch("/api/v1/notifications/preferences/", {"job_finished": {"email": False}}, format="json")
    assert resp.status_code == 200 and resp.json()["job_finished"] == {"in_app": True, "email": False}
    bad = client.patch("/api/v1/notifications/preferences/", {"sms": {"email": False}}, format="json")
    assert bad.status_code == 400 and "sms" in bad.json()["errors"]
    bad = client.patch("/api/v1/notifications/preferences/", {"job_finished": {"email": "nah"}}, format="json")
    assert bad.status_code == 400


def test_webhooks_crud_is_owner_only(alice, bob, client_for, api, settings):
    a, b = client_for(alice), client_for(bob)
    assert api.get("/api/v1/webhooks/").status_code == 401
    created = a.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["job.finished"]},
                     format="json")
    assert created.status_code == 201, created.json()
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and hook["scope"] == "own"
    assert "secret" not in a.get(f"/api/v1/webhooks/{hook['id']}/").json()
    assert b.get(f"/api/v1/webhooks/{hook['id']}/").status_code == 404
    assert b.patch(f"/api/v1/webhooks/{hook['id']}/", {"is_active": False}, format="json").status_code == 404
    assert b.delete(f"/api/v1/webhooks/{hook['id']}/").status_code == 404
    assert b.get(f"/api/v1/webhooks/{hook['id']}/deliveries/").status_code == 404
    assert b.get("/api/v1/webhooks/").json()["count"] == 0
    assert a.patch(f"/api/v1/webhooks/{hook['id']}/", {"events": ["*"]}, format="json").json()["events"] == ["*"]
    rotated = a.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret/").json()["secret"]
    assert rotated != hook["secret"]
    bad = a.post("/api/v1/webhooks/", {"url": "http://127.0.0.1/", "events": ["nope"]}, format="json").json()
    assert bad["errors"] == {"events.0": ['"nope" is not a valid choice.']}
    bad = a.post("/api/v1/webhooks/", {"url": "gopher://x", "events": ["*"]}, format="json").json()
    assert bad["errors"] == {"url": ["Only http and https URLs are allowed."]}
    settings.MC_WEBHOOKS_ALLOW_PRIVATE = False
    refused = a.post("/api/v1/webhooks/", {"url": "http://10.0.0.5/hook", "events": ["job.finished"]}, format="json")
    assert refused.status_code == 400 and "private" in refused.json()["errors"]["url"][0]
    read_only = client_for(alice, scopes=("read",))
    assert read_only.post("/api/v1/webhooks/", {"url": "http://127.0.0.1/", "events": ["*"]},
                          format="json").status_code == 403
    assert a.delete(f"/api/v1/webhooks/{hook['id']}/").status_code == 204


def test_deliveries_log_ping_and_redeliver(alice, client_for, monkeypatch):
    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: None)  # no broker traffic in this test
    client = client_for(alice)
    hook = client.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["*"]},
                       format="json").json()
    ping = client.post(f"/api/v1/webhooks/{hook['id']}/ping/")
    assert ping.status_code == 202 and ping.json()["event"] == "ping" and ping.json()["status"] == "pending"
    base = f"/api/v1/webhooks/{hook['id']}/deliveries/"
    detail = client.get(f"{base}{ping.json()['id']}/").json()
    assert detail["payload"]["type"] == "ping" and detail["attempt_log"] == []
    conflict = client.post(f"{base}{ping.json()['id']}/redeliver/")
    assert conflict.status_code == 409  # still pending
    WebhookDelivery.objects.filter(pk=ping.json()["id"]).update(status="failed")
    again = client.post(f"{base}{ping.json()['id']}/redeliver/")
    assert again.status_code == 202 and again.json()["message_id"] == ping.json()["message_id"]
    assert again.json()["redelivery_of"] == ping.json()["id"]
    assert client.get(f"{base}?status=failed").json()["results"][0]["id"] == ping.json()["id"]
    assert client.get(f"{base}?status=exploded").status_code == 400


def test_delivery_list_query_count_is_flat(alice, client_for, monkeypatch):
    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: None)
    client = client_for(alice)
    hook = client.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/", "events": ["*"]}, format="json").json()
    services.webhook_event_publish(event="job.finished", data={}, owner_ids=[alice.pk], public=False)

    def grow() -> None:
        for _ in range(11):
            services.webhook_event_publish(event="job.finished", data={}, owner_ids=[alice.pk], public=False)
    _flat(client, f"/api/v1/webhooks/{hook['id']}/deliveries/", grow, 12)


def test_webhook_list_query_count_is_flat(alice, client_for):
    client = client_for(alice)
    services.webhook_create(owner=alice, url="http://127.0.0.1/0", events=["*"])
    _flat(client, "/api/v1/webhooks/",
          lambda: [services.webhook_create(owner=alice, url=f"http://127.0.0.1/{i}", events=["*"])
                   for i in range(1, 12)], 12)


def test_webhook_detail_etag_and_if_match(alice, client_for):
    client = client_for(alice)
    hook = client.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/", "events": ["*"]}, format="json").json()
    url = f"/api/v1/webhooks/{hook['id']}/"
    etag = client.get(url)["ETag"]
    stale = client.patch(url, {"is_active": False}, format="json", HTTP_IF_MATCH='"old"')
    assert stale.status_code == 412 and stale.json()["etag"] == etag
    ok = client.patch(url, {"is_active": False}, format="json", HTTP_IF_MATCH=etag)
    assert ok.status_code == 200 and ok.json()["is_active"] is False and ok["ETag"] != etag
    assert client.patch(url, {"is_active": 1}, format="json").status_code == 400  # JSON booleans only

"""Notifications and webhooks over HTTP: everything is the caller's own (others' objects are 404), flat lists."""

from __future__ import annotations

import pytest

from apps.core.testing import assert_list_query_count_is_flat
from apps.notifications import services
from apps.notifications.models import Notification, WebhookDelivery

pytestmark = pytest.mark.django_db


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
    assert_list_query_count_is_flat(
        client_for(alice),
        "/api/v1/notifications/",
        lambda: [services.notify(users=[alice], kind="job_finished", title=f"n{i}") for i in range(11)],
        12,
    )


def test_preferences_turn_kinds_off(alice, client_for):
    client = client_for(alice)
    assert client.get("/api/v1/notifications/preferences/").json()["job_finished"] == {"in_app": True, "email": True}
    resp = client.patch("/api/v1/notifications/preferences/", {"job_finished": {"email": False}}, format="json")
    assert resp.status_code == 200 and resp.json()["job_finished"] == {"in_app": True, "email": False}
    bad = client.patch("/api/v1/notifications/preferences/", {"sms": {"email": False}}, format="json")
    assert bad.status_code == 400 and "sms" in bad.json()["errors"]
    bad = client.patch("/api/v1/notifications/preferences/", {"job_finished": {"email": "nah"}}, format="json")
    assert bad.status_code == 400


def test_webhooks_crud_is_owner_only(alice, bob, client_for, api, settings):
    a, b = client_for(alice), client_for(bob)
    assert api.get("/api/v1/webhooks/").status_code == 401
    created = a.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["job.finished"]}, format="json")
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
    assert (
        read_only.post("/api/v1/webhooks/", {"url": "http://127.0.0.1/", "events": ["*"]}, format="json").status_code
        == 403
    )
    assert a.delete(f"/api/v1/webhooks/{hook['id']}/").status_code == 204


@pytest.mark.parametrize(
    "url",
    [
        # finding 9 of issue 12: these were accepted
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[fec0::1]/",
        # the same inside reached by other spellings
        "http://[::ffff:127.0.0.1]/",
        "http://[64:ff9b:1:7f00:0:100::]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[fd00::1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://localhost:8000/",
    ],
)
def test_webhook_targets_inside_the_network_are_400_field_errors(alice, client_for, settings, url):
    settings.MC_WEBHOOKS_ALLOW_PRIVATE = False
    client = client_for(alice)
    refused = client.post("/api/v1/webhooks/", {"url": url, "events": ["job.finished"]}, format="json")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/problem+json", refused.content
    assert list(refused.json()["errors"]) == ["url"] and refused.json()["errors"]["url"][0]
    hook = client.post("/api/v1/webhooks/", {"url": "http://93.184.216.34/", "events": ["*"]}, format="json").json()
    changed = client.patch(f"/api/v1/webhooks/{hook['id']}/", {"url": url}, format="json")
    assert changed.status_code == 400 and list(changed.json()["errors"]) == ["url"]
    assert client.get(f"/api/v1/webhooks/{hook['id']}/").json()["url"] == "http://93.184.216.34/"


def test_pings_and_redeliveries_on_request_have_a_cooldown(alice, bob, client_for, monkeypatch, settings):
    """Finding 5 of issue 12: `ping` sent a delivery on demand, as often as asked."""
    from datetime import timedelta

    from celery import current_app
    from django.utils import timezone

    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: None)
    settings.MC_WEBHOOK_PING_COOLDOWN_S = 60
    a = client_for(alice)
    one = a.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/a", "events": ["*"]}, format="json").json()
    two = a.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/b", "events": ["*"]}, format="json").json()
    first = a.post(f"/api/v1/webhooks/{one['id']}/ping/")
    assert first.status_code == 202
    for again in (a.post(f"/api/v1/webhooks/{one['id']}/ping/"), a.post(f"/api/v1/webhooks/{two['id']}/ping/")):
        assert again.status_code == 429 and again["Content-Type"] == "application/problem+json"
        assert 0 < int(again["Retry-After"]) <= 60 and again.json()["limit"] == "webhook_ping_cooldown"
    WebhookDelivery.objects.filter(pk=first.json()["id"]).update(status="failed")
    redeliver = a.post(f"/api/v1/webhooks/{one['id']}/deliveries/{first.json()['id']}/redeliver/")
    assert redeliver.status_code == 429
    b = client_for(bob)  # one user's cooldown is not another's
    theirs = b.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/c", "events": ["*"]}, format="json").json()
    assert b.post(f"/api/v1/webhooks/{theirs['id']}/ping/").status_code == 202
    WebhookDelivery.objects.filter(requested_by=alice).update(created_at=timezone.now() - timedelta(seconds=61))
    assert a.post(f"/api/v1/webhooks/{one['id']}/deliveries/{first.json()['id']}/redeliver/").status_code == 202
    assert a.post(f"/api/v1/webhooks/{two['id']}/ping/").status_code == 429
    assert WebhookDelivery.objects.filter(requested_by=alice).count() == 2


def test_deliveries_log_ping_and_redeliver(alice, client_for, monkeypatch):
    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: None)  # no broker traffic in this test
    client = client_for(alice)
    hook = client.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["*"]}, format="json").json()
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

    assert_list_query_count_is_flat(client, f"/api/v1/webhooks/{hook['id']}/deliveries/", grow, 12)


def test_webhook_list_query_count_is_flat(alice, client_for):
    client = client_for(alice)
    services.webhook_create(owner=alice, url="http://127.0.0.1/0", events=["*"])
    assert_list_query_count_is_flat(
        client,
        "/api/v1/webhooks/",
        lambda: [services.webhook_create(owner=alice, url=f"http://127.0.0.1/{i}", events=["*"]) for i in range(1, 12)],
        12,
    )


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

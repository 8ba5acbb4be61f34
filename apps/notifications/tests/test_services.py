"""Notifications and webhooks at the service layer: signatures, the SSRF guard, deliveries against a real local
receiver, retries with backoff, redelivery, and who receives which event."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import PermissionDenied, ValidationFailed
from apps.notifications import services
from apps.notifications.models import WebhookAttempt, WebhookDelivery
from apps.notifications.receiver import WebhookReceiver
from apps.notifications.signing import WebhookVerificationError, secret_generate, sign, signature_headers, verify
from apps.notifications.transport import UnsafeTarget, resolve_target

# --- signatures (no database) --------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_reference_vector():
    assert sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                b'{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_refuses_tampering_wrong_keys_and_stale_or_future_timestamps():
    secret = secret_generate()
    assert secret.startswith("whsec_")
    now = int(time.time())
    body = b'{"type":"ping"}'
    headers = signature_headers(secret, "msg_1", now, body)
    assert verify(secret, headers, body) == "msg_1"
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(secret, headers, b'{"type":"pong"}')
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(secret_generate(), headers, body)
    with pytest.raises(WebhookVerificationError, match="Stale"):
        verify(secret, signature_headers(secret, "msg_1", now - 301, body), body)
    with pytest.raises(WebhookVerificationError, match="Stale"):
        verify(secret, signature_headers(secret, "msg_1", now + 301, body), body)
    with pytest.raises(WebhookVerificationError, match="Missing header"):
        verify(secret, {"webhook-id": "msg_1"}, body)
    # Several signatures (a rotated key): one match is enough.
    rotated = dict(headers, **{"webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]})
    assert verify(secret, rotated, body) == "msg_1"


# --- SSRF guard (no connections are made) -------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/", "http://192.168.0.10/", "http://172.16.5.4/",
    "http://[::1]/", "http://[fc00::1]/", "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/",
])
def test_private_and_loopback_targets_are_refused_by_default(url):
    with pytest.raises(UnsafeTarget, match="Refused"):
        resolve_target(url, allow_private=False)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/", "http://224.0.0.1/"])
def test_link_local_multicast_and_unspecified_are_refused_even_when_private_is_allowed(url):
    with pytest.raises(UnsafeTarget, match="link-local, multicast or unspecified"):
        resolve_target(url, allow_private=True)


@pytest.mark.parametrize("url,why", [
    ("ftp://93.184.216.34/", "Only http and https"), ("http://user:pw@93.184.216.34/", "Credentials"),
    ("http:///nohost", "no host"), ("http://93.184.216.34:99999/", "valid URL"),
    ("https://" + "a" * 1000 + ".example/", "longer than"),
])
def test_malformed_targets_are_refused(url, why):
    with pytest.raises(UnsafeTarget, match=why):
        resolve_target(url, allow_private=True)


def test_public_and_allowed_private_targets_pass():
    target = resolve_target("https://93.184.216.34/hooks?x=1", allow_private=False)
    assert (target.host, target.port, target.path, target.address) == ("93.184.216.34", 443, "/hooks?x=1",
                                                                       "93.184.216.34")
    assert resolve_target("http://127.0.0.1:8080/", allow_private=True).address == "127.0.0.1"


# --- subscriptions -------------------------------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db


@pytestmark_db
def test_create_refuses_private_targets_unless_allowed(alice, settings):
    settings.MC_WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(ValidationFailed) as err:
        services.webhook_create(owner=alice, url="http://127.0.0.1:8000/hook", events=["job.finished"])
    assert "loopback" in err.value.errors["url"][0]
    settings.MC_WEBHOOKS_ALLOW_PRIVATE = True
    sub = services.webhook_create(owner=alice, url="http://127.0.0.1:8000/hook", events=["job.finished"])
    assert sub.secret.startswith("whsec_") and sub.scope == "own"


@pytestmark_db
def test_create_validates_events_and_only_the_owner_changes_a_webhook(alice, bob):
    with pytest.raises(ValidationFailed) as err:
        services.webhook_create(owner=alice, url="http://127.0.0.1/", events=["nope", "ping"])
    assert "nope" in err.value.errors["events"][0]
    sub = services.webhook_create(owner=alice, url="http://127.0.0.1/", events=["*"])
    with pytest.raises(PermissionDenied):
        services.webhook_update(subscription=sub, actor=bob, is_active=False)
    old = sub.secret
    assert services.webhook_rotate_secret(subscription=sub, actor=alice).secret != old
    services.webhook_update(subscription=sub, actor=alice, events=["job.finished", "job.finished"])
    sub.refresh_from_db()
    assert sub.events == ["job.finished"]


# --- deliveries against a real local receiver ----------------------------------------------------------------------

@pytest.fixture
def receiver_sub(alice):  # type: ignore[no-untyped-def]
    sub = services.webhook_create(owner=alice, url="http://127.0.0.1:1/placeholder", events=["*"])
    receiver = WebhookReceiver(sub.secret)
    receiver.start()
    sub.url = receiver.url
    sub.save(update_fields=["url"])
    yield sub, receiver
    receiver.stop()


def _event(alice):  # type: ignore[no-untyped-def]
    [delivery] = services.webhook_event_publish(event="job.finished", data={"job": 1, "status": "succeeded"},
                                                owner_ids=[alice.pk], public=False)
    return delivery


@pytestmark_db
def test_a_delivery_is_signed_verified_and_logged(alice, receiver_sub):
    sub, receiver = receiver_sub
    delivery = _event(alice)
    outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert outcome.status == "succeeded" and outcome.retry_in is None
    [got] = receiver.log.processed
    assert got["id"] == delivery.message_id and got["payload"]["type"] == "job.finished"
    assert got["payload"]["data"] == {"job": 1, "status": "succeeded"}
    assert got["headers"]["webhook-signature"].startswith("v1,")
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 1 and delivery.last_status_code == 200
    [attempt] = WebhookAttempt.objects.filter(delivery=delivery)
    assert attempt.status_code == 200 and json.loads(attempt.response_excerpt) == {"ok": True}
    # A second task message for the same delivery does nothing.
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).status == "skipped"
    assert len(receiver.log.processed) == 1


@pytestmark_db
def test_failures_retry_with_exponential_backoff_then_succeed(alice, receiver_sub, settings):
    settings.MC_WEBHOOK_RETRY_BASE_S = 10
    sub, receiver = receiver_sub
    receiver.fail_first = 2
    delivery = _event(alice)
    waits = []
    for _ in range(3):
        outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk)
        waits.append(outcome.retry_in)
        if outcome.retry_in:
            delivery.refresh_from_db()
            assert delivery.status == "retrying"
            assert services.webhook_delivery_attempt(delivery_id=delivery.pk).status == "skipped"  # not due yet
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())  # time passes
    assert waits == [10.0, 20.0, None]
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 3
    assert list(delivery.attempt_log.values_list("status_code", flat=True)) == [503, 503, 200]
    assert len(receiver.log.processed) == 1


@pytestmark_db
def test_a_dead_target_fails_after_max_attempts(alice, settings):
    settings.MC_WEBHOOK_MAX_ATTEMPTS = 2
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    services.webhook_create(owner=alice, url=f"http://127.0.0.1:{port}/", events=["job.finished"])
    delivery = _event(alice)
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).status == "retrying"
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).status == "failed"
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "Connection" in delivery.last_error
    assert delivery.attempt_log.count() == 2


@pytestmark_db
def test_the_guard_runs_again_at_delivery_time(alice, settings):
    sub = services.webhook_create(owner=alice, url="http://127.0.0.1:9/", events=["job.finished"])
    settings.MC_WEBHOOKS_ALLOW_PRIVATE = False
    settings.MC_WEBHOOK_MAX_ATTEMPTS = 1
    delivery = _event(alice)
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).status == "failed"
    delivery.refresh_from_db()
    assert "Refused" in delivery.last_error and delivery.last_status_code is None
    assert sub.pk == delivery.subscription_id


@pytestmark_db
def test_redelivery_keeps_the_message_id_and_the_receiver_deduplicates(alice, bob, receiver_sub):
    sub, receiver = receiver_sub
    delivery = _event(alice)
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    with pytest.raises(PermissionDenied):
        services.webhook_redeliver(delivery=delivery, actor=bob)
    again = services.webhook_redeliver(delivery=delivery, actor=alice)
    assert again.message_id == delivery.message_id and again.redelivery_of_id == delivery.pk
    assert services.webhook_delivery_attempt(delivery_id=again.pk).status == "succeeded"
    assert len(receiver.log.processed) == 1 and receiver.log.duplicates == [delivery.message_id]


@pytestmark_db
def test_receiver_refuses_bad_signatures_stale_timestamps_and_processes_replays_once(alice, receiver_sub):
    import urllib.request

    sub, receiver = receiver_sub
    body = b'{"type":"ping","data":{}}'

    def post(headers):  # type: ignore[no-untyped-def]
        req = urllib.request.Request(receiver.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback test receiver
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    now = int(time.time())
    good = signature_headers(sub.secret, "msg_replay", now, body)
    assert post(good) == 200
    assert post(good) == 200  # a replay is acknowledged, not processed
    assert post(signature_headers(secret_generate(), "msg_x", now, body)) == 401
    assert post(signature_headers(sub.secret, "msg_old", now - 600, body)) == 401
    assert [p["id"] for p in receiver.log.processed] == ["msg_replay"]
    assert receiver.log.duplicates == ["msg_replay"] and len(receiver.log.refused) == 2


# --- who receives which event ---------------------------------------------------------------------------------------

@pytestmark_db
def test_events_reach_only_subscriptions_that_may_know(alice, bob, reviewer):
    own_alice = services.webhook_create(owner=alice, url="http://127.0.0.1/a", events=["variant.submitted"])
    own_bob = services.webhook_create(owner=bob, url="http://127.0.0.1/b", events=["*"])
    all_bob = services.webhook_create(owner=bob, url="http://127.0.0.1/c", events=["variant.submitted"],
                                      scope="visible")
    all_rev = services.webhook_create(owner=reviewer, url="http://127.0.0.1/d", events=["*"], scope="visible")
    services.webhook_create(owner=reviewer, url="http://127.0.0.1/e", events=["job.finished"], scope="visible")
    draft = services.webhook_event_publish(event="variant.submitted", data={}, owner_ids=[alice.pk], public=False)
    assert {d.subscription_id for d in draft} == {own_alice.pk, all_rev.pk}
    public = services.webhook_event_publish(event="variant.submitted", data={}, owner_ids=[alice.pk], public=True)
    assert {d.subscription_id for d in public} == {own_alice.pk, all_bob.pk, all_rev.pk}
    assert own_bob.pk not in {d.subscription_id for d in public}


@pytestmark_db
def test_recovery_redispatches_overdue_deliveries(alice, monkeypatch, settings):
    sent: list[int] = []
    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", lambda name, args=None, **kw: sent.append(args[0]))
    services.webhook_create(owner=alice, url="http://127.0.0.1/a", events=["job.finished"])
    lost = _event(alice)
    fresh = _event(alice)
    WebhookDelivery.objects.filter(pk=lost.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.MC_WEBHOOK_RECOVER_GRACE_S + 5))
    assert services.webhooks_recover() == 1 and sent == [lost.pk]
    assert fresh.pk not in sent


@pytestmark_db
def test_notification_preferences(alice):
    prefs = services.notification_preferences(alice)
    assert prefs["job_finished"] == {"in_app": True, "email": True} and len(prefs) == 5
    prefs = services.notification_preferences_set(user=alice, changes={"job_finished": {"email": False}})
    assert prefs["job_finished"] == {"in_app": True, "email": False}
    with pytest.raises(ValidationFailed) as err:
        services.notification_preferences_set(user=alice, changes={"nope": {"email": False},
                                                                   "job_finished": {"sms": True}})
    assert set(err.value.errors) == {"nope", "job_finished"}


@pytestmark_db
def test_notify_skips_opted_out_channels_and_excluded_users(alice, bob, django_capture_on_commit_callbacks):
    from django.core import mail

    services.notification_preferences_set(user=bob, changes={"job_finished": {"in_app": False}})
    with django_capture_on_commit_callbacks(execute=True):
        rows = services.notify(users=[alice, bob, alice, None], kind="job_finished", title="Job 1 succeeded",
                               body="accuracy=0.97", url="/api/v1/jobs/1/")
    assert [r.user_id for r in rows] == [alice.pk]
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.org", "bob@example.org"]
    assert "/api/v1/jobs/1/" in mail.outbox[0].body
    assert services.notify(users=[alice], kind="job_finished", title="x", exclude=[alice]) == []


def test_backoff_grows_exponentially_and_is_capped(settings):
    settings.MC_WEBHOOK_RETRY_BASE_S = 10
    settings.MC_WEBHOOK_RETRY_MAX_S = 100
    assert [services.webhook_backoff_s(n) for n in range(1, 6)] == [10, 20, 40, 80, 100]


@pytestmark_db
def test_a_job_finish_is_announced_once_however_often_the_hooks_run(digits_world):
    from apps.notifications.events import announce_jobs_finished
    from apps.notifications.models import Notification
    from apps.reviews.tests.conftest import succeed_job

    alice = digits_world["users"]["alice"]
    services.webhook_create(owner=alice, url="http://127.0.0.1:9/", events=["job.finished"])
    job = succeed_job(digits_world["int8"].current_revision, digits_world["benchmark"], alice)
    for _ in range(3):
        announce_jobs_finished([job.pk])
    [note] = Notification.objects.filter(user=alice, kind="job_finished")
    assert note.data["job"] == job.pk and note.data["metrics"] == {"accuracy": 0.97}
    assert WebhookDelivery.objects.filter(event="job.finished").count() == 1

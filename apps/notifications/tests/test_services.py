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
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


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

# Finding 9 of issue 12 (these four were accepted), then other spellings of the inside of the network.
FINDING_9_URLS = ["http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://[fec0::1]/"]
INSIDE_URLS = [
    *FINDING_9_URLS,
    "http://127.0.0.1:9/x",
    "http://localhost/x",
    "http://10.1.2.3/",
    "http://192.168.0.10/",
    "http://172.16.5.4/",
    "http://100.64.0.1/",
    "http://192.0.0.8/",
    "http://198.18.0.1/",
    "http://[::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[64:ff9b:1:7f00:0:100::]/",  # local-use NAT64 (RFC 8215) of 127.0.0.1
    "http://[2002:c0a8:1::1]/",  # 6to4 of 192.168.0.1
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://[2001:db8::1]/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "http://[::]/",
    "http://0.0.0.0/",
    "http://169.254.169.254/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[::ffff:169.254.169.254]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://0.1.2.3/",
    "http://[100::1]/",
]
ODD_IPV4_URLS = [
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://127.1/",
    "http://0x7f000001/",
    "http://127.000.000.001/",
    "http://017700000001/",
    "http://1572395042/",
]


@pytest.mark.parametrize("url", INSIDE_URLS)
def test_private_loopback_and_tunnelled_targets_are_refused_by_default(url):
    with pytest.raises(UnsafeTarget, match="Refused"):
        resolve_target(url, allow_private=False)


@pytest.mark.parametrize("url", ODD_IPV4_URLS)
def test_odd_spellings_of_ipv4_addresses_are_refused_whatever_the_setting(url):
    for allow_private in (False, True):
        with pytest.raises(UnsafeTarget, match="four decimal numbers"):
            resolve_target(url, allow_private=allow_private)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[ff02::1]/",
        "http://[fe80::1]/",
        "http://[::]/",
        "http://255.255.255.255/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://[::127.0.0.1]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[100::1]/",
    ],
)
def test_metadata_multicast_unspecified_and_tunnels_are_refused_even_when_private_is_allowed(url):
    with pytest.raises(UnsafeTarget, match="never a webhook target"):
        resolve_target(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[fec0::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://10.1.2.3/",
        "http://[fd00::1]/",
        "http://127.0.0.1:8080/",
    ],
)
def test_allowing_private_targets_allows_their_tunnelled_spellings_too(url):
    assert resolve_target(url, allow_private=True).address


@pytest.mark.parametrize(
    "url,address",
    [
        ("http://[64:ff9b::808:808]/", "64:ff9b::808:808"),  # NAT64 of a public address (IPv6-only networks)
        ("http://[2002:808:808::1]/", "2002:808:808::1"),  # 6to4 of a public address
        ("http://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
        ("http://8.8.8.8/", "8.8.8.8"),
    ],
)
def test_public_addresses_in_any_spelling_pass(url, address):
    assert resolve_target(url, allow_private=False).address == address


def _fake_dns(monkeypatch, answers):  # type: ignore[no-untyped-def]
    """Make `host` resolve to the next list of addresses in `answers` on each lookup (a rebinding DNS server)."""
    from apps.notifications import transport

    real = socket.getaddrinfo
    calls: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != "hooks.example.test":
            return real(host, port, *args, **kwargs)
        calls.append(host)
        addresses = answers[min(len(calls), len(answers)) - 1]
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in addresses
        ]

    monkeypatch.setattr(transport.socket, "getaddrinfo", getaddrinfo)
    return calls


def test_every_resolved_address_is_checked(monkeypatch):
    _fake_dns(monkeypatch, [["93.184.216.34", "127.0.0.1"]])
    with pytest.raises(UnsafeTarget, match="127.0.0.1 is a loopback"):
        resolve_target("http://hooks.example.test/", allow_private=False)


def test_a_host_that_resolves_to_the_inside_is_refused(monkeypatch):
    _fake_dns(monkeypatch, [["::ffff:10.0.0.7"]])
    with pytest.raises(UnsafeTarget, match="10.0.0.7"):
        resolve_target("http://hooks.example.test/", allow_private=False)


@pytest.mark.parametrize(
    "url,why",
    [
        ("ftp://93.184.216.34/", "Only http and https"),
        ("http://user:pw@93.184.216.34/", "Credentials"),
        ("http:///nohost", "no host"),
        ("http://93.184.216.34:99999/", "valid URL"),
        ("https://" + "a" * 1000 + ".example/", "longer than"),
    ],
)
def test_malformed_targets_are_refused(url, why):
    with pytest.raises(UnsafeTarget, match=why):
        resolve_target(url, allow_private=True)


def test_public_and_allowed_private_targets_pass():
    target = resolve_target("https://93.184.216.34/hooks?x=1", allow_private=False)
    assert (target.host, target.port, target.path, target.address) == (
        "93.184.216.34",
        443,
        "/hooks?x=1",
        "93.184.216.34",
    )
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
    [delivery] = services.webhook_event_publish(
        event="job.finished", data={"job": 1, "status": "succeeded"}, owner_ids=[alice.pk], public=False
    )
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
def test_delivery_resolves_again_and_refuses_a_host_rebound_to_loopback(alice, receiver_sub, settings, monkeypatch):
    sub, receiver = receiver_sub
    port = receiver.url.split(":")[2].split("/")[0]
    settings.MC_WEBHOOKS_ALLOW_PRIVATE = False
    calls = _fake_dns(monkeypatch, [["93.184.216.34"], ["127.0.0.1"]])  # public when checked, loopback later
    services.webhook_update(subscription=sub, actor=alice, url=f"http://hooks.example.test:{port}/hooks")
    settings.MC_WEBHOOK_MAX_ATTEMPTS = 1
    delivery = _event(alice)
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).status == "failed"
    delivery.refresh_from_db()
    assert "127.0.0.1 is a loopback" in delivery.last_error and delivery.last_status_code is None
    assert len(calls) == 2 and receiver.log.processed == [] and receiver.log.refused == []


@pytestmark_db
def test_delivery_connects_to_the_address_it_checked(alice, receiver_sub, monkeypatch):
    sub, receiver = receiver_sub
    port = receiver.url.split(":")[2].split("/")[0]
    # A second lookup would answer an address nobody listens on: the attempt must connect to the checked one.
    calls = _fake_dns(monkeypatch, [["127.0.0.1"], ["127.0.0.1"], ["203.0.113.9"]])
    services.webhook_update(subscription=sub, actor=alice, url=f"http://hooks.example.test:{port}/hooks")
    delivery = _event(alice)
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).status == "succeeded"
    assert len(calls) == 2
    [got] = receiver.log.processed
    assert got["headers"]["Host"] == f"hooks.example.test:{port}"


@pytestmark_db
def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline(alice, settings, slow_server):
    """Finding 5 of issue 12: one byte a second kept every per-socket timeout happy and held the worker."""
    settings.MC_WEBHOOK_TIMEOUT_S = 2
    server = slow_server()  # the status line and headers, one byte a second, forever
    services.webhook_create(owner=alice, url=server.url, events=["job.finished"])
    delivery = _event(alice)
    outcome = services.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert outcome.status == "retrying" and outcome.retry_in
    [attempt] = WebhookAttempt.objects.filter(delivery=delivery)
    assert attempt.status_code is None and "deadline" in attempt.error
    assert server.client_gone.wait(15), "the sender kept the connection open"


@pytestmark_db
def test_a_trickled_body_after_a_2xx_counts_as_delivered_and_is_cut_at_the_deadline(alice, settings, slow_server):
    settings.MC_WEBHOOK_TIMEOUT_S = 2
    server = slow_server(head=b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nok", drip=b".")
    services.webhook_create(owner=alice, url=server.url, events=["job.finished"])
    delivery = _event(alice)
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).status == "succeeded"
    [attempt] = WebhookAttempt.objects.filter(delivery=delivery)
    assert attempt.status_code == 200 and attempt.response_excerpt.startswith("ok") and "deadline" in attempt.error
    assert server.client_gone.wait(15)


def test_at_most_the_response_cap_is_read(slow_server):
    from apps.notifications.transport import post_json

    endless = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"10000\r\n" + b"x" * 0x10000 + b"\r\n" for _ in range(400)
    )  # 25 MiB of chunks, sent at once
    server = slow_server(head=endless, drip=b"")
    outcome = post_json(server.url, b"{}", {}, timeout=60, allow_private=True, max_response_bytes=1000)
    assert outcome.ok and outcome.error == "" and outcome.excerpt == "x" * 1000
    assert server.client_gone.wait(15), "the sender read the whole answer"


def test_redirects_are_not_followed(slow_server):
    from apps.notifications.transport import post_json

    inside = slow_server(head=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", drip=b"")
    redirect = slow_server(
        head=f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {inside.url}\r\nContent-Length: 0\r\n\r\n".encode(),
        drip=b"",
    )
    outcome = post_json(redirect.url, b"{}", {}, timeout=10, allow_private=True)
    assert outcome.status_code == 307 and not outcome.ok and outcome.error == "HTTP 307"
    assert redirect.requests == 1 and inside.requests == 0


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
    all_bob = services.webhook_create(
        owner=bob, url="http://127.0.0.1/c", events=["variant.submitted"], scope="visible"
    )
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
        created_at=timezone.now() - timedelta(seconds=settings.MC_WEBHOOK_RECOVER_GRACE_S + 5)
    )
    assert services.webhooks_recover() == 1 and sent == [lost.pk]
    assert fresh.pk not in sent


@pytestmark_db
def test_notification_preferences(alice):
    prefs = services.notification_preferences(alice)
    assert prefs["job_finished"] == {"in_app": True, "email": True} and len(prefs) == 6
    prefs = services.notification_preferences_set(user=alice, changes={"job_finished": {"email": False}})
    assert prefs["job_finished"] == {"in_app": True, "email": False}
    with pytest.raises(ValidationFailed) as err:
        services.notification_preferences_set(
            user=alice, changes={"nope": {"email": False}, "job_finished": {"sms": True}}
        )
    assert set(err.value.errors) == {"nope", "job_finished"}


@pytestmark_db
def test_notify_skips_opted_out_channels_and_excluded_users(alice, bob, django_capture_on_commit_callbacks):
    from django.core import mail

    services.notification_preferences_set(user=bob, changes={"job_finished": {"in_app": False}})
    with django_capture_on_commit_callbacks(execute=True):
        rows = services.notify(
            users=[alice, bob, alice, None],
            kind="job_finished",
            title="Job 1 succeeded",
            body="accuracy=0.97",
            url="/api/v1/jobs/1/",
        )
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


def test_deliveries_have_a_queue_and_a_worker_of_their_own():
    """Finding 5 of issue 12: deliveries shared the worker (and queue) that runs benchmark jobs and recovery."""
    import re
    from pathlib import Path

    from django.conf import settings
    from modelcommons.celery import app

    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, task)["queue"].name

    assert queue_of(services.DELIVER_TASK) == "webhooks"
    assert queue_of("notifications.webhooks_recover") == queue_of("workers.tasks.jobs_recover") == "default"
    procfile = (Path(settings.BASE_DIR) / "Procfile").read_text()
    consumers = {
        name: set(queues.split(","))
        for name, queues in re.findall(r"^(\w+):\s*celery .* worker .*-Q ([\w.,]+)", procfile, flags=re.MULTILINE)
    }
    assert [name for name, queues in consumers.items() if "webhooks" in queues] == ["webhooks"]
    assert consumers["webhooks"] == {"webhooks"} and {"default", "bench.cpu"} <= consumers["worker"]

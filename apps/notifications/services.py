"""Notification and webhook writes.

Rows (notifications, deliveries) are written in the caller's transaction, so they exist exactly when the
change they announce commits; e-mails and webhook dispatches happen only after that commit."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.core.conditional import check_if_match
from apps.core.errors import Conflict, PermissionDenied, QuotaExceeded, ValidationFailed

from .choices import ALL_EVENTS, OPEN_DELIVERY_STATUSES, DeliveryStatus, NotificationKind, WebhookEvent, WebhookScope
from .models import Notification, NotificationPreference, WebhookAttempt, WebhookDelivery, WebhookSubscription
from .signing import secret_generate, signature_headers
from .transport import UnsafeTarget, post_json, resolve_target

logger = logging.getLogger(__name__)

DELIVER_TASK = "notifications.deliver_webhook"


# --- in-app and e-mail notifications -----------------------------------------------------------------------


def _send_emails(messages: list[tuple[str, str, str]]) -> None:
    try:
        connection = get_connection()
        connection.send_messages(
            [
                EmailMessage(
                    subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to], connection=connection
                )
                for subject, body, to in messages
            ]
        )
    except Exception:  # noqa: BLE001 - a mail server outage must not undo or break the change it announces
        logger.exception("sending %d notification e-mails failed", len(messages))


@dataclass(frozen=True)
class Notice:
    """One message to some users: what a `notify` call says, so several can be written at once."""

    users: tuple[User | None, ...]
    kind: str
    title: str
    body: str = ""
    url: str = ""
    data: dict[str, Any] | None = None
    exclude: tuple[User | None, ...] = ()


def notify(
    *,
    users: Iterable[User | None],
    kind: str,
    title: str,
    body: str = "",
    url: str = "",
    data: dict[str, Any] | None = None,
    exclude: Iterable[User | None] = (),
) -> list[Notification]:
    """Tell users something happened: an in-app notification and an e-mail, each unless turned off."""
    return notify_many(
        [Notice(users=tuple(users), kind=kind, title=title, body=body, url=url, data=data, exclude=tuple(exclude))]
    )


def notify_many(notices: Iterable[Notice]) -> list[Notification]:
    """`notify` for several notices at once: one query for the recipients' preferences, one insert for every
    in-app notification, and one after-commit batch of e-mails, however many notices. Each notice reaches its
    active, not excluded users once, on the channels each has not turned off for its kind. Returns the
    notifications in notice order."""
    planned: list[tuple[Notice, dict[int, User]]] = []
    for notice in notices:
        excluded = {u.pk for u in notice.exclude if u is not None}
        recipients = {u.pk: u for u in notice.users if u is not None and u.is_active and u.pk not in excluded}
        if recipients:
            planned.append((notice, recipients))
    if not planned:
        return []
    prefs = {
        (p.user_id, p.kind): p
        for p in NotificationPreference.objects.filter(
            user_id__in={pk for _, recipients in planned for pk in recipients},
            kind__in={notice.kind for notice, _ in planned},
        )
    }
    rows: list[Notification] = []
    emails: list[tuple[str, str, str]] = []
    for notice, recipients in planned:
        kind, title, body, url = notice.kind, notice.title, notice.body, notice.url
        for pk, user in recipients.items():
            pref = prefs.get((pk, kind))
            if pref is None or pref.in_app:
                rows.append(
                    Notification(user=user, kind=kind, title=title[:200], body=body, url=url, data=notice.data or {})
                )
            if (pref is None or pref.email) and user.email:
                link = f"\n\n{settings.MC_SITE_URL.rstrip('/')}{url}" if url else ""
                footer = (
                    "\n\n--\nYou get this because of your Model Commons notification settings "
                    f"({kind}); turn it off at /api/v1/notifications/preferences/."
                )
                emails.append((f"[Model Commons] {title}"[:200], body + link + footer, user.email))
    created = Notification.objects.bulk_create(rows)
    if emails:
        transaction.on_commit(lambda: _send_emails(emails))
    return created


@transaction.atomic
def notifications_mark_read(*, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark some (or all) of the user's unread notifications read. Returns how many changed."""
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    return qs.update(read_at=timezone.now())


def notification_preferences(user: User) -> dict[str, dict[str, bool]]:
    stored = {p.kind: p for p in NotificationPreference.objects.filter(user=user)}
    return {
        kind: {
            "in_app": stored[kind].in_app if kind in stored else True,
            "email": stored[kind].email if kind in stored else True,
        }
        for kind in NotificationKind.values
    }


@transaction.atomic
def notification_preferences_set(*, user: User, changes: dict[str, dict[str, bool]]) -> dict[str, dict[str, bool]]:
    """Turn channels of notification kinds on or off: `{kind: {in_app?, email?}}`."""
    errors: dict[str, list[str]] = {}
    for kind, channels in changes.items():
        if kind not in NotificationKind.values:
            errors[kind] = [f"Unknown kind. Valid: {', '.join(NotificationKind.values)}."]
        elif not isinstance(channels, dict) or not channels:
            errors[kind] = ['Give an object such as {"email": false}.']
        else:
            bad = [k for k, v in channels.items() if k not in ("in_app", "email") or not isinstance(v, bool)]
            if bad:
                errors[kind] = ["Only the boolean fields in_app and email may be set."]
    if errors:
        raise ValidationFailed("Invalid notification preferences.", errors=errors)
    for kind, channels in changes.items():
        pref, _ = NotificationPreference.objects.select_for_update().get_or_create(user=user, kind=kind)
        for channel, value in channels.items():
            setattr(pref, channel, value)
        pref.save()
    return notification_preferences(user)


# --- webhook subscriptions -----------------------------------------------------------------------------------


def _validate_subscription(*, url: str | None, events: list[str] | None, scope: str | None) -> None:
    errors: dict[str, list[str]] = {}
    if url is not None:
        try:
            resolve_target(url, allow_private=settings.MC_WEBHOOKS_ALLOW_PRIVATE, timeout=settings.MC_WEBHOOK_TIMEOUT_S)
        except UnsafeTarget as exc:
            errors["url"] = [str(exc)]
    if events is not None:
        valid = [e for e in WebhookEvent.values if e != WebhookEvent.PING]
        unknown = [e for e in events if e not in valid and e != ALL_EVENTS]
        if not events:
            errors["events"] = ["Subscribe to at least one event."]
        elif unknown:
            errors["events"] = [f"Unknown event(s): {', '.join(map(str, unknown))}. Valid: {', '.join(valid)} or '*'."]
    if scope is not None and scope not in WebhookScope.values:
        errors["scope"] = [f"Must be one of {', '.join(WebhookScope.values)}."]
    if errors:
        raise ValidationFailed("Invalid webhook subscription.", errors=errors)


def _subscription_snapshot(sub: WebhookSubscription) -> dict[str, Any]:
    return {
        "url": sub.url,
        "events": sub.events,
        "scope": sub.scope,
        "is_active": sub.is_active,
        "description": sub.description,
    }


@transaction.atomic
def webhook_create(
    *,
    owner: User,
    url: str,
    events: list[str],
    description: str = "",
    scope: str = WebhookScope.OWN,
    is_active: bool = True,
) -> WebhookSubscription:
    """Subscribe a URL to events. The target is checked against loopback and private networks."""
    if WebhookSubscription.objects.filter(owner=owner).count() >= settings.MC_WEBHOOKS_PER_USER:
        raise Conflict(f"You have {settings.MC_WEBHOOKS_PER_USER} webhooks already; delete one first.")
    events = list(dict.fromkeys(events))
    _validate_subscription(url=url, events=events, scope=scope)
    sub = WebhookSubscription.objects.create(
        owner=owner,
        url=url,
        events=events,
        description=description,
        scope=scope,
        is_active=is_active,
        secret=secret_generate(),
    )
    audit_record(actor=owner, verb="webhook.create", target=sub, after=_subscription_snapshot(sub))
    return sub


@transaction.atomic
def webhook_update(
    *, subscription: WebhookSubscription, actor: User, if_match: str | None = None, **fields: Any
) -> WebhookSubscription:
    """Change a subscription (owner only); with `if_match`, only if it is still the version read (else 412)."""
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if sub.owner_id != actor.pk:
        raise PermissionDenied("Only the owner changes a webhook.")
    check_if_match(if_match, sub.etag, what="The webhook")
    allowed = {"url", "events", "description", "scope", "is_active"}
    changes = {k: v for k, v in fields.items() if k in allowed}
    if "events" in changes:
        changes["events"] = list(dict.fromkeys(changes["events"]))
    _validate_subscription(url=changes.get("url"), events=changes.get("events"), scope=changes.get("scope"))
    before = _subscription_snapshot(sub)
    for key, value in changes.items():
        setattr(sub, key, value)
    sub.save()
    audit_record(actor=actor, verb="webhook.update", target=sub, before=before, after=_subscription_snapshot(sub))
    return sub


@transaction.atomic
def webhook_rotate_secret(*, subscription: WebhookSubscription, actor: User) -> WebhookSubscription:
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if sub.owner_id != actor.pk:
        raise PermissionDenied("Only the owner rotates a webhook's secret.")
    sub.secret = secret_generate()
    sub.save(update_fields=["secret", "updated_at"])
    audit_record(actor=actor, verb="webhook.rotate_secret", target=sub)
    return sub


@transaction.atomic
def webhook_delete(*, subscription: WebhookSubscription, actor: User) -> None:
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if sub.owner_id != actor.pk:
        raise PermissionDenied("Only the owner deletes a webhook.")
    audit_record(actor=actor, verb="webhook.delete", target=sub, before=_subscription_snapshot(sub))
    sub.delete()


# --- webhook events and deliveries -------------------------------------------------------------------------


def _new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _dispatch_on_commit(delivery_ids: list[int]) -> None:
    if not delivery_ids:
        return

    def send() -> None:
        from celery import current_app

        for delivery_id in delivery_ids:
            try:
                current_app.send_task(DELIVER_TASK, args=[delivery_id])
            except Exception:  # noqa: BLE001 - broker down: webhooks_recover re-dispatches it later
                logger.warning("dispatch of webhook delivery %s failed; recovery will retry", delivery_id)

    transaction.on_commit(send)


def _privileged_ids(user_ids: Iterable[int]) -> set[int]:
    """Users among these who may see every variant (reviewers, maintainers, superusers): one query."""
    ids = list(user_ids)
    if not ids:
        return set()
    return set(
        User.objects.filter(pk__in=ids)
        .filter(Q(groups__name__in=["reviewers", "maintainers"]) | Q(is_superuser=True))
        .values_list("pk", flat=True)
    )


@dataclass(frozen=True)
class EventToPublish:
    """One webhook event: what a `webhook_event_publish` call sends, so several can be queued at once."""

    event: str
    data: dict[str, Any]
    owner_ids: tuple[int | None, ...]
    public: bool
    #: Who, besides reviewers and maintainers, may see a subject that is not public: the variant's insiders
    #: (its owner). None: the `owner_ids` are.
    insider_ids: tuple[int | None, ...] | None = None


def webhook_event_publish(
    *,
    event: str,
    data: dict[str, Any],
    owner_ids: Iterable[int | None],
    public: bool,
    insider_ids: Iterable[int | None] | None = None,
) -> list[WebhookDelivery]:
    """Queue one delivery per active subscription that wants this event and whose owner may see its subject.

    `owner_ids` are the users the event is about (variant owner, job submitter): `own`-scoped subscriptions
    get only those. `public` says whether anyone may see the subject (a published revision, or a job on one);
    otherwise only its insiders (`insider_ids`, default the `owner_ids`), reviewers and maintainers get it,
    whatever their subscription's scope."""
    return webhook_events_publish(
        [
            EventToPublish(
                event=event,
                data=data,
                owner_ids=tuple(owner_ids),
                public=public,
                insider_ids=None if insider_ids is None else tuple(insider_ids),
            )
        ]
    )


def webhook_events_publish(events: Iterable[EventToPublish]) -> list[WebhookDelivery]:
    """`webhook_event_publish` for several events at once: the active subscriptions are read once, the
    privileged owners among them looked up once, and every delivery inserted in one statement and dispatched
    after commit. Returns the deliveries in event order."""
    events = list(events)
    if not events:
        return []
    active = list(WebhookSubscription.objects.filter(is_active=True).only("id", "owner_id", "events", "scope"))
    planned: list[tuple[EventToPublish, set[int], set[int], list[WebhookSubscription]]] = []
    for item in events:
        subs = [s for s in active if s.wants(item.event)]
        if subs:
            owners = {pk for pk in item.owner_ids if pk is not None}
            insiders = owners if item.insider_ids is None else {pk for pk in item.insider_ids if pk is not None}
            planned.append((item, owners, insiders, subs))
    if not planned:
        return []
    privileged = _privileged_ids(
        set().union(*({s.owner_id for s in subs} - insiders for item, _, insiders, subs in planned if not item.public))
    )
    rows: list[WebhookDelivery] = []
    for item, owners, insiders, subs in planned:
        targets = [
            s
            for s in subs
            if (item.public or s.owner_id in insiders or s.owner_id in privileged)
            and (s.owner_id in owners or s.scope == WebhookScope.VISIBLE)
        ]
        payload = {"type": item.event, "timestamp": timezone.now().isoformat(), "data": item.data}
        rows.extend(
            WebhookDelivery(
                subscription=s,
                message_id=_new_message_id(),
                event=item.event,
                payload=payload,
                max_attempts=settings.MC_WEBHOOK_MAX_ATTEMPTS,
            )
            for s in targets
        )
    deliveries = WebhookDelivery.objects.bulk_create(rows)
    # bulk_create returns primary keys on PostgreSQL and SQLite >= 3.35.
    _dispatch_on_commit([d.pk for d in deliveries])
    return deliveries


def _on_demand_cooldown(actor: User) -> None:
    """Pings and redeliveries make a delivery on request: one per user per MC_WEBHOOK_PING_COOLDOWN_S, so they
    cannot keep the delivery workers busy on demand (429 with Retry-After). Call inside the transaction that
    creates the delivery: the user's row is locked, so two requests at once cannot both pass."""
    cooldown = settings.MC_WEBHOOK_PING_COOLDOWN_S
    if cooldown <= 0:
        return
    list(User.objects.select_for_update().filter(pk=actor.pk).values_list("pk", flat=True))
    last = (
        WebhookDelivery.objects.filter(requested_by=actor)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if last is None:
        return
    wait = (last + timedelta(seconds=cooldown) - timezone.now()).total_seconds()
    if wait > 0:
        retry_after = max(math.ceil(wait), 1)
        raise QuotaExceeded(
            f"One ping or redelivery per {cooldown} s: send the next one in {retry_after} s.",
            limit="webhook_ping_cooldown",
            retry_after=retry_after,
        )


@transaction.atomic
def webhook_ping(*, subscription: WebhookSubscription, actor: User) -> WebhookDelivery:
    """Send a `ping` event now, to test a receiver (one ping or redelivery per user per cooldown)."""
    if subscription.owner_id != actor.pk:
        raise PermissionDenied("Only the owner pings a webhook.")
    _on_demand_cooldown(actor)
    delivery = WebhookDelivery.objects.create(
        subscription=subscription,
        message_id=_new_message_id(),
        event=WebhookEvent.PING,
        payload={
            "type": WebhookEvent.PING,
            "timestamp": timezone.now().isoformat(),
            "data": {"webhook": subscription.pk, "by": actor.username},
        },
        max_attempts=settings.MC_WEBHOOK_MAX_ATTEMPTS,
        requested_by=actor,
    )
    _dispatch_on_commit([delivery.pk])
    return delivery


@transaction.atomic
def webhook_redeliver(*, delivery: WebhookDelivery, actor: User) -> WebhookDelivery:
    """Send a delivery again, with the same message id (a receiver that already has it de-duplicates)."""
    original = WebhookDelivery.objects.select_related("subscription").get(pk=delivery.pk)
    if original.subscription.owner_id != actor.pk:
        raise PermissionDenied("Only the owner redelivers.")
    if original.status in OPEN_DELIVERY_STATUSES:
        raise Conflict("This delivery is still being attempted; redeliver it once it has succeeded or failed.")
    _on_demand_cooldown(actor)
    again = WebhookDelivery.objects.create(
        subscription=original.subscription,
        message_id=original.message_id,
        event=original.event,
        payload=original.payload,
        max_attempts=settings.MC_WEBHOOK_MAX_ATTEMPTS,
        redelivery_of=original,
        requested_by=actor,
    )
    audit_record(
        actor=actor,
        verb="webhook.redeliver",
        target=again,
        after={"of": original.pk, "message_id": original.message_id, "event": original.event},
    )
    _dispatch_on_commit([again.pk])
    return again


def webhook_backoff_s(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): base * 2^(attempt-1), capped."""
    return float(min(settings.MC_WEBHOOK_RETRY_BASE_S * 2 ** max(attempt - 1, 0), settings.MC_WEBHOOK_RETRY_MAX_S))


@dataclass(frozen=True)
class AttemptOutcome:
    status: str  # a DeliveryStatus, or "skipped" when another worker has this attempt or it is not due
    retry_in: float | None = None
    attempt: int = 0


def webhook_delivery_attempt(*, delivery_id: int) -> AttemptOutcome:
    """Make one HTTP attempt of a delivery and log it. Duplicate task messages are fenced off by a
    compare-and-set on the attempt counter."""
    now = timezone.now()
    delivery = WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_id).first()
    if delivery is None or delivery.status not in OPEN_DELIVERY_STATUSES:
        return AttemptOutcome("skipped")
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + timedelta(seconds=1):
        return AttemptOutcome("skipped")  # an early duplicate; the real retry is scheduled
    number = delivery.attempts + 1
    in_flight_until = now + timedelta(seconds=settings.MC_WEBHOOK_TIMEOUT_S + 60)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk,
        attempts=delivery.attempts,
        status__in=OPEN_DELIVERY_STATUSES,
    ).update(attempts=number, next_attempt_at=in_flight_until)
    if not claimed:
        return AttemptOutcome("skipped")
    sub = delivery.subscription
    started = timezone.now()
    if not sub.is_active:
        code, excerpt, error, ok = None, "", "The subscription is disabled.", False
        final = True
    else:
        body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
        headers = signature_headers(sub.secret, delivery.message_id, int(time.time()), body)
        outcome = post_json(
            sub.url,
            body,
            headers,
            timeout=settings.MC_WEBHOOK_TIMEOUT_S,
            allow_private=settings.MC_WEBHOOKS_ALLOW_PRIVATE,
            max_response_bytes=settings.MC_WEBHOOK_RESPONSE_MAX_BYTES,
        )
        code, excerpt, error, ok = outcome.status_code, outcome.excerpt, outcome.error, outcome.ok
        final = ok or number >= delivery.max_attempts
    duration_ms = int((timezone.now() - started).total_seconds() * 1000)
    retry_in = None if final else webhook_backoff_s(number)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=duration_ms,
            status_code=code,
            error=error[:2000],
            response_excerpt=excerpt[:2048],
        )
        status = DeliveryStatus.SUCCEEDED if ok else (DeliveryStatus.FAILED if final else DeliveryStatus.RETRYING)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=status,
            last_status_code=code,
            last_error=error[:2000],
            delivered_at=timezone.now() if ok else None,
            next_attempt_at=None if final else timezone.now() + timedelta(seconds=retry_in or 0),
        )
    return AttemptOutcome(status, retry_in, number)


def webhooks_recover(*, now: Any = None) -> int:
    """Periodic repair: re-dispatch open deliveries whose next attempt is overdue (a lost message, a broker
    outage at dispatch time, or a worker that died mid-attempt). Returns how many were sent."""
    from celery import current_app

    now = now or timezone.now()
    overdue = now - timedelta(seconds=settings.MC_WEBHOOK_RECOVER_GRACE_S)
    due = list(
        WebhookDelivery.objects.filter(status__in=OPEN_DELIVERY_STATUSES)
        .filter(Q(next_attempt_at__lt=overdue) | Q(next_attempt_at__isnull=True, created_at__lt=overdue))
        .order_by("id")
        .values_list("pk", flat=True)[:1000]
    )
    sent = 0
    for delivery_id in due:
        try:
            current_app.send_task(DELIVER_TASK, args=[delivery_id])
            sent += 1
        except Exception:  # noqa: BLE001 - still down: next beat
            break
    return sent

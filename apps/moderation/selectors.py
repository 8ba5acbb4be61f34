"""Reads of the maintainers' tools: numbers for the moderation overview (the job queues, the review pipeline, flags
and webhooks) and the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Min, Q
from django.utils import timezone

from apps.accounts.roles import is_maintainer
from apps.audit.models import AuditEvent, AuditEventQuerySet
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import BenchmarkJob
from apps.notifications.choices import DeliveryStatus
from apps.notifications.models import WebhookDelivery
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision
from apps.reviews.choices import OPEN_FLAG_STATUSES
from apps.reviews.models import Flag

if TYPE_CHECKING:
    from apps.accounts.types import Viewer

FAILED_STATES = (JobStatus.FAILED, JobStatus.TIMED_OUT)


def moderation_overview(now: Any = None) -> dict[str, Any]:
    now = now or timezone.now()
    since = now - timedelta(days=1)
    states = list(JobStatus.values)
    per_queue = (
        BenchmarkJob.objects.order_by()
        .values("queue")
        .annotate(
            **{f"n_{s}": Count("id", filter=Q(status=s)) for s in states},
            oldest_queued=Min("queued_at", filter=Q(status=JobStatus.QUEUED)),
            failed_24h=Count("id", filter=Q(status__in=FAILED_STATES, finished_at__gte=since)),
        )
        .order_by("queue")
    )
    queues = []
    for values in per_queue:
        row: dict[str, Any] = dict(values)  # values() rows with keys made per state
        oldest = row["oldest_queued"]
        queues.append(
            {
                "queue": row["queue"],
                "counts": [row[f"n_{s}"] for s in states],
                "oldest_queued_age_s": int((now - oldest).total_seconds()) if oldest else None,
                "failed_24h": row["failed_24h"],
            }
        )
    failures = list(
        BenchmarkJob.objects.filter(status__in=FAILED_STATES, finished_at__gte=since)
        .order_by()
        .values("queue", "failure_reason")
        .annotate(n=Count("id"))
        .order_by("-n", "queue")
    )
    pipeline = dict(
        Revision.objects.filter(
            status__in=[RevisionStatus.SUBMITTED, RevisionStatus.CHANGES_REQUESTED, RevisionStatus.APPROVED]
        )
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    oldest_waiting = (
        Revision.objects.filter(status=RevisionStatus.SUBMITTED).order_by().aggregate(m=Min("submitted_at"))["m"]
    )
    flags = list(
        Flag.objects.filter(status__in=OPEN_FLAG_STATUSES)
        .order_by()
        .values("kind", "status")
        .annotate(n=Count("id"))
        .order_by("kind", "status")
    )
    webhooks = dict(
        WebhookDelivery.objects.filter(created_at__gte=since).order_by().values_list("status").annotate(n=Count("id"))
    )
    return {
        "now": now,
        "states": states,
        "queues": queues,
        "failures_24h": failures,
        "failures_24h_total": sum(f["n"] for f in failures),
        "pipeline": {
            s: pipeline.get(s, 0)
            for s in (RevisionStatus.SUBMITTED, RevisionStatus.CHANGES_REQUESTED, RevisionStatus.APPROVED)
        },
        "oldest_waiting_review_age_s": int((now - oldest_waiting).total_seconds()) if oldest_waiting else None,
        "open_flags": flags,
        "webhooks_24h": {s: webhooks.get(s, 0) for s in DeliveryStatus.values},
    }


def audit_events_visible_to(user: Viewer) -> AuditEventQuerySet:
    """The audit trail as the user may read it: all of it for maintainers, nothing for anyone else."""
    events: AuditEventQuerySet = AuditEvent.objects.all()
    return events if is_maintainer(user) else events.none()

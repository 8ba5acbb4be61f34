"""Reads on jobs and benchmarks, always starting from what the user may see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.accounts.roles import is_reviewer
from apps.registry.models import Variant

from .choices import ACTIVE_JOB_STATUSES, JobStatus
from .models import BenchmarkJob


def jobs_visible_to(user: Any) -> QuerySet[BenchmarkJob]:
    """Jobs on variants the user may see, plus the user's own jobs."""
    qs = BenchmarkJob.objects.all()
    if is_reviewer(user):
        return qs
    visible = Variant.objects.visible_to(user).values("pk")
    cond = Q(revision__variant__in=visible)
    if getattr(user, "is_authenticated", False):
        cond |= Q(submitted_by=user)
    return qs.filter(cond)


def jobs_for_api(qs: QuerySet[BenchmarkJob]) -> QuerySet[BenchmarkJob]:
    ahead = (
        BenchmarkJob.objects.filter(status=JobStatus.QUEUED, queue=OuterRef("queue"))
        .filter(Q(priority__gt=OuterRef("priority")) | Q(priority=OuterRef("priority"), id__lt=OuterRef("id")))
        .order_by()
        .values("queue")
        .annotate(n=Count("id"))
        .values("n")
    )
    return qs.select_related(
        "benchmark", "revision__variant__owner", "submitted_by", "result"
    ).annotate(jobs_ahead=Coalesce(Subquery(ahead, output_field=IntegerField()), Value(0)))


def recent_mean_duration_s(queue: str) -> float | None:
    """Mean run time of the last 50 successful jobs in a queue, for queue ETAs."""
    rows = list(
        BenchmarkJob.objects.filter(queue=queue, status=JobStatus.SUCCEEDED, started_at__isnull=False,
                                    finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[:50]
    )
    if not rows:
        return None
    return sum((end - start).total_seconds() for start, end in rows) / len(rows)


def quota_limits(user: Any) -> tuple[int, int]:
    max_active = user.max_active_jobs if user.max_active_jobs is not None else settings.MC_DEFAULT_MAX_ACTIVE_JOBS
    daily = (
        user.daily_compute_seconds
        if user.daily_compute_seconds is not None
        else settings.MC_DEFAULT_DAILY_COMPUTE_SECONDS
    )
    return int(max_active), int(daily)


def quota_status(*, user: Any) -> dict[str, Any]:
    max_active, daily = quota_limits(user)
    since = timezone.now() - timedelta(days=1)
    agg = BenchmarkJob.objects.filter(submitted_by=user, counts_against_quota=True).aggregate(
        active=Count("id", filter=Q(status__in=ACTIVE_JOB_STATUSES)),
        used=Coalesce(Sum("compute_seconds", filter=Q(finished_at__gte=since)), 0.0),
    )
    return {
        "max_active_jobs": max_active,
        "daily_compute_seconds": daily,
        "active_jobs": agg["active"],
        "compute_seconds_today": round(float(agg["used"]), 3),
    }

"""The submitter's quota: jobs queued or running at once, and compute seconds per rolling day.

Every check runs with the submitter's own row locked (:func:`lock_submitter`), so concurrent submissions of one
user are counted one after the other."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core.errors import QuotaExceeded

from ..choices import ACTIVE_JOB_STATUSES, JobStatus
from ..models import BenchmarkJob, SubmitterProfile
from ..selectors import quota_limits, recent_mean_duration_s

if TYPE_CHECKING:
    from apps.accounts.types import Actor


def lock_submitter(user: Actor) -> SubmitterProfile:
    """Lock the submitter's own row: concurrent submissions of one user queue up here, so a quota check
    after it sees every job admitted before it (50 parallel submissions against a quota of 5 admit exactly 5).

    Locks here are FOR NO KEY UPDATE: they serialize writers of the row without blocking other transactions'
    inserts that merely reference it (PostgreSQL checks foreign keys with FOR KEY SHARE)."""
    profile = SubmitterProfile.objects.select_for_update(no_key=True).filter(user=user).first()
    if profile is None:
        SubmitterProfile.objects.bulk_create([SubmitterProfile(user=user)], ignore_conflicts=True)
        profile = SubmitterProfile.objects.select_for_update(no_key=True).get(user=user)
    return profile


def _active_retry_after(user: Actor, now: datetime) -> int:
    running = list(
        BenchmarkJob.objects.counting_against_quota(user)
        .filter(status=JobStatus.RUNNING)
        .values_list("queue", "started_at")
    )
    queues = {q for q, _ in running} or set(
        BenchmarkJob.objects.counting_against_quota(user).active().values_list("queue", flat=True).distinct()
    )
    means = [m for m in (recent_mean_duration_s(q) for q in queues) if m is not None]
    mean = max(means) if means else None
    if mean is None:
        return 60
    if running:
        soonest = min(mean - (now - started).total_seconds() for _, started in running if started)
        return max(1, math.ceil(float(soonest)))
    return max(1, math.ceil(mean))


def _compute_retry_after(user: Actor, now: datetime, used: float, budget: int) -> int:
    window_start = now - timedelta(days=1)
    rows = (
        BenchmarkJob.objects.counting_against_quota(user)
        .filter(finished_at__gte=window_start, compute_seconds__gt=0)
        .order_by("finished_at")
        .values_list("finished_at", "compute_seconds")
    )
    remaining = used
    for finished_at, seconds in rows:
        remaining -= seconds
        if remaining < budget and finished_at is not None:
            return max(1, math.ceil((finished_at + timedelta(days=1) - now).total_seconds()))
    return 24 * 3600


def quota_enforce(user: Actor, now: datetime | None = None) -> None:
    """Raise QuotaExceeded (429) naming the limit hit and when it frees. Call with the submitter row locked."""
    now = now or timezone.now()
    max_active, budget = quota_limits(user)
    # Two indexed range reads rather than one aggregate with FILTERs: that one reads every job the user ever
    # submitted, on each submission.
    mine = BenchmarkJob.objects.counting_against_quota(user)
    agg = {
        "active": mine.filter(status__in=ACTIVE_JOB_STATUSES).count(),
        "used": mine.filter(finished_at__gte=now - timedelta(days=1)).aggregate(
            used=Coalesce(Sum("compute_seconds"), 0.0)
        )["used"],
    }
    if agg["active"] >= max_active:
        retry_after = _active_retry_after(user, now)
        raise QuotaExceeded(
            f"You have {agg['active']} jobs queued or running; the limit is {max_active}. "
            f"A slot should free in about {retry_after} s.",
            limit="max_active_jobs",
            retry_after=retry_after,
            max_active_jobs=max_active,
            active_jobs=agg["active"],
        )
    _compute_refusal(user, now, float(agg["used"]), budget)


def quota_enforce_compute(user: Actor, now: datetime) -> None:
    """The daily compute-seconds budget alone (429 when spent)."""
    _, budget = quota_limits(user)
    used = (
        BenchmarkJob.objects.counting_against_quota(user)
        .filter(finished_at__gte=now - timedelta(days=1))
        .aggregate(used=Coalesce(Sum("compute_seconds"), 0.0))["used"]
    )
    _compute_refusal(user, now, float(used), budget)


def _compute_refusal(user: Actor, now: datetime, used: float, budget: int) -> None:
    if used >= budget:
        retry_after = _compute_retry_after(user, now, used, budget)
        raise QuotaExceeded(
            f"You used {used:.0f} of your {budget} compute seconds in the last 24 hours.",
            limit="daily_compute_seconds",
            retry_after=retry_after,
            daily_compute_seconds=budget,
            compute_seconds_used=round(used, 3),
        )


def quota_enforce_batch(user: Actor, adding: int, now: datetime) -> None:
    """Raise QuotaExceeded (429) unless `adding` more jobs fit the user's limits, saying how many would fit.
    Call with the submitter row locked."""
    max_active, _ = quota_limits(user)
    active = BenchmarkJob.objects.counting_against_quota(user).filter(status__in=ACTIVE_JOB_STATUSES).count()
    if active + adding > max_active:
        raise QuotaExceeded(
            f"This batch adds {adding} jobs to your {active} queued or running; the limit is {max_active}"
            f" ({max(0, max_active - active)} would fit).",
            limit="max_active_jobs",
            retry_after=_active_retry_after(user, now),
            max_active_jobs=max_active,
            active_jobs=active,
        )
    quota_enforce_compute(user, now)

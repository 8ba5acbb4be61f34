"""Quotas per namespace: jobs queued or running at once, and compute seconds per rolling day.

Which namespace a job is charged to (``BenchmarkJob.charged_to``, set at submission by :func:`job_namespace`):

- the variant's owner, when that owner is an organization's account AND the submitter is a member of that
  organization (any role): a lab's members working under its org share ONE quota and ONE fair share, however
  many accounts they hold;
- the submitter otherwise: a user's jobs on their own variants, and an outsider's jobs on an organization's
  public variant (so nobody outside an organization can spend its quota).

A user's limits are their own (``User.max_active_jobs`` / ``daily_compute_seconds``, else the platform's
``MC_DEFAULT_*``); an organization's are set by maintainers (``Organization.max_queued_jobs`` /
``daily_compute_seconds``, else ``MC_ORG_*``). The fair-share dispatcher and the queue positions take turns
across the same namespaces (:mod:`apps.benchmarks.dispatch`).

Every check runs with the namespace's own SubmitterProfile row locked (:func:`lock_namespace`; an organization's
account has one too), so concurrent submissions charged to one namespace, by however many members, are counted
one after the other."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from apps.accounts.models import User
from apps.core.errors import QuotaExceeded
from apps.registry.querysets import access_of

from ..choices import JobStatus
from ..models import BenchmarkJob, SubmitterProfile
from ..selectors import quota_limits, quota_usage_row, recent_mean_duration_s

if TYPE_CHECKING:
    from apps.accounts.types import Actor
    from apps.registry.models import Variant


def job_namespace(actor: Actor, variant: Variant) -> User:
    """The namespace a job of `actor` on `variant` is charged to (the rule in the module docstring)."""
    owner = variant.owner
    if owner.pk == actor.pk or not owner.is_organization:
        return actor
    # The actor's memberships, as the visibility checks of the same request read them (one query, cached).
    return owner if owner.pk in access_of(actor).namespaces else actor


def job_namespaces(actor: Actor, variants: Iterable[Variant]) -> dict[int, User]:
    """variant id -> namespace, for many variants (a batch): one membership query in all (none if cached)."""
    variants = list(variants)
    org_owner_ids = {v.owner_id for v in variants if v.owner.is_organization and v.owner_id != actor.pk}
    member_of = org_owner_ids & set(access_of(actor).namespaces) if org_owner_ids else set()
    return {v.pk: (v.owner if v.owner_id in member_of else actor) for v in variants}


def lock_namespace(namespace: User) -> SubmitterProfile:
    """Lock the namespace's own row: concurrent submissions charged to it queue up here, so a quota check after
    it sees every job admitted before it (50 parallel submissions against a quota of 5 admit exactly 5, from one
    user or from five members of one organization).

    Locks here are FOR NO KEY UPDATE: they serialize writers of the row without blocking other transactions'
    inserts that merely reference it (PostgreSQL checks foreign keys with FOR KEY SHARE)."""
    profile = SubmitterProfile.objects.select_for_update(no_key=True).filter(user=namespace).first()
    if profile is None:
        SubmitterProfile.objects.bulk_create([SubmitterProfile(user=namespace)], ignore_conflicts=True)
        profile = SubmitterProfile.objects.select_for_update(no_key=True).get(user=namespace)
    return profile


def _active_retry_after(namespace: User, now: datetime) -> int:
    running = list(
        BenchmarkJob.objects.counting_against_quota(namespace)
        .filter(status=JobStatus.RUNNING)
        .values_list("queue", "started_at")
    )
    queues = {q for q, _ in running} or set(
        BenchmarkJob.objects.counting_against_quota(namespace).active().values_list("queue", flat=True).distinct()
    )
    means = [m for m in (recent_mean_duration_s(q) for q in queues) if m is not None]
    mean = max(means) if means else None
    if mean is None:
        return 60
    if running:
        soonest = min(mean - (now - started).total_seconds() for _, started in running if started)
        return max(1, math.ceil(float(soonest)))
    return max(1, math.ceil(mean))


def _compute_retry_after(namespace: User, now: datetime, used: float, budget: int) -> int:
    window_start = now - timedelta(days=1)
    rows = (
        BenchmarkJob.objects.counting_against_quota(namespace)
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


def namespace_usage(
    namespace: User, now: datetime, *, dedupe: tuple[int, int, str, str] | None = None
) -> dict[str, Any]:
    """What counts against the namespace's quota now: `active` (jobs queued or running) and `used` (compute seconds
    finished in the last 24 hours), and with `dedupe` (revision id, benchmark id, benchmark version, config hash)
    `existing`: the id of the job a submission of that key returns, else None; in ONE statement of indexed range
    reads (:func:`~apps.benchmarks.selectors.quota_usage_row`).

    A statement of its own, run after :func:`lock_namespace` returned: under READ COMMITTED it sees every job
    committed before the lock was granted (a subquery of the locking SELECT would not)."""
    active, used, existing = quota_usage_row(namespace.pk, now - timedelta(days=1), dedupe)
    usage: dict[str, Any] = {"active": active, "used": used}
    if dedupe is not None:
        usage["existing"] = existing
    return usage


def _charged(namespace: User) -> dict[str, str]:
    return {"charged_to": namespace.username}


def quota_enforce(namespace: User, now: datetime | None = None, *, usage: dict[str, Any] | None = None) -> None:
    """Raise QuotaExceeded (429) naming the limit hit, the namespace when it is an organization, and when it
    frees. Call with the namespace's row locked; `usage` is :func:`namespace_usage` read since the lock, if the
    caller has it."""
    now = now or timezone.now()
    usage = usage if usage is not None else namespace_usage(namespace, now)
    max_active, _ = quota_limits(namespace)
    active = usage["active"]
    if active >= max_active:
        retry_after = _active_retry_after(namespace, now)
        if namespace.is_organization:
            said = f"{namespace.username} has {active} jobs queued or running; its limit is {max_active}."
        else:
            said = f"You have {active} jobs queued or running; the limit is {max_active}."
        raise QuotaExceeded(
            f"{said} A slot should free in about {retry_after} s.",
            limit="max_active_jobs",
            retry_after=retry_after,
            max_active_jobs=max_active,
            active_jobs=active,
            **_charged(namespace),
        )
    quota_enforce_compute(namespace, now, used=usage["used"])


def quota_enforce_compute(namespace: User, now: datetime, *, used: float | None = None) -> None:
    """The daily compute-seconds budget alone (429 when spent)."""
    _, budget = quota_limits(namespace)
    used = used if used is not None else namespace_usage(namespace, now)["used"]
    if used >= budget:
        retry_after = _compute_retry_after(namespace, now, used, budget)
        if namespace.is_organization:
            said = f"{namespace.username} used {used:.0f} of its {budget} compute seconds in the last 24 hours."
        else:
            said = f"You used {used:.0f} of your {budget} compute seconds in the last 24 hours."
        raise QuotaExceeded(
            said,
            limit="daily_compute_seconds",
            retry_after=retry_after,
            daily_compute_seconds=budget,
            compute_seconds_used=round(used, 3),
            **_charged(namespace),
        )


def quota_enforce_batch(namespace: User, adding: int, now: datetime) -> None:
    """Raise QuotaExceeded (429) unless `adding` more jobs fit the namespace's limits, saying how many would fit.
    Call with the namespace's row locked."""
    max_active, _ = quota_limits(namespace)
    usage = namespace_usage(namespace, now)
    active = usage["active"]
    if active + adding > max_active:
        fits = max(0, max_active - active)
        if namespace.is_organization:
            said = (
                f"This batch adds {adding} jobs to the {active} that {namespace.username} has queued or running; "
                f"its limit is {max_active} ({fits} would fit)."
            )
        else:
            said = (
                f"This batch adds {adding} jobs to your {active} queued or running; the limit is {max_active}"
                f" ({fits} would fit)."
            )
        raise QuotaExceeded(
            said,
            limit="max_active_jobs",
            retry_after=_active_retry_after(namespace, now),
            max_active_jobs=max_active,
            active_jobs=active,
            **_charged(namespace),
        )
    quota_enforce_compute(namespace, now, used=usage["used"])

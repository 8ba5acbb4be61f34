"""Benchmark job writes: submit, claim, progress, complete, fail, cancel. Every state change is audited."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import jsonschema
from celery import current_app
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import InvalidTransition, PermissionDenied, ValidationFailed
from apps.registry.models import Revision

from .choices import (
    ACTIVE_JOB_STATUSES,
    JOB_TRANSITIONS,
    RETRYABLE_FAILURES,
    FailureReason,
    JobStatus,
)
from .models import Benchmark, BenchmarkJob, JobResult

RETRY_BACKOFF_BASE_S = 5
RETRY_BACKOFF_MAX_S = 300


def canonical_config(benchmark: Benchmark, config: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    merged = {**(benchmark.default_config or {}), **(config or {})}
    text = json.dumps(merged, sort_keys=True, separators=(",", ":"))
    return merged, hashlib.sha256(text.encode()).hexdigest()


def config_validate(benchmark: Benchmark, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ValidationFailed("Invalid config.", errors={"config": ["Must be a JSON object."]})
    merged, _ = canonical_config(benchmark, config)
    validator = jsonschema.Draft202012Validator(benchmark.config_schema or {})
    problems = sorted(validator.iter_errors(merged), key=lambda e: list(e.absolute_path))
    if problems:
        errors: dict[str, list[str]] = {}
        for problem in problems:
            key = ".".join(["config", *(str(p) for p in problem.absolute_path)])
            errors.setdefault(key, []).append(problem.message)
        raise ValidationFailed("The config does not match the benchmark's schema.", errors=errors)
    return merged


def job_dispatch(job: BenchmarkJob) -> None:
    """Send the job id to its queue. Only ids travel: the database row is the source of truth."""
    current_app.send_task("workers.tasks.run_job", args=[job.pk], queue=job.queue)
    BenchmarkJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(dispatched_at=timezone.now())


def _dispatch_on_commit(job: BenchmarkJob) -> None:
    def send() -> None:
        try:
            job_dispatch(job)
        except Exception:  # noqa: BLE001 - broker down: the recovery beat re-dispatches it later
            import logging

            logging.getLogger(__name__).warning("dispatch of job %s failed; recovery will retry", job.pk)

    transaction.on_commit(send)


@transaction.atomic
def job_submit(*, actor: Any, revision: Revision, benchmark: Benchmark, config: dict[str, Any] | None = None,
               priority: int = 0) -> tuple[BenchmarkJob, bool]:
    """Queue a benchmark job, or return the live job with the same revision, benchmark version and config."""
    if not benchmark.is_active:
        raise ValidationFailed("Benchmark is retired.", errors={"benchmark": ["This benchmark is not active."]})
    merged = config_validate(benchmark, config or {})
    _, config_hash = canonical_config(benchmark, merged)
    existing = (
        BenchmarkJob.objects.filter(
            revision=revision, benchmark=benchmark, benchmark_version=benchmark.version,
            config_hash=config_hash, verifies__isnull=True,
        )
        .exclude(status__in=[JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT])
        .order_by("-id")
        .first()
    )
    if existing is not None:
        return existing, False
    now = timezone.now()
    job = BenchmarkJob.objects.create(
        revision=revision, benchmark=benchmark, benchmark_version=benchmark.version, config=merged,
        config_hash=config_hash, queue=benchmark.queue, priority=priority, submitted_by=actor,
        max_attempts=benchmark.max_attempts, queued_at=now,
    )
    audit_record(actor=actor, verb="job.submit", target=job,
                 after={"status": job.status, "benchmark": benchmark.slug, "revision": revision.pk,
                        "config": merged})
    _dispatch_on_commit(job)
    return job, True


@transaction.atomic
def job_claim(*, job_id: int, worker_host: str) -> BenchmarkJob | None:
    """Compare-and-set queued -> running. Returns None when someone else has it (duplicate delivery)."""
    now = timezone.now()
    claimed = BenchmarkJob.objects.filter(
        pk=job_id, status=JobStatus.QUEUED, cancel_requested=False
    ).update(status=JobStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, heartbeat_at=now,
             worker_host=worker_host[:200], progress_done=0, failure_reason="", failure_message="")
    if not claimed:
        return None
    job = BenchmarkJob.objects.select_related("benchmark", "revision__variant__owner").get(pk=job_id)
    audit_record(actor=None, verb="job.start", target=job, before={"status": JobStatus.QUEUED},
                 after={"status": JobStatus.RUNNING, "attempt": job.attempts, "worker": job.worker_host})
    return job


def job_progress(*, job_id: int, attempt: int, done: int, total: int) -> bool:
    """Record progress and heartbeat. Returns True when the job should stop (cancelled or fenced off)."""
    now = timezone.now()
    updated = BenchmarkJob.objects.filter(pk=job_id, attempts=attempt, status=JobStatus.RUNNING).update(
        progress_done=done, progress_total=total, heartbeat_at=now
    )
    if not updated:
        return True
    return bool(BenchmarkJob.objects.filter(pk=job_id).values_list("cancel_requested", flat=True).first())


def _fenced(job_id: int, attempt: int) -> BenchmarkJob | None:
    job = BenchmarkJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING or job.attempts != attempt:
        return None
    return job


@transaction.atomic
def job_complete(*, job_id: int, attempt: int, metrics: dict[str, float], stderr: dict[str, float],
                 samples: int, duration_s: float, runner: str, runner_version: str,
                 environment: dict[str, Any], log_tail: str = "") -> BenchmarkJob | None:
    """Write the result exactly once. A late or duplicate attempt writes nothing and returns None."""
    job = _fenced(job_id, attempt)
    if job is None:
        return None
    now = timezone.now()
    JobResult.objects.create(job=job, attempt=attempt, metrics=metrics, stderr=stderr, samples=samples,
                             duration_s=duration_s, runner=runner, runner_version=runner_version,
                             environment=environment)
    job.status = JobStatus.SUCCEEDED
    job.finished_at = now
    job.progress_done = max(job.progress_done, job.progress_total)
    job.compute_seconds = (now - job.started_at).total_seconds() if job.started_at else duration_s
    job.log_tail = log_tail[-8000:]
    job.save(update_fields=["status", "finished_at", "progress_done", "compute_seconds", "log_tail"])
    audit_record(actor=None, verb="job.succeed", target=job, before={"status": JobStatus.RUNNING},
                 after={"status": JobStatus.SUCCEEDED, "attempt": attempt, "metrics": metrics})
    return job


def _backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(RETRY_BACKOFF_BASE_S * 2 ** max(attempt - 1, 0), RETRY_BACKOFF_MAX_S))


@transaction.atomic
def job_fail(*, job_id: int, attempt: int, reason: str, message: str, log_tail: str = "") -> BenchmarkJob | None:
    """Record a failed attempt: requeue with backoff when attempts remain and the failure may be transient."""
    job = _fenced(job_id, attempt)
    if job is None:
        return None
    now = timezone.now()
    if job.started_at:
        job.compute_seconds += (now - job.started_at).total_seconds()
    job.failure_reason = reason
    job.failure_message = message[:4000]
    job.log_tail = log_tail[-8000:]
    if reason == FailureReason.CANCELLED:
        job.status = JobStatus.CANCELLED
    elif reason in RETRYABLE_FAILURES and job.attempts < job.max_attempts:
        job.status = JobStatus.QUEUED
        job.not_before = now + _backoff(job.attempts)
        job.queued_at = now
        job.dispatched_at = None
    elif reason == FailureReason.TIMEOUT:
        job.status = JobStatus.TIMED_OUT
    else:
        job.status = JobStatus.FAILED
    if job.status != JobStatus.QUEUED:
        job.finished_at = now
    job.save()
    audit_record(actor=None, verb="job.retry" if job.status == JobStatus.QUEUED else f"job.{job.status}",
                 target=job, before={"status": JobStatus.RUNNING},
                 after={"status": job.status, "attempt": attempt, "reason": reason})
    return job


@transaction.atomic
def job_cancel(*, job: BenchmarkJob, actor: Any) -> BenchmarkJob:
    """Owner or maintainer: a queued job is cancelled at once, a running one at its next checkpoint."""
    from apps.accounts.roles import is_maintainer

    job = BenchmarkJob.objects.select_for_update().get(pk=job.pk)
    if job.submitted_by_id != actor.pk and not is_maintainer(actor):
        raise PermissionDenied("Only the submitter or a maintainer may cancel this job.")
    if job.status not in ACTIVE_JOB_STATUSES:
        raise InvalidTransition(current=job.status, target=JobStatus.CANCELLED,
                                allowed=list(JOB_TRANSITIONS.get(job.status, ())))
    before = job.status
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELLED
        job.failure_reason = FailureReason.CANCELLED
        job.failure_message = f"Cancelled by {actor.username} before it started."
        job.finished_at = timezone.now()
    job.save()
    audit_record(actor=actor, verb="job.cancel", target=job, before={"status": before},
                 after={"status": job.status, "cancel_requested": True})
    return job


def job_heartbeat(*, job_id: int, attempt: int) -> bool:
    """Refresh the heartbeat of a running attempt. Returns True when the job should stop."""
    updated = BenchmarkJob.objects.filter(pk=job_id, attempts=attempt, status=JobStatus.RUNNING).update(
        heartbeat_at=timezone.now()
    )
    if not updated:
        return True
    return bool(BenchmarkJob.objects.filter(pk=job_id).values_list("cancel_requested", flat=True).first())


def jobs_recover(*, now: Any = None) -> dict[str, int]:
    """Periodic repair: re-dispatch queued jobs the broker never delivered (or whose backoff expired), and
    requeue or fail running jobs whose heartbeat went stale (their worker died)."""
    from django.conf import settings

    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S)
    undelivered_before = now - timedelta(seconds=settings.MC_JOB_UNDELIVERED_AFTER_S)
    stale = list(BenchmarkJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)
                 .values_list("pk", "attempts"))
    requeued = 0
    for job_id, attempt in stale:
        job = job_fail(job_id=job_id, attempt=attempt, reason=FailureReason.WORKER_LOST,
                       message="The worker stopped sending heartbeats (killed or lost); the attempt was abandoned.")
        if job is not None and job.status == JobStatus.QUEUED:
            requeued += 1
    due = list(
        BenchmarkJob.objects.filter(status=JobStatus.QUEUED, cancel_requested=False)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=undelivered_before))
        .order_by("-priority", "id")[:5000]
    )
    dispatched = 0
    for job in due:
        try:
            job_dispatch(job)
            dispatched += 1
        except Exception:  # noqa: BLE001 - broker still down; try again next beat
            break
    return {"stale": len(stale), "requeued": requeued, "dispatched": dispatched}

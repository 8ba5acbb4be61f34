"""The life of a job once queued, as workers and people drive it: claim (the lease), progress and heartbeats,
complete, fail (retry with backoff or end), cancel, retry and re-run, and asking for a verification.

Every write is fenced by the attempt that owns the job, and every state change is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts.roles import is_maintainer
from apps.audit.services import audit_record, audit_record_many
from apps.core.bulk import bulk_update_rows
from apps.core.errors import Conflict, InvalidTransition, PermissionDenied
from workers.runners.base import RunResult

from .. import hooks
from ..choices import (
    DEDUPE_EXCLUDED_STATUSES,
    INFRASTRUCTURE_FAILURES,
    RETRYABLE_FAILURES,
    FailureReason,
    JobEvent,
    JobStatus,
    job_statuses_allowing,
)
from ..dispatch import jobs_dispatch_on_commit, live_workers
from ..models import BenchmarkJob, JobResult
from .submission import ensure_runner_open
from .verification import results_recorded, verification_failed, verification_request

if TYPE_CHECKING:
    from apps.accounts.types import Actor


def _claim_fields(now: datetime, worker: str) -> dict[str, Any]:
    return {
        "status": JobStatus.RUNNING,
        "attempts": F("attempts") + 1,
        "started_at": now,
        "heartbeat_at": now,
        "worker_host": worker[:200],
        "progress_done": 0,
        "failure_reason": "",
        "failure_message": "",
    }


def _claimed(job_id: int, verb: str, before: str, extra: dict[str, Any] | None = None) -> BenchmarkJob:
    job: BenchmarkJob = BenchmarkJob.objects.select_related("benchmark", "spec").get(pk=job_id)
    audit_record(
        actor=None,
        verb=verb,
        target=job,
        before={"status": before},
        after={"status": JobStatus.RUNNING, "attempt": job.attempts, "worker": job.worker_host, **(extra or {})},
    )
    return job


def job_claim(*, job_id: int, worker: str) -> BenchmarkJob | None:
    """Compare-and-set queued -> running, recording worker, attempt and heartbeat (the lease). Returns None when
    the job is not this worker's to run: already claimed (a duplicate delivery), cancelled, in backoff, or a
    verification that another live worker should run. A redelivered message for a job still marked running by a
    dead attempt (stale heartbeat) takes the job over rather than being dropped."""
    claimed = jobs_claim(job_ids=[job_id], worker=worker)
    return claimed[0] if claimed else None


def jobs_claim(*, job_ids: list[int], worker: str) -> list[BenchmarkJob]:
    """Claim several jobs at once (a chunk of short jobs sent in one message), each as :func:`job_claim` would:
    the plain case (queued, due, not a verification, not cancelled) in one compare-and-set statement and one audit
    append for the lot; the others (verifications, redeliveries of running jobs) one by one. Returns the jobs
    this worker now owns, in the order given."""
    ids = list(dict.fromkeys(int(i) for i in job_ids))
    if not ids:
        return []
    now = timezone.now()
    worker = worker[:200]
    with transaction.atomic():
        # Lock the plainly claimable rows first: on PostgreSQL a row another claimer holds is waited for and
        # looked at again once it commits, so exactly the rows still claimable come back, and stay ours.
        claimable = job_statuses_allowing(JobEvent.CLAIM)
        plain = list(
            BenchmarkJob.objects.select_for_update(no_key=True)
            .filter(pk__in=ids, status__in=claimable, cancel_requested=False, exclude_worker="")
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .values_list("pk", flat=True)
        )
        moved = (
            BenchmarkJob.objects.filter(pk__in=plain, status__in=claimable).update(**_claim_fields(now, worker))
            if plain
            else 0
        )
        mine = BenchmarkJob.objects.select_related("benchmark", "spec").filter(pk__in=plain)
        if moved != len(plain):
            # Only where SELECT .. FOR UPDATE locks nothing (SQLite): the rows this UPDATE moved carry this
            # claim's instant and worker.
            mine = mine.filter(status=JobStatus.RUNNING, started_at=now, worker_host=worker)
        claimed = {job.pk: job for job in mine} if moved else {}
        audit_record_many(
            actor=None,
            verb="job.start",
            events=[
                (
                    job,
                    {"status": JobStatus.QUEUED},
                    {"status": JobStatus.RUNNING, "attempt": job.attempts, "worker": job.worker_host},
                )
                for job in claimed.values()
            ],
        )
    for job_id in ids:
        if job_id not in claimed:
            job = _claim_contended(job_id, worker, now)
            if job is not None:
                claimed[job_id] = job
    return [claimed[i] for i in ids if i in claimed]


@transaction.atomic
def _claim_contended(job_id: int, worker: str, now: datetime) -> BenchmarkJob | None:
    job = BenchmarkJob.objects.select_for_update(no_key=True).filter(pk=job_id).first()
    if job is None:
        return None
    if job.can_transition_to(JobStatus.RUNNING, by=JobEvent.CLAIM) and not job.cancel_requested:
        if job.not_before and job.not_before > now:
            return None  # an early redelivery during backoff: the dispatcher sends it again when it is due
        same_worker = bool(job.exclude_worker) and job.exclude_worker == worker
        if same_worker and job.dispatch_count <= settings.MC_VERIFY_MAX_HANDBACKS:
            others = [w for w in live_workers(job.queue, now=now) if w.name != worker]
            if others:
                # A verification must not run where the original ran while another worker can take it:
                # hand it back, and the dispatcher sends it to that worker's private queue.
                BenchmarkJob.objects.filter(pk=job.pk).update(dispatched_at=None, target_worker="")
                jobs_dispatch_on_commit(job.queue)
                return None
        BenchmarkJob.objects.filter(pk=job.pk).update(**_claim_fields(now, worker))
        return _claimed(job.pk, "job.start", job.status, {"same_worker_as_original": same_worker})
    # A lease takeover, not a transition: the job stays running, under a new attempt on this worker.
    stale_before = now - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S)
    if job.status == JobStatus.RUNNING and job.heartbeat_at and job.heartbeat_at < stale_before:
        if job.cancel_requested or job.attempts >= job.max_attempts:
            _fail_locked(
                job,
                attempt=job.attempts,
                reason=FailureReason.WORKER_LOST,
                now=now,
                message=f"Attempt {job.attempts} lost its worker ({job.worker_host}) and no attempts are left.",
            )
            return None
        previous = job.worker_host
        BenchmarkJob.objects.filter(pk=job.pk).update(**_claim_fields(now, worker))
        return _claimed(job.pk, "job.takeover", JobStatus.RUNNING, {"abandoned_worker": previous})
    return None


def job_progress(*, job_id: int, attempt: int, done: int, total: int) -> bool:
    """Record progress (and refresh the lease). Returns True when the job must stop: cancelled, or the attempt
    was fenced off (another attempt owns the job now)."""
    updated = BenchmarkJob.objects.filter(
        pk=job_id, attempts=attempt, status=JobStatus.RUNNING, cancel_requested=False
    ).update(progress_done=max(0, done), progress_total=max(0, total), heartbeat_at=timezone.now())
    return not updated


def jobs_heartbeat(*, attempts: dict[int, int]) -> set[int]:
    """Refresh the leases of several running attempts ({job id: attempt}) in one statement. Returns the ids that
    must stop: cancelled, or fenced off (another attempt owns the job now)."""
    if not attempts:
        return set()
    owned = Q(pk__in=[])
    for job_id, attempt in attempts.items():
        owned |= Q(pk=job_id, attempts=attempt)
    live = BenchmarkJob.objects.filter(owned, status=JobStatus.RUNNING, cancel_requested=False)
    if live.update(heartbeat_at=timezone.now()) == len(attempts):
        return set()
    return set(attempts) - set(live.values_list("pk", flat=True))


def _fenced(job_id: int, attempt: int) -> BenchmarkJob | None:
    job: BenchmarkJob | None = BenchmarkJob.objects.select_for_update(no_key=True).filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING or job.attempts != attempt:
        return None
    return job


def _elapsed(job: BenchmarkJob, now: datetime) -> float:
    return max(0.0, (now - job.started_at).total_seconds()) if job.started_at else 0.0


@dataclass(frozen=True)
class Completion:
    """What a worker reports for one attempt that ran to the end (see :func:`jobs_complete`): the runner's
    result as it came back (its environment completed with the worker and the seed), and what the worker adds.
    `log_tail` is the attempt's log (the worker's lines and the runner's); `progress` the last (done, total)
    the runner reported."""

    job_id: int
    attempt: int
    result: RunResult
    log_tail: str = ""
    seed: int = 0
    progress: tuple[int, int] | None = None


def job_complete(
    *,
    job_id: int,
    attempt: int,
    result: RunResult,
    log_tail: str = "",
    seed: int = 0,
    progress: tuple[int, int] | None = None,
) -> BenchmarkJob | None:
    """Write the result exactly once. A late or duplicate attempt writes nothing and returns None; a job
    cancelled while its last batch ran ends cancelled, without a result. `progress` is the last (done, total)
    the runner reported (written here rather than by a separate update)."""
    completion = Completion(
        job_id=job_id, attempt=attempt, result=result, log_tail=log_tail, seed=seed, progress=progress
    )
    return jobs_complete([completion]).get(job_id)


def _job_result(job: BenchmarkJob, completion: Completion) -> JobResult:
    run = completion.result
    return JobResult(
        job=job,
        attempt=completion.attempt,
        metrics=run.metrics,
        stderr=run.stderr,
        samples=run.samples,
        duration_s=run.duration_s,
        runner=run.runner,
        runner_version=run.runner_version,
        environment=run.environment,
        seed=completion.seed,
    )


@transaction.atomic
def jobs_complete(completions: list[Completion]) -> dict[int, BenchmarkJob]:
    """Write the results of several attempts in one transaction, each exactly once as :func:`job_complete`
    does: the rows are locked and fenced by attempt together, results, statuses and audit events are written in
    bulk, and the job-finished subscribers get the whole set after the commit. Returns {job id: job} for the
    attempts that were still current (succeeded, or cancelled when a cancel arrived during the last batch)."""
    by_id = {c.job_id: c for c in completions}
    if not by_id:
        return {}
    now = timezone.now()
    locked = BenchmarkJob.objects.select_for_update(no_key=True).filter(pk__in=list(by_id)).order_by("pk")
    # Fenced: only the attempt that owns the job (running, same attempt number) writes.
    current = [job for job in locked if job.status == JobStatus.RUNNING and job.attempts == by_id[job.pk].attempt]
    out: dict[int, BenchmarkJob] = {}
    succeeded: list[BenchmarkJob] = []
    for job in current:
        c = by_id[job.pk]
        if job.cancel_requested:
            out[job.pk] = _fail_locked(
                job,
                attempt=c.attempt,
                reason=FailureReason.CANCELLED,
                now=now,
                message="Cancelled while running; the result was discarded.",
                log_tail=c.log_tail,
            )
            continue
        job.check_transition(JobStatus.SUCCEEDED, by=JobEvent.SUCCEED)
        job.status = JobStatus.SUCCEEDED
        job.finished_at = now
        if c.progress is not None:
            job.progress_total = max(0, c.progress[1])
        job.progress_done = max(job.progress_done, job.progress_total, c.progress[0] if c.progress else 0)
        job.compute_seconds += _elapsed(job, now)
        job.log_tail = c.log_tail[-8000:]
        succeeded.append(job)
        out[job.pk] = job
    if not succeeded:
        return out
    results = JobResult.objects.bulk_create([_job_result(job, by_id[job.pk]) for job in succeeded])
    bulk_update_rows(
        BenchmarkJob,
        succeeded,
        ["status", "finished_at", "progress_done", "progress_total", "compute_seconds", "log_tail"],
    )
    audit_record_many(
        actor=None,
        verb="job.succeed",
        events=[
            (
                job,
                {"status": JobStatus.RUNNING},
                {
                    "status": JobStatus.SUCCEEDED,
                    "attempt": by_id[job.pk].attempt,
                    "metrics": by_id[job.pk].result.metrics,
                },
            )
            for job in succeeded
        ],
    )
    results_recorded(list(zip(succeeded, results, strict=True)))
    hooks.job_finished_on_commit([job.pk for job in succeeded])
    return out


def _backoff(attempt: int) -> timedelta:
    base = float(settings.MC_JOB_RETRY_BACKOFF_S)
    return timedelta(seconds=min(base * 2 ** max(attempt - 1, 0), float(settings.MC_JOB_RETRY_BACKOFF_MAX_S)))


def _fail_locked(
    job: BenchmarkJob, *, attempt: int, reason: str, message: str, now: datetime, log_tail: str = ""
) -> BenchmarkJob:
    if reason == FailureReason.CANCELLED or job.cancel_requested:
        target, event = JobStatus.CANCELLED, JobEvent.CANCEL
    elif reason in RETRYABLE_FAILURES and job.attempts < job.max_attempts:
        target, event = JobStatus.QUEUED, JobEvent.REQUEUE
    elif reason == FailureReason.TIMEOUT:
        target, event = JobStatus.TIMED_OUT, JobEvent.TIME_OUT
    else:
        target, event = JobStatus.FAILED, JobEvent.FAIL
    job.check_transition(target, by=event)
    before = job.status
    job.status = target
    job.compute_seconds += _elapsed(job, now)
    job.failure_reason = reason
    job.failure_message = message[:4000]
    if log_tail:
        job.log_tail = log_tail[-8000:]
    if target == JobStatus.CANCELLED and reason != FailureReason.CANCELLED:
        job.failure_message = f"Cancelled; the last attempt ended with {reason}: {message}"[:4000]
        job.failure_reason = FailureReason.CANCELLED
    if target == JobStatus.QUEUED:
        job.not_before = now + _backoff(job.attempts)
        job.queued_at = now
        job.dispatched_at = None
        job.target_worker = ""
    else:
        job.finished_at = now
    job.save()
    audit_record(
        actor=None,
        verb="job.retry" if job.status == JobStatus.QUEUED else f"job.{job.status}",
        target=job,
        before={"status": before},
        after={
            "status": job.status,
            "attempt": attempt,
            "reason": reason,
            "not_before": job.not_before.isoformat() if job.status == JobStatus.QUEUED and job.not_before else None,
        },
    )
    if job.status != JobStatus.QUEUED:
        if job.verifies_id:
            verification_failed(job=job)
        hooks.job_finished_on_commit(job.pk)
    return job


@transaction.atomic
def job_fail(*, job_id: int, attempt: int, reason: str, message: str, log_tail: str = "") -> BenchmarkJob | None:
    """Record a failed attempt (fenced by attempt): requeue with exponential backoff when attempts remain and
    the failure may be transient, else end the job with its reason code."""
    job = _fenced(job_id, attempt)
    if job is None:
        return None
    return _fail_locked(job, attempt=attempt, reason=reason, message=message, now=timezone.now(), log_tail=log_tail)


# ---------------------------------------------------------------------------------------------------------
# Cancel, retry
# ---------------------------------------------------------------------------------------------------------


@transaction.atomic
def job_cancel(*, job: BenchmarkJob, actor: Actor) -> BenchmarkJob:
    """Owner or maintainer: a queued job is cancelled at once, a running one at its next checkpoint (and it
    writes nothing after that)."""
    job = BenchmarkJob.objects.select_for_update(no_key=True).get(pk=job.pk)
    if job.submitted_by_id != actor.pk and not is_maintainer(actor):
        raise PermissionDenied("Only the submitter or a maintainer may cancel this job.")
    job.check_transition(JobStatus.CANCELLED, by=JobEvent.CANCEL)
    if job.cancel_requested:
        raise InvalidTransition(
            current=job.status,
            target=JobStatus.CANCELLED,
            allowed=[],
            detail=f"Job {job.pk} is being cancelled already: it stops at its next checkpoint.",
        )
    before = job.status
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED:  # no worker holds it: cancelled at once
        job.status = JobStatus.CANCELLED
        job.failure_reason = FailureReason.CANCELLED
        job.failure_message = f"Cancelled by {actor.username} before it started."
        job.finished_at = timezone.now()
    job.save()
    audit_record(
        actor=actor,
        verb="job.cancel",
        target=job,
        before={"status": before},
        after={"status": job.status, "cancel_requested": True},
    )
    if job.status == JobStatus.CANCELLED:
        if job.verifies_id:
            verification_failed(job=job)
        hooks.job_finished_on_commit(job.pk)
        jobs_dispatch_on_commit(job.queue)  # its broker slot, if it had one, is free again
    return job


@transaction.atomic
def job_retry(*, job: BenchmarkJob, actor: Actor) -> BenchmarkJob:
    """Run a failed or timed-out job again with a fresh attempt budget. Maintainers may retry any such job; a
    submitter may re-run their own job when it failed for an infrastructure reason (worker_lost,
    artifact_unavailable). Neither counts against the submitter's quota."""
    job = BenchmarkJob.objects.select_for_update(no_key=True).select_related("benchmark").get(pk=job.pk)
    maintainer = is_maintainer(actor)
    if not maintainer and job.submitted_by_id != actor.pk:
        raise PermissionDenied("Only maintainers may retry other people's jobs.")
    ensure_runner_open(actor, job.benchmark)
    job.check_transition(JobStatus.QUEUED, by=JobEvent.RETRY)
    if not maintainer and (job.status != JobStatus.FAILED or job.failure_reason not in INFRASTRUCTURE_FAILURES):
        raise PermissionDenied(
            "You may re-run a job that failed for an infrastructure reason "
            f"({', '.join(INFRASTRUCTURE_FAILURES)}); this one ended {job.status}"
            f"{' with ' + job.failure_reason if job.failure_reason else ''}. "
            "Ask a maintainer, or fix the cause and submit again."
        )
    if job.verifies_id is None:
        newer = (
            BenchmarkJob.objects.filter(
                revision_id=job.revision_id,
                benchmark_id=job.benchmark_id,
                benchmark_version=job.benchmark_version,
                config_hash=job.config_hash,
                verifies__isnull=True,
            )
            .exclude(status__in=DEDUPE_EXCLUDED_STATUSES)
            .exclude(pk=job.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if newer is not None:
            raise Conflict(
                f"Job {newer} already runs (or ran) the same revision, benchmark version and config.",
                existing_job=newer,
            )
    before = {"status": job.status, "reason": job.failure_reason, "attempts": job.attempts}
    now = timezone.now()
    job.status = JobStatus.QUEUED
    job.max_attempts = job.attempts + job.benchmark.max_attempts
    job.counts_against_quota = False
    job.cancel_requested = False
    job.queued_at = now
    job.not_before = None
    job.dispatched_at = None
    job.target_worker = ""
    job.finished_at = None
    job.progress_done = 0
    job.failure_reason = ""
    job.failure_message = ""
    job.save()
    audit_record(
        actor=actor,
        verb="job.rerun" if not maintainer else "job.retry_by_maintainer",
        target=job,
        before=before,
        after={"status": job.status, "max_attempts": job.max_attempts, "counts_against_quota": False},
    )
    jobs_dispatch_on_commit(job.queue)
    return job


def job_verify(*, job: BenchmarkJob, actor: Actor) -> tuple[BenchmarkJob, bool]:
    """Re-run a succeeded job (same revision, benchmark version and config) on another worker where there is
    one. Returns (verification job, created); a verification already under way comes back instead."""
    return verification_request(job=job, actor=actor)

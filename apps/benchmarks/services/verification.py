"""Verified results, after BOINC: a result counts as verified when an independent re-run of the same revision,
benchmark version and config agrees on the primary metric within the benchmark's tolerance; a disagreement
flags the result for maintainers.

Re-runs happen on request (`POST /api/v1/jobs/{id}/verify/`) and as adaptive spot checks: a submitter or a
worker without a record of agreeing results (new, or one that recently disagreed) is always checked; as their
record of consecutive agreements grows, the spot-check rate falls to MC_VERIFY_MIN_RATE.

"Another worker where there is one": the verification job carries the original worker's name
(`exclude_worker`). The dispatcher sends it to the private queue of a different live worker that consumes the
benchmark's queue; if the original worker receives it anyway while another could run it, the claim hands it
back. With a single worker it runs there, and the verification records `same_worker`.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.roles import is_maintainer, is_reviewer
from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidTransition, PermissionDenied

from .. import hooks
from ..choices import ACTIVE_JOB_STATUSES, JobStatus, VerificationStatus
from ..dispatch import jobs_dispatch_on_commit
from ..models import BenchmarkJob, JobResult, ResultVerification, SubmitterProfile, WorkerNode
from .quota import job_namespace, lock_namespace, quota_enforce

if TYPE_CHECKING:
    from apps.accounts.types import Actor

logger = logging.getLogger(__name__)

#: Replaceable in tests: returns a float in [0, 1).
spot_check_random: Callable[[], float] = random.random


def spot_check_rate(*, submitter_streak: int | None, worker_streak: int | None) -> float:
    """How often a result is re-run, from the shorter of the submitter's and the worker's streak of
    consecutive agreeing verifications. Unknown or recently disagreeing sources (streak below
    MC_VERIFY_TRUST_AFTER) are always checked; then the rate halves as the streak doubles."""
    trust_after = max(1, int(settings.MC_VERIFY_TRUST_AFTER))
    streak = min(
        submitter_streak if submitter_streak is not None else 0, worker_streak if worker_streak is not None else 0
    )
    if streak < trust_after:
        return 1.0
    return max(float(settings.MC_VERIFY_MIN_RATE), trust_after / streak)


def _create_verification(
    *, original: BenchmarkJob, submitted_by_id: int, charged_to_id: int | None, counts: bool, spot_check: bool
) -> BenchmarkJob:
    now = timezone.now()
    return BenchmarkJob.objects.create(
        revision_id=original.revision_id,
        benchmark_id=original.benchmark_id,
        benchmark_version=original.benchmark_version,
        spec_id=original.spec_id,
        config=original.config,
        config_hash=original.config_hash,
        queue=original.queue,
        priority=original.priority,
        submitted_by_id=submitted_by_id,
        charged_to_id=charged_to_id,
        verifies=original,
        is_spot_check=spot_check,
        max_attempts=original.benchmark.max_attempts,
        counts_against_quota=counts,
        queued_at=now,
        exclude_worker=original.worker_host,
    )


def results_recorded(recorded: list[tuple[BenchmarkJob, JobResult]]) -> None:
    """Called inside jobs_complete's transaction with the jobs that just succeeded and their results: judge the
    verifications; for the others, decide on spot checks (the submitters' and workers' records read once)."""
    originals = []
    for job, result in recorded:
        if job.verifies_id:
            _judge(verifier=job, verifier_result=result)
        else:
            originals.append(job)
    if not originals or not settings.MC_SPOT_CHECKS:
        return
    submitters = dict(
        SubmitterProfile.objects.filter(user_id__in={j.submitted_by_id for j in originals}).values_list(
            "user_id", "consecutive_agreements"
        )
    )
    workers = dict(
        WorkerNode.objects.filter(name__in={j.worker_host for j in originals}).values_list(
            "name", "consecutive_agreements"
        )
    )
    for job in originals:
        rate = spot_check_rate(
            submitter_streak=submitters.get(job.submitted_by_id), worker_streak=workers.get(job.worker_host)
        )
        if rate < 1.0 and spot_check_random() >= rate:
            continue
        verification = _create_verification(
            original=job,
            submitted_by_id=job.submitted_by_id,
            charged_to_id=job.charged_to_id,
            counts=False,
            spot_check=True,
        )
        audit_record(
            actor=None, verb="job.spot_check", target=verification, after={"verifies": job.pk, "rate": round(rate, 4)}
        )
        jobs_dispatch_on_commit(verification.queue)


def _primary(job: BenchmarkJob) -> str | None:
    spec = job.spec
    return spec.primary_metric if spec is not None else job.benchmark.primary_metric


def _bump_record(model: Any, filters: dict[str, Any], agreed: bool) -> None:
    if agreed:
        model.objects.filter(**filters).update(
            agreements=F("agreements") + 1, consecutive_agreements=F("consecutive_agreements") + 1
        )
    else:
        extra = {"last_disagreement_at": timezone.now()} if model is SubmitterProfile else {}
        model.objects.filter(**filters).update(disagreements=F("disagreements") + 1, consecutive_agreements=0, **extra)


def _judge(*, verifier: BenchmarkJob, verifier_result: JobResult) -> None:
    if verifier.verifies_id is None:
        return
    original = BenchmarkJob.objects.select_related("benchmark", "spec").get(pk=verifier.verifies_id)
    result = JobResult.objects.select_for_update(no_key=True).filter(job=original).first()
    if result is None:
        return
    metric = _primary(original) or ""
    a = result.metrics.get(metric)
    b = verifier_result.metrics.get(metric)
    tolerance = float(original.benchmark.tolerance)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isfinite(a) and math.isfinite(b):
        delta = abs(float(a) - float(b))
        agreed = delta <= tolerance + 1e-12
        note = ""
    else:
        delta, agreed = None, False
        note = f"the primary metric '{metric}' is missing or not finite in one of the runs"
    same_worker = bool(original.worker_host) and original.worker_host == verifier.worker_host
    if same_worker:
        note = (note + "; " if note else "") + "re-run on the same worker (no other worker was available)"
    ResultVerification.objects.create(
        result=result,
        verifier_job=verifier,
        agreed=agreed,
        metric=metric,
        original_value=a if isinstance(a, (int, float)) else None,
        verifier_value=b if isinstance(b, (int, float)) else None,
        delta=delta,
        tolerance=tolerance,
        original_worker=original.worker_host,
        verifier_worker=verifier.worker_host,
        note=note[:500],
    )
    now = timezone.now()
    before = result.verification_status
    if agreed and before != VerificationStatus.DISPUTED:
        # A dispute stands until a maintainer resolves it, whatever later re-runs say.
        result.verified, result.verification_status, result.verified_at = True, VerificationStatus.VERIFIED, now
        verifier_result.verified, verifier_result.verification_status = True, VerificationStatus.VERIFIED
        verifier_result.verified_at = now
    elif not agreed:
        result.verified, result.verification_status = False, VerificationStatus.DISPUTED
        verifier_result.verification_status = VerificationStatus.DISPUTED
    result.save(update_fields=["verified", "verification_status", "verified_at"])
    verifier_result.save(update_fields=["verified", "verification_status", "verified_at"])
    _bump_record(SubmitterProfile, {"user_id": original.submitted_by_id}, agreed)
    if original.worker_host and not same_worker:
        # Only an independent re-run says something about the worker.
        _bump_record(WorkerNode, {"name": original.worker_host}, agreed)
    audit_record(
        actor=None,
        verb="result.verified" if agreed else "result.disputed",
        target=result,
        before={"verification_status": before},
        after={
            "verification_status": result.verification_status,
            "metric": metric,
            "original": a,
            "rerun": b,
            "delta": delta,
            "tolerance": tolerance,
            "verifier_job": verifier.pk,
            "same_worker": same_worker,
        },
    )
    if result.verification_status != before:
        hooks.job_finished_on_commit(original.pk)


def verification_failed(*, job: BenchmarkJob) -> None:
    """A verification re-run ended without a result: record it; the original keeps its status."""
    result = JobResult.objects.filter(job_id=job.verifies_id).first()
    if result is None or ResultVerification.objects.filter(verifier_job=job).exists():
        return
    ResultVerification.objects.create(
        result=result, verifier_job=job, agreed=None, note=f"re-run ended {job.status}: {job.failure_reason}"[:500]
    )


def verification_request(*, job: BenchmarkJob, actor: Actor) -> tuple[BenchmarkJob, bool]:
    """Queue a re-run of a succeeded job. The submitter, reviewers and maintainers may ask. A re-run asked by
    staff does not count against anyone's quota; one asked by the submitter does."""
    staff = is_reviewer(actor) or is_maintainer(actor)
    if job.submitted_by_id != actor.pk and not staff:
        raise PermissionDenied("Only the submitter, reviewers and maintainers may ask for a verification.")
    if job.verifies_id is not None:
        raise Conflict(
            "This job is itself a verification; verify the original job instead.", original_job=job.verifies_id
        )
    # Charged like a submission by the actor on the job's variant (a member's re-run of an organization's job uses
    # the organization's quota); a re-run asked by staff is charged to no quota but still takes its turn.
    namespace = job_namespace(actor, job.revision.variant)
    with transaction.atomic():
        if not staff:
            lock_namespace(namespace)
        original = (
            BenchmarkJob.objects.select_for_update(no_key=True, of=("self",)).select_related("benchmark").get(pk=job.pk)
        )
        if original.status != JobStatus.SUCCEEDED:
            raise InvalidTransition(current=original.status, target="verified", allowed=[])
        running = BenchmarkJob.objects.filter(verifies=original, status__in=ACTIVE_JOB_STATUSES).order_by("-id").first()
        if running is not None:
            return running, False
        if not staff:
            quota_enforce(namespace)
        verification = _create_verification(
            original=original,
            submitted_by_id=actor.pk,
            charged_to_id=namespace.pk,
            counts=not staff,
            spot_check=False,
        )
        audit_record(
            actor=actor,
            verb="job.verify",
            target=verification,
            after={"verifies": original.pk, "exclude_worker": original.worker_host},
        )
        jobs_dispatch_on_commit(verification.queue)
    return verification, True


@transaction.atomic
def verification_resolve(*, verification: ResultVerification, actor: Actor, accept_original: bool) -> JobResult:
    """Maintainers settle a disputed result: accept the original (verified) or leave it unverified."""
    if not is_maintainer(actor):
        raise PermissionDenied("Only maintainers resolve disputed results.")
    result = JobResult.objects.select_for_update(no_key=True).get(pk=verification.result_id)
    before = result.verification_status
    now = timezone.now()
    if accept_original:
        result.verified, result.verification_status, result.verified_at = True, VerificationStatus.VERIFIED, now
    else:
        result.verified, result.verification_status, result.verified_at = False, VerificationStatus.UNVERIFIED, None
    result.save(update_fields=["verified", "verification_status", "verified_at"])
    ResultVerification.objects.filter(result=result, reviewed_at__isnull=True).update(
        reviewed_by=actor, reviewed_at=now
    )
    audit_record(
        actor=actor,
        verb="result.resolve",
        target=result,
        before={"verification_status": before},
        after={"verification_status": result.verification_status, "accepted": accept_original},
    )
    hooks.job_finished_on_commit(result.job_id)
    return result

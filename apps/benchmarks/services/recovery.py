"""Repair after failures (the Celery beat's ``jobs_recover``): running jobs whose lease went stale because their
worker died are requeued or failed, sent jobs whose message was presumed lost go back to the waiting pool, and
every queue is topped up. Duplicated messages are harmless: the claim is a compare-and-set."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Max, Q
from django.utils import timezone

from ..choices import FailureReason, JobEvent, JobStatus, job_statuses_allowing
from ..dispatch import jobs_dispatch, live_workers
from ..models import BenchmarkJob, ComputeUsage, IdempotencyRecord, WorkerNode
from .lifecycle import job_fail

logger = logging.getLogger(__name__)


def _release_lost_messages(now: datetime) -> int:
    """Return to the waiting pool the sent-but-unclaimed jobs whose message is presumed lost:
    - sent to the private queue of a worker that is gone;
    - sent to a shared queue before a message that a worker has already claimed (brokers are FIFO per queue);
    - sent while live consumers sat idle (no running job with a fresh lease) for MC_JOB_UNDELIVERED_AFTER_S;
    - sent more than MC_JOB_REDISPATCH_MAX_S ago (the broker's visibility timeout) whatever the reason.
    A queue nobody consumes keeps its messages: sending them again would only pile up duplicates."""
    undelivered_before = now - timedelta(seconds=settings.MC_JOB_UNDELIVERED_AFTER_S)
    hard_before = now - timedelta(seconds=settings.MC_JOB_REDISPATCH_MAX_S)
    stale_before = now - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S)
    old = list(
        BenchmarkJob.objects.filter(status=JobStatus.QUEUED, dispatched_at__lt=undelivered_before).values_list(
            "pk", "queue", "dispatched_at", "target_worker"
        )
    )
    if not old:
        return 0
    by_queue: dict[str, list[tuple[int, datetime, str]]] = defaultdict(list)
    for pk, queue, dispatched_at, target in old:
        if dispatched_at is not None:  # always set: the filter above asked for it
            by_queue[queue].append((pk, dispatched_at, target))
    lost: list[int] = []
    for queue, rows in by_queue.items():
        consumers = {w.name for w in live_workers(queue, now=now)}
        oldest = min(d for _, d, _ in rows)
        newest_claimed = BenchmarkJob.objects.filter(
            queue=queue, target_worker="", dispatched_at__gt=oldest, started_at__gte=F("dispatched_at")
        ).aggregate(m=Max("dispatched_at"))["m"]
        busy = BenchmarkJob.objects.filter(
            queue=queue, status=JobStatus.RUNNING, heartbeat_at__gte=stale_before
        ).exists()
        for pk, dispatched_at, target in rows:
            if target:
                if target not in consumers or dispatched_at < hard_before:
                    lost.append(pk)
            elif consumers and (
                (newest_claimed is not None and dispatched_at < newest_claimed - timedelta(seconds=1))
                or not busy
                or dispatched_at < hard_before
            ):
                lost.append(pk)
    if lost:
        BenchmarkJob.objects.filter(pk__in=lost, status=JobStatus.QUEUED, dispatched_at__lt=undelivered_before).update(
            dispatched_at=None, target_worker=""
        )
        logger.info("released %d jobs whose messages were presumed lost", len(lost))
    return len(lost)


def jobs_recover(*, now: datetime | None = None) -> dict[str, int]:
    """Periodic repair (Celery beat): requeue (or fail, when attempts are spent) running jobs whose lease went
    stale because their worker died; release jobs whose message was lost; then top up every queue."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S)
    stale = list(
        BenchmarkJob.objects.filter(status__in=job_statuses_allowing(JobEvent.REQUEUE))
        .filter(Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True))
        .values_list("pk", "attempts", "worker_host")
    )
    requeued = ended = 0
    for job_id, attempt, worker in stale:
        job = job_fail(
            job_id=job_id,
            attempt=attempt,
            reason=FailureReason.WORKER_LOST,
            message=f"Attempt {attempt} stopped sending heartbeats (worker {worker or '?'} was killed or "
            f"lost); the attempt was abandoned.",
        )
        if job is None:
            continue
        if job.status == JobStatus.QUEUED:
            requeued += 1
        else:
            ended += 1
    released = _release_lost_messages(now)
    dispatched = jobs_dispatch(now=now)
    _forget_old_records(now)
    return {"stale": len(stale), "requeued": requeued, "ended": ended, "released": released, "dispatched": dispatched}


def _forget_old_records(now: datetime) -> None:
    """Expired idempotency keys, workers gone for a week that left no verification record, and the hourly compute
    usage of hours that no quota check reads any more (it reads the last 24 hours; two days are kept)."""
    IdempotencyRecord.objects.filter(created_at__lt=now - timedelta(seconds=settings.MC_IDEMPOTENCY_TTL_S)).delete()
    ComputeUsage.objects.filter(hour__lt=ComputeUsage.hour_of(now) - 48).delete()
    WorkerNode.objects.filter(last_seen_at__lt=now - timedelta(days=7), agreements=0, disagreements=0).delete()

"""Celery tasks: thin interfaces that take ids and call services."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import close_old_connections

from apps.benchmarks.dispatch import jobs_dispatch as jobs_dispatch_service
from apps.benchmarks.services import jobs_claim
from apps.benchmarks.services.recovery import jobs_recover as jobs_recover_service
from workers import presence  # noqa: F401 - connects the worker signals (private queue, presence)
from workers.execution import execute_jobs, worker_identity


def _claim_and_run(hostname: str | None, job_ids: list[int]) -> None:
    # Connections live across tasks (CELERY_DB_REUSE_MAX); drop one that broke or aged out before using it.
    close_old_connections()
    jobs = jobs_claim(job_ids=[int(i) for i in job_ids], worker=worker_identity(hostname))
    if not jobs:
        return
    # This claim freed buffer slots: send the next jobs in fair-share order before running these.
    jobs_dispatch_service(queue=jobs[0].queue, force=False)
    execute_jobs(jobs)
    # And the jobs of in-process runners that arrived meanwhile were held back for the end of this work (Nagle's
    # rule, apps.benchmarks.dispatch._holds_partial_chunk): they go now, together.
    jobs_dispatch_service(queue=jobs[0].queue, force=False)


@shared_task(name="workers.tasks.run_job", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(self: Any, job_id: int) -> None:
    """Claim a job (compare-and-set) and run it. A duplicate delivery finds it claimed and does nothing.

    `acks_late` + `reject_on_worker_lost`: the message is acknowledged only after the outcome is written, and
    goes back to the broker if the pool process dies mid-job. A redelivery that finds its job still `running`
    with a stale lease takes it over; one that finds it fresh is dropped, and the recovery beat requeues the
    job once the lease expires. `max_attempts` on the job (not Celery retries) bounds a job that keeps
    killing its worker."""
    _claim_and_run(self.request.hostname, [job_id])


@shared_task(name="workers.tasks.run_jobs", bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_jobs(self: Any, job_ids: list[int]) -> None:
    """A chunk of short jobs (in-process runners) sent in one message: claim them in one compare-and-set
    statement, run them one after the other, and write their results in bulk. Redelivery, takeover and fencing
    work per job exactly as in :func:`run_job`."""
    _claim_and_run(self.request.hostname, job_ids)


@shared_task(name="workers.tasks.jobs_recover", ignore_result=True)
def jobs_recover() -> dict[str, int]:
    """Celery beat: requeue jobs of dead workers, resend lost messages, top up the queues."""
    return jobs_recover_service()


@shared_task(name="workers.tasks.jobs_dispatch", ignore_result=True)
def jobs_dispatch(queue: str | None = None) -> int:
    """Top up one queue's broker buffer (asked for after submissions), or every queue's (the beat: backoffs
    that came due), in fair-share order."""
    close_old_connections()
    return jobs_dispatch_service(queue=queue)

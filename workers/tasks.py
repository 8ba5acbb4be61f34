"""Celery tasks: thin interfaces that take ids and call services."""

from __future__ import annotations

from celery import shared_task

from apps.benchmarks.services import job_claim, jobs_recover as jobs_recover_service
from workers.execution import execute_job, worker_identity


@shared_task(name="workers.tasks.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: int) -> None:
    """Claim a job (compare-and-set) and run it. A duplicate delivery finds it claimed and does nothing."""
    job = job_claim(job_id=job_id, worker_host=worker_identity())
    if job is None:
        return
    execute_job(job)


@shared_task(name="workers.tasks.jobs_recover", ignore_result=True)
def jobs_recover() -> dict[str, int]:
    """Celery beat: re-dispatch undelivered jobs, requeue jobs of dead workers."""
    return jobs_recover_service()

"""Extension point: code outside the engine (leaderboards, checklists, notifications…) reacts to finished jobs.

Subscribers append a callable taking a job id in their ``AppConfig.ready()``::

    from apps.benchmarks.hooks import JOB_FINISHED_HOOKS
    JOB_FINISHED_HOOKS.append(on_job_finished)

The engine runs the hooks after the commit that
- made a job terminal (succeeded, failed, cancelled, timed_out), with that job's id, and
- changed a result's verification (``JobResult.verified`` / ``verification_status``), with the id of the job
  whose result changed (the verified one, not the re-run).

Hooks run in the process that made the change (a worker or a web process). They must be idempotent (they may
run more than once for a job). One failing hook never stops the others or the engine."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

JOB_FINISHED_HOOKS: list[Callable[[int], None]] = []


def run_job_finished_hooks(job_id: int) -> None:
    """Call every registered hook; one failing hook never stops the others or the engine."""
    for hook in list(JOB_FINISHED_HOOKS):
        try:
            hook(job_id)
        except Exception:  # noqa: BLE001 - a consumer's bug must not fail the job pipeline
            logger.exception("job-finished hook %r failed for job %s", hook, job_id)


def job_finished_on_commit(job_id: int) -> None:
    """Schedule the hooks for after the current transaction commits (at once outside a transaction)."""
    if JOB_FINISHED_HOOKS:
        transaction.on_commit(lambda: run_job_finished_hooks(job_id))

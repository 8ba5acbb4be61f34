"""Extension point: code outside the engine (leaderboards, checklists, notifications…) reacts to finished jobs.

Subscribers append a callable taking a list of job ids in their app's ``subscribers.register()``, which their
``AppConfig.ready()`` calls::

    from apps.benchmarks.hooks import JOB_FINISHED_HOOKS
    if on_jobs_finished not in JOB_FINISHED_HOOKS:
        JOB_FINISHED_HOOKS.append(on_jobs_finished)

The engine runs the hooks after the commit that
- made jobs terminal (succeeded, failed, cancelled, timed_out), with those jobs' ids, and
- changed a result's verification (``JobResult.verified`` / ``verification_status``), with the id of the job
  whose result changed (the verified one, not the re-run).

A worker that finishes a batch of short jobs in one transaction hands the whole batch over in one call, so a
subscriber should work on the set (a few queries for the batch, not a few per job). The list holds distinct ids,
in no particular order, and may be a single id.

Hooks run in the process that made the change (a worker or a web process). They must be idempotent (they may
run more than once for a job). One failing hook never stops the others or the engine."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.db import transaction

logger = logging.getLogger(__name__)

JobFinishedHook = Callable[[list[int]], None]
JOB_FINISHED_HOOKS: list[JobFinishedHook] = []


def run_job_finished_hooks(job_ids: Iterable[int]) -> None:
    """Call every registered hook with the distinct ids; one failing hook never stops the others or the engine."""
    ids = sorted({int(i) for i in job_ids})
    if not ids:
        return
    for hook in list(JOB_FINISHED_HOOKS):
        try:
            hook(list(ids))
        except Exception:  # noqa: BLE001 - a consumer's bug must not fail the job pipeline
            logger.exception("job-finished hook %r failed for jobs %s", hook, ids[:20])


def job_finished_on_commit(job_ids: int | Iterable[int]) -> None:
    """Schedule the hooks for after the current transaction commits (at once outside a transaction)."""
    ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
    if JOB_FINISHED_HOOKS and ids:
        transaction.on_commit(lambda: run_job_finished_hooks(ids))

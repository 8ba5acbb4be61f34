"""Extension point: code outside the engine (leaderboards, notifications…) reacts to finished jobs.

The engine calls `run_job_finished_hooks(job_id)` on commit, after a job finishes and after a verification
changes `JobResult.verified`. Hooks take the job id and must be idempotent (they may run more than once)."""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

JOB_FINISHED_HOOKS: list[Callable[[int], None]] = []


def run_job_finished_hooks(job_id: int) -> None:
    """Call every registered hook; one failing hook never stops the others or the engine."""
    for hook in list(JOB_FINISHED_HOOKS):
        try:
            hook(job_id)
        except Exception:  # noqa: BLE001 - a consumer's bug must not fail the job pipeline
            logger.exception("job-finished hook %r failed for job %s", hook, job_id)

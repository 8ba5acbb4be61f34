"""Reactions to other apps' events: submissions (registry), finished jobs (engine) and checklist changes reach
the review gate here, after their commit. Each handler takes ids and calls the reviews' services."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from apps.registry.choices import RevisionStatus as RS

from . import services

logger = logging.getLogger(__name__)


def on_revision_submitted(*, revision_id: int, **_: Any) -> None:
    """REVISION_SUBMITTED_HOOKS: assign and tell the reviewers, re-approve a resubmission whose approvals stand."""
    services.revision_submission_follow_up(revision_id=revision_id)


def on_jobs_finished(job_ids: list[int]) -> None:
    """JOB_FINISHED_HOOKS subscriber: succeeded jobs may complete the gate of their revisions (with
    MC_AUTO_PUBLISH). Off, it reads nothing. On, one query finds the revisions under review (submitted or
    approved: no other may publish itself) with a succeeded job among these; each is then tried as before, under
    its row lock (a publication is rare), and a failure on one does not stop the others."""
    if not settings.MC_AUTO_PUBLISH:
        return
    from apps.benchmarks.models import BenchmarkJob

    revision_ids = sorted(
        set(
            BenchmarkJob.objects.filter(
                pk__in=list(job_ids), status="succeeded", revision__status__in=(RS.SUBMITTED, RS.APPROVED)
            ).values_list("revision_id", flat=True)
        )
    )
    for revision_id in revision_ids:
        try:
            services.revision_try_auto_publish(revision_id=revision_id)
        except Exception:  # noqa: BLE001 - the others still get their chance; the engine never sees it
            logger.exception("auto-publish of revision %s after its job succeeded failed", revision_id)


def on_checklist_changed(*, revision_id: int, **_: Any) -> None:
    """CHECKLIST_CHANGED_HOOKS: an answer or a verification may complete the gate of an approved revision
    (MC_AUTO_PUBLISH)."""
    services.revision_try_auto_publish(revision_id=revision_id)


def register() -> None:
    """Called once from ReviewsConfig.ready(); idempotent (a hook is appended once)."""
    from apps.benchmarks.hooks import JOB_FINISHED_HOOKS
    from apps.checklists.hooks import CHECKLIST_CHANGED_HOOKS
    from apps.registry.hooks import REVISION_SUBMITTED_HOOKS

    subscriptions: list[tuple[list[Any], Any]] = [
        (REVISION_SUBMITTED_HOOKS, on_revision_submitted),
        (JOB_FINISHED_HOOKS, on_jobs_finished),
        (CHECKLIST_CHANGED_HOOKS, on_checklist_changed),
    ]
    for hook_list, fn in subscriptions:
        if fn not in hook_list:
            hook_list.append(fn)

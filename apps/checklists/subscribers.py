"""Reactions to other apps' events: the registry's and the engine's hook lists call these after commit.

Each takes ids only, is idempotent, and runs the detectives inline: they read a handful of rows, so running them
in the process that made the change (a web request or a worker) costs less than a task round trip. A failure is
logged and never reaches the caller (the job pipeline or the request that already committed)."""

from __future__ import annotations

import logging
from typing import Any

from .detectives import INPUT_ARTIFACTS, INPUT_CARD, INPUT_JOBS, INPUT_VARIANT

logger = logging.getLogger(__name__)

# Variant fields each detective input depends on (the registry says which fields changed).
VARIANT_FIELD_INPUTS: dict[str, str] = {
    "license": INPUT_VARIANT,
    "license_compat": INPUT_VARIANT,
    "parents": INPUT_VARIANT,
    "relation": INPUT_VARIANT,
    "card": INPUT_CARD,
}


def _safely(what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a checklist problem must never fail the registry or the engine
        logger.exception("checklists: %s failed", what)


def on_revision_submitted(*, revision_id: int, **_: Any) -> None:
    """A submitted revision gets its checklist; a resubmitted one has every detective run again."""
    from .services import checklist_ensure, checklist_reevaluate

    def run() -> None:
        from .models import Checklist

        if Checklist.objects.filter(revision_id=revision_id).exists():
            checklist_reevaluate(revision_id=revision_id)
        else:
            checklist_ensure(revision=revision_id)

    _safely(f"checklist for submitted revision {revision_id}", run)


def on_revision_transitioned(*, revision_id: int, before: str = "", after: str = "", **_: Any) -> None:
    """Keep the stored openness class of every revision that leaves draft (leaderboards filter on it)."""
    from .facts import RevisionFacts
    from .services import openness_store

    if after == "submitted":
        return  # on_revision_submitted stores it with the checklist
    _safely(f"openness of revision {revision_id}", lambda: openness_store(RevisionFacts.load(revision_id)))


def on_artifact_added(*, revision_id: int, artifact_id: int | None = None, **_: Any) -> None:
    from .services import checklist_reevaluate

    _safely(
        f"re-evaluation after artifact {artifact_id}",
        checklist_reevaluate,
        revision_id=revision_id,
        inputs={INPUT_ARTIFACTS},
    )


def on_variant_updated(*, variant_id: int, fields: list[str] | None = None, **_: Any) -> None:
    """A licence, lineage or card change re-runs the detectives that read it, on every revision of the
    variant (those submitted with a snapshot keep reading their snapshot)."""
    from apps.registry.models import Revision

    from .services import checklist_reevaluate

    inputs = {VARIANT_FIELD_INPUTS[f] for f in (fields or []) if f in VARIANT_FIELD_INPUTS}
    if fields is None:
        inputs = {INPUT_VARIANT, INPUT_CARD}
    if not inputs:
        return
    for revision_id in Revision.objects.filter(variant_id=variant_id).values_list("pk", flat=True):
        _safely(
            f"re-evaluation of revision {revision_id} after a variant change",
            checklist_reevaluate,
            revision_id=revision_id,
            inputs=inputs,
        )


def on_jobs_finished(job_ids: list[int]) -> None:
    """Jobs ended or results' verifications changed: the benchmark and verification items of their revisions
    look again, all revisions in one pass (one query finds them, `checklists_reevaluate` does the rest in a few).

    If the pass fails, each revision is tried on its own, so one bad revision does not hold back the others."""
    from apps.benchmarks.models import BenchmarkJob

    from .services import checklist_reevaluate, checklists_reevaluate

    revision_ids = sorted(set(BenchmarkJob.objects.filter(pk__in=list(job_ids)).values_list("revision_id", flat=True)))
    if not revision_ids:
        return
    try:
        checklists_reevaluate(revision_ids=revision_ids, inputs={INPUT_JOBS})
    except Exception:  # noqa: BLE001 - a checklist problem must never fail the engine
        logger.exception("checklists: re-evaluation of revisions %s after jobs finished failed", revision_ids[:20])
        if len(revision_ids) == 1:
            return
        for revision_id in revision_ids:
            _safely(
                f"re-evaluation of revision {revision_id} after jobs finished",
                checklist_reevaluate,
                revision_id=revision_id,
                inputs={INPUT_JOBS},
            )


def register() -> None:
    """Called once from ChecklistsConfig.ready(); appending twice is avoided so reloads stay idempotent."""
    from apps.benchmarks.hooks import JOB_FINISHED_HOOKS
    from apps.registry import hooks

    subscriptions: list[tuple[list[Any], Any]] = [
        (hooks.REVISION_SUBMITTED_HOOKS, on_revision_submitted),
        (hooks.REVISION_TRANSITIONED_HOOKS, on_revision_transitioned),
        (hooks.ARTIFACT_ADDED_HOOKS, on_artifact_added),
        (hooks.VARIANT_UPDATED_HOOKS, on_variant_updated),
        (JOB_FINISHED_HOOKS, on_jobs_finished),
    ]
    for hook_list, fn in subscriptions:
        if fn not in hook_list:
            hook_list.append(fn)

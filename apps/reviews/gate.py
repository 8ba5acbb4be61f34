"""The publication gate (SPEC §2): every condition a revision must meet before it is published.

Reads only; `services.revision_publish` calls it under the revision's row lock."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q

from apps.accounts.models import User
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import BenchmarkJob
from apps.checklists.gate import checklist_gate_unmet as checklist_gate
from apps.registry.models import Revision

from .choices import STANDING_DECISIONS, ReviewDecision
from .models import Review


@dataclass
class Standing:
    """Each reviewer's latest approve/request_changes on a revision (plain comments do not change it)."""

    approvals: list[str] = field(default_factory=list)
    objections: list[str] = field(default_factory=list)


def author_ids(revision: Revision) -> set[int]:
    """Everyone on the author's side of a revision, whose approval never counts (no self-approval by proxy): its
    creator, the variant's owner, its collaborators and, for an organization's variant, every member of it."""
    variant = revision.variant
    ids = {pk for pk in (variant.owner_id, revision.created_by_id) if pk is not None}
    ids.update(
        User.objects.filter(
            Q(collaborations__variant_id=variant.pk) | Q(org_memberships__org__account_id=variant.owner_id)
        ).values_list("pk", flat=True)
    )
    return ids


def revision_is_current(revision: Revision) -> bool:
    return revision.variant.current_revision_id == revision.pk


def review_standing(revision: Revision) -> Standing:
    """Reviews on a revision that is no longer the variant's current one are stale and count for nothing."""
    if not revision_is_current(revision):
        return Standing()
    authors = author_ids(revision)
    latest: dict[int, tuple[str, str]] = {}
    rows = (
        Review.objects.filter(revision=revision, decision__in=STANDING_DECISIONS)
        .order_by("id")
        .values_list("reviewer_id", "reviewer__username", "decision")
    )
    for reviewer_id, username, decision in rows:
        if reviewer_id not in authors:
            latest[reviewer_id] = (username, decision)
    standing = Standing()
    for username, decision in sorted(latest.values()):
        (standing.approvals if decision == ReviewDecision.APPROVE else standing.objections).append(username)
    return standing


def checklist_gate_unmet(revision: Revision) -> list[str]:
    """The checklist app's verdict: required items not met (or not verified)."""
    return [str(item) for item in checklist_gate(revision)]


def succeeded_job_exists(revision: Revision) -> bool:
    return BenchmarkJob.objects.filter(revision=revision, status=JobStatus.SUCCEEDED).exists()


def publication_gate_unmet(revision: Revision) -> list[str]:
    """Every unmet condition, in words a contributor can act on. Empty means the gate holds."""
    unmet: list[str] = []
    if not revision_is_current(revision):
        current = revision.variant.current_revision
        unmet.append(
            f"Revision {revision.number} is not the variant's current revision"
            + (f" ({current.number})" if current is not None else "")
            + ": its reviews are stale."
        )
    standing = review_standing(revision)
    need = settings.MC_PUBLISH_MIN_APPROVALS
    if len(standing.approvals) < need:
        have = f"{len(standing.approvals)}" + (f" ({', '.join(standing.approvals)})" if standing.approvals else "")
        unmet.append(f"Needs {need} approvals from distinct reviewers other than the author; has {have}.")
    if standing.objections:
        unmet.append(f"Changes requested by {', '.join(standing.objections)} still stand.")
    unmet.extend(f"Checklist: {item}" for item in checklist_gate_unmet(revision))
    if not succeeded_job_exists(revision):
        unmet.append(f"No benchmark job has succeeded on revision {revision.number}.")
    return unmet

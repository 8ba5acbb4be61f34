"""Revisions: opening a new one, submit and withdraw, and the state machine step under every lifecycle action,
which stores the snapshot the reviewers judge and the public sees."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidTransition

from .. import hooks
from ..choices import NEW_REVISION_FROM, Relation, RevisionStatus
from ..licenses import license_lookup
from ..models import Artifact, Revision, Variant
from ..permissions import ensure_can_edit
from .validation import license_error

S = RevisionStatus


def _revision_target(revision: Revision, variant: Variant) -> tuple[str, int, str]:
    return ("registry.revision", revision.pk, f"{variant.full_name}@{revision.number}")


def _lock_revision(revision_pk: int) -> tuple[Revision, Variant]:
    """Lock a revision, then its variant: the order every writer that needs both takes them in (the review
    app too), so two of them never wait on each other. The variant is read after its lock, so a concurrent
    metadata edit is either fully in or fully out of what a submission snapshots."""
    revision = Revision.objects.select_for_update(no_key=True).get(pk=revision_pk)
    variant = (
        Variant.objects.select_for_update(of=("self",), no_key=True).select_related("owner").get(pk=revision.variant_id)
    )
    revision.variant = variant
    return revision, variant


@transaction.atomic
def revision_create(*, variant: Variant, actor: User, notes: str = "", copy_artifacts: bool = True) -> Revision:
    """Open revision n+1 as a draft (the way to change a submitted or published variant).

    The artifacts of the previous revision are carried over as records unless `copy_artifacts` is False."""
    # of=self: PostgreSQL cannot lock the nullable side of the outer join to current_revision.
    variant = (
        Variant.objects.select_for_update(of=("self",), no_key=True)
        .select_related("owner", "current_revision")
        .get(pk=variant.pk)
    )
    ensure_can_edit(actor, variant)
    current = variant.current_revision
    if current is not None and current.status not in NEW_REVISION_FROM:
        why = (
            "is still a draft: change it instead" if current.status == S.DRAFT else "is under review: withdraw it first"
        )
        raise Conflict(f"Revision {current.number} of {variant.full_name} {why}.", current_status=current.status)
    number = (variant.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    revision = Revision.objects.create(variant=variant, number=number, created_by=actor, notes=notes[:10_000])
    if copy_artifacts and current is not None:
        Artifact.objects.bulk_create(
            [
                Artifact(
                    revision=revision,
                    path=a.path,
                    uri=a.uri,
                    file=a.file.name if a.file else "",
                    sha256=a.sha256,
                    size_bytes=a.size_bytes,
                    format=a.format,
                    header=a.header,
                )
                for a in current.artifacts.all()
            ]
        )
    variant.current_revision = revision
    variant.status = revision.status
    variant.save(update_fields=["current_revision", "status", "updated_at"])
    audit_record(
        actor=actor,
        verb="revision.create",
        target=_revision_target(revision, variant),
        after={"number": number, "copied_artifacts": revision.artifacts.count()},
    )
    return revision


def _submission_problems(revision: Revision, variant: Variant) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not revision.artifacts.exists():
        problems["artifacts"] = ["Add at least one artifact: upload a file or record one by URI."]
    if not variant.license:
        problems["license"] = ["Declare a licence."]
    elif license_lookup(variant.license) is None:
        problems["license"] = [license_error(variant.license)]
    card_chars = len(variant.card.strip())
    if card_chars < settings.MC_MIN_CARD_CHARS:
        problems["card"] = [
            f"Write a model card of at least {settings.MC_MIN_CARD_CHARS} characters "
            f"(it has {card_chars}): intended use, limitations, training data, evaluation."
        ]
    if variant.relation != Relation.ORIGINAL and not variant.parent_links.exists():
        problems["parents"] = ["A derived variant names its parents."]
    return problems


def _snapshot(variant: Variant) -> dict[str, Any]:
    """What the variant says now, stored in `Revision.metadata` when the revision is submitted: what reviewers
    judge, and what the public sees once that revision is published (apps.registry.selectors
    `variants_as_seen_by`)."""
    links = list(variant.parent_links.select_related("parent__owner"))
    return {
        "relation": variant.relation,
        "parents": [link.parent.full_name for link in links],
        "parent_ids": [link.parent_id for link in links],
        "license": variant.license,
        "license_compat": variant.license_compat,
        "parameters": variant.parameters,
        "precision": variant.precision,
        "architecture": variant.architecture,
        "task": variant.task,
        "tags": variant.tags,
        "summary": variant.summary,
        "hub_id": variant.hub_id,
        "card": variant.card,
        "card_data": variant.card_data,
    }


@transaction.atomic
def revision_submit(*, revision: Revision, actor: User) -> Revision:
    """The owner sends the current draft to review. It must hold an artifact, a valid licence and a card;
    from then on the revision is immutable. After commit the REVISION_SUBMITTED_HOOKS run."""
    revision, variant = _lock_revision(revision.pk)
    ensure_can_edit(actor, variant, "submit")
    if not revision.can_transition_to(S.SUBMITTED):
        raise InvalidTransition(
            current=revision.status, target=S.SUBMITTED, allowed=list(revision.allowed_transitions())
        )
    if variant.current_revision_id != revision.pk:
        raise Conflict(f"Only the current revision of {variant.full_name} can be submitted, not {revision.number}.")
    problems = _submission_problems(revision, variant)
    if problems:
        raise Conflict(
            f"Revision {revision.number} of {variant.full_name} is not ready to submit: see errors.", errors=problems
        )
    return revision_transition(revision=revision, target=S.SUBMITTED, actor=actor, verb="revision.submit")


@transaction.atomic
def revision_withdraw(*, revision: Revision, actor: User, reason: str = "") -> Revision:
    """The owner takes a draft, submitted or changes-requested revision out of the workflow for good."""
    revision, variant = _lock_revision(revision.pk)
    ensure_can_edit(actor, variant, "withdraw")
    return revision_transition(
        revision=revision, target=S.WITHDRAWN, actor=actor, reason=reason[:1000], verb="revision.withdraw"
    )


@transaction.atomic
def revision_transition(
    *, revision: Revision, target: str, actor: User | None, reason: str = "", verb: str | None = None
) -> Revision:
    """Move a revision through the state machine (choices.TRANSITIONS), row-locked and audited.

    The generic step under every lifecycle action (submit, withdraw, and the review app's approve, reject,
    publish, unpublish): it checks only the table; callers check who may act. Entering `submitted` snapshots
    the variant into `Revision.metadata` (the revision is immutable from then on). The variant's denormalised
    `status` (of its current revision), `is_public` (some revision published) and `published_revision` (the
    last published one: the snapshot the public sees) follow, and the audit event records a change of the
    public revision."""
    revision, variant = _lock_revision(revision.pk)
    if not revision.can_transition_to(target):
        raise InvalidTransition(current=revision.status, target=target, allowed=list(revision.allowed_transitions()))
    before = revision.status
    now = timezone.now()
    revision.status = target
    revision.status_changed_at = now
    revision.status_reason = reason
    fields = ["status", "status_changed_at", "status_reason", "submitted_at"]
    if target == S.SUBMITTED:
        revision.submitted_at = now
        revision.metadata = _snapshot(variant)
        fields.append("metadata")
    elif target == S.PUBLISHED and not revision.metadata and variant.current_revision_id == revision.pk:
        # A revision submitted before snapshots existed: the variant still says what it said then.
        revision.metadata = _snapshot(variant)
        fields.append("metadata")
    revision.save(update_fields=fields)
    if variant.current_revision_id == revision.pk:
        variant.status = target
    public_before = variant.published_revision_id
    published = variant.revisions.filter(status=S.PUBLISHED).order_by("-number").only("pk", "number").first()
    variant.is_public = published is not None
    variant.published_revision_id = published.pk if published is not None else None
    variant.save(update_fields=["status", "is_public", "published_revision", "updated_at"])
    after: dict[str, Any] = {"status": target, "reason": reason or None}
    if variant.published_revision_id != public_before:
        after["public_revision"] = published.number if published is not None else None
    audit_record(
        actor=actor,
        verb=verb or f"revision.{target}",
        target=_revision_target(revision, variant),
        before={"status": before},
        after=after,
    )
    hooks.run_on_commit(hooks.REVISION_TRANSITIONED_HOOKS, revision_id=revision.pk, before=before, after=target)
    if target == S.SUBMITTED:
        hooks.run_on_commit(hooks.REVISION_SUBMITTED_HOOKS, revision_id=revision.pk)
    return revision

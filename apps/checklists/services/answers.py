"""Answers to checklist items by the owner, and reviewers' verification of them (If-Match on the item's ETag,
checked under the row lock)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.roles import is_reviewer
from apps.audit.services import audit_record
from apps.core.conditional import check_if_match, etag_for
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision

from ..choices import MAX_CONFIDENCE, AnswerSource, ItemStatus, Kind
from ..detectives import DETECTIVES
from ..hooks import checklist_changed_on_commit
from ..models import Checklist, ChecklistItem, TemplateItem
from .instances import checklist_ensure, refresh_level
from .problems import add_problem, answer_problems

if TYPE_CHECKING:
    from apps.accounts.types import Actor, Viewer

S = RevisionStatus


# The checklist stays open until the revision is published: reviewers may approve before the owner has finished
# it, and closing it at approval would leave a revision that can neither be completed nor published (only a new
# revision, losing the approvals, would get out). Answers do not touch the reviews, so approvals stand; an answer
# that changes what a reviewer verified still drops that verification.
ANSWERABLE_STATUSES = (S.SUBMITTED, S.CHANGES_REQUESTED, S.APPROVED)
VERIFIABLE_STATUSES = (S.SUBMITTED, S.CHANGES_REQUESTED, S.APPROVED)


def _rules_of(errors: dict[str, list[str]]) -> list[str]:
    return sorted({msg.split(":", 1)[0] for msgs in errors.values() for msg in msgs})


def _lock_item(revision: Revision, key: str) -> tuple[Checklist, ChecklistItem]:
    checklist = checklist_ensure(revision=revision)
    if checklist is None:
        raise NotFound(
            f"Revision {revision.number} has no checklist yet: it is created when the revision is submitted."
        )
    checklist = Checklist.objects.select_for_update().get(pk=checklist.pk)
    row = (
        ChecklistItem.objects.select_related("item", "answered_by", "verified_by")
        .filter(checklist=checklist, item__key=key)
        .first()
    )
    if row is None:
        raise NotFound(f"The checklist has no item '{key}'.")
    return checklist, row


def _check_types(fields: dict[str, Any], verified: Any) -> None:
    errors: dict[str, list[str]] = {}
    if "status" in fields and fields["status"] not in ItemStatus.values:
        add_problem(errors, "status", f"Must be one of: {', '.join(ItemStatus.values)}.")
    for field, limit in (("justification", 10_000), ("evidence_url", 1000)):
        value = fields.get(field, "")
        if value is not None and not isinstance(value, str):
            add_problem(errors, field, "Must be a string.")
        elif value and len(value) > limit:
            add_problem(errors, field, f"At most {limit} characters.")
    if verified is not None and not isinstance(verified, bool):
        add_problem(errors, "verified", "Must be true or false.")
    if errors:
        raise ValidationFailed("The answer is not valid: see errors.", errors=errors)


def can_answer(actor: Viewer, revision: Revision) -> bool:
    from apps.registry.permissions import can_edit_variant

    return can_edit_variant(actor, revision.variant)


@transaction.atomic
def checklist_item_answer(
    *, revision: Revision, key: str, actor: Actor, changes: dict[str, Any], if_match: str | None = None
) -> ChecklistItem:
    """Answer an item (`status`, `justification`, `evidence_url`: the owner) or verify it (`verified`: a
    reviewer who is not the author). The item's evidence rules are enforced; a 400 names each rule broken.

    An answer that changes what was verified drops the verification. On an automatic item a person may answer
    where the detective is unsure; where it is certain, a contradicting answer is refused."""
    revision = Revision.objects.select_related("variant__owner").get(pk=revision.pk)
    answer_fields: dict[str, Any] = {k: changes[k] for k in ("status", "justification", "evidence_url") if k in changes}
    verified = changes.get("verified")
    if not answer_fields and verified is None:
        raise ValidationFailed(
            "Nothing to change: give status, justification, evidence_url or verified.",
            errors={"__all__": ["Give status, justification, evidence_url or verified."]},
        )
    _check_types(answer_fields, verified)
    if answer_fields and not can_answer(actor, revision):
        raise PermissionDenied(f"Only the owner of {revision.variant.full_name} answers its checklist.")
    if verified is not None and not is_reviewer(actor):
        raise PermissionDenied("Only reviewers verify checklist items.")
    checklist, row = _lock_item(revision, key)
    check_if_match(if_match, item_etag(row), what=f"Item '{key}'")
    item = row.item
    now = timezone.now()
    before = {"status": row.status, "source": row.source, "verified_by": getattr(row.verified_by, "username", None)}
    if answer_fields:
        if revision.status not in ANSWERABLE_STATUSES:
            raise Conflict(
                f"Revision {revision.number} is {revision.status}: its checklist can no longer be "
                "answered. Open a new revision to change it.",
                current_status=revision.status,
            )
        _answer(row, item, answer_fields, actor, now)
    if verified is not None:
        _verify(row, item, revision, bool(verified), actor, now)
    row.save()
    refresh_level(checklist)
    audit_record(
        actor=actor,
        verb="checklist.item.verify" if verified is not None and not answer_fields else "checklist.item.answer",
        target=row,
        before=before,
        after={
            "status": row.status,
            "source": row.source,
            "verified_by": getattr(row.verified_by, "username", None),
            "evidence_url": row.evidence_url or None,
            "key": key,
        },
    )
    checklist_changed_on_commit(revision.pk)
    return row


def _answer(row: ChecklistItem, item: TemplateItem, fields: dict[str, Any], actor: Actor, now: Any) -> None:
    status = fields.get("status", row.status if row.source == AnswerSource.HUMAN else ItemStatus.UNKNOWN)
    justification = fields.get("justification", row.justification) or ""
    evidence_url = fields.get("evidence_url", row.evidence_url) or ""
    found = DETECTIVES.get(item.detective) if item.kind == Kind.AUTO else None
    errors: dict[str, list[str]] = {}
    if found is not None and found.authoritative:
        add_problem(
            errors,
            "status",
            f"automatic_only: the platform answers this item from its own records "
            f"({found.title.lower()}); it cannot be answered by hand.",
        )
    elif (
        found is not None
        and "status" in fields
        and status != ItemStatus.UNKNOWN
        and row.confidence is not None
        and row.confidence >= MAX_CONFIDENCE
        and row.detective_status not in ("", ItemStatus.UNKNOWN)
        and status != row.detective_status
    ):
        add_problem(
            errors,
            "status",
            f"detective_certain: the automatic check is certain the item is {row.detective_status} ({row.explanation})",
        )
    if status != ItemStatus.UNKNOWN:
        for field, msgs in answer_problems(item, status, justification, evidence_url).items():
            errors.setdefault(field, []).extend(msgs)
    elif evidence_url:
        for field, msgs in answer_problems(item, status, "", evidence_url).items():
            errors.setdefault(field, []).extend(msgs)
    if errors:
        raise ValidationFailed(
            "The answer breaks the item's rules: " + ", ".join(_rules_of(errors)) + ".",
            errors=errors,
            rules=_rules_of(errors),
        )
    changed = (status, justification, evidence_url) != (row.status, row.justification, row.evidence_url)
    if status == ItemStatus.UNKNOWN:
        # Withdrawing an answer hands an automatic item back to its detective.
        auto = found is not None and row.detective_status
        row.status = row.detective_status if auto else ItemStatus.UNKNOWN
        row.source = AnswerSource.AUTO if auto else AnswerSource.NONE
        row.answered_by = None
    else:
        row.status = status
        row.source = AnswerSource.HUMAN
        row.answered_by = actor
    row.justification, row.evidence_url = justification, evidence_url
    row.answered_at = now
    if changed:
        row.verified_by, row.verified_at = None, None


def _verify(row: ChecklistItem, item: TemplateItem, revision: Revision, verified: bool, actor: Actor, now: Any) -> None:
    if revision.status not in VERIFIABLE_STATUSES:
        raise Conflict(
            f"Revision {revision.number} is {revision.status}: its checklist is closed.", current_status=revision.status
        )
    authors = {revision.variant.owner_id, revision.created_by_id, row.answered_by_id}
    if actor.pk in authors or can_answer(actor, revision):
        raise PermissionDenied("Nobody verifies their own work: another reviewer verifies this item.")
    errors: dict[str, list[str]] = {}
    if verified and not item.reviewer_verifies:
        add_problem(errors, "verified", "not_verifiable: this item does not ask for a reviewer's verification.")
    elif verified and row.status not in (ItemStatus.MET, ItemStatus.NA):
        add_problem(
            errors, "verified", f"nothing_to_verify: the item is {row.status}; only a met or N/A answer is verified."
        )
    if errors:
        raise ValidationFailed(
            "The item cannot be verified: " + ", ".join(_rules_of(errors)) + ".", errors=errors, rules=_rules_of(errors)
        )
    if verified:
        row.verified_by, row.verified_at = actor, now
    else:
        row.verified_by, row.verified_at = None, None


def item_etag(row: ChecklistItem) -> str:
    stamp = "|".join(
        str(v)
        for v in (
            row.pk,
            row.status,
            row.justification,
            row.evidence_url,
            row.source,
            row.answered_by_id,
            row.answered_at,
            row.confidence,
            row.explanation,
            row.verified_by_id,
            row.verified_at,
        )
    )
    return etag_for(stamp)

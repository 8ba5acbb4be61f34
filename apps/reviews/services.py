"""Review workflow writes: reviews, assignments, publish/unpublish/reject, comments and flags.

Every service locks the row it changes, moves revisions only through the registry's state machine
(`revision_transition`), records an audit event in its transaction, and announces the change (notifications
and webhooks) so that e-mails and deliveries go out after commit."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.roles import is_maintainer, is_reviewer
from apps.audit.services import audit_record
from apps.benchmarks.models import Benchmark
from apps.core.conditional import check_if_match
from apps.core.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from apps.notifications import events
from apps.notifications.choices import WebhookEvent
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision, Variant
from apps.registry.permissions import can_edit_variant
from apps.registry.services import revision_transition

from .choices import (
    ACTION_TARGET,
    REVIEWABLE_STATUSES,
    FlagAction,
    FlagKind,
    FlagStatus,
    ReviewDecision,
)
from .gate import author_ids, publication_gate_unmet, review_standing, revision_is_current
from .models import Comment, Flag, Review, ReviewAssignment
from .rendering import render_markdown

if TYPE_CHECKING:
    from apps.accounts.types import Actor


MAX_BODY_CHARS = 20_000
RS = RevisionStatus


class PublicationGateUnmet(Conflict):
    title = "Publication gate not met"
    slug = "publication-gate"


def _lock_revision(revision: Revision | int) -> Revision:
    # FOR NO KEY UPDATE, as the registry locks it: it excludes every other writer of the row, but not the key-share
    # locks PostgreSQL takes to check foreign keys, so a worker inserting a leaderboard entry or result that points
    # at this revision does not deadlock with a publish.
    pk = revision if isinstance(revision, int) else revision.pk
    return (
        Revision.objects.select_for_update(of=("self",), no_key=True)
        .select_related("variant__owner", "variant__current_revision", "created_by")
        .get(pk=pk)
    )


def _require_maintainer(actor: Actor, what: str) -> None:
    if not is_maintainer(actor):
        raise PermissionDenied(f"Only maintainers {what}.")


def _clean_body(body: str | None, *, field: str = "body", required: bool, what: str = "A body") -> str:
    text = (body or "").strip()
    if required and not text:
        raise ValidationFailed(f"{what} is required.", errors={field: [f"{what} is required."]})
    if len(text) > MAX_BODY_CHARS:
        raise ValidationFailed("Too long.", errors={field: [f"At most {MAX_BODY_CHARS} characters."]})
    return text


def _own_work_refusal(revision: Revision, user: Actor) -> str | None:
    if user.pk in author_ids(revision):
        return (
            f"You cannot review your own work: {revision.variant.full_name} revision {revision.number} is "
            f"yours. Nobody approves their own work."
        )
    return None


# --- reviews -------------------------------------------------------------------------------------------------


@transaction.atomic
def review_submit(*, revision: Revision, reviewer: User, decision: str, body: str = "") -> Review:
    """A reviewer approves, requests changes or comments. Requesting changes sends the revision back to its
    author; the approval that completes the required count moves it to `approved` (and, with
    MC_AUTO_PUBLISH, on to `published` if the whole gate holds)."""
    if not is_reviewer(reviewer):
        raise PermissionDenied("Only reviewers review revisions.")
    if decision not in ReviewDecision.values:
        raise ValidationFailed(
            "Unknown decision.", errors={"decision": [f"One of: {', '.join(ReviewDecision.values)}."]}
        )
    body = _clean_body(
        body,
        required=decision != ReviewDecision.APPROVE,
        what="A body saying what to change" if decision == ReviewDecision.REQUEST_CHANGES else "A body",
    )
    revision = _lock_revision(revision)
    refusal = _own_work_refusal(revision, reviewer)
    if refusal:
        raise PermissionDenied(refusal)
    if revision.status not in REVIEWABLE_STATUSES:
        raise Conflict(
            f"Revision {revision.number} is {revision.status}; only revisions that are "
            f"{', '.join(REVIEWABLE_STATUSES)} are reviewed."
        )
    if not revision_is_current(revision):
        current = revision.variant.current_revision
        raise Conflict(
            f"Revision {revision.number} has been superseded by revision "
            f"{current.number if current else '?'}: review that one."
        )
    review = Review.objects.create(
        revision=revision, reviewer=reviewer, decision=decision, body=body, body_html=render_markdown(body)
    )
    audit_record(
        actor=reviewer,
        verb=f"review.{decision}",
        target=review,
        after={"variant": revision.variant.full_name, "revision": revision.number, "decision": decision},
    )
    if decision == ReviewDecision.REQUEST_CHANGES and revision.status in (RS.SUBMITTED, RS.APPROVED):
        revision = revision_transition(
            revision=revision,
            target=RS.CHANGES_REQUESTED,
            actor=reviewer,
            reason=body[:1000],
            verb="revision.changes_requested",
        )
    elif decision == ReviewDecision.APPROVE and revision.status == RS.SUBMITTED:
        revision = _approve_if_enough(revision, actor=reviewer)
    events.announce_review(revision=revision, review_id=review.pk, reviewer=reviewer, decision=decision, body=body)
    if revision.status == RS.APPROVED:
        _auto_publish_locked(revision)
    return review


def _approve_if_enough(revision: Revision, *, actor: Actor | None) -> Revision:
    standing = review_standing(revision)
    if len(standing.approvals) >= settings.MC_PUBLISH_MIN_APPROVALS and not standing.objections:
        return revision_transition(
            revision=revision,
            target=RS.APPROVED,
            actor=actor,
            reason=f"approved by {', '.join(standing.approvals)}",
            verb="revision.approved",
        )
    return revision


# --- publication ---------------------------------------------------------------------------------------------


def _publish_locked(revision: Revision, *, actor: Actor | None, reason: str) -> Revision:
    if revision.status not in (RS.SUBMITTED, RS.APPROVED, RS.UNPUBLISHED):
        raise InvalidTransition(
            current=revision.status, target=RS.PUBLISHED, allowed=list(revision.allowed_transitions())
        )
    unmet = publication_gate_unmet(revision)
    if unmet:
        raise PublicationGateUnmet(
            f"{revision.variant.full_name} revision {revision.number} cannot be published yet: "
            f"{len(unmet)} condition(s) unmet.",
            errors={"gate": unmet},
        )
    if revision.status == RS.SUBMITTED:
        # Approvals that survived a resubmission: the gate holds, so the revision is approved on the way.
        revision = revision_transition(
            revision=revision,
            target=RS.APPROVED,
            actor=actor,
            reason="the publication gate holds",
            verb="revision.approved",
        )
    revision = revision_transition(
        revision=revision, target=RS.PUBLISHED, actor=actor, reason=reason, verb="revision.published"
    )
    events.announce_revision_decided(
        revision=revision, event=WebhookEvent.VARIANT_PUBLISHED, actor=actor, reason=reason
    )
    return revision


@transaction.atomic
def revision_publish(*, revision: Revision, actor: User, reason: str = "") -> Revision:
    """A maintainer publishes. The gate is checked under the row lock; a refusal lists every unmet condition."""
    _require_maintainer(actor, "publish")
    return _publish_locked(
        _lock_revision(revision), actor=actor, reason=_clean_body(reason, field="reason", required=False)
    )


def _auto_publish_locked(revision: Revision) -> bool:
    if not settings.MC_AUTO_PUBLISH or revision.status not in (RS.SUBMITTED, RS.APPROVED):
        return False
    if publication_gate_unmet(revision):
        return False
    _publish_locked(revision, actor=None, reason="automatic: the publication gate holds")
    return True


@transaction.atomic
def revision_try_auto_publish(*, revision_id: int) -> bool:
    """With MC_AUTO_PUBLISH on, publish the revision if the gate now holds. Safe to call any time (after a job
    succeeded, a checklist item was met, ...); returns whether it published."""
    if not settings.MC_AUTO_PUBLISH:
        return False
    try:
        revision = _lock_revision(revision_id)
    except Revision.DoesNotExist:
        return False
    return _auto_publish_locked(revision)


@transaction.atomic
def revision_unpublish(*, revision: Revision, actor: User, reason: str) -> Revision:
    """A maintainer takes a published revision down, with the reason recorded."""
    _require_maintainer(actor, "unpublish")
    reason = _clean_body(reason, field="reason", required=True, what="A reason")
    revision = _lock_revision(revision)
    revision = revision_transition(
        revision=revision, target=RS.UNPUBLISHED, actor=actor, reason=reason, verb="revision.unpublished"
    )
    events.announce_revision_decided(
        revision=revision, event=WebhookEvent.VARIANT_UNPUBLISHED, actor=actor, reason=reason
    )
    return revision


@transaction.atomic
def revision_reject(*, revision: Revision, actor: User, reason: str) -> Revision:
    """A maintainer rejects a revision under review; it is final."""
    _require_maintainer(actor, "reject")
    reason = _clean_body(reason, field="reason", required=True, what="A reason")
    revision = _lock_revision(revision)
    revision = revision_transition(
        revision=revision, target=RS.REJECTED, actor=actor, reason=reason, verb="revision.rejected"
    )
    events.announce_revision_decided(revision=revision, event=WebhookEvent.VARIANT_REJECTED, actor=actor, reason=reason)
    return revision


# --- assignment ---------------------------------------------------------------------------------------------


def _open_review_load() -> Any:
    return Count("review_assignments", filter=Q(review_assignments__revision__status__in=REVIEWABLE_STATUSES))


@transaction.atomic
def review_assign(*, revision: Revision, reviewer: User, actor: User) -> ReviewAssignment:
    """Reviewers take a revision from the queue; maintainers may assign someone else. Idempotent."""
    if actor.pk != reviewer.pk and not is_maintainer(actor):
        raise PermissionDenied("Reviewers assign themselves; only maintainers assign others.")
    if not is_reviewer(reviewer):
        if actor.pk == reviewer.pk:
            raise PermissionDenied("Only reviewers take reviews.")
        raise ValidationFailed("Not a reviewer.", errors={"reviewer": [f"{reviewer.username} is not a reviewer."]})
    revision = _lock_revision(revision)
    refusal = _own_work_refusal(revision, reviewer)
    if refusal:
        raise PermissionDenied(refusal)
    if revision.status not in REVIEWABLE_STATUSES:
        raise Conflict(f"Revision {revision.number} is {revision.status}; nothing to review.")
    assignment, created = ReviewAssignment.objects.get_or_create(
        revision=revision, reviewer=reviewer, defaults={"assigned_by": actor}
    )
    if created:
        audit_record(
            actor=actor,
            verb="review.assign",
            target=revision,
            after={"reviewer": reviewer.username, "revision": revision.number},
        )
        events.announce_review_assigned(revision=revision, reviewer=reviewer, actor=actor)
    return assignment


@transaction.atomic
def review_unassign(*, revision: Revision, reviewer: User, actor: User) -> None:
    if actor.pk != reviewer.pk and not is_maintainer(actor):
        raise PermissionDenied("Reviewers drop their own assignments; only maintainers drop others'.")
    revision = _lock_revision(revision)
    deleted, _ = ReviewAssignment.objects.filter(revision=revision, reviewer=reviewer).delete()
    if not deleted:
        raise NotFound(f"{reviewer.username} is not assigned to this revision.")
    audit_record(
        actor=actor,
        verb="review.unassign",
        target=revision,
        before={"reviewer": reviewer.username, "revision": revision.number},
    )


def reviewers_auto_assign(*, revision: Revision, count: int) -> list[ReviewAssignment]:
    """Assign the least-loaded reviewers (fewest open assignments; ties: longest idle, then name) until the
    revision has `count` reviewers. Call inside a transaction that holds the revision's lock."""
    have = set(ReviewAssignment.objects.filter(revision=revision).values_list("reviewer_id", flat=True))
    missing = count - len(have)
    if missing <= 0:
        return []
    candidates = list(
        User.objects.filter(is_active=True, groups__name="reviewers")
        .exclude(pk__in=author_ids(revision) | have)
        .annotate(load=_open_review_load())
        .order_by("load", "username")[:missing]
    )
    made = [ReviewAssignment.objects.create(revision=revision, reviewer=u, auto=True) for u in candidates]
    for assignment in made:
        audit_record(
            actor=None,
            verb="review.auto_assign",
            target=revision,
            after={"reviewer": assignment.reviewer.username, "revision": revision.number},
        )
    return made


def revision_submission_follow_up(*, revision_id: int) -> None:
    """After a submission commits (subscribers.on_revision_submitted): auto-assign reviewers if configured, tell
    the reviewers, fire `variant.submitted`, and re-approve a resubmission whose approvals still stand."""
    with transaction.atomic():
        try:
            revision = _lock_revision(revision_id)
        except Revision.DoesNotExist:
            return
        if revision.status != RS.SUBMITTED:
            return
        if settings.MC_REVIEW_AUTO_ASSIGN > 0:
            reviewers_auto_assign(revision=revision, count=settings.MC_REVIEW_AUTO_ASSIGN)
        assignees = list(User.objects.filter(review_assignments__revision=revision))
        recipients = assignees or list(User.objects.filter(is_active=True, groups__name="reviewers"))
        events.announce_revision_submitted(
            revision=revision, reviewers=recipients, actor=revision.created_by or revision.variant.owner
        )
        revision = _approve_if_enough(revision, actor=None)
        if revision.status == RS.APPROVED:
            _auto_publish_locked(revision)


# --- comments ------------------------------------------------------------------------------------------------


@transaction.atomic
def comment_create(*, variant: Variant, author: User, body: str, parent: Comment | None = None) -> Comment:
    """Comment on a variant, or reply to a top-level comment (threads are one level deep)."""
    body = _clean_body(body, required=True, what="A comment")
    if parent is not None:
        if parent.variant_id != variant.pk:
            raise ValidationFailed("Bad parent.", errors={"parent": ["That comment is on another variant."]})
        if parent.parent_id is not None:
            raise ValidationFailed(
                "Bad parent.",
                errors={"parent": ["Threads are one level deep: reply to the top-level comment instead."]},
            )
        if parent.is_hidden:
            raise ValidationFailed("Bad parent.", errors={"parent": ["That comment is hidden."]})
    comment = Comment.objects.create(
        variant=variant, author=author, parent=parent, body=body, body_html=render_markdown(body)
    )
    audit_record(
        actor=author,
        verb="comment.create",
        target=comment,
        after={"variant": variant.full_name, "parent": parent.pk if parent else None},
    )
    return comment


@transaction.atomic
def comment_edit(*, comment: Comment, actor: User, body: str, if_match: str | None = None) -> Comment:
    """Authors edit their own comments within MC_COMMENT_EDIT_WINDOW_S of posting. With `if_match`, the edit
    applies only if the comment is still the version the author read (412 otherwise)."""
    body = _clean_body(body, required=True, what="A comment")
    comment = Comment.objects.select_for_update().get(pk=comment.pk)
    if comment.author_id != actor.pk:
        raise PermissionDenied("Only the author edits a comment.")
    check_if_match(if_match, comment.etag, what="The comment")
    if comment.is_hidden:
        raise Conflict("A hidden comment cannot be edited.")
    window = settings.MC_COMMENT_EDIT_WINDOW_S
    if timezone.now() - comment.created_at > timedelta(seconds=window):
        raise Conflict(f"Comments can be edited for {window} seconds after posting; this one is older.")
    before = comment.body
    comment.body, comment.body_html, comment.edited_at = body, render_markdown(body), timezone.now()
    comment.save(update_fields=["body", "body_html", "edited_at"])
    audit_record(actor=actor, verb="comment.edit", target=comment, before={"body": before}, after={"body": body})
    return comment


@transaction.atomic
def comment_hide(*, comment: Comment, actor: User, reason: str) -> Comment:
    """Moderators hide a comment (its text is kept for the record, and shown only to moderators)."""
    _require_maintainer(actor, "hide comments")
    reason = _clean_body(reason, field="reason", required=True, what="A reason")[:500]
    comment = Comment.objects.select_for_update().get(pk=comment.pk)
    if comment.is_hidden:
        raise Conflict("The comment is already hidden.")
    comment.is_hidden, comment.hidden_by, comment.hidden_reason = True, actor, reason
    comment.hidden_at = timezone.now()
    comment.save(update_fields=["is_hidden", "hidden_by", "hidden_reason", "hidden_at"])
    audit_record(actor=actor, verb="comment.hide", target=comment, after={"reason": reason})
    return comment


@transaction.atomic
def comment_unhide(*, comment: Comment, actor: User) -> Comment:
    _require_maintainer(actor, "unhide comments")
    comment = Comment.objects.select_for_update().get(pk=comment.pk)
    if not comment.is_hidden:
        raise Conflict("The comment is not hidden.")
    before = comment.hidden_reason
    comment.is_hidden, comment.hidden_by, comment.hidden_reason, comment.hidden_at = False, None, "", None
    comment.save(update_fields=["is_hidden", "hidden_by", "hidden_reason", "hidden_at"])
    audit_record(actor=actor, verb="comment.unhide", target=comment, before={"reason": before})
    return comment


# --- flags ---------------------------------------------------------------------------------------------------


@transaction.atomic
def flag_create(
    *,
    variant: Variant,
    reporter: User,
    kind: str,
    description: str = "",
    evidence_url: str = "",
    evidence_excerpt: str = "",
    benchmark: Benchmark | None = None,
) -> Flag:
    """Anyone signed in flags a published variant, with evidence: a URL or an excerpt (for contamination,
    e.g. benchmark samples found in the training data)."""
    errors: dict[str, list[str]] = {}
    if kind not in FlagKind.values:
        errors["kind"] = [f"One of: {', '.join(FlagKind.values)}."]
    evidence_url = (evidence_url or "").strip()
    evidence_excerpt = _clean_body(evidence_excerpt, field="evidence_excerpt", required=False)
    description = _clean_body(description, field="description", required=False)
    if not evidence_url and not evidence_excerpt:
        errors["evidence"] = ["Give evidence: an evidence_url, an evidence_excerpt, or both."]
    if evidence_url and not evidence_url.lower().startswith(("http://", "https://")):
        errors["evidence_url"] = ["Must be an http(s) URL."]
    if benchmark is not None and kind != FlagKind.BENCHMARK_CONTAMINATION:
        errors["benchmark"] = ["Only contamination flags name a benchmark."]
    if errors:
        raise ValidationFailed("Invalid flag.", errors=errors)
    variant = Variant.objects.select_for_update(no_key=True).get(pk=variant.pk)
    if not variant.is_public:
        raise Conflict("Only published variants can be flagged.")
    if Flag.objects.filter(
        variant=variant, reporter=reporter, kind=kind, status__in=[FlagStatus.OPEN, FlagStatus.AWAITING_AUTHOR]
    ).exists():
        raise Conflict("You already have an open flag of this kind on this variant.")
    revision = Revision.objects.filter(variant=variant, status=RS.PUBLISHED).order_by("-number").first()
    flag = Flag.objects.create(
        variant=variant,
        revision=revision,
        reporter=reporter,
        kind=kind,
        description=description,
        description_html=render_markdown(description),
        evidence_url=evidence_url,
        evidence_excerpt=evidence_excerpt,
        benchmark=benchmark,
    )
    audit_record(
        actor=reporter,
        verb="flag.create",
        target=flag,
        after={
            "variant": variant.full_name,
            "kind": kind,
            "benchmark": getattr(benchmark, "slug", None),
            "evidence_url": evidence_url or None,
        },
    )
    return flag


def _leaderboard_mark(flag: Flag, actor: Actor) -> None:
    from apps.leaderboards.services import leaderboard_mark_contaminated

    leaderboard_mark_contaminated(
        variant_id=flag.variant_id,
        flag_id=flag.pk,
        benchmark_slug=flag.benchmark.slug if flag.benchmark else None,
        actor=actor,
    )


def _leaderboard_clear(flag: Flag, actor: Actor) -> None:
    from apps.leaderboards.services import leaderboard_clear_contamination

    leaderboard_clear_contamination(flag_id=flag.pk, actor=actor)


@transaction.atomic
def flag_resolve(*, flag: Flag, actor: User, action: str, reason: str) -> Flag:
    """A moderator dismisses, confirms, confirms-and-unpublishes, or asks the author — always with a reason.
    A confirmed contamination flag marks the variant's results on every leaderboard; reversing it clears them."""
    _require_maintainer(actor, "resolve flags")
    if action not in FlagAction.values:
        raise ValidationFailed("Unknown action.", errors={"action": [f"One of: {', '.join(FlagAction.values)}."]})
    reason = _clean_body(reason, field="reason", required=True, what="A reason")
    flag = (
        Flag.objects.select_for_update(of=("self",))
        .select_related("variant__owner", "reporter", "benchmark")
        .get(pk=flag.pk)
    )
    target = ACTION_TARGET[FlagAction(action)]
    if not flag.can_transition_to(target):
        raise InvalidTransition(current=flag.status, target=target, allowed=list(flag.allowed_transitions()))
    before = {"status": flag.status, "resolution": flag.resolution}
    was_upheld = flag.status == FlagStatus.UPHELD
    flag.status, flag.resolution, flag.resolution_reason = target, action, reason
    flag.resolved_by, flag.resolved_at = actor, timezone.now()
    flag.save()
    audit_record(
        actor=actor,
        verb=f"flag.{action}",
        target=flag,
        before=before,
        after={"status": target, "resolution": action, "reason": reason},
    )
    if action == FlagAction.UNPUBLISH:
        for revision in Revision.objects.filter(variant=flag.variant, status=RS.PUBLISHED):
            revision_unpublish(revision=revision, actor=actor, reason=f"Flag {flag.pk} ({flag.kind}): {reason}")
    if flag.kind == FlagKind.BENCHMARK_CONTAMINATION:
        if target == FlagStatus.UPHELD:
            _leaderboard_mark(flag, actor)
        elif was_upheld:
            _leaderboard_clear(flag, actor)
    events.announce_flag_resolved(
        flag_id=flag.pk,
        variant=flag.variant,
        kind=flag.kind,
        action=action,
        status=flag.status,
        reason=reason,
        reporter=flag.reporter,
        actor=actor,
    )
    return flag


@transaction.atomic
def flag_respond(*, flag: Flag, actor: User, body: str) -> Flag:
    """The variant's owner answers a flag; the flag goes back to the moderators."""
    body = _clean_body(body, required=True, what="An answer")
    flag = Flag.objects.select_for_update(of=("self",)).select_related("variant__owner", "resolved_by").get(pk=flag.pk)
    if not can_edit_variant(actor, flag.variant):
        raise PermissionDenied("Only the variant's owner (or its organization's members) answers a flag on it.")
    if flag.status not in (FlagStatus.OPEN, FlagStatus.AWAITING_AUTHOR):
        raise Conflict(f"The flag is {flag.status}; it is no longer open for answers.")
    before = flag.status
    flag.author_response, flag.author_responded_at = body, timezone.now()
    if flag.status == FlagStatus.AWAITING_AUTHOR:
        flag.status = FlagStatus.OPEN
    flag.save()
    audit_record(
        actor=actor,
        verb="flag.respond",
        target=flag,
        before={"status": before},
        after={"status": flag.status, "response": body},
    )
    if flag.resolved_by is not None:
        from apps.notifications.choices import NotificationKind
        from apps.notifications.services import notify

        notify(
            users=[flag.resolved_by],
            kind=NotificationKind.FLAG_RESOLVED,
            title=f"{actor.username} answered the flag on {flag.variant.full_name}",
            body=body[:4000],
            url=f"/api/v1/flags/{flag.pk}/",
            data={"flag": flag.pk, "variant": flag.variant.full_name},
        )
    return flag

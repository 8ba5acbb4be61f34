"""Reads for the review workflow, each starting from what the user may see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apps.accounts.roles import is_maintainer
from apps.core.errors import NotFound
from apps.orgs.models import Membership
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision, Variant
from apps.registry.querysets import revision_visibility_q

from .choices import STANDING_DECISIONS, ReviewDecision
from .models import Comment, Flag, Review, ReviewAssignment

if TYPE_CHECKING:
    from apps.accounts.types import Viewer


def reviews_visible_to(user: Viewer) -> QuerySet[Review]:
    """Reviews on revisions the user may see (a draft's or submitted revision's reviews: its insiders only)."""
    condition = revision_visibility_q(user, "revision__")
    return Review.objects.all() if condition is None else Review.objects.filter(condition)


def _superseded() -> Exists:
    return Exists(
        Review.objects.filter(
            revision=OuterRef("revision"),
            reviewer=OuterRef("reviewer"),
            decision__in=STANDING_DECISIONS,
            id__gt=OuterRef("id"),
        )
    )


def reviews_of(revision: Revision) -> QuerySet[Review]:
    """A revision's reviews, oldest first, each marked `superseded` when the same reviewer decided again."""
    return (
        Review.objects.filter(revision=revision)
        .select_related("reviewer")
        .annotate(superseded=Q(decision__in=STANDING_DECISIONS) & _superseded())
        .order_by("id")
    )


def _standing_count(decision: str) -> Coalesce:
    later = Review.objects.filter(
        revision=OuterRef("revision"),
        reviewer=OuterRef("reviewer"),
        decision__in=STANDING_DECISIONS,
        id__gt=OuterRef("id"),
    )
    latest = (
        Review.objects.filter(revision=OuterRef("pk"), decision=decision)
        .exclude(Exists(later))
        .order_by()
        .values("revision")
        .annotate(n=Count("reviewer", distinct=True))
        .values("n")
    )
    return Coalesce(Subquery(latest, output_field=IntegerField()), Value(0))


def review_queue(user: Viewer | None, *, statuses: tuple[str, ...] = (RevisionStatus.SUBMITTED,)) -> QuerySet[Revision]:
    """Current revisions waiting for review, oldest submission first, without the user's own work."""
    qs = Revision.objects.filter(status__in=statuses).filter(
        Exists(Variant.objects.filter(pk=OuterRef("variant_id"), current_revision_id=OuterRef("pk")))
    )
    if user is not None and user.is_authenticated:
        # Not the user's own work: their namespace, their organizations' and the variants they collaborate on.
        mine = Membership.objects.filter(user=user).values("org__account_id")
        qs = (
            qs.exclude(variant__owner=user)
            .exclude(created_by=user)
            .exclude(variant__owner_id__in=mine)
            .exclude(variant__collaborators__user=user)
        )
    return (
        qs.select_related("variant__owner", "created_by")
        .prefetch_related(
            Prefetch("review_assignments", queryset=ReviewAssignment.objects.select_related("reviewer").order_by("id"))
        )
        .annotate(
            approvals=_standing_count(ReviewDecision.APPROVE),
            objections=_standing_count(ReviewDecision.REQUEST_CHANGES),
        )
        .order_by("submitted_at", "id")
    )


def comments_of(variant: Variant) -> QuerySet[Comment]:
    """Top-level comments, oldest first, with their replies prefetched (one query for all replies)."""
    replies = Comment.objects.filter(parent__isnull=False).select_related("author", "hidden_by").order_by("id")
    return (
        Comment.objects.filter(variant=variant, parent__isnull=True)
        .select_related("author", "hidden_by")
        .prefetch_related(Prefetch("replies", queryset=replies))
        .order_by("id")
    )


def comments_visible_to(user: Viewer) -> QuerySet[Comment]:
    """Comments on variants the user may see."""
    return Comment.objects.filter(variant__in=Variant.objects.visible_to(user))


def comment_for_user_or_404(user: Viewer, pk: int) -> Comment:
    comment = None
    if 0 < pk < 2**63:
        comment = (
            comments_visible_to(user).filter(pk=pk).select_related("author", "hidden_by", "variant__owner").first()
        )
    if comment is None:
        raise NotFound(f"No comment {pk}.")
    return comment


def flags_visible_to(user: Viewer) -> QuerySet[Flag]:
    """Moderators see every flag; others the flags they raised and the flags on their namespace's variants."""
    qs = Flag.objects.select_related("variant__owner", "reporter", "resolved_by", "benchmark", "revision")
    if is_maintainer(user):
        return qs
    if not user.is_authenticated:
        return qs.none()
    # The flags on variants of the user's own namespace, or of an organization they belong to.
    mine = Membership.objects.filter(user=user).values("org__account_id")
    return qs.filter(Q(reporter=user) | Q(variant__owner=user) | Q(variant__owner_id__in=mine))


def flag_for_user_or_404(user: Viewer, pk: int) -> Flag:
    flag = flags_visible_to(user).filter(pk=pk).first() if 0 < pk < 2**63 else None
    if flag is None:
        raise NotFound(f"No flag {pk}.")
    return flag

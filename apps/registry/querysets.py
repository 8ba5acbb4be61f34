"""Visibility lives in querysets: listing only what a user may see is the default.

The one rule, in its two forms (SQL for querysets, Python for rows already loaded):
- a variant is seen by everyone once one of its revisions is published, and otherwise only by its insiders;
- a revision is seen by everyone when it is published, and in every other state only by the variant's insiders;
- the insiders of a variant are its owner, reviewers and maintainers (organization members: see
  `_org_member_q` / `_is_org_member`, the place to add them when organizations exist).
Everything else (jobs, bundles, reviews, checklists, webhook fan-out) is visible iff its revision is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Q

from apps.accounts.roles import is_reviewer

from .choices import PUBLIC_STATUSES

if TYPE_CHECKING:
    from apps.accounts.types import Viewer

    from .models import Revision, Variant  # noqa: F401 - named in the QuerySet generics below


def _org_member_q(user: Viewer, variant_path: str) -> Q | None:
    """Organization members of the variant's namespace (SPEC §2, wave 2): None (nobody) until organizations
    exist. The org-member row of the authorization matrix (tests/test_authz_matrix.py) waits for this."""
    return None


def _is_org_member(user: Viewer, variant: Any) -> bool:
    """Python form of `_org_member_q`."""
    return False


def _insider_q(user: Viewer, variant_path: str) -> Q:
    """Rows whose variant (reached through `variant_path`, "" for the variant itself) the signed-in, non-staff
    `user` is an insider of."""
    owner = f"{variant_path}owner" if variant_path else "owner"
    q = Q(**{owner: user})
    member = _org_member_q(user, variant_path)
    return q if member is None else q | member


def sees_unpublished(user: Viewer, variant: Any) -> bool:
    """May `user` see the variant's unpublished revisions (and its live, unreviewed metadata)?"""
    if is_reviewer(user):
        return True
    if not user.is_authenticated:
        return False
    return variant.owner_id == user.pk or _is_org_member(user, variant)


def revision_visibility_q(user: Viewer, revision_path: str = "") -> Q | None:
    """The revision rule as a filter on rows reaching a revision through `revision_path` ("" for revisions,
    "revision__" for jobs, ...). None means no restriction (reviewers and maintainers)."""
    if is_reviewer(user):
        return None
    public = Q(**{f"{revision_path}status__in": PUBLIC_STATUSES})
    if user.is_authenticated:
        return public | _insider_q(user, f"{revision_path}variant__")
    return public


def revision_is_visible_to(user: Viewer, revision: Any) -> bool:
    """Python form of `revision_visibility_q` for a loaded revision (its variant loaded too)."""
    return revision.status in PUBLIC_STATUSES or sees_unpublished(user, revision.variant)


def revision_is_public(revision: Any) -> bool:
    return revision.status in PUBLIC_STATUSES


class VariantQuerySet(models.QuerySet["Variant"]):
    def visible_to(self, user: Viewer) -> VariantQuerySet:
        """Published variants for everyone; drafts and variants under review for their insiders only."""
        if is_reviewer(user):
            return self
        if user.is_authenticated:
            return self.filter(Q(is_public=True) | _insider_q(user, ""))
        return self.filter(is_public=True)

    def _declared(self, user: Viewer, live: Q, snapshot: Q) -> VariantQuerySet:
        if is_reviewer(user):
            return self.filter(live)
        if user.is_authenticated:
            insider = _insider_q(user, "")
            return self.filter((insider & live) | (~insider & snapshot))
        return self.filter(snapshot)

    def filter_declared(self, user: Viewer, field: str, lookup: str, value: Any) -> VariantQuerySet:
        """Filter on a metadata field as the user sees it: the live value for the variant's insiders, the last
        published snapshot's (`published_revision.metadata`, or that revision's status for `status`) for
        everyone else, so that a filter never finds a variant by an edit that is not published yet."""
        snapshot = "published_revision__status" if field == "status" else f"published_revision__metadata__{field}"
        return self._declared(user, Q(**{f"{field}__{lookup}": value}), Q(**{f"{snapshot}__{lookup}": value}))

    def filter_parent_declared(self, user: Viewer, full_name: str) -> VariantQuerySet:
        """Direct children of `owner/name`, by the parents each variant declares as the user sees it."""
        owner, _, name = full_name.partition("/")
        live = Q(parent_links__parent__owner__username__iexact=owner, parent_links__parent__name__iexact=name)
        # The snapshot lists parents by full name; the text of a JSON array holds each one in quotes, and names
        # hold no quotes, so this matches whole names only (on PostgreSQL and SQLite alike).
        snapshot = Q(published_revision__metadata__parents__icontains=f'"{owner}/{name}"')
        return self._declared(user, live, snapshot).distinct()

    def with_list_relations(self) -> VariantQuerySet:
        # The link model through the relation, not an import: models.py imports this module.
        links = self.model._meta.get_field("parent_links").related_model
        return self.select_related("owner", "current_revision", "published_revision").prefetch_related(
            models.Prefetch("parent_links", queryset=links._default_manager.select_related("parent__owner"))
        )

    def by_full_name(self, full_name: str) -> VariantQuerySet:
        owner, _, name = full_name.partition("/")
        return self.filter(owner__username__iexact=owner, name__iexact=name)


class RevisionQuerySet(models.QuerySet["Revision"]):
    def visible_to(self, user: Viewer) -> RevisionQuerySet:
        """A published revision is public; every other state only for the variant's insiders."""
        condition = revision_visibility_q(user)
        return self if condition is None else self.filter(condition)

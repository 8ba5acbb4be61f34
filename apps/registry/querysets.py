"""Visibility lives in querysets: listing only what a user may see is the default.

The one rule, in its two forms (SQL for querysets, Python for rows already loaded):
- a variant is seen by everyone once one of its revisions is published, and otherwise only by its insiders;
- a revision is seen by everyone when it is published, and in every other state only by the variant's insiders;
- the insiders of a variant are its owner (for an organization's variant: the organization's members), its
  collaborators, reviewers and maintainers (`insider_q`, and `sees_unpublished` for rows already loaded).
Everything else (jobs, bundles, reviews, checklists, webhook fan-out) is visible iff its revision is."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from django.db import connection, models
from django.db.models import Q

from apps.accounts.roles import is_reviewer

from .choices import PUBLIC_STATUSES

if TYPE_CHECKING:
    from apps.accounts.types import Viewer

    from .models import Revision, Variant  # noqa: F401 - named in the QuerySet generics below


@dataclass(frozen=True)
class Access:
    """What a signed-in user may reach beyond their own namespace: {namespace account id: role} of their
    organizations, and the ids of the variants they collaborate on."""

    namespaces: dict[int, str] = field(default_factory=dict)
    collaborations: frozenset[int] = frozenset()


@functools.cache
def _access_sql(vendor: str) -> str:
    """What `access_of` reads on the `vendor`'s database, one statement for a user id (given twice): the account
    ids and roles of the user's organizations (those with an account), then the variants the user collaborates
    on. Written once from the models' metadata: every request that checks visibility reads it, and building the
    ORM's union of two annotated value queries cost more than running it (issue 16's profile of a submission)."""
    from apps.orgs.models import Membership, Organization

    from .models import Collaborator

    quote = connection.ops.quote_name

    def column(model: Any, name: str) -> str:
        return quote(str(model._meta.get_field(name).column))

    membership, org, collab = (quote(m._meta.db_table) for m in (Membership, Organization, Collaborator))
    org_pk = quote(str(Organization._meta.pk.column if Organization._meta.pk else "id"))
    return (
        f"SELECT 'org', o.{column(Organization, 'account')}, m.{column(Membership, 'role')} "  # noqa: S608
        f"FROM {membership} m JOIN {org} o ON o.{org_pk} = m.{column(Membership, 'org')} "
        f"WHERE m.{column(Membership, 'user')} = %s AND o.{column(Organization, 'account')} IS NOT NULL "
        f"UNION ALL "
        f"SELECT 'collab', c.{column(Collaborator, 'variant')}, 'write' "
        f"FROM {collab} c WHERE c.{column(Collaborator, 'user')} = %s"
    )


def access_of(user: Viewer) -> Access:
    """The user's Access, read in one query and cached on the user object for the request."""
    if not user.is_authenticated:
        return Access()
    cached = getattr(user, "_mc_access", None)
    if cached is not None:
        return cast(Access, cached)
    with connection.cursor() as cursor:
        cursor.execute(_access_sql(connection.vendor), [user.pk, user.pk])
        rows = cursor.fetchall()
    namespaces: dict[int, str] = {}
    collaborations: set[int] = set()
    for what, pk, role in rows:
        if what == "org":
            namespaces[pk] = role
        else:
            collaborations.add(pk)
    access = Access(namespaces, frozenset(collaborations))
    user._mc_access = access
    return access


def forget_access(user: Viewer) -> None:
    """Drop the cached Access (after a membership or collaborator change in the same request)."""
    if hasattr(user, "_mc_access"):
        del user._mc_access


def _org_member_q(user: Viewer, variant_path: str) -> Q:
    """Variants of the organizations the user belongs to, and variants the user collaborates on (subqueries, so
    a variant is never repeated by the join)."""
    from apps.orgs.models import Membership

    from .models import Collaborator

    pk = cast(int, user.pk)
    return Q(**{f"{variant_path}owner_id__in": Membership.objects.filter(user_id=pk).values("org__account_id")}) | Q(
        **{f"{variant_path}id__in": Collaborator.objects.filter(user_id=pk).values("variant_id")}
    )


def _is_org_member(user: Viewer, variant: Any) -> bool:
    """Python form of `_org_member_q`."""
    access = access_of(user)
    return variant.owner_id in access.namespaces or variant.pk in access.collaborations


def insider_q(user: Viewer, variant_path: str) -> Q:
    """Rows whose variant (reached through `variant_path`, "" for the variant itself) the signed-in, non-staff
    `user` is an insider of."""
    owner = f"{variant_path}owner" if variant_path else "owner"
    return Q(**{owner: user}) | _org_member_q(user, variant_path)


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
        return public | insider_q(user, f"{revision_path}variant__")
    return public


def variant_is_visible_to(user: Viewer, variant: Any) -> bool:
    """Python form of `VariantQuerySet.visible_to` for a loaded variant (no query: owner_id is loaded)."""
    return bool(variant.is_public or sees_unpublished(user, variant))


def revision_is_visible_to(user: Viewer, revision: Any) -> bool:
    """Python form of `revision_visibility_q` for a loaded revision (its variant loaded too)."""
    return revision.status in PUBLIC_STATUSES or sees_unpublished(user, revision.variant)


def revision_is_public(revision: Any) -> bool:
    return revision.status in PUBLIC_STATUSES


def parents_prefetch(variant_model: Any) -> models.Prefetch[Any]:
    """The parent links of variants with each parent and its owner (what every representation shows), in the
    declared order."""
    # The link model through the relation, not an import: models.py imports this module.
    links = variant_model._meta.get_field("parent_links").related_model
    return models.Prefetch("parent_links", queryset=links._default_manager.select_related("parent__owner"))


class VariantQuerySet(models.QuerySet["Variant"]):
    def visible_to(self, user: Viewer) -> VariantQuerySet:
        """Published variants for everyone; drafts and variants under review for their insiders only."""
        if is_reviewer(user):
            return self
        if user.is_authenticated:
            return self.filter(Q(is_public=True) | insider_q(user, ""))
        return self.filter(is_public=True)

    def _declared(self, user: Viewer, live: Q, snapshot: Q) -> VariantQuerySet:
        if is_reviewer(user):
            return self.filter(live)
        if user.is_authenticated:
            insider = insider_q(user, "")
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

    def with_heads(self) -> VariantQuerySet:
        """The owner and the current and published revisions, joined (what permission checks and visibility
        read); no parents."""
        return self.select_related("owner", "current_revision", "published_revision")

    def with_list_relations(self) -> VariantQuerySet:
        return self.with_heads().prefetch_related(parents_prefetch(self.model))

    def by_full_name(self, full_name: str) -> VariantQuerySet:
        owner, _, name = full_name.partition("/")
        return self.filter(owner__username__iexact=owner, name__iexact=name)


class RevisionQuerySet(models.QuerySet["Revision"]):
    def visible_to(self, user: Viewer) -> RevisionQuerySet:
        """A published revision is public; every other state only for the variant's insiders."""
        condition = revision_visibility_q(user)
        return self if condition is None else self.filter(condition)

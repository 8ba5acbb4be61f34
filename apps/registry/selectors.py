"""Registry reads. Each starts from what the user may see; an object the user may not see is NotFound (404)."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Q, QuerySet, prefetch_related_objects

from apps.core.compiled import CompiledQuery
from apps.core.errors import NotFound

from . import hooks
from .models import Collaborator, Revision, Variant, VariantParent
from .querysets import (
    RevisionQuerySet,
    VariantQuerySet,
    insider_q,
    parents_prefetch,
    revision_is_visible_to,
    sees_unpublished,
    variant_is_visible_to,
)

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.accounts.types import Viewer

# Postgres integers: a larger revision number in a URL cannot exist (and must not reach the database).
MAX_REVISION_NUMBER = 2**31 - 1

# The variant fields a revision's snapshot (`Revision.metadata`, taken at submission) holds.
SNAPSHOT_FIELDS = (
    "relation",
    "license",
    "license_compat",
    "parameters",
    "precision",
    "architecture",
    "task",
    "tags",
    "summary",
    "hub_id",
    "card",
    "card_data",
)


# --- The access helpers: one per object, each starting from what the user may see -----------------------


def variants_visible_to(user: Viewer) -> VariantQuerySet:
    """Variants the user may see, with what lists and representations read (owner, revisions, parents)."""
    return Variant.objects.visible_to(user).with_list_relations()


def variant_for_user_or_404(user: Viewer, owner: str, name: str) -> Variant:
    """The variant `owner/name` as stored, if the user may see it; NotFound otherwise (no one learns it exists).

    Writes start from this row; to show it, pass it through `variant_as_seen_by` (which loads its parents).
    """
    # One row by its unique name, then the visibility rule in its Python form (`sees_unpublished`, the same rule as
    # `visible_to`): building the rule's SQL for one row cost more than the query itself (issue 16's profile). The
    # parents are not prefetched here: most callers (uploads, revisions, jobs, reviews) never read them, and that
    # prefetch cost more than the row itself.
    variant = variant_visible_by_name(user, f"{owner}/{name}")
    if variant is None:
        raise NotFound(f"No variant '{owner}/{name}'.")
    return variant


def variant_visible_by_name(
    user: Viewer, full_name: str, lookup: CompiledQuery[Variant] | None = None
) -> Variant | None:
    """The variant `owner/name` if the user may see it, else None: one row by its unique name, then the visibility
    rule in its Python form. `lookup` reads the row (default: with its owner and revisions joined); a caller that
    reads more of it passes its own, made by :func:`variant_by_name_lookup`."""
    owner, _, name = full_name.partition("/")
    variant = (lookup or _VARIANT_BY_NAME).first(owner, name)
    return variant if variant is not None and variant_is_visible_to(user, variant) else None


def variant_by_name_lookup(queryset: Callable[[], VariantQuerySet]) -> CompiledQuery[Variant]:
    """A compiled by-name read of the variants `queryset()` gives (with what the caller reads of them), for
    :func:`variant_visible_by_name`. At most one row (names are unique ignoring case): no ORDER BY."""
    return CompiledQuery(lambda owner, name: queryset().by_full_name(f"{owner}/{name}").order_by()[:1], str, str)


def revisions_visible_to(user: Viewer, variant: Variant | None = None) -> RevisionQuerySet:
    """Revisions the user may see (published ones, and every state for the variant's insiders), by number."""
    qs = Revision.objects.visible_to(user)
    if variant is not None:
        qs = qs.filter(variant=variant)
    return qs.prefetch_related("artifacts").order_by("number")


# The hot lookups by name and number, compiled once (apps.core.compiled: building them cost more than running
# them). Each is unique (names ignoring case; a variant's revision numbers): no ORDER BY.
_VARIANT_BY_NAME: CompiledQuery[Variant] = variant_by_name_lookup(lambda: Variant.objects.with_heads())
_REVISION_BY_NAME: CompiledQuery[Revision] = CompiledQuery(
    lambda owner, name, number: (
        Revision.objects.select_related(
            "created_by", "variant__owner", "variant__current_revision", "variant__published_revision"
        )
        .filter(variant__owner__username__iexact=owner, variant__name__iexact=name, number=number)
        .order_by()
    ),
    str,
    str,
    int,
)
_REVISION_OF_VARIANT: CompiledQuery[Revision] = CompiledQuery(
    lambda variant_id, number: (
        Revision.objects.select_related("created_by").filter(variant_id=variant_id, number=number).order_by()
    ),
    int,
    int,
)


def revision_for_user_or_404(
    user: Viewer,
    *,
    number: int,
    variant: Variant | None = None,
    owner: str | None = None,
    name: str | None = None,
    with_artifacts: bool = True,
) -> Revision:
    """Revision `number` of a variant (given, or named `owner/name`) if the user may see both; NotFound otherwise.
    A draft of a published variant is a 404 to everyone but its insiders. `with_artifacts=False` for callers that
    change the revision and read it again (or never read its artifacts)."""
    revision = None
    if 0 < number <= MAX_REVISION_NUMBER:
        if variant is None:
            # By name: the revision with its variant (and the variant's owner and revisions) in one query; the
            # variant's own rule is checked below, and a miss goes the long way to say what is missing.
            revision = _REVISION_BY_NAME.first(str(owner), str(name), number)
        else:
            revision = _REVISION_OF_VARIANT.first(variant.pk, number)
        if revision is not None and with_artifacts:
            prefetch_related_objects([revision], "artifacts")
    if variant is None:
        if revision is None or not variant_is_visible_to(user, revision.variant):
            variant = variant_for_user_or_404(user, str(owner), str(name))  # the variant's 404 if it is that
            raise NotFound(f"{variant.full_name} has no revision {number}.")
        variant = revision.variant
    if revision is not None:
        revision.variant = variant  # the row we already have
    # The revision rule in its Python form (the same as `revisions_visible_to`), on the one row.
    if revision is None or not revision_is_visible_to(user, revision):
        raise NotFound(f"{variant.full_name} has no revision {number}.")
    return revision


def revision_current_for_user(user: Viewer, variant: Variant) -> Revision | None:
    """The revision a user means by "the current one": the newest for insiders, the last published for others."""
    if sees_unpublished(user, variant):
        return variant.current_revision
    return variant.published_revision


def revision_declared(revision: Revision, field: str) -> Any:
    """A variant field as a revision declares it: its snapshot (`metadata`, taken at submission) when it has the
    field, else (a draft, which changes with the variant) the variant as it stands."""
    meta = revision.metadata if isinstance(revision.metadata, dict) else {}
    return meta[field] if field in meta else getattr(revision.variant, field)


def parent_visible(user: Viewer, parent: Variant) -> bool:
    """For serializers: name a parent only if the user could open it (no extra query: owner_id is loaded)."""
    return variant_is_visible_to(user, parent)


# --- What a reader sees of a variant: the public snapshot ---------------------------------------------------


def snapshot_parent_ids(user: Viewer, variant: Variant) -> list[int] | None:
    """The parents the user sees declared, when that is the published snapshot's list; None when the user sees
    the variant as it stands (an insider, or a snapshot from before parent ids were recorded)."""
    # Insiders first: they see the variant as it stands, and asking costs no query for the published row.
    if variant.published_revision_id is None or sees_unpublished(user, variant):
        return None
    published = variant.published_revision
    if published is None:
        return None
    ids = (published.metadata or {}).get("parent_ids")
    return [int(i) for i in ids] if isinstance(ids, list) else None


def links_as_prefetched(links: list[VariantParent]) -> QuerySet[VariantParent]:
    """A queryset already evaluated to `links`, as prefetch_related leaves one (so `parent_links.all()` reads it)."""
    qs = VariantParent.objects.none()
    qs._result_cache = links
    qs._prefetch_done = True  # type: ignore[attr-defined]
    return qs


def _public_view(variant: Variant, parents: dict[int, Variant]) -> Variant:
    """An unsaved copy of `variant` that says what its last published revision says: the snapshot's fields and
    parents, `status` and `current_revision` of that revision, and its publication time as `updated_at`."""
    published = variant.published_revision
    assert published is not None
    meta = published.metadata or {}
    view = copy.copy(variant)  # Model.__getstate__ copies _state and its related-object cache
    view._prefetched_objects_cache = dict(getattr(variant, "_prefetched_objects_cache", {}))  # type: ignore[attr-defined]
    for field in SNAPSHOT_FIELDS:
        if field in meta:
            setattr(view, field, meta[field])
    view.status = published.status
    view.current_revision = published
    view.updated_at = published.status_changed_at or variant.updated_at
    ids = meta.get("parent_ids")
    if isinstance(ids, list):
        view._prefetched_objects_cache["parent_links"] = links_as_prefetched(  # type: ignore[attr-defined]
            [
                VariantParent(child_id=variant.pk, parent=parents[int(pid)], position=i)
                for i, pid in enumerate(ids)
                if int(pid) in parents
            ]
        )
    view.is_snapshot = True  # type: ignore[attr-defined]
    return view


def variants_as_seen_by(user: Viewer, variants: Sequence[Variant], *, with_parents: bool = True) -> list[Variant]:
    """Each variant as the user may see it: as it stands for its insiders (owner, reviewers, maintainers), and
    for everyone else as its last published revision's snapshot (card, licence, parents, metadata), so that
    edits to a newer draft stay private until that draft is published.

    Needs `published_revision` loaded (`with_heads()` does it). Costs at most two queries whatever the number of
    variants: the parents of those whose parents are not prefetched yet (unless `with_parents=False`, for callers
    that do not show them), and the snapshot parents that are not among the live ones."""
    unloaded = [v for v in variants if "parent_links" not in getattr(v, "_prefetched_objects_cache", {})]
    if unloaded and with_parents:
        prefetch_related_objects(unloaded, parents_prefetch(Variant))
    public = {v.pk: v for v in variants if v.published_revision_id is not None and not sees_unpublished(user, v)}
    known: dict[int, Variant] = {}
    wanted: set[int] = set()
    for variant in public.values():
        ids = snapshot_parent_ids(user, variant)
        if ids:
            wanted.update(ids)
            for link in getattr(variant, "_prefetched_objects_cache", {}).get("parent_links", ()):
                known[link.parent_id] = link.parent
    missing = wanted - set(known)
    if missing:
        known.update({v.pk: v for v in Variant.objects.filter(pk__in=missing).select_related("owner")})
    return [_public_view(v, known) if v.pk in public else v for v in variants]


def variant_as_seen_by(user: Viewer, variant: Variant) -> Variant:
    return variants_as_seen_by(user, [variant])[0]


def variants_resolve(refs: Iterable[str], user: Viewer) -> tuple[list[Variant], list[str]]:
    """Resolve `owner/name` or Hub ids (`meta-llama/Llama-3.1-8B`, via Variant.hub_id) among visible variants.

    Returns the variants in the order of `refs` and the refs that matched nothing."""
    refs = [r.strip() for r in refs]
    cond = Q()
    for ref in refs:
        owner, _, name = ref.partition("/")
        cond |= Q(owner__username__iexact=owner, name__iexact=name) | Q(hub_id__iexact=ref)
    # The names' rows, then the visibility rule in its Python form on them (as `variant_for_user_or_404` does):
    # the rule's SQL cost more to build than the lookup itself.
    rows = list(Variant.objects.filter(cond).select_related("owner").order_by()) if refs else []
    candidates = [v for v in rows if variant_is_visible_to(user, v)]
    found: list[Variant] = []
    missing: list[str] = []
    for ref in refs:
        low = ref.lower()
        # Our own full name wins over a Hub id that happens to spell the same.
        match = next((v for v in candidates if v.full_name.lower() == low), None) or next(
            (v for v in candidates if v.hub_id and v.hub_id.lower() == low), None
        )
        if match is None:
            missing.append(ref)
        else:
            found.append(match)
    return found, missing


# --- Lineage ---------------------------------------------------------------------------------
# One recursive CTE walks the parent links both ways; it is plain SQL that PostgreSQL and SQLite both run.
# UNION (not UNION ALL) drops repeated edges, so the walk ends even on a diamond-shaped DAG.


def _edges_sql(up: bool, down: bool) -> str:
    # Only the table name is interpolated (from model metadata); the variant id is a bound parameter.
    table = connection.ops.quote_name(VariantParent._meta.db_table)
    parts = []
    ctes = []
    if up:
        ctes.append(f"""up(child_id, parent_id) AS (
            SELECT child_id, parent_id FROM {table} WHERE child_id = %s
            UNION
            SELECT e.child_id, e.parent_id FROM {table} e JOIN up ON e.child_id = up.parent_id)""")  # noqa: S608
        parts.append("SELECT 'a', child_id, parent_id FROM up")
    if down:
        ctes.append(f"""down(child_id, parent_id) AS (
            SELECT child_id, parent_id FROM {table} WHERE parent_id = %s
            UNION
            SELECT e.child_id, e.parent_id FROM {table} e JOIN down ON e.parent_id = down.child_id)""")  # noqa: S608
        parts.append("SELECT 'd', child_id, parent_id FROM down")
    return "WITH RECURSIVE " + ", ".join(ctes) + " " + " UNION ALL ".join(parts)


def lineage_edges(
    variant_id: int, *, up: bool = True, down: bool = True
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(ancestor edges, descendant edges) as (child_id, parent_id) pairs, in one query."""
    params = [variant_id] * (int(up) + int(down))
    with connection.cursor() as cursor:
        cursor.execute(_edges_sql(up, down), params)
        rows = cursor.fetchall()
    return ([(c, p) for kind, c, p in rows if kind == "a"], [(c, p) for kind, c, p in rows if kind == "d"])


def _depths(start: int, edges: list[tuple[int, int]], *, upward: bool) -> dict[int, int]:
    """Shortest number of links from `start` to every node reached through `edges` (breadth first)."""
    nxt: dict[int, list[int]] = {}
    for child, parent in edges:
        a, b = (child, parent) if upward else (parent, child)
        nxt.setdefault(a, []).append(b)
    depth = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for other in nxt.get(node, ()):
            if other not in depth:
                depth[other] = depth[node] + 1
                queue.append(other)
    depth.pop(start, None)
    return depth


def ancestor_depths(variant_id: int) -> dict[int, int]:
    up, _ = lineage_edges(variant_id, down=False)
    return _depths(variant_id, up, upward=True)


def descendant_ids(variant_id: int) -> set[int]:
    _, down = lineage_edges(variant_id, up=False)
    return set(_depths(variant_id, down, upward=False))


def _node(v: Variant, depth: int, parents: list[str]) -> dict[str, Any]:
    return {
        "full_name": v.full_name,
        "relation": v.relation,
        "depth": depth,
        "parents": parents,
        "license": v.license,
        "status": v.status,
        "parameters": v.parameters,
        "precision": v.precision,
    }


def variant_lineage(*, variant: Variant, user: Viewer) -> dict[str, Any]:
    """Ancestors and descendants with their relations, in three queries whatever the depth (more only when a
    variant the user sees as its published snapshot names parents its current draft has dropped).

    Each variant is shown as the user may see it (`variants_as_seen_by`): its published snapshot's relation,
    licence and parents unless the user is an insider. Variants the user may not see are left out, with the
    links that touch them."""
    up, down = lineage_edges(variant.pk)
    live = set(up) | set(down)
    loaded: dict[int, Variant] = {variant.pk: variant}
    rows = Variant.objects.visible_to(user).select_related("owner", "published_revision")
    declared: dict[int, list[int]] = {}  # snapshot parents, for the variants shown as their snapshot

    def nodes() -> set[int]:
        return {i for edge in live for i in edge}

    explored: set[int] = set(loaded)
    pending = nodes() - explored
    for _ in range(8):  # each round follows snapshot parents the live walk did not reach; lineages are shallow
        if pending:
            loaded.update({v.pk: v for v in rows.filter(pk__in=pending)})
            explored |= pending
        for node in loaded.values():
            if node.pk not in declared:
                ids = snapshot_parent_ids(user, node)
                if ids is not None:
                    declared[node.pk] = ids
        reached = {p for ids in declared.values() for p in ids} - nodes() - explored
        if not reached:
            break
        for parent_id in sorted(reached):
            live.update(lineage_edges(parent_id, down=False)[0])
        pending = (nodes() | reached) - explored
    edges = {(c, p) for c, p in live if c not in declared}
    edges.update((c, p) for c, ids in declared.items() for p in ids)
    anc_depth = _depths(variant.pk, sorted(edges), upward=True)
    desc_depth = _depths(variant.pk, sorted(edges), upward=False)
    visible = {v.pk: v for v in variants_as_seen_by(user, list(loaded.values()), with_parents=False)}
    variant = visible[variant.pk]
    ordered = sorted(edges)

    def parents_of(node_id: int) -> list[str]:
        return [visible[p].full_name for c, p in ordered if c == node_id and p in visible]

    ancestors = [_node(visible[i], d, parents_of(i)) for i, d in anc_depth.items() if i in visible]
    descendants = [_node(visible[i], d, parents_of(i)) for i, d in desc_depth.items() if i in visible]
    ancestors.sort(key=lambda n: (n["depth"], n["full_name"]))
    descendants.sort(key=lambda n: (n["depth"], n["full_name"]))
    return {
        "variant": variant.full_name,
        "relation": variant.relation,
        "parents": parents_of(variant.pk),
        "ancestors": ancestors,
        "descendants": descendants,
        "edges": [
            {"child": visible[c].full_name, "parent": visible[p].full_name, "relation": visible[c].relation}
            for c, p in ordered
            if c in visible and p in visible
        ],
    }


# --- Results for card export ------------------------------------------------------------------


def verified_results(variant: Variant, user: Viewer) -> list[dict[str, Any]]:
    """Verified benchmark results of the variant on revisions the user may see, newest first, one per benchmark:
    what the benchmark engine reports through ``hooks.register_verified_results`` ([] when no engine is there).

    The registry asks and the engine answers, so the registry never reads the engine's tables."""
    return hooks.verified_results(variant, user)


# --- The people of a namespace ------------------------------------------------------------------------------


def namespace_people(owner: User) -> list[User]:
    """Who speaks for a namespace: the user themself, or an organization's members (admins first). Notifications
    about a variant go to them; the organization's account itself never reads any."""
    if not getattr(owner, "is_organization", False):
        return [owner]
    from apps.orgs.models import Membership

    return [
        m.user
        for m in Membership.objects.filter(org__account=owner, user__is_active=True)
        .select_related("user")
        .order_by("role", "user__username")
    ]


def namespace_people_ids(owner: User) -> list[int]:
    return [u.pk for u in namespace_people(owner)]


def namespaces_people_ids(owners: Iterable[User]) -> dict[int, list[int]]:
    """`namespace_people_ids` of several namespaces, {owner id: ids}, with one query for all the organizations
    among them (none when there are none), in the same order as one call per namespace gives."""
    found: dict[int, list[int]] = {}
    orgs: set[int] = set()
    for owner in owners:
        if getattr(owner, "is_organization", False):
            orgs.add(owner.pk)
            found[owner.pk] = []
        else:
            found[owner.pk] = [owner.pk]
    if orgs:
        from apps.orgs.models import Membership

        for account_id, user_id in (
            Membership.objects.filter(org__account_id__in=orgs, user__is_active=True)
            .order_by("role", "user__username")
            .values_list("org__account_id", "user_id")
        ):
            found[account_id].append(user_id)
    return found


def variant_collaborators(variant: Variant) -> QuerySet[Collaborator]:
    """A variant's collaborators, by username."""
    return Collaborator.objects.filter(variant=variant).select_related("user", "added_by").order_by("user__username")


def variants_of_my_namespaces(user: Viewer) -> VariantQuerySet:
    """The variants a signed-in user works on: their own, their organizations' and those they collaborate on."""
    if not user.is_authenticated:
        return variants_visible_to(user).none()
    return variants_visible_to(user).filter(insider_q(user, ""))  # the insiders' rule, reviewers' reach left out

"""Registry reads. Each starts from what the user may see; an object the user may not see is NotFound (404)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from apps.accounts.roles import is_reviewer
from apps.core.errors import NotFound

from .models import Revision, Variant, VariantParent
from .querysets import VariantQuerySet


def variants_for_api(user: Any) -> VariantQuerySet:
    return Variant.objects.visible_to(user).with_list_relations()


def variant_get(*, user: Any, owner: str, name: str) -> Variant:
    """The variant `owner/name` if the user may see it; NotFound otherwise (no one learns it exists)."""
    variant = variants_for_api(user).by_full_name(f"{owner}/{name}").first()
    if variant is None:
        raise NotFound(f"No variant '{owner}/{name}'.")
    return variant


def revisions_for_api(*, user: Any, variant: Variant) -> QuerySet[Revision]:
    return (Revision.objects.visible_to(user).filter(variant=variant)
            .prefetch_related("artifacts").order_by("number"))


def revision_get(*, user: Any, variant: Variant, number: int) -> Revision:
    revision = revisions_for_api(user=user, variant=variant).filter(number=number).first()
    if revision is None:
        raise NotFound(f"{variant.full_name} has no revision {number}.")
    return revision


def parent_visible(user: Any, parent: Variant) -> bool:
    """For serializers: name a parent only if the user could open it (no extra query: owner_id is loaded)."""
    if parent.is_public or is_reviewer(user):
        return True
    return bool(getattr(user, "is_authenticated", False) and parent.owner_id == user.pk)


def variants_resolve(refs: Iterable[str], user: Any) -> tuple[list[Variant], list[str]]:
    """Resolve `owner/name` or Hub ids (`meta-llama/Llama-3.1-8B`, via Variant.hub_id) among visible variants.

    Returns the variants in the order of `refs` and the refs that matched nothing."""
    refs = [r.strip() for r in refs]
    cond = Q()
    for ref in refs:
        owner, _, name = ref.partition("/")
        cond |= Q(owner__username__iexact=owner, name__iexact=name) | Q(hub_id__iexact=ref)
    candidates = list(Variant.objects.visible_to(user).filter(cond).select_related("owner")) if refs else []
    found: list[Variant] = []
    missing: list[str] = []
    for ref in refs:
        low = ref.lower()
        # Our own full name wins over a Hub id that happens to spell the same.
        match = next((v for v in candidates if v.full_name.lower() == low), None) or next(
            (v for v in candidates if v.hub_id and v.hub_id.lower() == low), None)
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


def lineage_edges(variant_id: int, *, up: bool = True, down: bool = True
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
    return {"full_name": v.full_name, "relation": v.relation, "depth": depth, "parents": parents,
            "license": v.license, "status": v.status, "parameters": v.parameters, "precision": v.precision}


def variant_lineage(*, variant: Variant, user: Any) -> dict[str, Any]:
    """Ancestors and descendants with their relations, in three queries whatever the depth.

    Variants the user may not see are left out, with the links that touch them."""
    up, down = lineage_edges(variant.pk)
    anc_depth = _depths(variant.pk, up, upward=True)
    desc_depth = _depths(variant.pk, down, upward=False)
    ids = set(anc_depth) | set(desc_depth)
    visible = {v.pk: v for v in Variant.objects.visible_to(user).filter(pk__in=ids).select_related("owner")}
    visible[variant.pk] = variant
    edges = sorted(set(up) | set(down))

    def parents_of(node_id: int) -> list[str]:
        return [visible[p].full_name for c, p in edges if c == node_id and p in visible]

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
        "edges": [{"child": visible[c].full_name, "parent": visible[p].full_name, "relation": visible[c].relation}
                  for c, p in edges if c in visible and p in visible],
    }


# --- Results for card export ------------------------------------------------------------------

def verified_results(variant: Variant) -> list[dict[str, Any]]:
    """Verified benchmark results of the variant, newest first, one per benchmark.

    The one place the registry reads the benchmark engine's tables, so the engine can change its models
    and adjust only this function. Returns [] when there is none (or no engine installed)."""
    from django.apps import apps as django_apps

    try:
        job_result = django_apps.get_model("benchmarks", "JobResult")
    except LookupError:
        return []
    rows = (job_result.objects
            .filter(verified=True, job__status="succeeded", job__revision__variant=variant)
            .select_related("job__benchmark", "job__revision")
            .order_by("-job__revision__number", "-job__finished_at", "-id"))
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for row in rows:
        bench = row.job.benchmark
        key = (bench.slug, row.job.benchmark_version)
        if key in seen:
            continue
        seen.add(key)
        out.append({"benchmark": bench.slug, "benchmark_name": bench.name, "benchmark_version": key[1],
                    "task": bench.task, "metrics": dict(row.metrics), "job_id": row.job_id,
                    "revision": row.job.revision.number, "primary_metric": bench.primary_metric})
    return out


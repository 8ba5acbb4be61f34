"""The variant row locks every leaderboards writer takes, all at once and in one order, and what writers read
of a locked variant (its board columns as its last published revision declares them, never its card)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import F, Q

from apps.registry.models import Variant, VariantParent

# What the services read from a locked variant: its board columns and its full name, never its card.
_VARIANT_FIELDS = (
    "id",
    "owner",
    "owner__username",
    "name",
    "relation",
    "precision",
    "license",
    "task",
    "parameters",
    "is_public",
    "published_revision",
)
# Board columns a public variant shows as its last published revision declares them (Revision.metadata), so
# that an owner's unreviewed draft edits never reach the public boards or their filters.
_PUBLISHED_COLUMNS = ("relation", "precision", "license", "task", "parameters")


def _published_columns() -> dict[str, F]:
    """The snapshot's board columns and parents, read as single JSON keys (never the whole metadata, which holds
    the card)."""
    return {
        f"published_{name}": F(f"published_revision__metadata__{name}")
        for name in (*_PUBLISHED_COLUMNS, "parent_ids", "parents")
    }


def declared_parents(variant: Variant) -> list[list[Any]] | None:
    """[[parent id, "owner/name"], ...] by name as the variant's last published revision declares them, or None
    (not published, or a snapshot without parent ids: the live links stand)."""
    if variant.published_revision_id is None:
        return None
    ids, names = getattr(variant, "published_parent_ids", None), getattr(variant, "published_parents", None)
    if not isinstance(ids, list) or not isinstance(names, list) or len(ids) != len(names):
        return None
    return sorted(([int(pid), str(name)] for pid, name in zip(ids, names, strict=True)), key=lambda p: p[1])


def lock_variants(variant_ids: Iterable[int]) -> dict[int, Variant]:
    """Lock the variants together with their children, in one statement ordered by pk; return the variants.

    Every leaderboards write serializes on the row locks of the variants whose rows it writes: a variant's
    own (its entries and suite scores) and its children's (their `parents` columns carry its scores). All of
    them are taken at once, in one global order, so two writers can never wait on each other in a cycle.
    Locking a batch first and its children afterwards would not be safe once a writer holds several unrelated
    variants: batch A = {1, 5} and batch B = {3, 4}, with the links 5 -> 3 and 4 -> 5, would each hold the row
    the other's child step waits for. (With one variant per transaction that order was safe: it follows the
    DAG.) The one lock taken later is a child linked after this statement (`_propagate_to_children`), a rare
    case in which PostgreSQL may report a deadlock and roll one writer back instead of hanging; hooks are
    idempotent and `leaderboard_rebuild` repairs anything lost. The same holds when a caller already holds a
    variant's lock: `reviews.flag_resolve` (unpublish) locks the variant before `leaderboard_mark_contaminated`
    locks it with its children, so only a child with a smaller pk than that variant could invert the order.

    `of=("self",)`: the owner row joined for the name stays unlocked (owners are shared by many variants and
    would be locked in join order); `no_key`: like the registry's, the lock does not block inserts that only
    reference the variant (revisions, marks, child links)."""
    ids = sorted(set(variant_ids))
    if not ids:
        return {}
    children = VariantParent.objects.filter(parent_id__in=ids).values("child_id")
    locked = (
        Variant.objects.select_for_update(of=("self",), no_key=True)
        .select_related("owner")
        .only(*_VARIANT_FIELDS)
        .annotate(**_published_columns())
        .filter(Q(pk__in=ids) | Q(pk__in=children))
        .order_by("pk")
    )
    wanted = set(ids)
    return {variant.pk: variant for variant in locked if variant.pk in wanted}


def lock_variant(variant_id: int) -> Variant | None:
    return lock_variants([variant_id]).get(variant_id)

"""Lineage: the lock that serialises parent changes, the parent links (no cycle), and the licence compatibility
carried down the lineage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.utils import timezone

from apps.core.errors import ValidationFailed

from ..licenses import license_compat
from ..models import Variant, VariantParent
from ..selectors import ancestor_depths, descendant_ids, links_as_prefetched

# Any constant works; it only has to be the same for every process touching lineage.
LINEAGE_LOCK_KEY = 0x6D630001


def lock_lineage() -> None:
    """Serialise parent changes: two concurrent edits could each pass the cycle check and close a cycle
    together, and row locks on the two variants do not cover every path between them. Transaction-scoped and
    re-entrant, so taking it twice in one transaction is harmless."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LINEAGE_LOCK_KEY])
    # SQLite runs write transactions one at a time (IMMEDIATE mode), which already serialises them.


def set_parents(variant: Variant, parents: Sequence[Variant], *, fresh: bool = False) -> None:
    """Replace the parent links, in the declared order (`fresh`: a variant just created, which has none). No cycle
    check: see `parents_replace`. The new links are left as the variant's prefetched parents."""
    if not fresh:
        VariantParent.objects.filter(child=variant).delete()
    links = VariantParent.objects.bulk_create(
        [VariantParent(child=variant, parent=p, position=i) for i, p in enumerate(parents)]
    )
    if all(p.__class__ is Variant and "owner" in p._state.fields_cache for p in parents):
        variant._prefetched_objects_cache = {  # type: ignore[attr-defined]
            **getattr(variant, "_prefetched_objects_cache", {}),
            "parent_links": links_as_prefetched(links),
        }
    else:  # a representation reads them again, with their owners
        getattr(variant, "_prefetched_objects_cache", {}).pop("parent_links", None)


def parents_replace(variant: Variant, parents: Sequence[Variant]) -> None:
    """Give `variant` these parents, in this order, refusing any that derives from it (a cycle). Takes the
    lineage lock (already held when the caller asked for parents; card metadata can bring them too)."""
    lock_lineage()
    below = descendant_ids(variant.pk)
    looping = [p.full_name for p in parents if p.pk in below]
    if looping:
        raise ValidationFailed(
            "That would make the lineage a cycle.",
            errors={
                "parents": [
                    f"{', '.join(looping)} derive(s) from {variant.full_name}; a variant cannot descend from itself."
                ]
            },
        )
    set_parents(variant, parents)


def license_compat_document(variant: Variant) -> dict[str, Any]:
    """The licence compatibility of `variant` with its ancestors' licences, as stored in `license_compat`."""
    depths = ancestor_depths(variant.pk)
    ancestors = [
        {"variant": a.full_name, "license": a.license, "depth": depths[a.pk]}
        for a in Variant.objects.filter(pk__in=list(depths)).select_related("owner")
    ]
    doc = license_compat(license_id=variant.license, name=variant.name, ancestors=ancestors)
    doc["computed_at"] = timezone.now().isoformat()
    return doc


def variant_license_compat_refresh(*, variant: Variant, descendants: bool = False) -> dict[str, Any]:
    """Recompute and store `license_compat` (read by the checklist); with `descendants`, for every variant
    below too, since a licence's terms are carried down the lineage."""
    variant.license_compat = compat = license_compat_document(variant)
    variant.save(update_fields=["license_compat", "updated_at"])
    if descendants:
        for child in Variant.objects.filter(pk__in=descendant_ids(variant.pk)).select_related("owner"):
            child.license_compat = license_compat_document(child)
            child.save(update_fields=["license_compat", "updated_at"])
    return compat

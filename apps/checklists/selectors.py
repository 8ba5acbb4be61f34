"""Checklist reads. A checklist is seen by whoever may see its revision: callers resolve the revision with
apps.registry.selectors.revision_for_user_or_404 (a 404 for a revision the user may not see) and read its
checklist here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Count, Prefetch, QuerySet

from apps.core.errors import NotFound
from apps.registry.models import Revision, Variant

from .models import Checklist, ChecklistItem, ChecklistTemplate, TemplateItem

if TYPE_CHECKING:
    from apps.accounts.types import Viewer


def checklist_for_revision(revision: Revision) -> Checklist | None:
    return (
        Checklist.objects.select_related("template", "revision__variant__owner")
        .prefetch_related(
            Prefetch(
                "items",
                queryset=ChecklistItem.objects.select_related("item", "answered_by", "verified_by").order_by(
                    "item__position", "id"
                ),
            )
        )
        .filter(revision=revision)
        .first()
    )


def checklist_row(revision: Revision) -> Checklist | None:
    """The checklist without its items (badges, single items)."""
    return Checklist.objects.select_related("template").filter(revision=revision).first()


def checklist_item(checklist: Checklist, key: str) -> ChecklistItem:
    row = (
        ChecklistItem.objects.select_related("item", "answered_by", "verified_by")
        .filter(checklist=checklist, item__key=key)
        .first()
    )
    if row is None:
        raise NotFound(f"The checklist has no item '{key}'.")
    return row


def badge_revision_for_variant(*, user: Viewer, variant: Variant) -> Revision | None:
    """The revision a README badge shows: the current one if the user may see it and it has a checklist,
    otherwise the newest such revision (a public reader sees the published one while a draft is current)."""
    visible = Revision.objects.visible_to(user).filter(variant=variant, checklist__isnull=False)
    if variant.current_revision_id is not None:
        current = visible.filter(pk=variant.current_revision_id).select_related("checklist").first()
        if current is not None:
            return current
    return visible.select_related("checklist").order_by("-number").first()


def templates_for_api() -> QuerySet[ChecklistTemplate]:
    return (
        ChecklistTemplate.objects.select_related("created_by")
        .prefetch_related(Prefetch("items", queryset=TemplateItem.objects.order_by("position", "id")))
        .annotate(instance_count=Count("instances", distinct=True))
        .order_by("slug", "-version")
    )


def template_get(*, slug: str, version: int | None = None) -> ChecklistTemplate:
    qs = templates_for_api().filter(slug=slug)
    template = (qs.filter(version=version) if version is not None else qs).order_by("-version").first()
    if template is None:
        raise NotFound(f"No checklist template '{slug}'" + (f" version {version}." if version else "."))
    return template

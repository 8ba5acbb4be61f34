"""The moderation console's own pages (the overview) and the registry's consoles.

Registry models are registered by `registration.complete_admin()` (from AppConfig.ready, after every app's
admin.py has loaded), and only if their own app registered nothing."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from apps.accounts.console import MaintainerConsoleMixin, ReadOnlyInline
from apps.benchmarks.models import BenchmarkJob
from apps.registry.models import Artifact, Revision, Variant, VariantParent
from apps.reviews.admin_actions import REVISION_ACTIONS
from apps.reviews.models import Comment, Flag, Review, ReviewAssignment

from .models import ModerationOverview
from .selectors import moderation_overview


@admin.register(ModerationOverview)
class ModerationOverviewAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    """Jobs per state and queue, the oldest queued job's age, failures in the last 24 h, the review pipeline,
    open flags and webhook health, on one page."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Moderation overview",
            "overview": moderation_overview(),
            "opts": self.model._meta,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/moderation/overview.html", context)


# --- registry consoles (registered in registration.py when the registry registers none) -------------------------


class ArtifactInline(ReadOnlyInline):
    model = Artifact
    fields = ["path", "format", "size_bytes", "sha256", "uri", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`


class ReviewInline(ReadOnlyInline):
    model = Review
    fields = ["reviewer", "decision", "body", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`


class ReviewAssignmentInline(ReadOnlyInline):
    model = ReviewAssignment
    fields = ["reviewer", "assigned_by", "auto", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`


class JobInline(ReadOnlyInline):
    model = BenchmarkJob
    fields = ["benchmark", "status", "queue", "attempts", "submitted_by", "created_at", "finished_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`
    ordering = ["-id"]


class RevisionInline(ReadOnlyInline):
    model = Revision
    fields = ["number", "status", "created_by", "submitted_at", "status_changed_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`
    fk_name = "variant"


class ParentInline(ReadOnlyInline):
    model = VariantParent
    fk_name = "child"
    fields = ["parent"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`
    verbose_name = "parent"
    verbose_name_plural = "parents"


class CommentInline(ReadOnlyInline):
    model = Comment
    fields = ["author", "body", "parent", "is_hidden", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`


class FlagInline(ReadOnlyInline):
    model = Flag
    fields = ["kind", "status", "resolution", "reporter", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`


def checklist_inline() -> type[admin.TabularInline] | None:
    """A revision's checklist instance with its items (key, status, who answered and verified), when the checklist
    app is installed. Items hang off the checklist, so they are listed in one read-only cell."""
    from django.apps import apps
    from django.utils.html import format_html_join

    try:
        checklist_model = apps.get_model("checklists", "Checklist")
    except LookupError:
        return None

    class ChecklistInline(ReadOnlyInline):
        model = checklist_model
        fields = ["level", "items_summary"]
        readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`
        verbose_name = "checklist"
        verbose_name_plural = "checklist items"

        @admin.display(description="items")
        def items_summary(self, obj: Any) -> str:
            rows = obj.items.select_related("item", "answered_by", "verified_by")
            return format_html_join(
                "",
                "<div><code>{}</code> {} — answered by {}, verified by {}</div>",
                (
                    (
                        r.item.key,
                        r.status,
                        getattr(r.answered_by, "username", "—"),
                        getattr(r.verified_by, "username", "—"),
                    )
                    for r in rows
                ),
            )

    return ChecklistInline


class VariantConsole(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "full_name_display",
        "relation",
        "status",
        "is_public",
        "license",
        "precision",
        "task",
        "updated_at",
    ]
    list_filter = ["status", "is_public", "relation", "precision", "license", "task", "created_at"]
    search_fields = ["name", "owner__username", "summary", "license", "architecture"]
    list_select_related = ["owner", "current_revision"]
    inlines = [ParentInline, RevisionInline, CommentInline, FlagInline]
    actions = REVISION_ACTIONS

    @admin.display(description="variant", ordering="name")
    def full_name_display(self, obj: Variant) -> str:
        return obj.full_name


class RevisionConsole(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "label", "status", "created_by", "submitted_at", "status_changed_at"]
    list_filter = ["status", "submitted_at", "created_at"]
    search_fields = ["variant__name", "variant__owner__username", "created_by__username", "notes"]
    list_select_related = ["variant__owner", "created_by"]
    inlines = [ArtifactInline, ReviewInline, ReviewAssignmentInline, JobInline]
    actions = REVISION_ACTIONS

    @admin.display(description="revision", ordering="variant__name")
    def label(self, obj: Revision) -> str:
        return f"{obj.variant.full_name}@{obj.number}"


class ArtifactConsole(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "revision", "path", "format", "size_bytes", "sha256", "created_at"]
    list_filter = ["format", "created_at"]
    search_fields = ["path", "sha256", "uri", "revision__variant__name"]
    list_select_related = ["revision"]

"""Reviews, assignments, comments and flags in the moderation console."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from apps.accounts.console import MaintainerConsoleMixin

from .admin_actions import COMMENT_ACTIONS, FLAG_ACTIONS
from .models import Comment, Flag, Review, ReviewAssignment


@admin.register(Review)
class ReviewAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "revision_label", "reviewer", "decision", "created_at"]
    list_filter = ["decision", "created_at"]
    search_fields = ["reviewer__username", "revision__variant__name", "revision__variant__owner__username", "body"]
    list_select_related = ["reviewer", "revision__variant__owner"]
    readonly_fields = ["revision", "reviewer", "decision", "body", "rendered", "created_at"]
    exclude = ["body_html"]

    @admin.display(description="revision", ordering="revision__variant__name")
    def revision_label(self, obj: Review) -> str:
        return f"{obj.revision.variant.full_name}@{obj.revision.number}"

    @admin.display(description="rendered body")
    def rendered(self, obj: Review) -> str:
        return format_html("<div>{}</div>", obj.body_html)  # body_html is sanitised by nh3 at write time


@admin.register(ReviewAssignment)
class ReviewAssignmentAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "revision", "reviewer", "assigned_by", "auto", "created_at"]
    list_filter = ["auto", "created_at"]
    search_fields = ["reviewer__username", "revision__variant__name"]
    list_select_related = ["reviewer", "assigned_by", "revision"]


class ReplyInline(admin.TabularInline):
    model = Comment
    fk_name = "parent"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["author", "body", "is_hidden", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Comment)
class CommentAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "variant", "author", "short_body", "parent", "is_hidden", "created_at", "edited_at"]
    list_filter = ["is_hidden", "created_at"]
    search_fields = ["body", "author__username", "variant__name", "variant__owner__username", "hidden_reason"]
    list_select_related = ["variant__owner", "author"]
    readonly_fields = [
        "variant",
        "author",
        "parent",
        "body",
        "is_hidden",
        "hidden_by",
        "hidden_reason",
        "hidden_at",
        "created_at",
        "edited_at",
    ]
    exclude = ["body_html"]
    inlines = [ReplyInline]
    actions = COMMENT_ACTIONS

    @admin.display(description="body")
    def short_body(self, obj: Comment) -> str:
        return obj.body[:80]


@admin.register(Flag)
class FlagAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "variant",
        "kind",
        "status",
        "resolution",
        "benchmark",
        "reporter",
        "created_at",
        "resolved_at",
    ]
    list_filter = ["status", "kind", "resolution", "benchmark", "created_at"]
    search_fields = [
        "variant__name",
        "variant__owner__username",
        "reporter__username",
        "description",
        "evidence_url",
        "evidence_excerpt",
        "author_response",
        "resolution_reason",
    ]
    list_select_related = ["variant__owner", "reporter", "benchmark"]
    readonly_fields = [
        "variant",
        "revision",
        "reporter",
        "kind",
        "description",
        "evidence_url",
        "evidence_excerpt",
        "benchmark",
        "status",
        "resolution",
        "resolution_reason",
        "resolved_by",
        "resolved_at",
        "author_response",
        "author_responded_at",
        "created_at",
        "updated_at",
    ]
    exclude = ["description_html"]
    actions = FLAG_ACTIONS

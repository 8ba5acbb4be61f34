"""The registry in the admin (the maintainers' moderation console): filters, search, inlines.

The pages are read-only: every change of state, lineage or artifacts goes through the services, which check
the rules and write the audit trail. Bulk moderation actions are attached by the moderation app."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .choices import CompatStatus
from .models import Artifact, Collaborator, Revision, Variant, VariantParent, VariantRedirect


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        model = self.model  # type: ignore[attr-defined]
        return [f.name for f in model._meta.concrete_fields] + list(getattr(self, "extra_readonly", ()))


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ParentInline(ReadOnlyTabularInline):
    model = VariantParent
    fk_name = "child"
    fields = ["parent", "position"]
    verbose_name = "parent"
    verbose_name_plural = "parents (lineage)"
    show_change_link = False


class RevisionInline(ReadOnlyTabularInline):
    model = Revision
    fk_name = "variant"
    fields = ["number", "status", "created_by", "created_at", "submitted_at", "status_changed_at", "status_reason"]
    ordering = ["-number"]


class CollaboratorInline(ReadOnlyTabularInline):
    model = Collaborator
    fk_name = "variant"
    fields = ["user", "added_by", "created_at"]
    verbose_name_plural = "collaborators (write)"
    show_change_link = False


class RedirectInline(ReadOnlyTabularInline):
    model = VariantRedirect
    fk_name = "variant"
    fields = ["owner_name", "name", "created_at"]
    verbose_name_plural = "former names (answer 308)"
    show_change_link = False


class ArtifactInline(ReadOnlyTabularInline):
    model = Artifact
    fields = ["path", "format", "size_bytes", "sha256", "uri", "file", "created_at"]
    show_change_link = False


class CompatStatusFilter(admin.SimpleListFilter):
    title = "licence compatibility"
    parameter_name = "compat"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(CompatStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Variant]) -> QuerySet[Variant]:
        if self.value():
            return queryset.filter(license_compat__status=self.value())
        return queryset


@admin.register(Variant)
class VariantAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "relation",
        "license",
        "status",
        "is_public",
        "parameters",
        "precision",
        "task",
        "compat",
        "updated_at",
    ]
    list_filter = ["relation", "status", "is_public", "precision", CompatStatusFilter, "task", "created_at"]
    search_fields = ["name", "owner__username", "summary", "hub_id", "license", "architecture"]
    list_select_related = ["owner", "current_revision"]
    date_hierarchy = "created_at"
    inlines = [ParentInline, RevisionInline, CollaboratorInline, RedirectInline]

    @admin.display(description="licence check")
    def compat(self, obj: Variant) -> str:
        return str((obj.license_compat or {}).get("status", "")) or "-"


@admin.register(Revision)
class RevisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "variant", "number", "status", "created_by", "submitted_at", "status_changed_at"]
    list_filter = ["status", "submitted_at", "status_changed_at"]
    search_fields = ["variant__name", "variant__owner__username", "notes", "status_reason"]
    list_select_related = ["variant__owner", "created_by"]
    inlines = [ArtifactInline]


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["path", "revision", "format", "size_bytes", "sha256", "uri", "created_at"]
    list_filter = ["format", "created_at"]
    search_fields = ["path", "sha256", "uri", "revision__variant__name", "revision__variant__owner__username"]
    list_select_related = ["revision__variant__owner"]


@admin.register(VariantParent)
class VariantParentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["child", "parent", "position"]
    search_fields = ["child__name", "parent__name", "child__owner__username", "parent__owner__username"]
    list_select_related = ["child__owner", "parent__owner"]


@admin.register(VariantRedirect)
class VariantRedirectAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Former full names of transferred variants (written by apps.registry.services.variant_transfer)."""

    list_display = ["__str__", "variant", "created_at"]
    search_fields = ["owner_name", "name", "variant__name", "variant__owner__username"]
    list_select_related = ["variant__owner"]

"""The moderation console for checklists. Templates are edited here or through the API; a version that
instances use is read-only, and the "new version" action copies it into the next, editable version."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from apps.accounts.types import signed_in
from apps.audit.services import audit_record

from . import services
from .choices import Kind
from .detectives import DETECTIVES
from .models import Checklist, ChecklistItem, ChecklistTemplate, RevisionComponent, RevisionOpenness, TemplateItem


def _in_use(obj: ChecklistTemplate | None) -> bool:
    return bool(obj is not None and obj.pk and obj.instances.exists())


class TemplateItemForm(forms.ModelForm):
    class Meta:
        model = TemplateItem
        fields = [
            "position",
            "key",
            "title",
            "guidance",
            "required",
            "level",
            "kind",
            "detective",
            "needs_evidence",
            "na_allowed",
            "reviewer_verifies",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, detective = data.get("kind"), data.get("detective") or ""
        if kind == Kind.AUTO and detective not in DETECTIVES:
            self.add_error("detective", f"An automatic item names its detective: {', '.join(sorted(DETECTIVES))}.")
        if kind == Kind.MANUAL and detective:
            self.add_error("detective", "Only automatic items have a detective.")
        return data


class TemplateItemInline(admin.TabularInline):
    model = TemplateItem
    form = TemplateItemForm
    extra = 0
    ordering = ["position", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _in_use(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _in_use(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _in_use(obj) and super().has_delete_permission(request, obj)


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(admin.ModelAdmin):
    list_display = ("slug", "version", "name", "is_default", "instance_count", "created_by", "created_at")
    list_filter = ("is_default", "slug")
    search_fields = ("slug", "name", "description")
    inlines = [TemplateItemInline]
    actions = ["new_version", "make_default"]
    readonly_fields = ("based_on", "created_by", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChecklistTemplate]:
        return super().get_queryset(request).select_related("created_by").annotate(n_instances=Count("instances"))

    @admin.display(description="instances", ordering="n_instances")
    def instance_count(self, obj: ChecklistTemplate) -> int:
        return getattr(obj, "n_instances", 0)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if _in_use(obj):
            return ("slug", "version", "name", "description", "is_default", *self.readonly_fields)
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ChecklistTemplate, form: Any, change: bool) -> None:
        if _in_use(obj):
            messages.warning(request, "This version is in use and was not changed; use the 'new version' action.")
            return
        with transaction.atomic():
            if not change:
                obj.created_by = request.user  # type: ignore[assignment]
            super().save_model(request, obj, form, change)
            verb = "checklist_template.update" if change else "checklist_template.create"
            audit_record(
                actor=signed_in(request.user),
                verb=verb,
                target=obj,
                after={
                    "slug": obj.slug,
                    "version": obj.version,
                    "name": obj.name,
                    "via": "admin",
                    "changed": form.changed_data,
                },
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if form.instance.is_default:
            services.template_make_default(form.instance)

    @admin.action(description="Copy into a new (editable) version")
    def new_version(self, request: HttpRequest, queryset: QuerySet[ChecklistTemplate]) -> None:
        for template in queryset:
            new = services.template_new_version(template=template, actor=signed_in(request.user))
            self.message_user(request, f"Created {new.slug} v{new.version} from v{template.version}.")

    @admin.action(description="Make the default for new revisions")
    def make_default(self, request: HttpRequest, queryset: QuerySet[ChecklistTemplate]) -> None:
        template = queryset.order_by("-version").first()
        if template is None:
            return
        services.template_update(slug=template.slug, actor=signed_in(request.user), is_default=True)
        self.message_user(request, f"{template.slug} is now the default template.")


class ChecklistItemInline(admin.TabularInline):
    """Answers change through the API, where the evidence rules and the detective rule hold."""

    model = ChecklistItem
    extra = 0
    can_delete = False
    fields = (
        "item",
        "status",
        "source",
        "answered_by",
        "confidence",
        "explanation",
        "justification",
        "evidence_url",
        "verified_by",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChecklistItem]:
        return super().get_queryset(request).select_related("item", "answered_by", "verified_by")


@admin.register(Checklist)
class ChecklistAdmin(admin.ModelAdmin):
    list_display = ("revision", "variant", "template", "level", "progress", "updated_at")
    list_filter = ("level", "template__slug", "revision__status")
    search_fields = ("revision__variant__name", "revision__variant__owner__username")
    inlines = [ChecklistItemInline]
    readonly_fields = ("revision", "template", "level", "progress", "created_at", "updated_at")
    actions = ["run_detectives"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Checklist]:
        return super().get_queryset(request).select_related("revision__variant__owner", "template")

    @admin.display(description="variant")
    def variant(self, obj: Checklist) -> str:
        return obj.revision.variant.full_name

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Run the detectives again")
    def run_detectives(self, request: HttpRequest, queryset: QuerySet[Checklist]) -> None:
        for checklist in queryset:
            services.checklist_reevaluate(revision_id=checklist.revision_id)
        self.message_user(request, f"Re-evaluated {queryset.count()} checklist(s).")


@admin.register(RevisionComponent)
class RevisionComponentAdmin(admin.ModelAdmin):
    list_display = ("revision", "component", "license", "location", "updated_by", "updated_at")
    list_filter = ("component",)
    search_fields = ("revision__variant__name", "revision__variant__owner__username", "license", "location")
    readonly_fields = ("revision", "component", "location", "license", "updated_by", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RevisionOpenness)
class RevisionOpennessAdmin(admin.ModelAdmin):
    list_display = ("revision", "mof_class", "conditional", "computed_at")
    list_filter = ("mof_class", "conditional")
    search_fields = ("revision__variant__name", "revision__variant__owner__username")
    readonly_fields = ("revision", "mof_class", "rank", "conditional", "report", "computed_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

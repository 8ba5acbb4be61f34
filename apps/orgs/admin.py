"""Organizations, memberships and invitations in the moderation console.

Rows are read-only: every change goes through apps.orgs.services (row locks, the last-admin rule, audit,
notifications), as it does from the API. Maintainers delete organizations, set their quotas, change roles, remove
members and revoke invitations with the bulk actions; each refusal is reported with its reason."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from apps.accounts.console import MaintainerConsoleMixin, ReadOnlyInline, ReasonActionForm, run_bulk
from apps.accounts.types import signed_in

from . import services
from .choices import OrgRole
from .models import Invitation, Membership, Organization


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    ordering = ["role", "user__username"]


class InvitationInline(ReadOnlyInline):
    model = Invitation
    fk_name = "org"
    fields = ["invitee", "role", "status", "invited_by", "created_at", "expires_at"]
    readonly_fields = ["invitee", "role", "status", "invited_by", "created_at", "expires_at"]


@admin.action(description="Delete the selected organizations (refused for commons and while they own things)")
def delete_organizations(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
    run_bulk(
        modeladmin,
        request,
        queryset,
        "Deleted",
        lambda org: services.org_delete(org=org, actor=signed_in(request.user)),
    )


QUOTA_HELP = "empty: unchanged; “default”: the platform default; else a whole number"


class OrgQuotaActionForm(ReasonActionForm):
    """The action bar of the organizations list: the quota the "Set the quota" action gives the selection."""

    max_queued_jobs = forms.CharField(
        required=False,
        max_length=12,
        label="Max queued jobs",
        widget=forms.TextInput(attrs={"placeholder": QUOTA_HELP}),
    )
    daily_compute_seconds = forms.CharField(
        required=False,
        max_length=12,
        label="Daily compute seconds",
        widget=forms.TextInput(attrs={"placeholder": QUOTA_HELP}),
    )


def _quota_changes(request: HttpRequest) -> tuple[dict[str, int | None], list[str]]:
    """The quota fields of the action bar: (changes, problems). The service checks the bounds again."""
    changes: dict[str, int | None] = {}
    problems = []
    for key in services.QUOTA_BOUNDS:
        raw = str(request.POST.get(key, "")).strip()
        if not raw:
            continue
        if raw.lower() == "default":
            changes[key] = None
        elif raw.isdigit():
            changes[key] = int(raw)
        else:
            problems.append(f"{key}: “{raw}” is not a whole number (or “default”).")
    return changes, problems


@admin.action(description="Set the quota of the selected organizations (maintainers; audited)")
def set_quota(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
    changes, problems = _quota_changes(request)
    if problems or not changes:
        modeladmin.message_user(
            request, " ".join(problems) or "Give max queued jobs or daily compute seconds.", messages.ERROR
        )
        return
    run_bulk(
        modeladmin,
        request,
        queryset,
        "Set the quota of",
        lambda org: services.org_quota_set(org=org, actor=signed_in(request.user), **changes),
    )


@admin.register(Organization)
class OrganizationAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["name", "display_name", "members", "max_queued_jobs", "daily_compute_seconds", "created_at"]
    search_fields = ["name", "display_name"]
    list_filter = ["created_at"]
    readonly_fields = [
        "name",
        "display_name",
        "description",
        "max_queued_jobs",
        "daily_compute_seconds",
        "created_at",
        "updated_at",
    ]
    inlines = [MembershipInline, InvitationInline]
    action_form = OrgQuotaActionForm  # type: ignore[misc]
    actions = [set_quota, delete_organizations]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        return super().get_queryset(request).annotate(members_count=Count("memberships"))

    @admin.display(description="members", ordering="members_count")
    def members(self, obj: Organization) -> int:
        return int(getattr(obj, "members_count", 0))


def _set_role(role: str) -> Any:
    def set_role(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        run_bulk(
            modeladmin,
            request,
            queryset.select_related("org", "user"),
            f"Made {role}",
            lambda m: services.member_role_change(
                org=m.org, username=m.user.username, role=role, actor=signed_in(request.user)
            ),
        )

    set_role.__name__ = f"make_{role}"
    return admin.action(description=f"Make the selected members {role}s (the last admin stays)")(set_role)


@admin.action(description="Remove the selected members (the last admin stays)")
def remove_members(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
    run_bulk(
        modeladmin,
        request,
        queryset.select_related("org", "user"),
        "Removed",
        lambda m: services.member_remove(org=m.org, username=m.user.username, actor=signed_in(request.user)),
    )


@admin.register(Membership)
class MembershipAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["org", "user", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["org__name", "user__username"]
    list_select_related = ["org", "user"]
    readonly_fields = ["org", "user", "role", "created_at"]
    actions = [_set_role(OrgRole.ADMIN), _set_role(OrgRole.MEMBER), remove_members]


@admin.action(description="Revoke the selected pending invitations")
def revoke_invitations(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
    run_bulk(
        modeladmin,
        request,
        queryset.select_related("org"),
        "Revoked",
        lambda i: services.invitation_revoke(invitation=i, actor=signed_in(request.user)),
    )


@admin.register(Invitation)
class InvitationAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "org", "invitee", "role", "status", "invited_by", "created_at", "expires_at"]
    list_filter = ["status", "role", "created_at"]
    search_fields = ["org__name", "invitee__username"]
    list_select_related = ["org", "invitee", "invited_by"]
    readonly_fields = ["org", "invitee", "role", "status", "invited_by", "created_at", "expires_at", "decided_at"]
    actions = [revoke_invitations]

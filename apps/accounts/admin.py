"""Accounts in the Django admin.

Privileges are the superusers' alone. Maintainers (staff, not superusers) see accounts and change only what the
API lets them change, through the same services: roles (`user_set_roles`) and quotas (`user_set_quota`). Staff and
superuser status, groups, permissions, passwords, profiles and adding accounts are read-only to them or
absent. Every change, a superuser's included, goes through an accounts service and is audited. The admin decides
by role, not by Django model permissions, so a permission granted to the maintainers' group cannot widen this."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from apps.core.errors import DomainError

from . import services
from .choices import Role
from .models import PersonalAccessToken, User
from .namespaces import username_problem
from .roles import is_maintainer, user_roles
from .types import signed_in

QUOTA_FIELDS = ("max_active_jobs", "daily_compute_seconds")
PRIVILEGE_FIELDS = ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")
# The superuser changing a password in the admin (AdminPasswordChangeForm is built without the request).
_password_actor: ContextVar[Any] = ContextVar("password_actor", default=None)


def _console_user(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and (user.is_superuser or is_maintainer(user)))


def _superuser(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


class UserAdminForm(UserChangeForm):
    """The stock change form plus `roles`, which the admin saves through user_set_roles (audited)."""

    roles = forms.MultipleChoiceField(
        choices=Role.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Reviewers review and verify; maintainers moderate. Changed through the accounts service and "
        "audited.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "roles" in self.fields and self.instance.pk:
            self.initial["roles"] = [r for r in user_roles(self.instance) if r in Role.values]

    def clean_username(self) -> str:
        username = str(self.cleaned_data["username"])
        if "username" in self.changed_data and username.lower() != str(self.initial.get("username", "")).lower():
            problem = username_problem(username)
            if problem:
                raise forms.ValidationError(problem)
        return username


class UserAdminCreationForm(AdminUserCreationForm):
    """The stock add form, refusing the names organizations hold and the reserved ones (as sign-up does)."""

    def clean_username(self) -> str:
        # The name space's reasons first: an organization's account holds its name as a user row does.
        problem = username_problem(str(self.cleaned_data.get("username", "")))
        if problem:
            raise forms.ValidationError(problem)
        return str(super().clean_username())


class AuditedPasswordChangeForm(AdminPasswordChangeForm):
    def save(self, commit: bool = True) -> User:
        password = self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        self.user = services.user_password_set(user=self.user, actor=_password_actor.get(), password=password)
        return self.user


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserAdminForm
    add_form = UserAdminCreationForm
    change_password_form = AuditedPasswordChangeForm
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Roles", {"fields": ("roles",)}),
        (
            "Privileges",
            {
                "fields": PRIVILEGE_FIELDS,
                "description": "Only superusers change these. Roles are the groups 'reviewers' and "
                "'maintainers': change them with the Roles boxes above.",
            },
        ),
        ("Quotas", {"fields": QUOTA_FIELDS}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    list_display = ("username", "email", "is_active", "is_staff", "is_superuser")
    list_filter = ("groups", "is_staff", "is_superuser", "is_active")

    # --- who may do what: by role, whatever Django model permissions a group carries ----------------------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _console_user(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _console_user(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if _superuser(request):
            return True
        # Maintainers change roles and quotas of accounts that are not superusers.
        return _console_user(request) and (obj is None or not obj.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Accounts are deactivated (is_active, audited), not deleted: the audit trail and the registry name them.
        return False

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or _superuser(request):
            return fieldsets
        # Nobody but a superuser sets a password, so maintainers get no link to that form.
        return [
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f != "password")}) for name, opts in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if _superuser(request):
            # Groups beyond the roles are not a product concept; role groups change through `roles`.
            return ("groups", "last_login", "date_joined")
        return ("username", "first_name", "last_name", "email", *PRIVILEGE_FIELDS, "last_login", "date_joined")

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        if not _superuser(request):
            raise PermissionDenied
        token = _password_actor.set(request.user)
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_actor.reset(token)

    # --- writes: through the services, each audited -----------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool) -> None:
        if not change:
            services.user_admin_create(user=obj, actor=signed_in(request.user))
            return
        data, changed = form.cleaned_data, set(form.changed_data)
        account = {f: data[f] for f in services.ADMIN_ACCOUNT_FIELDS if f in changed and f in form.fields}
        permissions = (
            data["user_permissions"] if "user_permissions" in changed and "user_permissions" in form.fields else None
        )
        if account or permissions is not None:
            services.user_admin_update(
                user=obj, actor=signed_in(request.user), changes=account, permissions=permissions
            )
        quotas = {f: data[f] for f in QUOTA_FIELDS if f in changed and f in form.fields}
        if quotas:
            services.user_set_quota(user=obj, actor=signed_in(request.user), **quotas)
        if "roles" in changed and "roles" in form.fields:
            services.user_set_roles(user=obj, roles=list(data["roles"]), actor=signed_in(request.user))

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        # No form.save_m2m(): groups and permissions were written by the services in save_model.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(admin.ModelAdmin):
    """Tokens are minted only by their owner through the service (the plaintext is never chosen or seen here);
    the console lists them and revokes leaked ones (audited)."""

    list_display = ("user", "name", "prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("user__username", "name", "prefix")
    readonly_fields = (
        "user",
        "name",
        "prefix",
        "token_hash",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ["revoke"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _console_user(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _console_user(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return _console_user(request)

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[PersonalAccessToken]) -> None:
        done = 0
        for token in queryset:
            try:
                services.token_revoke(token=token, actor=signed_in(request.user))  # type: ignore[arg-type]
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{token}: {exc.detail}", messages.WARNING)
        self.message_user(request, f"Revoked {done} token(s).", messages.SUCCESS)

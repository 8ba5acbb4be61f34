"""Building blocks of the moderation console: permission rules and service-backed bulk actions.

The admin never writes business rows itself: every action calls a service, so it is row-locked, audited and
refused with the same reasons as the API. These blocks live in accounts, the lowest layer that knows who a
maintainer is, so that every app's admin can use them without importing the console app (apps.moderation)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.http import HttpRequest

from apps.core.errors import DomainError

from .roles import is_maintainer


class ReasonActionForm(ActionForm):
    """The action bar gains a reason field: unpublish, reject, hide and flag resolutions need one."""

    reason = forms.CharField(
        required=False,
        max_length=2000,
        label="Reason",
        widget=forms.TextInput(
            attrs={"size": 60, "placeholder": "reason (required for unpublish, reject, hide, flags)"}
        ),
    )


class MaintainerConsoleMixin:
    """Maintainers (and superusers) use the console; rows are read-only and change only through actions."""

    action_form = ReasonActionForm

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff and is_maintainer(request.user))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff and is_maintainer(request.user))


def action_reason(request: HttpRequest) -> str:
    return str(request.POST.get("reason", "")).strip()


def run_bulk(
    modeladmin: Any, request: HttpRequest, queryset: Iterable[Any], verb: str, call: Callable[[Any], Any]
) -> tuple[int, int]:
    """Call a service per selected row; report successes and each refusal with its reason."""
    done, refused = 0, []
    for obj in queryset:
        try:
            call(obj)
            done += 1
        except DomainError as exc:
            gate = (exc.errors or {}).get("gate")
            detail = exc.detail + (f" ({'; '.join(gate)})" if gate else "")
            reason = "; ".join(f"{k}: {' '.join(v)}" for k, v in (exc.errors or {}).items() if k != "gate")
            refused.append(f"{obj}: {detail}{' — ' + reason if reason else ''}")
    if done:
        modeladmin.message_user(request, f"{verb} {done} of {done + len(refused)}.", messages.SUCCESS)
    if refused:
        modeladmin.message_user(request, "Refused: " + " | ".join(refused[:20]), messages.WARNING)
    return done, len(refused)

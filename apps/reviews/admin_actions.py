"""Bulk actions of the moderation console. Plain functions, so they can be attached to any app's ModelAdmin;
each calls a service per row (role checks, gate, row lock and audit happen there)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts.console import action_reason, run_bulk
from apps.accounts.models import User
from apps.accounts.types import signed_in
from apps.registry.models import Revision, Variant
from apps.reviews import services as review_services
from apps.reviews.choices import FlagAction
from apps.reviews.models import Comment, Flag


def me(request: HttpRequest) -> User:
    """The signed-in user: these endpoints run only after IsAuthenticated (or as maintainer-only actions)."""
    return signed_in(request.user)


def _revisions(queryset: QuerySet[Any]) -> list[Revision]:
    if queryset.model is Variant:
        return [
            v.current_revision
            for v in queryset.select_related("current_revision", "owner")
            if v.current_revision is not None
        ]
    return list(queryset.select_related("variant__owner"))


@admin.action(description="Publish (checks the publication gate)")
def publish_revisions(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    run_bulk(
        modeladmin,
        request,
        _revisions(queryset),
        "Published",
        lambda r: review_services.revision_publish(revision=r, actor=me(request), reason=action_reason(request)),
    )


@admin.action(description="Unpublish (give a reason)")
def unpublish_revisions(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    run_bulk(
        modeladmin,
        request,
        _revisions(queryset),
        "Unpublished",
        lambda r: review_services.revision_unpublish(revision=r, actor=me(request), reason=action_reason(request)),
    )


@admin.action(description="Reject (give a reason)")
def reject_revisions(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    run_bulk(
        modeladmin,
        request,
        _revisions(queryset),
        "Rejected",
        lambda r: review_services.revision_reject(revision=r, actor=me(request), reason=action_reason(request)),
    )


REVISION_ACTIONS = [publish_revisions, unpublish_revisions, reject_revisions]


def _resolve(action: str, verb: str) -> Any:
    def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Flag]) -> None:
        run_bulk(
            modeladmin,
            request,
            queryset,
            verb,
            lambda f: review_services.flag_resolve(
                flag=f, actor=me(request), action=action, reason=action_reason(request)
            ),
        )

    run.__name__ = f"flags_{action}"
    return run


dismiss_flags = admin.action(description="Resolve flags: dismiss (give a reason)")(
    _resolve(FlagAction.DISMISS, "Dismissed")
)
confirm_flags = admin.action(description="Resolve flags: confirm, keep published (give a reason)")(
    _resolve(FlagAction.CONFIRM, "Confirmed")
)
unpublish_flags = admin.action(description="Resolve flags: confirm and unpublish the variant (give a reason)")(
    _resolve(FlagAction.UNPUBLISH, "Confirmed and unpublished")
)
ask_author_flags = admin.action(description="Resolve flags: ask the author (give the question)")(
    _resolve(FlagAction.ASK_AUTHOR, "Asked the author on")
)
FLAG_ACTIONS = [dismiss_flags, confirm_flags, unpublish_flags, ask_author_flags]


@admin.action(description="Hide comments (give a reason)")
def hide_comments(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Comment]) -> None:
    run_bulk(
        modeladmin,
        request,
        queryset,
        "Hid",
        lambda c: review_services.comment_hide(comment=c, actor=me(request), reason=action_reason(request)),
    )


@admin.action(description="Unhide comments")
def unhide_comments(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Comment]) -> None:
    run_bulk(
        modeladmin, request, queryset, "Unhid", lambda c: review_services.comment_unhide(comment=c, actor=me(request))
    )


COMMENT_ACTIONS = [hide_comments, unhide_comments]

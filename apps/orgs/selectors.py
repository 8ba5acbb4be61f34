"""Reads of organizations, members and invitations, filtered for the reader.

Organizations and their member lists are public, as on the Hugging Face Hub: knowing who works in a lab is part
of trusting its models. Invitations are private to their invitee, the organization's admins and maintainers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import QuerySet

from apps.accounts.roles import is_maintainer
from apps.core.errors import NotFound

from . import hooks
from .models import Invitation, Membership, Organization
from .permissions import ensure_can_manage, org_role
from .querysets import InvitationQuerySet

if TYPE_CHECKING:
    from apps.accounts.types import Viewer


def orgs_list(*, user: Viewer) -> QuerySet[Organization]:
    """Every organization, with `members_count` and the reader's `my_role`."""
    return Organization.objects.with_counts(user).order_by("name")


def org_get(*, name: str, user: Viewer) -> Organization:
    org = orgs_list(user=user).filter(name__iexact=name).first()
    if org is None:
        raise NotFound(f"No organization '{name}'.")
    return org


def org_members(*, org: Organization) -> QuerySet[Membership]:
    """Admins first, then by username."""
    return Membership.objects.filter(org=org).select_related("user").order_by("role", "user__username")


def _invitations() -> InvitationQuerySet:
    return Invitation.objects.with_effective_status().select_related("org", "invitee", "invited_by")


def invitations_received(*, user: Viewer) -> QuerySet[Invitation]:
    """The user's own invitations, newest first (none for an anonymous user)."""
    if not user.is_authenticated:
        return _invitations().none()
    return _invitations().filter(invitee=user).order_by("-created_at", "-id")


def org_invitations(*, org: Organization, user: Viewer) -> QuerySet[Invitation]:
    """An organization's invitations, for its admins (and maintainers)."""
    ensure_can_manage(user, org, "see its invitations")
    return _invitations().filter(org=org).order_by("-created_at", "-id")


def invitation_get(*, pk: int, user: Viewer, org: Organization | None = None) -> Invitation:
    """An invitation the user may see (its invitee, the org's admins, maintainers); any other is a 404."""
    qs = _invitations().visible_to(user)
    if org is not None:
        qs = qs.filter(org=org)
    invitation = qs.filter(pk=pk).first()
    if invitation is None:
        raise NotFound("No such invitation.")
    return invitation


def org_quota_limits(org: Organization) -> tuple[int, int]:
    """(jobs queued or running at once, compute seconds per rolling day) of an organization's namespace: its own
    limits where a maintainer set them, else MC_ORG_MAX_QUEUED_JOBS and MC_ORG_DAILY_COMPUTE_SECONDS."""
    max_queued = org.max_queued_jobs if org.max_queued_jobs is not None else settings.MC_ORG_MAX_QUEUED_JOBS
    daily = (
        org.daily_compute_seconds if org.daily_compute_seconds is not None else settings.MC_ORG_DAILY_COMPUTE_SECONDS
    )
    return int(max_queued), int(daily)


def org_quota(*, org: Organization, user: Viewer) -> dict[str, Any] | None:
    """The organization's quota and its use, for its members and the maintainers; None for everyone else.
    The use is counted by the app that runs jobs (``hooks.org_quota_usage``): one query, whatever the history."""
    if not user.is_authenticated:
        return None
    role = getattr(org, "my_role", None) if hasattr(org, "my_role") else org_role(user, org)
    if role is None and not is_maintainer(user):
        return None
    max_queued, daily = org_quota_limits(org)
    usage = hooks.org_quota_usage(org)
    return {
        "max_queued_jobs": max_queued,
        "daily_compute_seconds": daily,
        "queued_or_running": int(usage.get("queued_or_running", 0)),
        "compute_seconds_used": float(usage.get("compute_seconds_used", 0.0)),
    }

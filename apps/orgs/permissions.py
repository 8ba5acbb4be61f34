"""Who may change an organization. Organizations are public, so a refusal is a 403 (seeing is not the question);
invitations are the exception, hidden (404) from everyone but their invitee, the org's admins and maintainers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apps.accounts.roles import is_maintainer
from apps.core.errors import PermissionDenied

from .choices import OrgRole

if TYPE_CHECKING:
    from apps.accounts.types import Viewer


def org_role(user: Viewer, org: Any) -> str | None:
    """The user's role in the organization, or None (one query, unless the org was read with `my_role`)."""
    if not user.is_authenticated:
        return None
    from .models import Membership

    return Membership.objects.filter(org=org, user=user).values_list("role", flat=True).first()


def can_manage_org(user: Viewer, org: Any) -> bool:
    """The organization's admins manage it (settings, members, invitations, deletion); so do the maintainers,
    who moderate the platform (the moderation console calls the same services)."""
    if not user.is_authenticated:
        return False
    return is_maintainer(user) or org_role(user, org) == OrgRole.ADMIN


def ensure_can_manage(user: Viewer, org: Any, action: str) -> None:
    if not can_manage_org(user, org):
        raise PermissionDenied(f"Only the admins of {org.name} may {action}.")

"""Organizations for tests, made through the services (so every row is as real as the API would make it)."""

from __future__ import annotations

from typing import Any

from apps.orgs import services
from apps.orgs.models import Membership, Organization


def make_org(admin: Any, name: str = "harbour-lab", **fields: Any) -> Organization:
    return services.org_create(name=name, actor=admin, **fields)


def add_member(org: Organization, user: Any, *, role: str = "member", by: Any) -> Membership:
    """Invite and accept: the only way in."""
    invitation = services.invitation_create(org=org, username=user.username, role=role, actor=by)
    services.invitation_accept(invitation=invitation, actor=user)
    return Membership.objects.get(org=org, user=user)

"""What organizations announce (issue 14): invitations to the invitee, decisions to the org's admins, role
changes and removals to the member, and the `org.member_added` webhook event.

These run from apps.orgs.hooks inside the transaction of the change (the org app sits below this one and cannot
call us), so the rows exist exactly when the change commits; e-mails and webhook dispatches follow the commit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.accounts.models import User
from apps.orgs.models import Invitation, Membership, Organization

from .choices import NotificationKind, WebhookEvent
from .services import notify, webhook_event_publish

if TYPE_CHECKING:
    from apps.accounts.types import Actor


def _org_path(org: Organization) -> str:
    return f"/api/v1/orgs/{org.name}/"


def _admins(org: Organization) -> list[User]:
    return list(User.objects.filter(org_memberships__org=org, org_memberships__role="admin", is_active=True))


def _who(actor: Actor | None) -> str:
    return getattr(actor, "username", None) or "a maintainer"


def announce_invitation_created(*, invitation: Invitation, actor: Actor | None) -> None:
    org = invitation.org
    notify(
        users=[invitation.invitee],
        kind=NotificationKind.ORG_MEMBERSHIP,
        title=f"{_who(actor)} invited you to join {org.name} as {invitation.role}",
        body=f"Accept with POST /api/v1/invitations/{invitation.pk}/accept/ or decline with "
        f"POST /api/v1/invitations/{invitation.pk}/decline/. The invitation expires on "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.",
        url="/api/v1/invitations/",
        data={"org": org.name, "invitation": invitation.pk, "role": invitation.role, "status": "pending"},
    )


def announce_invitation_decided(*, invitation: Invitation, actor: Actor | None) -> None:
    """The org's admins (and whoever sent the invitation) hear the answer."""
    org = invitation.org
    people = [*_admins(org), invitation.invited_by]
    notify(
        users=people,
        kind=NotificationKind.ORG_MEMBERSHIP,
        title=f"{invitation.invitee.username} {invitation.status} the invitation to {org.name}",
        body=f"{invitation.invitee.username} {invitation.status} your invitation to join {org.name} as "
        f"{invitation.role}.",
        url=f"{_org_path(org)}members/",
        data={"org": org.name, "invitation": invitation.pk, "role": invitation.role, "status": invitation.status},
        exclude=[invitation.invitee],
    )


def announce_member_added(*, membership: Membership, actor: Actor | None, via: str) -> None:
    """Webhooks get `org.member_added` (membership is public): `own`-scoped subscriptions of the new member and
    of the org's admins, and every `visible` one."""
    org = membership.org
    admins = _admins(org)
    webhook_event_publish(
        event=WebhookEvent.ORG_MEMBER_ADDED,
        data={
            "org": org.name,
            "username": membership.user.username,
            "role": membership.role,
            "via": via,
            "url": f"{_org_path(org)}members/",
        },
        owner_ids=[membership.user_id, *(admin.pk for admin in admins)],
        public=True,
    )


def announce_member_role_changed(*, membership: Membership, before: str, actor: Actor | None) -> None:
    org = membership.org
    notify(
        users=[membership.user],
        kind=NotificationKind.ORG_MEMBERSHIP,
        title=f"You are now {membership.role} of {org.name}",
        body=f"{_who(actor)} changed your role in {org.name} from {before} to {membership.role}.",
        url=_org_path(org),
        data={"org": org.name, "role": membership.role, "before": before},
        exclude=[actor] if isinstance(actor, User) else (),
    )


def announce_member_removed(*, org: Organization, user: User, role: str, actor: Actor | None) -> None:
    """Someone removed from the org hears it; when a member leaves, the admins do."""
    if getattr(actor, "pk", None) == user.pk:
        notify(
            users=_admins(org),
            kind=NotificationKind.ORG_MEMBERSHIP,
            title=f"{user.username} left {org.name}",
            body=f"{user.username} ({role}) left {org.name}.",
            url=f"{_org_path(org)}members/",
            data={"org": org.name, "username": user.username, "role": role, "left": True},
            exclude=[user],
        )
        return
    notify(
        users=[user],
        kind=NotificationKind.ORG_MEMBERSHIP,
        title=f"You were removed from {org.name}",
        body=f"{_who(actor)} removed you from {org.name}, where you were {role}.",
        url=_org_path(org),
        data={"org": org.name, "username": user.username, "role": role, "left": False},
    )

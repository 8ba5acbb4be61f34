"""Organization roles and invitation states."""

from __future__ import annotations

from django.db import models


class OrgRole(models.TextChoices):
    ADMIN = "admin", "Admin (members, settings, every variant of the organization)"
    MEMBER = "member", "Member (creates and edits the organization's variants)"


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


#: An invitation is decided once: only a pending one moves, and only to one of these.
INVITATION_TRANSITIONS: dict[str, tuple[str, ...]] = {
    InvitationStatus.PENDING: (
        InvitationStatus.ACCEPTED,
        InvitationStatus.DECLINED,
        InvitationStatus.EXPIRED,
        InvitationStatus.REVOKED,
    ),
}

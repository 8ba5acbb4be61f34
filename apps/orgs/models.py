"""Organizations: namespaces like users, with members (admin or member) who join by invitation."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from apps.core.conditional import etag_for

from .choices import INVITATION_TRANSITIONS, InvitationStatus, OrgRole
from .querysets import InvitationQuerySet, OrganizationQuerySet

#: 2 to 40 characters: letters, digits, "-", "_" and ".", starting and ending with a letter or digit (a name
#: is the first part of `{org}/{name}` and of the Hub-compatible paths).
ORG_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,38}[A-Za-z0-9]$"
ORG_NAME_MAX = 40


class Organization(models.Model):
    name = models.CharField(max_length=ORG_NAME_MAX, validators=[RegexValidator(ORG_NAME_RE)])
    display_name = models.CharField(max_length=100, blank=True, default="")
    description = models.TextField(max_length=2000, blank=True, default="")
    # The namespace account (a User row with `is_organization`, named as the org): variants of the organization
    # are owned by it, so `{org}/{name}` resolves, is unique and is charged exactly like `{user}/{name}`.
    account = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="organization", null=True, editable=False
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="organizations")
    # Quotas of the namespace (set by maintainers); null means the platform default (MC_ORG_MAX_QUEUED_JOBS,
    # MC_ORG_DAILY_COMPUTE_SECONDS). Jobs on the organization's variants submitted by its members are charged here.
    max_queued_jobs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Jobs the organization may have queued at once; empty: the platform default."
    )
    daily_compute_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Compute seconds per rolling day; empty: the platform default."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="organization_name_ci_unique")]

    def __str__(self) -> str:
        return self.name

    @property
    def etag(self) -> str:
        """Changes with the profile and with every membership change (the services touch `updated_at`), so it
        covers `members_count` and every reader's `my_role` too."""
        return etag_for(f"org:{self.pk}:{self.updated_at.isoformat() if self.updated_at else ''}")

    @property
    def is_commons(self) -> bool:
        """The maintainers' organization: its admins are exactly the maintainers (kept in step with the role)."""
        return self.name.lower() == settings.MC_COMMONS_USERNAME.lower()


class Membership(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_memberships")
    role = models.CharField(max_length=16, choices=OrgRole.choices, default=OrgRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["org", "user__username"]
        constraints = [models.UniqueConstraint(fields=["org", "user"], name="membership_org_user_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.org} ({self.role})"


class Invitation(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    invitee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_invitations")
    role = models.CharField(max_length=16, choices=OrgRole.choices, default=OrgRole.MEMBER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Stored as decided; a pending invitation past `expires_at` reads as expired everywhere (querysets annotate
    # `effective_status`) and is marked so when someone next touches it.
    status = models.CharField(
        max_length=16, choices=InvitationStatus.choices, default=InvitationStatus.PENDING, db_index=True
    )
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "invitee"],
                condition=models.Q(status=InvitationStatus.PENDING),
                name="invitation_one_pending_per_org_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.org} → {self.invitee} ({self.role}, {self.current_status})"

    @property
    def is_expired(self) -> bool:
        return self.status == InvitationStatus.PENDING and self.expires_at <= timezone.now()

    @property
    def current_status(self) -> str:
        """The status as a reader should see it: a pending invitation past its expiry is expired."""
        return InvitationStatus.EXPIRED.value if self.is_expired else str(self.status)

    def can_transition_to(self, target: str) -> bool:
        return target in INVITATION_TRANSITIONS.get(self.status, ())

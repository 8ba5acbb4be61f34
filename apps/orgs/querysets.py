"""Read paths of organizations. Organizations and their member lists are public (as on the Hugging Face Hub);
invitations are seen by their invitee, the organization's admins and the maintainers only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Case, Count, Exists, OuterRef, Q, Subquery, Value, When
from django.utils import timezone

from apps.accounts.roles import is_maintainer

from .choices import InvitationStatus, OrgRole

if TYPE_CHECKING:
    from apps.accounts.types import Viewer

    from .models import Invitation, Organization  # noqa: F401 - named in the QuerySet generics below


class OrganizationQuerySet(models.QuerySet["Organization"]):
    def with_counts(self, user: Viewer | None = None) -> OrganizationQuerySet:
        """Annotate `members_count` and the user's `my_role` (None for outsiders and anonymous): one query
        for a whole page, however many members."""
        from .models import Membership

        qs = self.annotate(members_count=Count("memberships", distinct=True))
        if user is not None and user.is_authenticated:
            mine = Membership.objects.filter(org=OuterRef("pk"), user=user).values("role")[:1]
            return qs.annotate(my_role=Subquery(mine))
        return qs.annotate(my_role=Value(None, output_field=models.CharField()))


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def with_effective_status(self) -> InvitationQuerySet:
        """Annotate `effective_status`: a pending invitation past its expiry is expired."""
        return self.annotate(
            effective_status=Case(
                When(status=InvitationStatus.PENDING, expires_at__lte=timezone.now(), then=Value("expired")),
                default="status",
                output_field=models.CharField(),
            )
        )

    def visible_to(self, user: Viewer) -> InvitationQuerySet:
        """The invitee's own invitations, and those of organizations the user administers; maintainers see all."""
        if not user.is_authenticated:
            return self.none()
        if is_maintainer(user):
            return self.all()
        from .models import Membership

        administers = Membership.objects.filter(org=OuterRef("org"), user=user, role=OrgRole.ADMIN)
        return self.filter(Q(invitee=user) | Q(Exists(administers)))

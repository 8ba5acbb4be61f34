"""What the site header needs on every page: the signed-in user's pending invitations (one query)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from apps.orgs.choices import InvitationStatus
from apps.orgs.selectors import invitations_received

register = template.Library()


@register.simple_tag
def pending_invitations(user: Any) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return (
        invitations_received(user=user).filter(status=InvitationStatus.PENDING, expires_at__gt=timezone.now()).count()
    )

"""Query filters of the organizations' invitation lists."""

from __future__ import annotations

import django_filters

from apps.core.filters import StrictFilterSet
from apps.orgs.choices import InvitationStatus
from apps.orgs.models import Invitation


class InvitationFilterSet(StrictFilterSet):
    status = django_filters.ChoiceFilter(
        field_name="effective_status",
        choices=InvitationStatus.choices,
        help_text="A pending invitation past its expiry is `expired`.",
    )

    class Meta:
        model = Invitation
        fields = ["status"]

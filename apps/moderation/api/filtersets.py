"""The audit trail's query filters."""

from __future__ import annotations

import django_filters

from apps.audit.models import AuditEvent
from apps.core.filters import StrictFilterSet


class AuditFilterSet(StrictFilterSet):
    actor = django_filters.CharFilter(field_name="actor_username")

    class Meta:
        model = AuditEvent
        fields = ["verb", "target_type", "target_id", "actor", "request_id"]

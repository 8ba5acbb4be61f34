"""Query filters of the notifications and the webhook delivery log."""

from __future__ import annotations

import django_filters

from apps.core.filters import StrictBooleanFilter, StrictFilterSet
from apps.notifications.choices import DeliveryStatus, NotificationKind
from apps.notifications.models import Notification, WebhookDelivery


class NotificationFilterSet(StrictFilterSet):
    unread = StrictBooleanFilter(field_name="read_at", lookup_expr="isnull")
    kind = django_filters.ChoiceFilter(choices=NotificationKind.choices)

    class Meta:
        model = Notification
        fields = ["unread", "kind"]


class DeliveryFilterSet(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event"]

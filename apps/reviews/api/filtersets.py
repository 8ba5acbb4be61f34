"""Query filters of the review queue and the flags."""

from __future__ import annotations

from typing import Any

import django_filters

from apps.core.filters import StrictFilterSet
from apps.registry.models import Revision
from apps.reviews.choices import FlagKind, FlagStatus
from apps.reviews.models import Flag


class QueueFilterSet(StrictFilterSet):
    assigned = django_filters.ChoiceFilter(
        choices=[("me", "me"), ("none", "none"), ("any", "any")],
        method="filter_assigned",
        help_text="me: assigned to you; none: nobody assigned; any: everything (default).",
    )
    status = django_filters.MultipleChoiceFilter(
        choices=[(s, s) for s in ("submitted", "changes_requested", "approved")],
        help_text="Default: submitted (waiting for reviews).",
    )

    class Meta:
        model = Revision
        fields = ["assigned", "status"]

    def filter_assigned(self, qs: Any, name: str, value: str) -> Any:
        if value == "me":
            return qs.filter(review_assignments__reviewer=self.request.user)
        if value == "none":
            return qs.filter(review_assignments__isnull=True)
        return qs


class FlagFilterSet(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=FlagStatus.choices)
    kind = django_filters.ChoiceFilter(choices=FlagKind.choices)
    variant = django_filters.CharFilter(method="filter_variant", help_text="owner/name")

    class Meta:
        model = Flag
        fields = ["status", "kind", "variant"]

    def filter_variant(self, qs: Any, name: str, value: str) -> Any:
        owner, _, vname = value.partition("/")
        return qs.filter(variant__owner__username__iexact=owner, variant__name__iexact=vname)

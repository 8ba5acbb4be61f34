"""Query filters of the job list."""

from __future__ import annotations

from typing import Any

import django_filters

from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import BenchmarkJob
from apps.core.filters import StrictBooleanFilter, StrictFilterSet


class JobFilterSet(StrictFilterSet):
    variant = django_filters.CharFilter(method="filter_variant", help_text="owner/name")
    benchmark = django_filters.CharFilter(field_name="benchmark__slug")
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)
    mine = StrictBooleanFilter(method="filter_mine")

    class Meta:
        model = BenchmarkJob
        fields = ["variant", "benchmark", "status", "mine", "queue"]

    def filter_variant(self, qs: Any, name: str, value: str) -> Any:
        owner, _, vname = value.partition("/")
        return qs.filter(revision__variant__owner__username__iexact=owner, revision__variant__name__iexact=vname)

    def filter_mine(self, qs: Any, name: str, value: bool | None) -> Any:
        user = self.request.user if self.request else None
        if value and user is not None and user.is_authenticated:
            return qs.filter(submitted_by=user)
        if value:
            return qs.none()
        return qs

"""Board filters (SPEC §3): relation, precision, license, task, max_parameters, verified; plus contaminated
and, on suites, complete. Every filter is a column of the summary table, so no filter adds a join."""

from __future__ import annotations

from typing import Any

import django_filters

from apps.core.filters import IntegerFilter, StrictBooleanFilter, StrictFilterSet
from apps.registry.choices import Precision, Relation

from ..models import LeaderboardEntry, SuiteScore


class _BoardFilterSet(StrictFilterSet):
    relation = django_filters.ChoiceFilter(choices=Relation.choices)
    precision = django_filters.ChoiceFilter(choices=Precision.choices)
    license = django_filters.CharFilter(
        method="filter_license", max_length=64, help_text="SPDX or Hub license id, case-insensitive."
    )
    task = django_filters.CharFilter(max_length=64, help_text="Hub pipeline tag, e.g. image-classification.")
    max_parameters = IntegerFilter(field_name="parameters", lookup_expr="lte", min_value=0, max_value=10**15)
    verified = StrictBooleanFilter()
    contaminated = StrictBooleanFilter(help_text="false hides rows marked by a confirmed contamination flag.")

    def get_form_class(self) -> Any:
        # The form's fields depend only on the declared filters, so build the class once per FilterSet class
        # rather than on every request (boards are the hottest reads; Django copies the fields per form).
        cls = type(self)
        form_class = cls.__dict__.get("_board_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            cls._board_form_class = form_class  # type: ignore[attr-defined]
        return form_class

    def filter_license(self, qs: Any, name: str, value: str) -> Any:
        # Entries store the license lower-cased, so this stays an indexable equality.
        return qs.filter(license=value.lower()) if value else qs


class EntryFilterSet(_BoardFilterSet):
    class Meta:
        model = LeaderboardEntry
        fields = ["relation", "precision", "license", "task", "max_parameters", "verified", "contaminated"]


class SuiteScoreFilterSet(_BoardFilterSet):
    complete = StrictBooleanFilter(help_text="true keeps only variants with a result on every suite benchmark.")

    class Meta:
        model = SuiteScore
        fields = ["relation", "precision", "license", "task", "max_parameters", "verified", "contaminated", "complete"]

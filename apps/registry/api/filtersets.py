"""Query-parameter filters for the variant list (SPEC §3: owner relation license task status parent ...)."""

from __future__ import annotations

from typing import Any

import django_filters

from apps.core.filters import IntegerFilter
from apps.registry.choices import Precision, Relation, RevisionStatus
from apps.registry.models import Variant


def _declared(field: str, lookup: str) -> Any:
    """A filter method on a field as the requesting user sees it (see VariantQuerySet.filter_declared)."""

    def method(self: Any, qs: Any, name: str, value: Any) -> Any:
        if value in (None, ""):
            return qs
        return qs.filter_declared(self.request.user if self.request else None, field, lookup, value)

    return method


class VariantFilterSet(django_filters.FilterSet):
    """Fields of a published variant filter on its last published snapshot for readers who see that snapshot;
    its insiders filter on what it says now."""

    owner = django_filters.CharFilter(field_name="owner__username", lookup_expr="iexact", help_text="Owner's username.")
    relation = django_filters.ChoiceFilter(choices=Relation.choices, method="filter_relation")
    license = django_filters.CharFilter(method="filter_license", help_text="Licence id, ignoring case.")
    task = django_filters.CharFilter(method="filter_task", help_text="Hub pipeline tag.")
    status = django_filters.ChoiceFilter(
        choices=RevisionStatus.choices, method="filter_status", help_text="Status of the current revision."
    )
    parent = django_filters.CharFilter(method="filter_parent", help_text="Direct children of owner/name.")
    precision = django_filters.ChoiceFilter(choices=Precision.choices, method="filter_precision")
    architecture = django_filters.CharFilter(method="filter_architecture")
    hub_id = django_filters.CharFilter(method="filter_hub_id")
    min_parameters = IntegerFilter(method="filter_min_parameters", min_value=0)
    max_parameters = IntegerFilter(method="filter_max_parameters", min_value=0)

    class Meta:
        model = Variant
        fields = [
            "owner",
            "relation",
            "license",
            "task",
            "status",
            "parent",
            "precision",
            "architecture",
            "hub_id",
            "min_parameters",
            "max_parameters",
        ]

    filter_relation = _declared("relation", "exact")
    filter_license = _declared("license", "iexact")
    filter_task = _declared("task", "iexact")
    filter_status = _declared("status", "exact")
    filter_precision = _declared("precision", "exact")
    filter_architecture = _declared("architecture", "iexact")
    filter_hub_id = _declared("hub_id", "iexact")
    filter_min_parameters = _declared("parameters", "gte")
    filter_max_parameters = _declared("parameters", "lte")

    def filter_parent(self, qs: Any, name: str, value: str) -> Any:
        return qs.filter_parent_declared(self.request.user if self.request else None, value)

"""Query-parameter filters for the variant list (SPEC §3: owner relation license task status parent ...)."""

from __future__ import annotations

from typing import Any

import django_filters

from apps.core.filters import IntegerFilter
from apps.registry.choices import Precision, Relation, RevisionStatus
from apps.registry.models import Variant


class VariantFilterSet(django_filters.FilterSet):
    owner = django_filters.CharFilter(field_name="owner__username", lookup_expr="iexact",
                                      help_text="Owner's username.")
    relation = django_filters.ChoiceFilter(choices=Relation.choices)
    license = django_filters.CharFilter(field_name="license", lookup_expr="iexact",
                                        help_text="Licence id, ignoring case.")
    task = django_filters.CharFilter(field_name="task", lookup_expr="iexact", help_text="Hub pipeline tag.")
    status = django_filters.ChoiceFilter(choices=RevisionStatus.choices,
                                         help_text="Status of the current revision.")
    parent = django_filters.CharFilter(method="filter_parent", help_text="Direct children of owner/name.")
    precision = django_filters.ChoiceFilter(choices=Precision.choices)
    architecture = django_filters.CharFilter(field_name="architecture", lookup_expr="iexact")
    hub_id = django_filters.CharFilter(field_name="hub_id", lookup_expr="iexact")
    min_parameters = IntegerFilter(field_name="parameters", lookup_expr="gte", min_value=0)
    max_parameters = IntegerFilter(field_name="parameters", lookup_expr="lte", min_value=0)

    class Meta:
        model = Variant
        fields = ["owner", "relation", "license", "task", "status", "parent", "precision", "architecture",
                  "hub_id", "min_parameters", "max_parameters"]

    def filter_parent(self, qs: Any, name: str, value: str) -> Any:
        owner, _, parent_name = value.partition("/")
        return qs.filter(parent_links__parent__owner__username__iexact=owner,
                         parent_links__parent__name__iexact=parent_name)

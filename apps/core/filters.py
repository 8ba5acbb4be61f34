"""Strict query-parameter filtering: a malformed filter value is a 400, never silently ignored."""

from __future__ import annotations

import copy
import re
from typing import Any

import django_filters
from django import forms
from django.db import models
from django.http import QueryDict
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

TRUE_VALUES = {"true", "1"}
FALSE_VALUES = {"false", "0"}


class StrictBooleanField(forms.Field):
    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE_VALUES:
            return True
        if text in FALSE_VALUES:
            return False
        raise forms.ValidationError("Must be true or false.", code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class IntegerFilter(django_filters.NumberFilter):
    """A numeric filter that refuses fractions (NumberFilter's DecimalField would accept 0.5 for an integer)."""

    field_class = forms.IntegerField


class StrictFilterSet(django_filters.FilterSet):
    """Base FilterSet: booleans accept only true/false/1/0, and a single-valued filter given twice is a 400."""

    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": StrictBooleanFilter},
        models.NullBooleanField if hasattr(models, "NullBooleanField") else models.BooleanField: {
            "filter_class": StrictBooleanFilter
        },
    }

    def __init__(self, data: Any = None, queryset: Any = None, *, request: Any = None, prefix: Any = None) -> None:
        # FilterSet.__init__, but with a shallow copy of each Filter instead of copy.deepcopy(base_filters), which
        # costs about half a millisecond per request for a dozen filters. What a request sets on a filter (model,
        # parent, the lazily built form field) is set on its own copy; the shared parts are never mutated.
        if queryset is None:
            queryset = self._meta.model._default_manager.all()
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {name: copy.copy(flt) for name, flt in self.base_filters.items()}
        for flt in self.filters.values():
            flt.__dict__.pop("_field", None)
            if getattr(flt, "_method", None) is not None:
                flt.method = flt._method  # a FilterMethod bound to this copy, not to the class's filter
            flt.model = queryset.model
            flt.parent = self

    def is_valid(self) -> bool:
        valid = super().is_valid()
        data = self.data
        repeated = [
            name
            for name, flt in self.filters.items()
            if hasattr(data, "getlist")
            and len(data.getlist(name)) > 1
            and not isinstance(flt, django_filters.MultipleChoiceFilter | django_filters.BaseInFilter)
        ]
        for name in repeated:
            self.form.add_error(name if name in self.form.fields else None, "Give this filter once.")
        return valid and not repeated


class StrictFilterBackend(DjangoFilterBackend):
    filterset_base = StrictFilterSet

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        # No filter parameter given: nothing to validate or apply (every filter ignores an empty value), so skip
        # building the filterset and its form (the common unfiltered list and board read).
        filterset_class = self.get_filterset_class(view, queryset)
        # (A multi-widget filter reads `<name>_<suffix>` parameters, hence startswith.)
        if filterset_class is not None and not any(
            param.startswith(name) for param in request.query_params for name in filterset_class.base_filters
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)


class StrictOrderingFilter(OrderingFilter):
    """`?ordering=` as the schema documents it: one or more of the list's ordering fields, comma-separated, each
    optionally preceded by '-' (descending). DRF's OrderingFilter silently ignores what it does not know
    (a typo, a field the list does not order by, a NUL); this one refuses it with a 400 naming what the list
    takes. A list that orders by nothing has no `ordering` parameter (an empty value is no ordering)."""

    def valid_terms(self, queryset: Any, view: Any, request: Any) -> list[str]:
        return [name for name, _ in self.get_valid_fields(queryset, view, {"request": request})]

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> Any:
        values = request.query_params.getlist(self.ordering_param)
        if not values or values == [""]:
            return self.get_default_ordering(view)
        valid = self.valid_terms(queryset, view, request)
        if len(values) > 1:
            raise ValidationError({self.ordering_param: ["Give ordering once."]})
        if not valid or not re.fullmatch(ordering_pattern(valid), values[0]):
            takes = ", ".join(valid)
            raise ValidationError(
                {
                    self.ordering_param: [
                        f"Order by one or more of {takes} (comma-separated; '-' first for descending)."
                        if valid
                        else "This list has a fixed order."
                    ]
                }
            )
        return values[0].split(",")

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        ordering_fields = getattr(view, "ordering_fields", self.ordering_fields)
        if isinstance(ordering_fields, list | tuple):
            valid = [item if isinstance(item, str) else item[0] for item in ordering_fields]
        else:
            try:
                valid = self.valid_terms(view.get_queryset(), view, getattr(view, "request", None))
            except Exception:  # noqa: BLE001 - a view that cannot build its queryset for the schema
                return super().get_schema_operation_parameters(view)
        if not valid:
            return []
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"One or more of {', '.join(valid)}, comma-separated; '-' first for descending.",
                "schema": {"type": "string", "pattern": ordering_pattern(valid)},
            }
        ]


def ordering_pattern(terms: list[str]) -> str:
    """A regular expression (Python and ECMA alike) of an ordering value made of these terms, or empty (no
    ordering asked)."""
    term = "-?(?:" + "|".join(re.escape(t) for t in terms) + ")"
    return f"^(?:{term}(?:,{term})*)?$"

"""Strict query-parameter filtering: a malformed filter value is a 400, never silently ignored."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db import models
from django_filters.rest_framework import DjangoFilterBackend

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

    def is_valid(self) -> bool:
        valid = super().is_valid()
        data = self.data
        repeated = [
            name for name, flt in self.filters.items()
            if hasattr(data, "getlist") and len(data.getlist(name)) > 1
            and not isinstance(flt, django_filters.MultipleChoiceFilter | django_filters.BaseInFilter)
        ]
        for name in repeated:
            self.form.add_error(name if name in self.form.fields else None, "Give this filter once.")
        return valid and not repeated


class StrictFilterBackend(DjangoFilterBackend):
    filterset_base = StrictFilterSet

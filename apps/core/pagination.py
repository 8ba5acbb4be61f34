"""Page-number pagination (most lists) and cursor pagination (jobs, audit), page_size capped at 100.

DRF silently ignores a malformed page_size; we refuse it with a 400 so clients learn about their bug."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

MAX_PAGE_SIZE = 100


def _strict_page_size(request: Any, param: str, default: int, maximum: int) -> int:
    values = request.query_params.getlist(param)
    if not values:
        return default
    if len(values) > 1:
        raise ValidationError({param: ["Give page_size once."]})
    raw = values[0]
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError({param: [f"Must be an integer between 1 and {maximum}."]})
    return min(int(raw), maximum)


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Any) -> int:
        return _strict_page_size(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def get_page_number(self, request: Any, paginator: Any) -> Any:
        values = request.query_params.getlist(self.page_query_param)
        if len(values) > 1:
            raise ValidationError({self.page_query_param: ["Give page once."]})
        if values and values[0] != "last" and (not values[0].isdigit() or int(values[0]) < 1):
            raise ValidationError({self.page_query_param: ["Must be a positive integer."]})
        return super().get_page_number(request, paginator)


class CursorPagination(pagination.CursorPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = "-id"

    def get_page_size(self, request: Any) -> int:
        return _strict_page_size(request, self.page_size_query_param, self.page_size, self.max_page_size)

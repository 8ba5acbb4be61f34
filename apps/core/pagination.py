"""Page-number pagination (most lists) and cursor pagination (jobs, audit), page_size from 1 to 100.

DRF silently ignores a malformed page_size and clamps a large one; we refuse both with a 400 (as the OpenAPI
schema says: minimum 1, maximum 100) so clients learn about their bug."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

MAX_PAGE_SIZE = 100
# Page numbers past this are refused before any query (and before int() of a 5,000-digit string fails).
MAX_PAGE = 10**9
_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")


def query_int(raw: str, *, minimum: int, maximum: int) -> int | None:
    """An integer query parameter written in ASCII digits within [minimum, maximum], or None.

    str.isdigit() also accepts '²' and other Unicode digits, which int() then refuses with a ValueError."""
    if not _ASCII_DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None


def _strict_page_size(request: Any, param: str, default: int, maximum: int) -> int:
    values = request.query_params.getlist(param)
    if not values:
        return default
    if len(values) > 1:
        raise ValidationError({param: ["Give page_size once."]})
    value = query_int(values[0], minimum=1, maximum=maximum)
    if value is None:
        raise ValidationError({param: [f"Must be an integer between 1 and {maximum}."]})
    return value


def _documented_limits(params: list[dict[str, Any]], limits: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """The schema says what the code enforces, so a client (or schemathesis) can stay inside it."""
    for param in params:
        if param.get("name") in limits:
            low, high = limits[param["name"]]
            param["schema"] = {**param.get("schema", {}), "type": "integer", "minimum": low, "maximum": high}
    return params


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    # DRF also takes page=last; the schema says integer, and so does the code.
    last_page_strings: tuple[str, ...] = ()

    def get_page_size(self, request: Any) -> int:
        return _strict_page_size(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def get_page_number(self, request: Any, paginator: Any) -> Any:
        values = request.query_params.getlist(self.page_query_param)
        if len(values) > 1:
            raise ValidationError({self.page_query_param: ["Give page once."]})
        if values and query_int(values[0], minimum=1, maximum=MAX_PAGE) is None:
            raise ValidationError({self.page_query_param: [f"Must be an integer between 1 and {MAX_PAGE}."]})
        return super().get_page_number(request, paginator)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return _documented_limits(
            super().get_schema_operation_parameters(view),
            {self.page_query_param: (1, MAX_PAGE), self.page_size_query_param: (1, self.max_page_size)},
        )


class CursorPagination(pagination.CursorPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = "-id"

    def get_page_size(self, request: Any) -> int:
        return _strict_page_size(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return _documented_limits(
            super().get_schema_operation_parameters(view), {self.page_size_query_param: (1, self.max_page_size)}
        )

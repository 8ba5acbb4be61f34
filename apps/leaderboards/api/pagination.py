"""Page-number pagination for boards, without a total count.

A COUNT(*) over a filtered board grows with the board, while the top-n read does not (it stops after n
index entries); boards fetch page_size + 1 rows instead to know whether a next page exists."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.utils.urls import remove_query_param, replace_query_param

from apps.core.pagination import MAX_PAGE_SIZE, _strict_page_size, query_int


class BoardPagination(BasePagination):
    page_size = 50
    max_page_size = MAX_PAGE_SIZE
    page_query_param = "page"
    page_size_query_param = "page_size"
    # Deep pages cost an OFFSET scan; nobody reads rank 100,000 of a board page by page.
    max_page = 1000

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any]:
        self.request = request
        size = _strict_page_size(request, self.page_size_query_param, self.page_size, self.max_page_size)
        values = request.query_params.getlist(self.page_query_param)
        if len(values) > 1:
            raise ValidationError({self.page_query_param: ["Give page once."]})
        page = query_int(values[0], minimum=1, maximum=self.max_page) if values else 1
        if page is None:
            raise ValidationError({self.page_query_param: [f"Must be an integer between 1 and {self.max_page}."]})
        self.page_number = page
        self.size = size
        self.offset = (self.page_number - 1) * size
        rows = list(queryset[self.offset : self.offset + size + 1])
        self.has_next = len(rows) > size
        return rows[:size]

    def next_link(self) -> str | None:
        if not self.has_next:
            return None
        return replace_query_param(self.request.build_absolute_uri(), self.page_query_param, self.page_number + 1)

    def previous_link(self) -> str | None:
        if self.page_number <= 1:
            return None
        url = self.request.build_absolute_uri()
        if self.page_number == 2:
            return remove_query_param(url, self.page_query_param)
        return replace_query_param(url, self.page_query_param, self.page_number - 1)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": f"Page number (1-based, at most {self.max_page}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page (1 to {self.max_page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]

"""Request ids: every request gets one (or keeps the caller's X-Request-ID); audit events record it. URLs with a
NUL character are refused before any view."""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable
from urllib.parse import unquote_plus

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class NulRefusalMiddleware:
    """A URL whose path or query holds a NUL character (%00) is a 400: PostgreSQL cannot compare text with NUL
    in it, so every lookup by a path parameter (`/api/v1/variants/al%00ice/x/`) or a filter value would end in a
    database error and a 500. Problem+json under /api/ (ApiProblemMiddleware), a plain 400 page elsewhere."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or "\x00" in unquote_plus(request.META.get("QUERY_STRING", "")):
            return HttpResponseBadRequest("NUL characters (%00) are not allowed in URLs.")
        return self.get_response(request)

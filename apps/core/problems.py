"""RFC 9457 problem details: one shape for every error the API returns."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponsePermanentRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from .errors import DomainError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://modelcommons.dev/problems/"

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Permission denied",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
}
_SLUGS = {
    400: "bad-request",
    401: "not-authenticated",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "throttled",
    500: "server-error",
}


def problem_body(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: dict[str, list[str]] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or _SLUGS.get(status, "error")),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return body


def _flatten_errors(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF nests errors (lists of dicts for many=True); flatten to {"field.sub": [messages]}."""
    out: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if name == "non_field_errors":
                name = "__all__"
            for k, v in _flatten_errors(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(data, list):
        if all(not isinstance(item, (dict, list)) for item in data):
            out[prefix or "__all__"] = [str(item) for item in data]
        else:
            for i, item in enumerate(data):
                if item in ({}, []):
                    continue
                for k, v in _flatten_errors(item, f"{prefix}.{i}" if prefix else str(i)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "__all__"] = [str(data)]
    return out


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None, **kw: Any) -> Response:
    resp = Response(problem_body(status, detail, **kw), status=status, headers=headers)
    resp.content_type = PROBLEM_CONTENT_TYPE
    return resp


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF EXCEPTION_HANDLER: every error becomes application/problem+json."""
    request = context.get("request")
    instance = request.path if request is not None else None

    if isinstance(exc, DomainError):
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return problem_response(
            exc.status,
            exc.detail,
            headers=headers,
            slug=exc.slug,
            title=exc.title,
            errors=exc.errors,
            instance=instance,
            **exc.extra,
        )
    if isinstance(exc, RequestDataTooBig):
        return problem_response(413, str(exc) or "Request body too large.", instance=instance)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        return problem_response(
            400,
            "Validation failed.",
            slug="validation-error",
            title="Validation failed",
            errors=errors,
            instance=instance,
        )
    if isinstance(exc, SuspiciousOperation):
        return problem_response(400, str(exc) or "Suspicious request.", instance=instance)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    response = drf_default_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return problem_response(500, "The server hit an unexpected error. It has been logged.", instance=instance)

    status = response.status_code
    data = response.data
    if isinstance(exc, drf.ValidationError):
        body = problem_body(
            400,
            "Validation failed: see errors.",
            slug="validation-error",
            title="Validation failed",
            errors=_flatten_errors(data),
            instance=instance,
        )
    else:
        detail = data.get("detail", "") if isinstance(data, dict) else str(data)
        extra: dict[str, Any] = {}
        # Throttled sets `wait` (seconds, or None) in its __init__; the DRF stubs do not declare it.
        wait = getattr(exc, "wait", None) if isinstance(exc, drf.Throttled) else None
        if wait is not None:
            extra["retry_after"] = int(wait + 0.999)
        if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
            status = 401
            response.status_code = 401
        body = problem_body(status, str(detail), instance=instance, **extra)
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    if status == 401 and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _is_api(request: HttpRequest) -> bool:
    return is_api_path(request.path)


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


def json_problem(request: HttpRequest, status: int, detail: str, **kw: Any) -> JsonResponse:
    return JsonResponse(
        problem_body(status, detail, instance=request.path, **kw), status=status, content_type=PROBLEM_CONTENT_TYPE
    )


_GENERIC_DETAILS = {
    400: "Bad request.",
    403: "Permission denied.",
    404: "No such endpoint or object.",
    413: "Request body too large.",
    414: "The request line (URL) is too long.",
    500: "The server hit an unexpected error. It has been logged.",
}


def as_problem(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """An error response under /api/ that is not JSON (Django's DEBUG pages, HttpResponseNotAllowed, a CSRF
    failure page ...) rewritten as problem+json with the same status and headers (Allow, Retry-After ...)."""
    status = response.status_code
    if (
        status < 400
        or response.streaming
        or not is_api_path(request.path)
        or "json" in response.get("Content-Type", "").lower()
    ):
        return response
    if status == 405:
        detail = f"Method {request.method} is not allowed here."
    else:
        detail = _GENERIC_DETAILS.get(status, "The request failed.")
    body = problem_body(status, detail, instance=request.path)
    response.content = json.dumps(body).encode()  # type: ignore[attr-defined]
    response["Content-Type"] = PROBLEM_CONTENT_TYPE
    if response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
    return response


def problem_for_exception(request: HttpRequest, exc: Exception) -> JsonResponse | None:
    """The problem for an exception Django itself would answer (with an HTML page under DEBUG), or None for
    the unexpected ones (Django logs them and answers 500; `as_problem` rewrites that page)."""
    if isinstance(exc, DomainError):
        problem = json_problem(
            request, exc.status, exc.detail, slug=exc.slug, title=exc.title, errors=exc.errors, **exc.extra
        )
        if exc.status == 401:
            problem["WWW-Authenticate"] = 'Bearer realm="api"'
        return problem
    if isinstance(exc, RequestDataTooBig):
        return json_problem(request, 413, str(exc) or _GENERIC_DETAILS[413])
    if isinstance(exc, SuspiciousOperation):
        logging.getLogger(f"django.security.{type(exc).__name__}").error(str(exc))
        return json_problem(request, 400, _GENERIC_DETAILS[400])
    if isinstance(exc, Http404):
        return json_problem(request, 404, _GENERIC_DETAILS[404])
    if isinstance(exc, DjangoPermissionDenied):
        return json_problem(request, 403, _GENERIC_DETAILS[403])
    return None


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
    """The last route under /api/: unknown paths and ids that do not fit the URL's converter (`/jobs/abc/`)
    are a problem+json 404 in every settings module. (With DEBUG on, Django answers an unresolved URL with its
    HTML technical 404 page before handler404 is ever asked.)

    Like APPEND_SLASH, a GET or HEAD of a known endpoint without its trailing slash is redirected; other methods
    get the 404 with a hint (a redirect would lose the body)."""
    path = request.path_info
    detail = f"No API endpoint at {request.path}."
    if not path.endswith("/"):
        try:
            match = resolve(path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            if request.method in ("GET", "HEAD"):
                return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
            detail += f" Did you mean {request.path}/ (with the trailing slash)?"
    return json_problem(request, 404, detail)


def handler404(request: HttpRequest, exception: Exception | None = None):  # type: ignore[no-untyped-def]
    if _is_api(request):
        return json_problem(request, 404, "No such endpoint or object.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)  # type: ignore[arg-type]


def handler500(request: HttpRequest):  # type: ignore[no-untyped-def]
    if _is_api(request):
        return json_problem(request, 500, "The server hit an unexpected error. It has been logged.")
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None):  # type: ignore[no-untyped-def]
    """Django's answer to a SuspiciousOperation raised outside a DRF view: a form or upload over its limit
    (RequestDataTooBig, apps.core.errors.PayloadTooLarge) is a 413, on pages too."""
    too_big = isinstance(exception, RequestDataTooBig)
    if _is_api(request):
        if too_big:
            return json_problem(request, 413, str(exception) or _GENERIC_DETAILS[413])
        return json_problem(request, 400, _GENERIC_DETAILS[400])
    if too_big:
        from django.http import HttpResponse
        from django.utils.html import escape

        message = escape(str(exception) or "The request body is too large.")
        return HttpResponse(f"<!doctype html><title>Too large</title><h1>Too large</h1><p>{message}</p>", status=413)
    from django.views.defaults import bad_request

    return bad_request(request, exception)  # type: ignore[arg-type]


def handler403(request: HttpRequest, exception: Exception | None = None):  # type: ignore[no-untyped-def]
    if _is_api(request):
        return json_problem(request, 403, "Permission denied.")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)  # type: ignore[arg-type]


class ApiProblemMiddleware:
    """Under /api/ every error is problem+json, in every settings module.

    Outermost, so it sees every answer: Django's DEBUG pages (technical 404 and 500), HttpResponseNotAllowed
    from a plain view, a CSRF failure page. Exceptions that escape a view and that Django would turn into a page
    itself (too large, suspicious, 404, 403) become their problem here; unexpected ones are left to Django, which
    logs them, and their 500 page is rewritten. DRF views answer problem+json on their own
    (problem_exception_handler)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return as_problem(request, self.get_response(request))

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if not is_api_path(request.path):
            return None
        return problem_for_exception(request, exception)

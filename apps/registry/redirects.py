"""The old full name of a transferred variant answers 308 to its new one, for good (SPEC §2, wave 2).

A middleware, so that every path naming a variant follows it the same way (the REST API, the pages and the
Hub-compatible paths `huggingface_hub` reads, which follows 308s for HEAD and GET): it looks only at responses
that are already a 404 for a path of one of those shapes, so a request for a live name costs nothing. The
redirect is given only to a reader who may see the variant under its new name (everyone else keeps the 404:
nobody learns where a draft went), and never when a variant lives under the old name again."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect

from .models import Variant, VariantRedirect

#: Paths naming a variant as `{owner}/{name}`: the REST API, the pages, and the Hub-compatible reads.
VARIANT_PATHS = [
    re.compile(r"^(?P<prefix>/api/v1/variants/)(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$"),
    re.compile(r"^(?P<prefix>/variants/)(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$"),
    re.compile(r"^(?P<prefix>/api/models/)(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$"),
    re.compile(r"^(?P<prefix>/)(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/resolve/.*)$"),
]


class PermanentRedirect(HttpResponsePermanentRedirect):
    """308: the method and body are kept (a POST to the old name reaches the new one as a POST)."""

    status_code = 308


def moved_to(request: HttpRequest, path: str) -> str | None:
    """The path under the variant's current name, if `path` names a transferred variant the user may see."""
    for pattern in VARIANT_PATHS:
        match = pattern.match(path)
        if match is None:
            continue
        owner, name = match["owner"], match["name"]
        if Variant.objects.by_full_name(f"{owner}/{name}").exists():
            return None  # a variant lives under this name (again): its own 404 stands
        redirect = (
            VariantRedirect.objects.filter(owner_name__iexact=owner, name__iexact=name)
            .select_related("variant__owner")
            .first()
        )
        if redirect is None:
            return None
        variant = redirect.variant
        if not Variant.objects.visible_to(request.user).filter(pk=variant.pk).exists():
            return None
        return f"{match['prefix']}{quote(variant.owner.username)}/{quote(variant.name)}{match['rest'] or ''}"
    return None


class VariantRedirectMiddleware:
    """After authentication: turns a 404 for a transferred variant's old name into a 308 to the new one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 404:
            return response
        target = moved_to(request, request.path)
        if target is None:
            return response
        query = request.META.get("QUERY_STRING", "")
        return PermanentRedirect(f"{target}?{query}" if query else target)

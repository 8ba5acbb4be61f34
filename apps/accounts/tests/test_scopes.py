"""Token scopes, structurally: every method of every API view declares the scope a token needs (SPEC §7, wave 2).

The URLconf is walked, not listed by hand, so a new endpoint without a declaration fails here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView
from rest_framework.viewsets import ViewSetMixin

from apps.accounts.choices import TokenScope
from apps.accounts.permissions import DECLARABLE, NO_TOKEN, TokenScopePermission, required_scopes

# The OpenAPI document and its viewer describe the API and hold no one's data: they are public to every
# caller, with or without a token, and declare no scope.
PUBLIC_DOCUMENTS = {"schema", "api-docs"}
# Plain Django views under /api/ that answer the same to everyone and read nothing: the problem+json 404 for
# paths nothing else routes.
NO_DATA = {"apps.core.problems.api_not_found"}
HANDLED = ("get", "post", "put", "patch", "delete")


def _walk(patterns: list[Any], prefix: str = "", name_prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        else:
            yield route, pattern


def _dotted(callback: Any) -> str:
    return f"{callback.__module__}.{callback.__qualname__}"


def _is_drf(callback: Any) -> bool:
    return isinstance(getattr(callback, "cls", None), type) and issubclass(callback.cls, APIView)


def api_endpoints() -> list[tuple[str, str | None, Any]]:
    """(route, url name, view callback) for every URL pattern under /api/ and every DRF view anywhere (the
    Hub-compatible download paths live outside /api/ and take tokens too)."""
    found = []
    for route, pattern in _walk(get_resolver().url_patterns):
        route = route.replace("^", "").replace("$", "")  # the routers' regexes, read as plain routes
        if route.startswith("api/") or _is_drf(pattern.callback):
            found.append((route, pattern.name, pattern.callback))
    return found


def _methods(callback: Any) -> list[str]:
    cls = callback.cls
    allowed = [m for m in cls.http_method_names if m in HANDLED]
    actions = getattr(callback, "actions", None)
    if actions is not None:
        return [m for m in actions if m in allowed]
    return [m for m in allowed if hasattr(cls, m)]


def _view_for(callback: Any, method: str) -> tuple[Any, Any]:
    """The view instance and DRF request that `method` on this URL pattern would build (without running it)."""
    cls = callback.cls
    view = cls(**getattr(callback, "initkwargs", {}))
    actions = getattr(callback, "actions", None)
    if actions is not None:
        view.action_map = dict(actions)
        if "get" in actions and "head" not in actions:  # as DRF's ViewSetMixin.as_view() does per request
            view.action_map["head"] = actions["get"]
        for verb, action in view.action_map.items():
            setattr(view, verb, getattr(view, action))
    django_request = APIRequestFactory().generic(method.upper(), "/api/v1/structural-test/")
    django_request.user = AnonymousUser()
    view.setup(django_request)
    view.format_kwarg = None
    view.request = view.initialize_request(django_request)
    return view, view.request


def scope_problems(callback: Any) -> list[str]:
    """What is wrong with this view's token-scope declarations (empty when all is well)."""
    problems = []
    if not _is_drf(callback):
        return [f"{_dotted(callback)} is not a DRF view: tokens, scopes and problem details would not apply"]
    cls = callback.cls
    methods = _methods(callback)
    for method in [*methods, *(["head"] if "get" in methods else []), "options"]:
        view, request = _view_for(callback, method)
        where = f"{cls.__name__} {method.upper()}" + (f" ({view.action})" if getattr(view, "action", None) else "")
        if not any(isinstance(p, TokenScopePermission) for p in view.get_permissions()):
            problems.append(f"{where}: TokenScopePermission is not among its permissions")
        scopes = required_scopes(request, view)
        if scopes is None:
            problems.append(f"{where}: declares no token scope")
    view, _ = _view_for(callback, methods[0] if methods else "get")
    mapping = dict(getattr(view, "token_scopes", None) or {})
    for key, value in mapping.items():
        values = (value,) if isinstance(value, str) else tuple(value)
        if not values or not set(values) <= DECLARABLE:
            problems.append(f"{cls.__name__}: {key!r} declares {value!r}, not one of {sorted(DECLARABLE)}")
        if key in ("HEAD", "OPTIONS"):
            known = key == "OPTIONS" or hasattr(cls, "head") or hasattr(cls, "get")
        elif key.isupper():  # an HTTP method
            known = key.lower() in HANDLED and (hasattr(cls, key.lower()) or isinstance(view, ViewSetMixin))
        else:  # a viewset action (this URL pattern may route only some of them)
            known = isinstance(view, ViewSetMixin) and callable(getattr(cls, key, None))
        if not known:
            problems.append(f"{cls.__name__}: token_scopes names {key!r}, which it does not handle")
    return problems


ENDPOINTS = [
    (route, name, callback)
    for route, name, callback in api_endpoints()
    if name not in PUBLIC_DOCUMENTS and _dotted(callback) not in NO_DATA
]


@pytest.mark.parametrize(("route", "name", "callback"), ENDPOINTS, ids=[f"{r} [{n}]" for r, n, _ in ENDPOINTS])
def test_every_api_view_declares_a_token_scope_for_every_method(route, name, callback):
    assert scope_problems(callback) == []


def test_the_walk_sees_the_whole_api():
    routes = {route for route, _, _ in api_endpoints()}
    assert len(ENDPOINTS) >= 60
    for expected in (
        "api/v1/auth/tokens/",
        "api/v1/blocklist/",
        "api/v1/audit/",
        "api/v1/suites/",
        "api/v1/variants/<str:owner>/<str:name>/revisions/<int:number>/publish/",
    ):
        assert any(route.startswith(expected) for route in routes), expected


def test_the_exemptions_exist_and_are_narrow():
    callbacks = {_dotted(callback) for _, _, callback in api_endpoints()}
    assert NO_DATA <= callbacks  # a stale exemption is removed, not kept
    assert all(not _is_drf(callback) for _, _, callback in api_endpoints() if _dotted(callback) in NO_DATA)
    docs = [(route, callback) for route, name, callback in api_endpoints() if name in PUBLIC_DOCUMENTS]
    assert len(docs) == len(PUBLIC_DOCUMENTS)
    for _, callback in docs:
        assert _methods(callback) == ["get"]
        view, _ = _view_for(callback, "get")
        assert all(isinstance(p, permissions.AllowAny) for p in view.get_permissions())


def _undeclared_view() -> Any:
    class Undeclared(APIView):
        def get(self, request: Any) -> Response:
            return Response({"ok": True})

    return Undeclared


def test_a_view_without_a_declaration_is_found_by_the_walk():
    view = _undeclared_view()
    problems = scope_problems(view.as_view())
    assert any("declares no token scope" in p for p in problems)

    class Typo(view):  # type: ignore[misc, valid-type]
        token_scopes = {"GET": "read", "PSOT": "write", "DELETE": "admni"}

    problems = scope_problems(Typo.as_view())
    assert any("'PSOT'" in p for p in problems) and any("'admni'" in p for p in problems)


@pytest.mark.django_db
def test_undeclared_fails_closed_for_tokens_and_not_for_sessions(alice):
    from apps.accounts.services import token_create

    token, _ = token_create(user=alice, name="all", scopes=list(TokenScope.values[:4]))
    view = _undeclared_view().as_view()
    request = APIRequestFactory().get("/api/v1/x/")
    force_authenticate(request, user=alice, token=token)
    response = view(request)
    assert response.status_code == 403 and "declares no token scope" in str(response.data["detail"])
    request = APIRequestFactory().put("/api/v1/x/")
    force_authenticate(request, user=alice, token=token)
    assert view(request).status_code == 405  # a method nothing handles is still a 405, not a 403
    request = APIRequestFactory().get("/api/v1/x/")
    force_authenticate(request, user=alice)
    assert view(request).status_code == 200


@pytest.mark.django_db
def test_no_token_declaration_refuses_every_token_and_several_scopes_need_all(maintainer):
    from apps.accounts.services import token_create

    class Guarded(APIView):
        token_scopes = {"GET": NO_TOKEN, "POST": ("write", "review")}

        def get(self, request: Any) -> Response:
            return Response({})

        def post(self, request: Any) -> Response:
            return Response({})

    every, _ = token_create(user=maintainer, name="every", scopes=list(TokenScope.values))
    write_only, _ = token_create(user=maintainer, name="write", scopes=["read", "write"])
    factory = APIRequestFactory()
    for token, method, expected in [(every, "get", 403), (every, "post", 200), (write_only, "post", 403)]:
        request = getattr(factory, method)("/api/v1/x/")
        force_authenticate(request, user=maintainer, token=token)
        response = Guarded.as_view()(request)
        assert response.status_code == expected, (method, token.scopes, response.data)
    request = factory.get("/api/v1/x/")
    force_authenticate(request, user=maintainer)  # a session
    assert Guarded.as_view()(request).status_code == 200

"""API permissions: token scopes and roles. Object visibility lives in querysets (404, not 403)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from .models import PersonalAccessToken
from .roles import is_maintainer, is_reviewer


def required_scope(request: Any, view: Any) -> str:
    mapping: dict[str, str] = getattr(view, "token_scopes", {}) or {}
    action = getattr(view, "action", None)
    if action and action in mapping:
        return mapping[action]
    if request.method in mapping:
        return mapping[request.method]
    return "read" if request.method in SAFE_METHODS else "write"


class TokenScopePermission(BasePermission):
    """A token may only do what its scopes allow; sessions and Basic auth are not scope-limited."""

    message = "This token lacks the scope this request needs."

    def has_permission(self, request: Any, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, PersonalAccessToken):
            return True
        scope = required_scope(request, view)
        if token.has_scope(scope):
            return True
        self.message = f"This token lacks the '{scope}' scope (it has: {', '.join(token.scopes) or 'none'})."
        return False


class IsMaintainer(BasePermission):
    message = "Only maintainers may do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_maintainer(request.user)


class IsReviewer(BasePermission):
    message = "Only reviewers may do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        return is_reviewer(request.user)


class MaintainerWritesOnly(BasePermission):
    message = "Only maintainers may change this."

    def has_permission(self, request: Any, view: Any) -> bool:
        return request.method in SAFE_METHODS or is_maintainer(request.user)

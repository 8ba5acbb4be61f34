"""API permissions: token scopes and roles. Object visibility lives in querysets (404, not 403).

Token scopes are declared, never guessed. Every API view says, in ``token_scopes``, which scope (or scopes)
a personal access token needs for each thing it does, keyed by viewset action (``"list"``, ``"create"``,
``"cancel"`` …) or, for plain views, by HTTP method (``"GET"``, ``"POST"`` …):

    token_scopes = {"list": "read", "retrieve": "read", "create": "admin"}

- A value is one scope, or a tuple of scopes that are all needed.
- ``NO_TOKEN`` means no token may do it, whatever its scopes: it needs the password (HTTP Basic) or a browser
  session. Token management is declared this way, so a stolen token cannot mint or revoke tokens.
- ``HEAD`` needs what ``GET`` needs; ``OPTIONS`` (the endpoint describing itself) needs ``read``.
- Anything else that is not declared is refused to tokens (fail closed), and
  apps/accounts/tests/test_scopes.py walks the URLconf to prove every method of every API view declares one.

Sessions and HTTP Basic carry the user's own authority and are not scope-limited; role rules apply to them
as to tokens."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from .choices import TokenScope
from .models import PersonalAccessToken
from .roles import is_maintainer, is_reviewer

#: Declared for what no token may do (it needs a password or a session).
NO_TOKEN = "no-token"
#: Every value a declaration may name.
DECLARABLE = frozenset([*TokenScope.values, NO_TOKEN])


def declared_scopes(view: Any) -> dict[str, Any]:
    return dict(getattr(view, "token_scopes", None) or {})


def required_scopes(request: Any, view: Any) -> tuple[str, ...] | None:
    """The scopes a token needs for this request, or None when the view declares nothing for it."""
    method = str(request.method).upper()
    if method == "OPTIONS":
        return (TokenScope.READ.value,)
    mapping = declared_scopes(view)
    action = getattr(view, "action", None)
    declared = None
    if action and action in mapping:
        declared = mapping[action]
    elif method in mapping:
        declared = mapping[method]
    elif method == "HEAD" and "GET" in mapping:
        declared = mapping["GET"]
    if declared is None:
        return None
    scopes = (declared,) if isinstance(declared, str) else tuple(declared)
    return scopes if scopes and all(s in DECLARABLE for s in scopes) else None


def _handles(view: Any, method: str) -> bool:
    """Whether the view has a handler for the method (as APIView.dispatch decides; else it answers 405)."""
    name = str(method).lower()
    return name in getattr(view, "http_method_names", ()) and callable(getattr(view, name, None))


class TokenScopePermission(BasePermission):
    """A token may only do what its scopes allow, and only what the view declares a scope for."""

    message = "This token lacks the scope this request needs."

    def has_permission(self, request: Any, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, PersonalAccessToken):
            return True
        needed = required_scopes(request, view)
        if needed is None and not _handles(view, request.method):
            return True  # nothing runs: the view answers 405
        if needed is None:
            self.message = (
                f"This endpoint declares no token scope for {request.method}: tokens may not call it "
                "(use a browser session)."
            )
            return False
        if NO_TOKEN in needed:
            self.message = (
                "A token cannot do this, whatever its scopes: use your password (HTTP Basic) or a browser session."
            )
            return False
        missing = [s for s in needed if not token.has_scope(s)]
        if not missing:
            return True
        self.message = (
            f"This token lacks the {' and '.join(repr(s) for s in missing)} scope "
            f"(it has: {', '.join(token.scopes) or 'none'})."
        )
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

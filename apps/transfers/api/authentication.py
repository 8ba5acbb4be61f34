"""`Authorization: Worker <token>` on the internal blob endpoint (apps.transfers.worker_access)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from apps.transfers.worker_access import InvalidWorkerToken, WorkerGrant, worker_blob_grant


class WorkerTokenAuthentication(authentication.BaseAuthentication):
    """A worker's blob token. Requests without one are unauthenticated (401); no user is attached, only the grant."""

    keyword = "Worker"

    def authenticate(self, request: Any) -> tuple[Any, WorkerGrant] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Worker <token>'.")
        try:
            return AnonymousUser(), worker_blob_grant(header[1].decode("ascii"))
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The worker token contains invalid characters.") from None
        except InvalidWorkerToken as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None

    def authenticate_header(self, request: Any) -> str:
        return 'Worker realm="blobs"'


class HasWorkerGrantForBlob(BasePermission):
    """The request carries a worker token for the blob in the URL."""

    message = "This worker token is for another blob."

    def has_permission(self, request: Any, view: Any) -> bool:
        grant = request.auth
        if not isinstance(grant, WorkerGrant):
            self.message = "A worker token (Authorization: Worker <token>) is needed."
            return False
        return bool(grant.sha256 == str(view.kwargs.get("sha256", "")).lower())

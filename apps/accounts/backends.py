"""The password backend: Django's ModelBackend behind login throttling (apps/accounts/login_limits.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from . import login_limits


class LimitedModelBackend(ModelBackend):
    """Every `authenticate()` with a username and password: refused unchecked while the account or the client
    address is locked, and counted when it fails.

    A refusal raises PermissionDenied, which makes `authenticate()` stop and return None; the lock is left on the
    request (`login_limits.login_block_of`) so that HTTP Basic can answer 429 and the login forms can say why."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        address = login_limits.request_address(request)
        block = login_limits.login_blocked(username=username, address=address)
        if block is not None:
            login_limits.mark_blocked(request, block)
            raise PermissionDenied(block.message)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_limits.login_failed(username=username, address=address)
        else:
            login_limits.login_succeeded(username=username)
        return user

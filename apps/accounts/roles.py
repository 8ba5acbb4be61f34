"""Role checks, cached per user object so a request pays one query for groups at most."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .choices import ROLE_GROUPS, Role

if TYPE_CHECKING:
    from .models import User
    from .types import Viewer


def user_roles(user: Viewer | None) -> list[str]:
    if user is None or not user.is_authenticated:
        return []
    cached = getattr(user, "_mc_roles", None)
    if cached is None:
        group_names = set(user.groups.values_list("name", flat=True))
        cached = [role.value for role, group in ROLE_GROUPS.items() if group in group_names]
        if user.is_superuser:
            cached.append("admin")
        user._mc_roles = cached
    return list(cached)


def is_maintainer(user: Viewer | None) -> bool:
    roles = user_roles(user)
    return Role.MAINTAINER in roles or "admin" in roles


def is_reviewer(user: Viewer | None) -> bool:
    roles = user_roles(user)
    return Role.REVIEWER in roles or is_maintainer(user)


def forget_roles(user: User) -> None:
    if hasattr(user, "_mc_roles"):
        del user._mc_roles

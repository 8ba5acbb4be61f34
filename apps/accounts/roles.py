"""Role checks, cached per user object so a request pays one query for groups at most."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Exists, OuterRef

from .choices import ROLE_GROUPS, Role

if TYPE_CHECKING:
    from .models import User
    from .types import Viewer


def roles_of(user: User, group_names: set[str]) -> list[str]:
    """The roles that membership of `group_names` gives `user` (and admin for a superuser)."""
    roles = [role.value for role, group in ROLE_GROUPS.items() if group in group_names]
    if user.is_superuser:
        roles.append("admin")
    return roles


def role_group_annotations(user_path: str) -> dict[str, Exists]:
    """Annotations telling, in the query that loads a user (through `user_path`, e.g. "user" from a token), which
    role groups they belong to: `remember_roles` then fills the per-user cache without a query of its own."""
    from django.contrib.auth.models import Group

    return {
        f"_mc_in_{group}": Exists(
            Group.objects.filter(name=group, user__pk=OuterRef(f"{user_path}__pk" if user_path else "pk"))
        )
        for group in ROLE_GROUPS.values()
    }


def remember_roles(user: User, annotated: Any) -> None:
    """Fill the user's role cache from a row loaded with `role_group_annotations`."""
    user._mc_roles = roles_of(user, {group for group in ROLE_GROUPS.values() if getattr(annotated, f"_mc_in_{group}")})


def user_roles(user: Viewer | None) -> list[str]:
    if user is None or not user.is_authenticated:
        return []
    cached = getattr(user, "_mc_roles", None)
    if cached is None:
        cached = roles_of(user, set(user.groups.values_list("name", flat=True)))
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

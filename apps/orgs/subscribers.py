"""How organizations join the accounts app's extension points (accounts sits below and never imports us)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.accounts.types import Actor


def organization_holds(name: str) -> str | None:
    """A NAMESPACE_CLAIMS entry: users may not take an organization's name."""
    from .models import Organization

    if Organization.objects.filter(name__iexact=name.strip()).exists():
        return "An organization has this name (users and organizations share one name space)."
    return None


def on_roles_changed(*, user: Actor, actor: Actor | None) -> None:
    """A ROLES_CHANGED_HOOKS entry: the admins of `commons` are the maintainers."""
    from .services import commons_sync_member

    commons_sync_member(user=user, actor=actor)


def register() -> None:
    """Called once from OrgsConfig.ready(); appending twice is avoided so reloads stay idempotent."""
    from apps.accounts.hooks import ROLES_CHANGED_HOOKS
    from apps.accounts.namespaces import NAMESPACE_CLAIMS

    if organization_holds not in NAMESPACE_CLAIMS:
        NAMESPACE_CLAIMS.append(organization_holds)
    if on_roles_changed not in ROLES_CHANGED_HOOKS:
        ROLES_CHANGED_HOOKS.append(on_roles_changed)

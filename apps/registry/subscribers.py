"""How the registry joins the extension points of the apps below it (orgs never imports the registry)."""

from __future__ import annotations

from typing import Any


def org_owns_variants(*, org: Any) -> str | None:
    """An ORG_DELETE_GUARDS entry: an organization that owns variants stays until they are transferred or
    deleted (its account owns them; deleting it would orphan their names)."""
    from .models import Variant

    if org.account_id is None:
        return None
    count = Variant.objects.filter(owner_id=org.account_id).count()
    if not count:
        return None
    return f"it owns {count} variant{'s' if count != 1 else ''}; transfer or delete them first."


def membership_changed(**kwargs: Any) -> None:
    """MEMBER_ADDED/ROLE_CHANGED/REMOVED hooks: what the member may reach changed, so the Access cached on that
    user object (apps.registry.querysets.access_of) is dropped."""
    from .querysets import forget_access

    membership = kwargs.get("membership")
    user = kwargs.get("user") or (membership.user if membership is not None else None)
    if user is not None:
        forget_access(user)


def register() -> None:
    """Called once from RegistryConfig.ready(); idempotent."""
    from apps.orgs import hooks

    if org_owns_variants not in hooks.ORG_DELETE_GUARDS:
        hooks.ORG_DELETE_GUARDS.append(org_owns_variants)
    for hook_list in (hooks.MEMBER_ADDED_HOOKS, hooks.MEMBER_ROLE_CHANGED_HOOKS, hooks.MEMBER_REMOVED_HOOKS):
        if membership_changed not in hook_list:
            hook_list.append(membership_changed)

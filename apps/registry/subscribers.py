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


def register() -> None:
    """Called once from RegistryConfig.ready(); idempotent."""
    from apps.orgs.hooks import ORG_DELETE_GUARDS

    if org_owns_variants not in ORG_DELETE_GUARDS:
        ORG_DELETE_GUARDS.append(org_owns_variants)

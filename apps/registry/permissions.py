"""Who may change a variant. Seeing it is the querysets' business (404); changing it is decided here (403)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.accounts.roles import is_maintainer
from apps.core.errors import PermissionDenied


def is_commons(owner: Any) -> bool:
    """The maintainers' namespace for original models."""
    return bool(owner is not None and owner.username.lower() == settings.MC_COMMONS_USERNAME.lower())


def can_edit_variant(user: Any, variant: Any) -> bool:
    """Only the owner edits; the maintainers act for the `commons` namespace, which nobody logs in as."""
    if not getattr(user, "is_authenticated", False):
        return False
    if variant.owner_id == user.pk:
        return True
    return is_commons(variant.owner) and is_maintainer(user)


def ensure_can_edit(user: Any, variant: Any, action: str = "change") -> None:
    if not can_edit_variant(user, variant):
        raise PermissionDenied(f"Only the owner of {variant.full_name} may {action} it.")


def can_create_in(user: Any, owner: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return owner.pk == user.pk or (is_commons(owner) and is_maintainer(user))

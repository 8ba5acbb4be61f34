"""Who may change a variant. Seeing it is the querysets' business (404); changing it is decided here (403)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from apps.accounts.roles import is_maintainer
from apps.core.errors import PermissionDenied

if TYPE_CHECKING:
    from apps.accounts.types import Viewer


def is_commons(owner: Any) -> bool:
    """The maintainers' namespace for original models."""
    return bool(owner is not None and owner.username.lower() == settings.MC_COMMONS_USERNAME.lower())


def can_edit_variant(user: Viewer, variant: Any) -> bool:
    """Only the owner edits; the maintainers act for the `commons` namespace, which nobody logs in as."""
    if not user.is_authenticated:
        return False
    if variant.owner_id == user.pk:
        return True
    return is_commons(variant.owner) and is_maintainer(user)


def ensure_can_edit(user: Viewer, variant: Any, action: str = "change") -> None:
    if not can_edit_variant(user, variant):
        raise PermissionDenied(f"Only the owner of {variant.full_name} may {action} it.")


def can_create_in(user: Viewer, owner: Any) -> bool:
    if not user.is_authenticated:
        return False
    return owner.pk == user.pk or (is_commons(owner) and is_maintainer(user))

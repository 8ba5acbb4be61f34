"""Who may change a variant. Seeing it is the querysets' business (404); changing it is decided here (403).

A variant's namespace is its `owner` account: a user, or an organization's account (`User.is_organization`).
- In a user's namespace the user manages their variants, and their collaborators edit them.
- In an organization's namespace every member creates and edits; its admins also manage (transfer, delete,
  collaborators). `commons` is the organization whose admins are the maintainers.
- Nobody else writes, maintainers included (they moderate through the reviews and the console)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from apps.accounts.roles import is_maintainer
from apps.core.errors import PermissionDenied
from apps.orgs.choices import OrgRole

from .querysets import access_of

if TYPE_CHECKING:
    from apps.accounts.types import Viewer


def is_commons(owner: Any) -> bool:
    """The maintainers' namespace for original models."""
    return bool(owner is not None and owner.username.lower() == settings.MC_COMMONS_USERNAME.lower())


def namespace_role(user: Viewer, owner: Any) -> str | None:
    """The user's standing in the namespace of `owner` (a user or an organization's account): "admin" for the
    user themself, an organization admin, or a maintainer in commons; "member" for an organization member;
    None otherwise. One query per request at most (the user's memberships are cached on the user)."""
    if not user.is_authenticated or owner is None:
        return None
    if owner.pk == user.pk:
        return OrgRole.ADMIN
    role = access_of(user).namespaces.get(owner.pk)
    if role is None and is_commons(owner) and is_maintainer(user):
        return OrgRole.ADMIN
    return role


def is_collaborator(user: Viewer, variant: Any) -> bool:
    return bool(user.is_authenticated and variant.pk in access_of(user).collaborations)


def can_edit_variant(user: Viewer, variant: Any) -> bool:
    """Its namespace's people (the owner, an organization's members) and its collaborators edit."""
    if not user.is_authenticated:
        return False
    if variant.owner_id == user.pk:
        return True
    return namespace_role(user, variant.owner) is not None or is_collaborator(user, variant)


def can_manage_variant(user: Viewer, variant: Any) -> bool:
    """Transfer it, delete it, choose its collaborators: the owner, or an admin of the owning organization."""
    if not user.is_authenticated:
        return False
    return variant.owner_id == user.pk or namespace_role(user, variant.owner) == OrgRole.ADMIN


def ensure_can_edit(user: Viewer, variant: Any, action: str = "change") -> None:
    if not can_edit_variant(user, variant):
        raise PermissionDenied(f"Only the owner of {variant.full_name} (or its collaborators) may {action} it.")


def ensure_can_manage(user: Viewer, variant: Any, action: str) -> None:
    if not can_manage_variant(user, variant):
        who = "its organization's admins" if getattr(variant.owner, "is_organization", False) else "its owner"
        raise PermissionDenied(f"Only {who} may {action} {variant.full_name}.")


def can_create_in(user: Viewer, owner: Any) -> bool:
    """Create in your own namespace, or in an organization you belong to (commons: its admins, the
    maintainers)."""
    if not user.is_authenticated or owner is None:
        return False
    if owner.pk == user.pk:
        return True
    if is_commons(owner):
        return namespace_role(user, owner) == OrgRole.ADMIN
    return bool(getattr(owner, "is_organization", False)) and namespace_role(user, owner) is not None

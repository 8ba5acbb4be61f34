"""Writes on users, roles and tokens. Each one is audited in its own transaction."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import NotFound, PermissionDenied, ValidationFailed

from .authentication import TOKEN_PREFIX, hash_token
from .choices import ROLE_GROUPS, Role, TokenScope
from .hooks import roles_changed
from .models import PersonalAccessToken, User
from .namespaces import username_problem
from .roles import forget_roles, is_maintainer, user_roles

if TYPE_CHECKING:
    from .types import Actor


@transaction.atomic
def token_create(
    *, user: User, name: str, scopes: list[str] | None = None, expires_at: datetime | None = None
) -> tuple[PersonalAccessToken, str]:
    """Mint a token and return it with its plaintext, which is never stored and never shown again."""
    from .choices import DEFAULT_TOKEN_SCOPES

    scopes = list(dict.fromkeys(scopes if scopes is not None else DEFAULT_TOKEN_SCOPES))
    errors: dict[str, list[str]] = {}
    unknown = [s for s in scopes if s not in TokenScope.values]
    if unknown:
        errors["scopes"] = [f"Unknown scope(s): {', '.join(unknown)}. Valid: {', '.join(TokenScope.values)}."]
    elif not scopes:
        errors["scopes"] = ["At least one scope is required."]
    elif TokenScope.ADMIN in scopes and not is_maintainer(user):
        errors["scopes"] = ["The 'admin' scope is only for maintainers."]
    now = timezone.now()
    if expires_at is None:
        expires_at = now + timedelta(days=settings.MC_TOKEN_DEFAULT_TTL_DAYS)
    if expires_at <= now:
        errors["expires_at"] = ["Expiry must be in the future."]
    elif expires_at > now + timedelta(days=settings.MC_TOKEN_MAX_TTL_DAYS):
        errors["expires_at"] = [f"Expiry may be at most {settings.MC_TOKEN_MAX_TTL_DAYS} days away."]
    if errors:
        raise ValidationFailed("Invalid token request.", errors=errors)

    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = PersonalAccessToken.objects.create(
        user=user, name=name, prefix=raw[:10], token_hash=hash_token(raw), scopes=scopes, expires_at=expires_at
    )
    audit_record(
        actor=user,
        verb="token.create",
        target=token,
        after={"name": name, "scopes": scopes, "expires_at": expires_at.isoformat()},
    )
    return token, raw


@transaction.atomic
def token_revoke(*, token: PersonalAccessToken, actor: User) -> PersonalAccessToken:
    """Revoke a token: its owner, or a maintainer (the moderation console revokes a leaked token)."""
    if actor.pk != token.user_id and not is_maintainer(actor):
        raise PermissionDenied("Only the token's owner or a maintainer may revoke it.")
    token = PersonalAccessToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, verb="token.revoke", target=token, after={"revoked_at": token.revoked_at})
    return token


@transaction.atomic
def user_set_roles(*, user: User, roles: list[str], actor: Actor | None) -> User:
    """Grant and revoke roles. Only maintainers (or the shell, actor=None) may do it."""
    if actor is not None and not is_maintainer(actor):
        raise PermissionDenied("Only maintainers grant and revoke roles.")
    unknown = [r for r in roles if r not in Role.values]
    if unknown:
        raise ValidationFailed(
            "Unknown role.",
            errors={"roles": [f"Unknown role(s): {', '.join(unknown)}. Valid: {', '.join(Role.values)}."]},
        )
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_organization:
        raise ValidationFailed(
            "Not a person.", errors={"roles": [f"{user.username} is an organization: roles are for people."]}
        )
    before = sorted(user_roles(user))
    for role, group_name in ROLE_GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        if role in roles:
            user.groups.add(group)
        else:
            user.groups.remove(group)
    forget_roles(user)
    after = sorted(user_roles(user))
    if before != after:
        audit_record(actor=actor, verb="user.roles", target=user, before={"roles": before}, after={"roles": after})
        roles_changed(user=user, actor=actor)
    return user


def user_grant_role(*, username: str, role: str, actor: Actor | None = None) -> User:
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        raise NotFound(f"No user '{username}'.")
    return user_set_roles(user=user, roles=sorted(set(user_roles(user)) - {"admin"} | {role}), actor=actor)


def user_revoke_role(*, username: str, role: str, actor: Actor | None = None) -> User:
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        raise NotFound(f"No user '{username}'.")
    return user_set_roles(user=user, roles=sorted(set(user_roles(user)) - {"admin", role}), actor=actor)


@transaction.atomic
def user_set_quota(*, user: User, actor: Actor, **changes: int | None) -> User:
    if not is_maintainer(actor):
        raise PermissionDenied("Only maintainers set quotas.")
    user = User.objects.select_for_update().get(pk=user.pk)
    before = {k: getattr(user, k) for k in changes}
    for key, value in changes.items():
        setattr(user, key, value)
    user.save(update_fields=list(changes))
    audit_record(actor=actor, verb="user.quota", target=user, before=before, after=changes)
    return user


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> User:
    """Open sign-up (the web form): a contributor with no roles. The form has already checked the password
    against AUTH_PASSWORD_VALIDATORS; uniqueness is checked again here, ignoring case, as the constraint does, and
    so is the name space shared with organizations and the reserved names."""
    # The name space's own reasons first: an organization's account holds its name as a user row does.
    problem = username_problem(username)
    if problem:
        raise ValidationFailed("Username not available.", errors={"username": [problem]})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed("Username taken.", errors={"username": ["A user with that username already exists."]})
    user = User.objects.create_user(username=username, email=email, password=password)
    audit_record(actor=user, verb="user.signup", target=user, after={"username": username})
    return user


# --- the Django admin: what only superusers may do ------------------------------------------------------------

#: Account fields a superuser may change in the admin. Roles go through user_set_roles (maintainers may too),
#: quotas through user_set_quota, passwords through user_password_set.
ADMIN_ACCOUNT_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser")


def _require_superuser(actor: Actor, what: str) -> None:
    if not (getattr(actor, "is_authenticated", False) and actor.is_active and actor.is_superuser):
        raise PermissionDenied(f"Only superusers {what}.")


def _permission_names(permissions: Iterable[Permission]) -> list[str]:
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in permissions)


@transaction.atomic
def user_admin_update(
    *, user: User, actor: Actor, changes: dict[str, Any], permissions: Iterable[Permission] | None = None
) -> User:
    """A superuser changes an account in the admin: its profile, `is_active`, `is_staff`, `is_superuser` and its
    direct permissions. Everything that changed is audited (`user.update`, before and after)."""
    _require_superuser(actor, "change accounts, staff status, superuser status and permissions")
    unknown = sorted(set(changes) - set(ADMIN_ACCOUNT_FIELDS))
    if unknown:
        raise ValidationFailed("Unknown account field.", errors={f: ["Not an account field."] for f in unknown})
    user = User.objects.select_for_update().get(pk=user.pk)
    renamed = changes.get("username")
    if renamed is not None and renamed.lower() != user.username.lower():
        problem = username_problem(renamed)
        if problem:
            raise ValidationFailed("Username not available.", errors={"username": [problem]})
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for field, value in changes.items():
        if getattr(user, field) != value:
            before[field], after[field] = getattr(user, field), value
            setattr(user, field, value)
    if before:
        user.save(update_fields=list(before))
    if permissions is not None:
        wanted = list(permissions)
        current = _permission_names(user.user_permissions.select_related("content_type"))
        if current != _permission_names(wanted):
            user.user_permissions.set(wanted)
            before["permissions"], after["permissions"] = current, _permission_names(wanted)
    forget_roles(user)
    if before:
        audit_record(actor=actor, verb="user.update", target=user, before=before, after=after)
    if "is_superuser" in before:
        roles_changed(user=user, actor=actor)
    return user


@transaction.atomic
def user_admin_create(*, user: User, actor: Actor) -> User:
    """A superuser adds an account in the admin (the add form has set its username and password): it starts as
    a contributor, with no staff or superuser status."""
    _require_superuser(actor, "add accounts")
    problem = username_problem(user.username)
    if problem:
        raise ValidationFailed("Username not available.", errors={"username": [problem]})
    user.is_staff = user.is_superuser = False
    user.save()
    audit_record(actor=actor, verb="user.create", target=user, after={"username": user.username})
    return user


@transaction.atomic
def user_password_set(*, user: User, actor: Actor, password: str | None) -> User:
    """A superuser sets (or, with None, disables) someone's password in the admin. Audited without the secret."""
    _require_superuser(actor, "set passwords")
    user = User.objects.select_for_update().get(pk=user.pk)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(actor=actor, verb="user.password", target=user, after={"usable": password is not None})
    return user

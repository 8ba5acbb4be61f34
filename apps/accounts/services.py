"""Writes on users, roles and tokens. Each one is audited in its own transaction."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import NotFound, PermissionDenied, ValidationFailed

from .authentication import TOKEN_PREFIX, hash_token
from .choices import ROLE_GROUPS, Role, TokenScope
from .models import PersonalAccessToken, User
from .roles import forget_roles, is_maintainer, user_roles


@transaction.atomic
def token_create(*, user: User, name: str, scopes: list[str] | None = None,
                 expires_at: datetime | None = None) -> tuple[PersonalAccessToken, str]:
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
    audit_record(actor=user, verb="token.create", target=token,
                 after={"name": name, "scopes": scopes, "expires_at": expires_at.isoformat()})
    return token, raw


@transaction.atomic
def token_revoke(*, token: PersonalAccessToken, actor: User) -> PersonalAccessToken:
    token = PersonalAccessToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, verb="token.revoke", target=token, after={"revoked_at": token.revoked_at})
    return token


@transaction.atomic
def user_set_roles(*, user: User, roles: list[str], actor: Any) -> User:
    """Grant and revoke roles. Only maintainers (or the shell, actor=None) may do it."""
    if actor is not None and not is_maintainer(actor):
        raise PermissionDenied("Only maintainers grant and revoke roles.")
    unknown = [r for r in roles if r not in Role.values]
    if unknown:
        raise ValidationFailed("Unknown role.", errors={"roles": [f"Unknown role(s): {', '.join(unknown)}. "
                                                                   f"Valid: {', '.join(Role.values)}."]})
    user = User.objects.select_for_update().get(pk=user.pk)
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
    return user


def user_grant_role(*, username: str, role: str, actor: Any = None) -> User:
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        raise NotFound(f"No user '{username}'.")
    return user_set_roles(user=user, roles=sorted(set(user_roles(user)) - {"admin"} | {role}), actor=actor)


def user_revoke_role(*, username: str, role: str, actor: Any = None) -> User:
    user = User.objects.filter(username__iexact=username).first()
    if user is None:
        raise NotFound(f"No user '{username}'.")
    return user_set_roles(user=user, roles=sorted(set(user_roles(user)) - {"admin", role}), actor=actor)


@transaction.atomic
def user_set_quota(*, user: User, actor: Any, **changes: int | None) -> User:
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
    against AUTH_PASSWORD_VALIDATORS; uniqueness is checked again here, ignoring case, as the constraint does."""
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed("Username taken.", errors={"username": ["A user with that username already exists."]})
    user = User.objects.create_user(username=username, email=email, password=password)
    audit_record(actor=user, verb="user.signup", target=user, after={"username": username})
    return user

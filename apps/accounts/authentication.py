"""`Authorization: Bearer mc_…` personal access tokens, and HTTP Basic (passwords) behind login throttling.

A token, its user and the user's roles come from the shared token cache when the default cache is Redis (one
round trip, no query: apps/accounts/token_cache.py says how revocation stays immediate), else from the database."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from apps.core.compiled import CompiledQuery

from . import login_limits, token_cache
from .models import PersonalAccessToken
from .roles import user_roles

TOKEN_PREFIX = "mc_"
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_token(raw: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough (as GitHub does) and lookups stay O(1).
    return hashlib.sha256(raw.encode()).hexdigest()


# Compiled once (apps.core.compiled); the hash is unique: no ORDER BY.
_BY_HASH: CompiledQuery[PersonalAccessToken] = CompiledQuery(
    lambda token_hash: PersonalAccessToken.objects.select_related("user").filter(token_hash=token_hash).order_by(),
    str,
)


def _from_database(token_hash: str) -> PersonalAccessToken | None:
    return _BY_HASH.first(token_hash)


def _refusal(token: PersonalAccessToken, now: datetime) -> str | None:
    if token.revoked_at is not None:
        return "Token has been revoked."
    if token.expires_at <= now:
        return "Token has expired."
    if not token.user.is_active:
        return "User is inactive."
    return None


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, PersonalAccessToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Token contains invalid characters.")
        if not raw.startswith(TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed("Not a Model Commons token (expected the mc_ prefix).")
        token_hash = hash_token(raw)
        cache = token_cache.shared_cache()
        gen: bytes | None = None
        cached: PersonalAccessToken | None = None
        if cache is not None:
            gen, cached = token_cache.lookup(cache, token_hash)
        token = cached or _from_database(token_hash)
        if cache is not None and token is not None and gen is None:
            # The token's first sighting: no generation was read before that database read, so read one now and
            # the database again (once a day a token; the entry is then written as on any miss).
            gen = token_cache.first_sighting(cache, token_hash, token.user_id)
            token = _from_database(token_hash)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        refusal = _refusal(token, now)
        dirty = cached is None
        # Write last-used at most once a minute, so reads do not turn into writes (the cached entry carries it).
        if refusal is None and (token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION):
            PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
            dirty = True
        if cache is not None and gen is not None and dirty:
            user_roles(token.user)  # the entry carries them: nearly every permission check reads them
            token_cache.store(cache, token_hash, gen, token)
        if refusal is not None:
            raise exceptions.AuthenticationFailed(refusal)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


class LoginThrottled(exceptions.Throttled):
    default_detail = "Too many failed logins."
    default_code = "login_throttled"


class BasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic whose password check is limited (LimitedModelBackend): while the account or the client address
    is locked, the answer is 429 with Retry-After, whatever the password."""

    def authenticate_credentials(self, userid: str, password: str, request: Any = None) -> tuple[Any, None]:
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            block = login_limits.login_block_of(request)
            if block is None:
                raise
            raise LoginThrottled(detail=block.message, wait=block.retry_after) from None

"""Querysets of the accounts app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from .models import PersonalAccessToken, User  # noqa: F401 - named in the QuerySet generics below


class PersonalAccessTokenQuerySet(models.QuerySet["PersonalAccessToken"]):
    def active(self) -> PersonalAccessTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())

    def update(self, **kwargs: Any) -> int:
        """A queryset update sends no post_save: refuse the touched users' cached tokens here (the shared token
        cache, apps/accounts/token_cache.py), except for the last-used stamp, which the cached entry carries."""
        if set(kwargs) <= {"last_used_at"}:
            return super().update(**kwargs)
        from .token_cache import invalidate, shared_cache

        if shared_cache() is None:
            return super().update(**kwargs)
        user_ids = list(self.order_by().values_list("user_id", flat=True).distinct())
        count = super().update(**kwargs)
        invalidate(user_ids)
        return count


class UserQuerySet(models.QuerySet["User"]):
    def update(self, **kwargs: Any) -> int:
        """A queryset update sends no post_save: refuse the cached tokens of the users it touches (deactivated,
        renamed...) as a save would (apps/accounts/token_cache.py), except for the last-login stamp, which no cached
        entry is checked against."""
        from .token_cache import invalidate, shared_cache

        if set(kwargs) <= {"last_login"} or shared_cache() is None:
            return super().update(**kwargs)
        user_ids = list(self.order_by().values_list("pk", flat=True))
        count = super().update(**kwargs)
        invalidate(user_ids)
        return count

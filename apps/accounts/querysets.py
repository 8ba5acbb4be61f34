"""Querysets of the accounts app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from .models import PersonalAccessToken  # noqa: F401 - named in the QuerySet generic below


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

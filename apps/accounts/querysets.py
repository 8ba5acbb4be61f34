"""Querysets of the accounts app."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class PersonalAccessTokenQuerySet(models.QuerySet):
    def active(self) -> PersonalAccessTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())

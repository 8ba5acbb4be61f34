"""Visibility lives in querysets: listing only what a user may see is the default."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from apps.accounts.roles import is_reviewer

from .choices import PUBLIC_STATUSES


class VariantQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> VariantQuerySet:
        """Published variants for everyone; drafts and variants under review for their owner, reviewers and
        maintainers only."""
        if is_reviewer(user):
            return self
        if getattr(user, "is_authenticated", False):
            return self.filter(Q(is_public=True) | Q(owner=user))
        return self.filter(is_public=True)

    def with_list_relations(self) -> VariantQuerySet:
        from .models import VariantParent

        return self.select_related("owner", "current_revision").prefetch_related(
            models.Prefetch("parent_links", queryset=VariantParent.objects.select_related("parent__owner"))
        )

    def by_full_name(self, full_name: str) -> VariantQuerySet:
        owner, _, name = full_name.partition("/")
        return self.filter(owner__username__iexact=owner, name__iexact=name)


class RevisionQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> RevisionQuerySet:
        """A published revision is public; every other state only for the owner, reviewers and maintainers."""
        if is_reviewer(user):
            return self
        if getattr(user, "is_authenticated", False):
            return self.filter(Q(status__in=PUBLIC_STATUSES) | Q(variant__owner=user))
        return self.filter(status__in=PUBLIC_STATUSES)

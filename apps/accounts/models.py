"""Users and personal access tokens."""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils import timezone

from .querysets import PersonalAccessTokenQuerySet, UserQuerySet


class Users(UserManager["User"]):
    """Django's user manager (create_user, create_superuser...) over UserQuerySet."""

    use_in_migrations = True

    def get_queryset(self) -> UserQuerySet:
        return UserQuerySet(self.model, using=self._db)


class User(AbstractUser):
    """The platform's user. Roles are the `reviewers` and `maintainers` groups."""

    # Per-user quota overrides set by maintainers; null means "use the setting".
    max_active_jobs = models.PositiveIntegerField(null=True, blank=True)
    daily_compute_seconds = models.PositiveIntegerField(null=True, blank=True)
    # An organization's namespace account (apps.orgs.Organization.account): it owns the organization's variants
    # and is charged for their jobs, as GitHub's accounts of type Organization; it never signs in (inactive, no
    # usable password) and is never a member, collaborator, reviewer or invitee.
    is_organization = models.BooleanField(default=False, editable=False)

    objects: ClassVar[Users] = Users()

    # The user's role names, cached on the instance by apps.accounts.roles (not a field).
    _mc_roles: list[str]
    # What the user reaches through organizations and collaborations, cached by apps.registry.querysets.access_of.
    _mc_access: object

    class Meta:
        constraints = [
            models.UniqueConstraint(models.functions.Lower("username"), name="user_username_ci_unique"),
        ]


class PersonalAccessToken(models.Model):
    """Only the sha256 of the token is stored; the plaintext is shown once, at creation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token in lists.")
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = PersonalAccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user.username}:{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.choices import Role, TokenScope
from apps.accounts.hooks import quota_status
from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.roles import user_roles
from apps.core.serializers import FieldsBuiltOnce


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = PersonalAccessToken
        fields = ["id", "name", "prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices),
        required=False,
        allow_empty=False,
        max_length=len(TokenScope.values),
    )
    expires_at = serializers.DateTimeField(required=False)


class TokenCreatedSerializer(serializers.ModelSerializer):
    token = serializers.SerializerMethodField(help_text="The plaintext token. Shown once; store it now.")

    class Meta:
        model = PersonalAccessToken
        fields = ["id", "name", "token", "prefix", "scopes", "expires_at", "created_at"]
        read_only_fields = fields

    def get_token(self, obj: PersonalAccessToken) -> str:
        return str(self.context["raw_token"])


class QuotaSerializer(serializers.Serializer):
    max_active_jobs = serializers.IntegerField()
    daily_compute_seconds = serializers.IntegerField()
    active_jobs = serializers.IntegerField()
    compute_seconds_today = serializers.FloatField()


class MeSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    roles = serializers.SerializerMethodField()
    quota = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["username", "email", "roles", "quota", "date_joined"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_roles(self, obj: User) -> list[str]:
        return user_roles(obj)

    @extend_schema_field(QuotaSerializer)
    def get_quota(self, obj: User) -> dict[str, Any]:
        return quota_status(obj)


class UserSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    roles = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["username", "roles", "date_joined"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_roles(self, obj: User) -> list[str]:
        return user_roles(obj)


class UserStaffSerializer(UserSerializer):
    """What maintainers see: email and quota overrides too."""

    class Meta(UserSerializer.Meta):
        fields = ["username", "email", "roles", "date_joined", "max_active_jobs", "daily_compute_seconds"]
        read_only_fields = fields


class UserUpdateSerializer(serializers.Serializer):
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), required=False, max_length=len(Role.values)
    )
    max_active_jobs = serializers.IntegerField(min_value=0, max_value=100000, required=False, allow_null=True)
    daily_compute_seconds = serializers.IntegerField(min_value=0, max_value=10**8, required=False, allow_null=True)

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.orgs.choices import InvitationStatus, OrgRole
from apps.orgs.models import ORG_NAME_MAX, Invitation, Membership, Organization
from apps.orgs.services import DESCRIPTION_MAX, DISPLAY_NAME_MAX, QUOTA_BOUNDS


class OrgSerializer(serializers.ModelSerializer):
    members_count = serializers.SerializerMethodField()
    my_role = serializers.SerializerMethodField(help_text="Your role in the organization; null if you are not in it.")

    class Meta:
        model = Organization
        fields = ["name", "display_name", "description", "members_count", "my_role", "created_at", "updated_at"]
        read_only_fields = fields

    def get_members_count(self, obj: Organization) -> int:
        annotated = getattr(obj, "members_count", None)
        return int(annotated) if annotated is not None else obj.memberships.count()

    @extend_schema_field(serializers.ChoiceField(choices=OrgRole.choices, allow_null=True))
    def get_my_role(self, obj: Organization) -> str | None:
        return getattr(obj, "my_role", None)


class OrgQuotaSerializer(serializers.Serializer):
    max_queued_jobs = serializers.IntegerField(help_text="Jobs the organization may have queued or running at once.")
    daily_compute_seconds = serializers.IntegerField(help_text="Compute seconds per rolling day.")
    queued_or_running = serializers.IntegerField(help_text="Jobs charged to the organization, queued or running.")
    compute_seconds_used = serializers.FloatField(help_text="Compute seconds charged to it in the last 24 hours.")


class OrgDetailSerializer(OrgSerializer):
    """One organization: its representation plus `quota`, which its members and the maintainers see (null for
    everyone else). The view passes it in the context (`quota`), read by apps.orgs.selectors.org_quota."""

    quota = serializers.SerializerMethodField(
        help_text="The organization's limits and what its members' jobs use of them; null unless you are a member "
        "or a maintainer. Jobs a member queues on the organization's variants are charged here."
    )

    class Meta(OrgSerializer.Meta):
        fields = [*OrgSerializer.Meta.fields, "quota"]
        read_only_fields = fields

    @extend_schema_field(OrgQuotaSerializer(allow_null=True))
    def get_quota(self, obj: Organization) -> dict[str, Any] | None:
        quota = self.context.get("quota")
        return dict(quota) if quota is not None else None


class OrgCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=ORG_NAME_MAX, help_text="The namespace: `{name}/{variant}`.")
    display_name = serializers.CharField(max_length=DISPLAY_NAME_MAX, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=DESCRIPTION_MAX, required=False, allow_blank=True, default="")


class OrgUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=DISPLAY_NAME_MAX, required=False, allow_blank=True)
    description = serializers.CharField(max_length=DESCRIPTION_MAX, required=False, allow_blank=True)
    max_queued_jobs = serializers.IntegerField(
        min_value=0,
        max_value=QUOTA_BOUNDS["max_queued_jobs"],
        required=False,
        allow_null=True,
        help_text="Maintainers only: jobs queued or running at once; null for the platform default.",
    )
    daily_compute_seconds = serializers.IntegerField(
        min_value=0,
        max_value=QUOTA_BOUNDS["daily_compute_seconds"],
        required=False,
        allow_null=True,
        help_text="Maintainers only: compute seconds per rolling day; null for the platform default.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "name" in self.initial_data:
            raise serializers.ValidationError({"name": ["An organization's name is its namespace; it cannot change."]})
        return attrs


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    joined_at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "joined_at"]
        read_only_fields = fields


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=OrgRole.choices)


class InvitationSerializer(serializers.ModelSerializer):
    org = serializers.CharField(source="org.name", read_only=True)
    username = serializers.CharField(source="invitee.username", read_only=True)
    invited_by = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField(help_text="A pending invitation past `expires_at` is `expired`.")

    class Meta:
        model = Invitation
        fields = ["id", "org", "username", "role", "status", "invited_by", "created_at", "expires_at", "decided_at"]
        read_only_fields = fields

    def get_invited_by(self, obj: Invitation) -> str | None:
        return obj.invited_by.username if obj.invited_by is not None else None

    @extend_schema_field(serializers.ChoiceField(choices=InvitationStatus.choices))
    def get_status(self, obj: Invitation) -> str:
        return obj.current_status


class InvitationCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=OrgRole.choices, default=OrgRole.MEMBER)

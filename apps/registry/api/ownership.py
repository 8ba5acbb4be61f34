"""Transfers and collaborators (SPEC §3, wave 2):

POST /api/v1/variants/{v}/transfer/                 {to}: a user or organization name
GET  /api/v1/variants/{v}/collaborators/
PUT|DELETE /api/v1/variants/{v}/collaborators/{username}/"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.types import signed_in
from apps.core.errors import PermissionDenied
from apps.registry import selectors, services
from apps.registry.models import Collaborator
from apps.registry.permissions import can_edit_variant
from apps.registry.querysets import sees_unpublished

from .serializers import VariantDetailSerializer
from .views import VariantMixin


class TransferSerializer(serializers.Serializer):
    to = serializers.CharField(max_length=150, help_text="The user or organization to move the variant to.")


class CollaboratorSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    permission = serializers.SerializerMethodField()
    added_by = serializers.CharField(source="added_by.username", read_only=True, default=None)

    class Meta:
        model = Collaborator
        fields = ["username", "permission", "added_by", "created_at"]
        read_only_fields = fields

    def get_permission(self, obj: Collaborator) -> str:
        return "write"


class VariantTransferView(VariantMixin, APIView):
    """Move a variant to another namespace (its owner or, for an organization's variant, the organization's
    admins; to a namespace where the caller may create). Its old full name answers 308 to the new one, for good,
    in the API, on the pages and on the Hub-compatible paths; its lineage, revisions, jobs, results, reviews and
    leaderboard rows follow it."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"POST": "write"}

    @extend_schema(request=TransferSerializer, responses={200: VariantDetailSerializer})
    def post(self, request: Request, owner: str, name: str) -> Response:
        incoming = TransferSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        variant = services.variant_transfer(
            variant=self.get_variant(), to=incoming.validated_data["to"], actor=signed_in(request.user)
        )
        fresh = selectors.variant_as_seen_by(
            request.user, selectors.variants_visible_to(request.user).get(pk=variant.pk)
        )
        response = Response(VariantDetailSerializer(fresh, context={"request": request}).data)
        response["Location"] = f"/api/v1/variants/{fresh.full_name}/"
        response["ETag"] = fresh.etag
        return response


class VariantCollaboratorsView(VariantMixin, ListAPIView):
    """The variant's write collaborators, for the people who write to it (and reviewers); 403 for others who
    can see the variant."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"GET": "read"}
    serializer_class = CollaboratorSerializer

    def get_queryset(self) -> QuerySet[Collaborator]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view for the schema
            return Collaborator.objects.none()
        variant = self.get_variant()
        if not (can_edit_variant(self.request.user, variant) or sees_unpublished(self.request.user, variant)):
            raise PermissionDenied(f"Only the people who write to {variant.full_name} see its collaborators.")
        return selectors.variant_collaborators(variant)


class VariantCollaboratorView(VariantMixin, APIView):
    """PUT adds a write collaborator (201; 200 if they already were one); DELETE removes one (the owner, an
    organization admin, or the collaborator leaving)."""

    permission_classes = [permissions.IsAuthenticated, *APIView.permission_classes]
    token_scopes = {"PUT": "write", "DELETE": "write"}

    @extend_schema(request=None, responses={201: CollaboratorSerializer, 200: CollaboratorSerializer})
    def put(self, request: Request, owner: str, name: str, username: str) -> Response:
        variant = self.get_variant()
        before = selectors.variant_collaborators(variant).filter(user__username__iexact=username).exists()
        row = services.collaborator_add(variant=variant, username=username, actor=signed_in(request.user))
        code = status.HTTP_200_OK if before else status.HTTP_201_CREATED
        return Response(CollaboratorSerializer(row).data, status=code)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, owner: str, name: str, username: str) -> Response:
        services.collaborator_remove(variant=self.get_variant(), username=username, actor=signed_in(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)

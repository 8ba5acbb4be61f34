"""Organizations API (SPEC §3, wave 2): thin views over apps.orgs.selectors (reads) and services (writes)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.permissions import TokenScopePermission
from apps.accounts.types import signed_in
from apps.core.conditional import not_modified
from apps.core.parsers import JSONParser
from apps.orgs import selectors, services
from apps.orgs.choices import InvitationStatus
from apps.orgs.models import Invitation, Organization

from .filtersets import InvitationFilterSet
from .serializers import (
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    OrgCreateSerializer,
    OrgDetailSerializer,
    OrgSerializer,
    OrgUpdateSerializer,
)

QUOTA_FIELDS = ("max_queued_jobs", "daily_compute_seconds")

#: Unknown names are a 404 from the lookup; this only keeps slashes and odd characters out of the route.
ORG_LOOKUP = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
READ_ANYONE_WRITE_SIGNED_IN = [permissions.IsAuthenticatedOrReadOnly, TokenScopePermission]
SIGNED_IN = [permissions.IsAuthenticated, TokenScopePermission]
JSON_ONLY = [JSONParser]
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="ETag from a previous GET; a stale one gets 412.",
)
STATUS_PARAMETER = OpenApiParameter(
    "status", str, enum=InvitationStatus.values, description="A pending invitation past its expiry is `expired`."
)


class OrgViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Organizations: namespaces like users (`{org}/{name}`). Anyone reads them and their members; a signed-in
    user creates one and becomes its admin; admins change the profile, invite, manage members and delete it."""

    serializer_class = OrgSerializer
    permission_classes = READ_ANYONE_WRITE_SIGNED_IN
    parser_classes = JSON_ONLY
    lookup_field = "name"
    lookup_url_kwarg = "org"
    lookup_value_regex = ORG_LOOKUP
    search_fields = ["name", "display_name"]
    ordering_fields = ["name", "created_at"]
    token_scopes = {
        "list": "read",
        "retrieve": "read",
        "create": "write",
        "partial_update": "write",
        "destroy": "write",
        "members": "read",
        "invitations": "read",
        "invite": "write",
    }

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Organization.objects.none()
        return selectors.orgs_list(user=self.request.user)

    def get_object(self) -> Organization:
        return selectors.org_get(name=self.kwargs["org"], user=self.request.user)

    def _detail(self, org: Organization) -> dict[str, Any]:
        quota = selectors.org_quota(org=org, user=self.request.user)
        return dict(OrgDetailSerializer(org, context={"quota": quota}).data)

    def _org_response(self, org: Organization, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.org_get(name=org.name, user=self.request.user)
        return Response(self._detail(fresh), status=code, headers={"ETag": fresh.etag})

    @extend_schema(request=OrgCreateSerializer, responses={201: OrgDetailSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        incoming = OrgCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        org = services.org_create(actor=signed_in(request.user), **incoming.validated_data)
        return self._org_response(org, status.HTTP_201_CREATED)

    @extend_schema(responses={200: OrgDetailSerializer, 304: OpenApiResponse(description="Not modified")})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """An organization. Its members and the maintainers also get `quota`, whose use moves with every job
        while the ETag follows the profile and the membership: for them the answer is never a 304."""
        org = self.get_object()
        body = self._detail(org)
        if body["quota"] is None and not_modified(request, org.etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": org.etag})
        return Response(body, headers={"ETag": org.etag})

    @extend_schema(request=OrgUpdateSerializer, responses={200: OrgDetailSerializer}, parameters=[IF_MATCH])
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change the profile (the org's admins); `max_queued_jobs` and `daily_compute_seconds` are the
        maintainers' (403 for anyone else)."""
        org = self.get_object()
        incoming = OrgUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        quota = {key: data.pop(key) for key in QUOTA_FIELDS if key in data}
        org = services.org_update(
            org=org,
            actor=signed_in(request.user),
            if_match=request.headers.get("If-Match"),
            quota=quota or None,
            **data,
        )
        return self._org_response(org)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.org_delete(org=self.get_object(), actor=signed_in(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: MemberSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"], filter_backends=[])
    def members(self, request: Request, org: str | None = None) -> Response:
        """The organization's members, admins first (public, as on the Hub)."""
        page = self.paginate_queryset(selectors.org_members(org=self.get_object()))
        return self.get_paginated_response(MemberSerializer(page, many=True).data)

    @extend_schema(responses={200: InvitationSerializer(many=True)}, parameters=[STATUS_PARAMETER])
    @action(detail=True, methods=["get"], filter_backends=[])
    def invitations(self, request: Request, org: str | None = None) -> Response:
        """The organization's invitations, for its admins."""
        if not request.user.is_authenticated:
            self.permission_denied(request)
        qs = selectors.org_invitations(org=self.get_object(), user=request.user)
        page = self.paginate_queryset(InvitationFilterSet(request.query_params, queryset=qs, request=request).qs)
        return self.get_paginated_response(InvitationSerializer(page, many=True).data)

    @extend_schema(request=InvitationCreateSerializer, responses={201: InvitationSerializer})
    @invitations.mapping.post
    def invite(self, request: Request, org: str | None = None) -> Response:
        """Invite a user by username, as `member` (default) or `admin`; they accept or decline."""
        incoming = InvitationCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            org=self.get_object(), actor=signed_in(request.user), **incoming.validated_data
        )
        fresh = selectors.invitation_get(pk=invitation.pk, user=request.user)
        return Response(InvitationSerializer(fresh).data, status=status.HTTP_201_CREATED)


class OrgMemberViewSet(viewsets.GenericViewSet):
    """One member of an organization: admins change the role or remove them; a member may leave."""

    serializer_class = MemberSerializer
    permission_classes = SIGNED_IN
    parser_classes = JSON_ONLY
    filter_backends: list[Any] = []
    token_scopes = {"partial_update": "write", "destroy": "write"}

    @extend_schema(request=MemberUpdateSerializer, responses={200: MemberSerializer})
    def partial_update(self, request: Request, org: str, username: str) -> Response:
        incoming = MemberUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        organization = selectors.org_get(name=org, user=request.user)
        membership = services.member_role_change(
            org=organization, username=username, role=incoming.validated_data["role"], actor=signed_in(request.user)
        )
        return Response(MemberSerializer(membership).data)

    def destroy(self, request: Request, org: str, username: str) -> Response:
        organization = selectors.org_get(name=org, user=request.user)
        services.member_remove(org=organization, username=username, actor=signed_in(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrgInvitationViewSet(viewsets.GenericViewSet):
    """One of an organization's invitations: its admins revoke a pending one."""

    serializer_class = InvitationSerializer
    permission_classes = SIGNED_IN
    parser_classes = JSON_ONLY
    filter_backends: list[Any] = []
    token_scopes = {"destroy": "write"}

    def destroy(self, request: Request, org: str, pk: int) -> Response:
        organization = selectors.org_get(name=org, user=request.user)
        invitation = selectors.invitation_get(pk=pk, user=request.user, org=organization)
        services.invitation_revoke(invitation=invitation, actor=signed_in(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your invitations to organizations, newest first (`?status=pending` for the open ones). Accept or decline."""

    serializer_class = InvitationSerializer
    permission_classes = SIGNED_IN
    parser_classes = JSON_ONLY
    filterset_class = InvitationFilterSet
    search_fields: list[str] = []
    ordering_fields: list[str] = []
    lookup_value_regex = r"[0-9]{1,18}"
    token_scopes = {"list": "read", "accept": "write", "decline": "write"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Invitation.objects.none()
        return selectors.invitations_received(user=self.request.user)

    def _decided(self, invitation: Invitation) -> Response:
        fresh = selectors.invitation_get(pk=invitation.pk, user=self.request.user)
        return Response(InvitationSerializer(fresh).data)

    @extend_schema(request=None, responses={200: InvitationSerializer})
    @action(detail=True, methods=["post"], filter_backends=[])
    def accept(self, request: Request, pk: str) -> Response:
        invitation = selectors.invitation_get(pk=int(pk), user=request.user)
        return self._decided(services.invitation_accept(invitation=invitation, actor=signed_in(request.user)))

    @extend_schema(request=None, responses={200: InvitationSerializer})
    @action(detail=True, methods=["post"], filter_backends=[])
    def decline(self, request: Request, pk: str) -> Response:
        invitation = selectors.invitation_get(pk=int(pk), user=request.user)
        return self._decided(services.invitation_decline(invitation=invitation, actor=signed_in(request.user)))

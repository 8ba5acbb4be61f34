from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import authentication, mixins, permissions, status, viewsets
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts import services
from apps.accounts.authentication import BasicAuthentication, BearerTokenAuthentication
from apps.accounts.models import PersonalAccessToken, User
from apps.accounts.permissions import NO_TOKEN, TokenScopePermission
from apps.accounts.roles import is_maintainer
from apps.accounts.types import signed_in
from apps.core.errors import PermissionDenied

from .serializers import (
    MeSerializer,
    TokenCreatedSerializer,
    TokenCreateSerializer,
    TokenSerializer,
    UserSerializer,
    UserStaffSerializer,
    UserUpdateSerializer,
)


class TokenViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your personal access tokens. Create and revoke them with your password (HTTP Basic) or a browser session;
    the token is shown once. A token cannot mint or revoke tokens, whatever its scopes; it may only revoke itself."""

    serializer_class = TokenSerializer
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    # A stolen token must not be able to lock its owner out or give itself a longer life: token management
    # needs the password or a session (GitHub's and the Hub's fine-grained tokens cannot manage tokens either).
    # Revoking itself only gives up access, so a token with `read` may do that (the view checks it is itself).
    token_scopes = {"list": "read", "create": NO_TOKEN, "destroy": "read"}
    authentication_classes = [
        BearerTokenAuthentication,
        BasicAuthentication,
        authentication.SessionAuthentication,
    ]
    filter_backends: list[Any] = []
    throttle_scope = "tokens"
    queryset = PersonalAccessToken.objects.none()
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self) -> QuerySet[PersonalAccessToken]:
        if not self.request.user.is_authenticated:  # the schema generator's anonymous request
            return PersonalAccessToken.objects.none()
        return PersonalAccessToken.objects.filter(user=self.request.user)

    @extend_schema(request=TokenCreateSerializer, responses={201: TokenCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        incoming = TokenCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        token, raw = services.token_create(user=signed_in(request.user), **incoming.validated_data)
        body = TokenCreatedSerializer(token, context={"raw_token": raw}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        token = self.get_object()
        if isinstance(request.auth, PersonalAccessToken) and request.auth.pk != token.pk:
            raise PermissionDenied(
                "A token may revoke only itself: revoke other tokens with your password "
                "(HTTP Basic) or in a browser session."
            )
        services.token_revoke(token=token, actor=signed_in(request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(GenericAPIView):
    """Who am I: username, roles and quota."""

    serializer_class = MeSerializer
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    token_scopes = {"GET": "read"}

    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


class UserViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Public profiles; maintainers also grant roles and set quotas here."""

    queryset = User.objects.filter(is_active=True).prefetch_related("groups")
    lookup_field = "username"
    lookup_value_regex = r"[\w.@+-]+"
    filter_backends: list[Any] = []
    token_scopes = {"retrieve": "read", "partial_update": "admin"}

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return UserStaffSerializer if is_maintainer(self.request.user) else UserSerializer

    def get_object(self) -> User:
        return get_object_or_404(self.get_queryset(), username__iexact=self.kwargs["username"])

    @extend_schema(request=UserUpdateSerializer, responses={200: UserStaffSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not request.user.is_authenticated:
            self.permission_denied(request)
        if not is_maintainer(request.user):
            raise PermissionDenied("Only maintainers change roles and quotas.")
        user = self.get_object()
        incoming = UserUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        if "roles" in data:
            user = services.user_set_roles(user=user, roles=data.pop("roles"), actor=signed_in(request.user))
        if data:
            user = services.user_set_quota(user=user, actor=signed_in(request.user), **data)
        return Response(UserStaffSerializer(user).data)

"""Notifications and webhooks API: everything here is the requesting user's own (others' objects are 404)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import User
from apps.accounts.permissions import TokenScopePermission
from apps.accounts.types import signed_in
from apps.core.pagination import CursorPagination
from apps.core.parsers import JSONParser
from apps.notifications import services
from apps.notifications.models import Notification, WebhookDelivery, WebhookSubscription

from .filtersets import DeliveryFilterSet, NotificationFilterSet
from .serializers import (
    MarkedSerializer,
    MarkReadSerializer,
    NotificationSerializer,
    PreferencesSerializer,
    PreferencesUpdateSerializer,
    WebhookCreateSerializer,
    WebhookDeliveryDetailSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
    WebhookWithSecretSerializer,
)

AUTHENTICATED = [permissions.IsAuthenticated, TokenScopePermission]


def me(request: Request) -> User:
    """The signed-in user: these endpoints run only after IsAuthenticated (or as maintainer-only actions)."""
    return signed_in(request.user)


JSON_ONLY = [JSONParser]


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your notifications, newest first (`?unread=true` for the unread ones)."""

    serializer_class = NotificationSerializer
    permission_classes = AUTHENTICATED
    parser_classes = JSON_ONLY
    filterset_class = NotificationFilterSet
    search_fields: list[str] = []
    ordering_fields: list[str] = []
    lookup_value_regex = r"[0-9]{1,18}"
    token_scopes = {"list": "read", "retrieve": "read", "read": "write", "read_all": "write"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        return Notification.objects.filter(user=me(self.request)).order_by("-id")

    @extend_schema(request=None, responses={200: NotificationSerializer})
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str | None = None) -> Response:
        notification = self.get_object()
        services.notifications_mark_read(user=me(request), ids=[notification.pk])
        notification.refresh_from_db()
        return Response(NotificationSerializer(notification).data)

    @extend_schema(request=MarkReadSerializer, responses={200: MarkedSerializer})
    @action(detail=False, methods=["post"], url_path="read-all", filter_backends=[])
    def read_all(self, request: Request) -> Response:
        incoming = MarkReadSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        marked = services.notifications_mark_read(user=me(request), ids=incoming.validated_data.get("ids"))
        return Response({"marked": marked})


class NotificationPreferencesView(GenericAPIView):
    """Turn each kind of notification on or off, in-app and by e-mail."""

    serializer_class = PreferencesSerializer
    permission_classes = AUTHENTICATED
    token_scopes = {"GET": "read", "PATCH": "write"}
    parser_classes = JSON_ONLY
    filter_backends: list[Any] = []

    def get(self, request: Request) -> Response:
        return Response(services.notification_preferences(me(request)))

    @extend_schema(request=PreferencesUpdateSerializer, responses={200: PreferencesSerializer})
    def patch(self, request: Request) -> Response:
        incoming = PreferencesUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return Response(services.notification_preferences_set(user=me(request), changes=dict(incoming.validated_data)))


class WebhookViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your webhook subscriptions. Deliveries are signed the Standard Webhooks way (HMAC-SHA256 over
    `id.timestamp.body`; headers webhook-id, webhook-timestamp, webhook-signature)."""

    serializer_class = WebhookSerializer
    permission_classes = AUTHENTICATED
    parser_classes = JSON_ONLY
    filter_backends: list[Any] = []
    lookup_value_regex = r"[0-9]{1,18}"
    token_scopes = {
        "list": "read",
        "retrieve": "read",
        "create": "write",
        "partial_update": "write",
        "destroy": "write",
        "rotate_secret": "write",
        "ping": "write",
    }

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return WebhookSubscription.objects.none()
        return WebhookSubscription.objects.filter(owner=me(self.request)).order_by("-id")

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookWithSecretSerializer})
    def create(self, request: Request) -> Response:
        incoming = WebhookCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        sub = services.webhook_create(owner=me(request), **incoming.validated_data)
        return Response(
            WebhookWithSecretSerializer(sub).data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
        )

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        sub = self.get_object()
        return Response(WebhookSerializer(sub).data, headers={"ETag": sub.etag})

    @extend_schema(request=WebhookUpdateSerializer, responses={200: WebhookSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        incoming = WebhookUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        sub = services.webhook_update(
            subscription=self.get_object(),
            actor=me(request),
            if_match=request.headers.get("If-Match"),
            **incoming.validated_data,
        )
        return Response(WebhookSerializer(sub).data, headers={"ETag": sub.etag})

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.webhook_delete(subscription=self.get_object(), actor=me(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: WebhookWithSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        sub = services.webhook_rotate_secret(subscription=self.get_object(), actor=me(request))
        return Response(WebhookWithSecretSerializer(sub).data, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def ping(self, request: Request, pk: str | None = None) -> Response:
        delivery = services.webhook_ping(subscription=self.get_object(), actor=me(request))
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryCursorPagination(CursorPagination):
    ordering = "-id"


class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The delivery log of one of your webhooks, newest first; each delivery lists its attempts."""

    serializer_class = WebhookDeliverySerializer
    permission_classes = AUTHENTICATED
    parser_classes = JSON_ONLY
    pagination_class = DeliveryCursorPagination
    filterset_class = DeliveryFilterSet
    search_fields: list[str] = []
    ordering_fields: list[str] = []
    lookup_value_regex = r"[0-9]{1,18}"
    token_scopes = {"list": "read", "retrieve": "read", "redeliver": "write"}

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return (
            WebhookDeliveryDetailSerializer if self.action in ("retrieve", "redeliver") else WebhookDeliverySerializer
        )

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        sub_id = self.kwargs["webhook_pk"]
        sub = get_object_or_404(
            WebhookSubscription.objects.filter(owner=me(self.request)), pk=sub_id if sub_id < 2**63 else 0
        )
        qs = WebhookDelivery.objects.filter(subscription=sub)
        if self.action in ("retrieve", "redeliver"):
            qs = qs.prefetch_related("attempt_log")
        return qs

    @extend_schema(request=None, responses={202: WebhookDeliveryDetailSerializer})
    @action(detail=True, methods=["post"], filter_backends=[])
    def redeliver(self, request: Request, webhook_pk: int, pk: str | None = None) -> Response:
        delivery = services.webhook_redeliver(delivery=self.get_object(), actor=me(request))
        fresh = WebhookDelivery.objects.prefetch_related("attempt_log").get(pk=delivery.pk)
        return Response(WebhookDeliveryDetailSerializer(fresh).data, status=status.HTTP_202_ACCEPTED)

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from rest_framework import mixins, permissions, viewsets

from apps.registry.models import Revision, Variant

from .serializers import RevisionSerializer, VariantSerializer

FULL_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._@+-]*/[A-Za-z0-9][A-Za-z0-9._-]*"


class VariantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Model variants; drafts are visible only to their owner, reviewers and maintainers."""

    serializer_class = VariantSerializer
    permission_classes = [permissions.AllowAny]
    lookup_field = "full_name"
    lookup_value_regex = FULL_NAME_RE
    search_fields = ["name", "summary", "owner__username"]
    ordering_fields = ["created_at", "updated_at", "name", "parameters"]
    filterset_fields = ["relation", "license", "task", "status", "precision"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return Variant.objects.visible_to(self.request.user).with_list_relations()

    def get_object(self) -> Variant:
        return get_object_or_404(self.get_queryset().by_full_name(self.kwargs["full_name"]))


class RevisionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RevisionSerializer
    permission_classes = [permissions.AllowAny]
    lookup_field = "number"
    lookup_value_regex = r"[0-9]+"
    filter_backends: list[Any] = []

    def get_queryset(self):  # type: ignore[no-untyped-def]
        variant = get_object_or_404(Variant.objects.visible_to(self.request.user).by_full_name(
            f"{self.kwargs['owner']}/{self.kwargs['name']}"))
        return Revision.objects.filter(variant=variant).prefetch_related("artifacts").order_by("number")

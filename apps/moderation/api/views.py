from rest_framework import mixins, permissions, viewsets

from apps.accounts.permissions import IsMaintainer, TokenScopePermission
from apps.core.pagination import CursorPagination
from apps.moderation.selectors import audit_events_visible_to

from .filtersets import AuditFilterSet
from .serializers import AuditEventSerializer


class AuditCursorPagination(CursorPagination):
    ordering = "-seq"


class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The audit trail, newest first. Maintainers only."""

    serializer_class = AuditEventSerializer
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission, IsMaintainer]
    pagination_class = AuditCursorPagination
    filterset_class = AuditFilterSet
    search_fields: list[str] = []
    ordering_fields: list[str] = []
    token_scopes = {"list": "admin"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return audit_events_visible_to(self.request.user)

"""The audit trail's queryset: append-only (no update, no delete). Who may read it is moderation's rule
(apps.moderation.selectors.audit_events_visible_to)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from .models import AuditEvent  # noqa: F401 - named in the QuerySet generic below


class AppendOnlyError(RuntimeError):
    pass


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only.")

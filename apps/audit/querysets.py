"""The audit trail's querysets: append-only (no update, no delete), for events and for their seals. Who may read
the trail is moderation's rule (apps.moderation.selectors.audit_events_visible_to)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from .models import AuditEvent, AuditSeal  # noqa: F401 - named in the QuerySet generics below


class AppendOnlyError(RuntimeError):
    pass


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only.")


class AuditSealQuerySet(models.QuerySet["AuditSeal"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit seals are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit seals are append-only.")

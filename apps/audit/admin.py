from django.contrib import admin

from .models import AuditEvent, AuditSeal


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only, even for superusers."""

    list_display = ("seq", "created_at", "actor_username", "verb", "target_type", "target_id", "request_id")
    list_filter = ("verb", "target_type")
    search_fields = ("actor_username", "target_id", "target_repr", "request_id", "hash")
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(AuditSeal)
class AuditSealAdmin(admin.ModelAdmin):
    """Read-only: the signed batches of the audit log (apps/audit/services.py), written by the sealer only."""

    list_display = ("number", "created_at", "first_seq", "last_seq", "count", "root")
    list_filter = ("created_at",)
    search_fields = ("hash", "root")
    readonly_fields = [f.name for f in AuditSeal._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

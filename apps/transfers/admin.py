"""Upload sessions in the moderation console (read-only: sessions change only through the upload services)."""

from __future__ import annotations

from django.contrib import admin

from apps.accounts.console import MaintainerConsoleMixin

from .models import UploadSession


@admin.register(UploadSession)
class UploadSessionAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "path", "revision", "created_by", "status", "offset", "size_bytes", "expires_at"]
    list_filter = ["status", "format", "created_at", "expires_at"]
    search_fields = ["path", "sha256", "created_by__username", "revision__variant__name"]
    list_select_related = ["revision__variant__owner", "created_by"]
    readonly_fields = [f.name for f in UploadSession._meta.fields]

"""Resumable upload sessions: a file arrives in chunks at increasing offsets, then becomes an artifact."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models

from apps.registry.models import Artifact, Revision

from .choices import UploadStatus


class UploadSession(models.Model):
    # A random id: the session URL is only useful to its creator, and is not guessable by anyone else.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="upload_sessions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_sessions")
    path = models.CharField(max_length=500)
    format = models.CharField(max_length=16)
    size_bytes = models.BigIntegerField(help_text="Declared size; no chunk may go past it.")
    sha256 = models.CharField(max_length=64, help_text="Declared sha256, checked over the whole file on completion.")
    offset = models.BigIntegerField(default=0, help_text="Bytes received and kept so far.")
    status = models.CharField(max_length=16, choices=UploadStatus.choices, default=UploadStatus.OPEN, db_index=True)
    failure = models.TextField(blank=True, default="")
    artifact = models.ForeignKey(Artifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"upload {self.pk} ({self.path})"

    @property
    def part_path(self) -> Path:
        """Where the bytes received so far are kept (MC_UPLOAD_TEMP_DIR, shared by every web process)."""
        return Path(settings.MC_UPLOAD_TEMP_DIR) / f"{self.pk}.part"

"""Upload session states."""

from django.db import models


class UploadStatus(models.TextChoices):
    OPEN = "open", "Open"  # receiving chunks
    COMPLETED = "completed", "Completed"  # the file became an artifact
    FAILED = "failed", "Failed"  # the bytes did not match the declaration (sha256, format): nothing was kept
    EXPIRED = "expired", "Expired"  # left unfinished past its expiry: the partial file was removed

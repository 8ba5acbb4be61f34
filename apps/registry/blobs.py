"""Content-addressed artifact storage: a file's bytes are stored once, under its sha256, in the default storage
(the file system or an S3-compatible bucket), however many artifacts of however many revisions name them.

Rows made before content addressing keep their old names (``artifacts/...``); both kinds are read the same way.
A blob is deleted only when no artifact row names it any more."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage

PREFIX = "blobs/sha256"


def blob_name(sha256: str) -> str:
    """The storage name of the bytes whose sha256 is `sha256`: blobs/sha256/<aa>/<bb>/<sha256>."""
    return f"{PREFIX}/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def blob_store(sha256: str, content: Any) -> tuple[str, bool]:
    """Store `content` (a django File whose sha256 the caller has computed) under its blob name unless it is there
    already. Returns (name, written): written is False when the blob existed and nothing was stored."""
    name = blob_name(sha256)
    if default_storage.exists(name):
        return name, False
    saved = default_storage.save(name, content)
    if saved != name:
        # Another request stored the same bytes between exists() and save(): the file system storage then picks
        # a new name; keep the one blob and drop the copy.
        default_storage.delete(saved)
    return name, True


def blob_release(name: str) -> None:
    """Delete the stored file `name` when no artifact row names it any more."""
    from apps.registry.models import Artifact

    if name and not Artifact.objects.filter(file=name).exists():
        default_storage.delete(name)

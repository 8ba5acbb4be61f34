"""Uploads: streamed to a temporary file with the sha256 computed on the fly, never held in memory.

`HashingUploadHandler` is the project's only upload handler (settings.FILE_UPLOAD_HANDLERS), so every
multipart body goes through it: the API with a token, a session or HTTP Basic, the web forms and the admin.
Each chunk is hashed and written to a temporary file as it arrives; the size cap (settings.MC_UPLOAD_MAX_BYTES)
is checked against the Content-Length before anything is read, and again while the bytes stream in. The
resulting file carries `sha256`, `size` and `head` (its first bytes) so the service never reads it twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from apps.core.errors import PayloadTooLarge

HEAD_BYTES = 64
__all__ = ["HashingUploadHandler", "PayloadTooLarge", "too_large", "upload_limit", "uploaded_digest"]
# Room for the multipart boundaries and the small form fields next to the file.
MULTIPART_OVERHEAD = 64 * 1024


def upload_limit() -> int:
    return min(int(settings.MC_UPLOAD_MAX_BYTES), int(settings.MC_ARTIFACT_MAX_BYTES))


def too_large(size: int | None = None) -> PayloadTooLarge:
    limit = upload_limit()
    got = f" ({size} bytes)" if size is not None else ""
    return PayloadTooLarge(f"The upload{got} is larger than the {limit}-byte limit.", limit_bytes=limit)


class HashingUploadHandler(FileUploadHandler):
    chunk_size = 1024 * 1024

    def handle_raw_input(
        self, input_data: Any, META: Any, content_length: int, boundary: Any, encoding: str | None = None
    ) -> None:
        if content_length and content_length > upload_limit() + MULTIPART_OVERHEAD:
            raise too_large(content_length)
        return None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.file = TemporaryUploadedFile(
            self.file_name or "upload", self.content_type, 0, self.charset, self.content_type_extra
        )
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.size += len(raw_data)
        if self.size > upload_limit():
            self.file.close()
            raise too_large()
        if len(self.head) < HEAD_BYTES:
            self.head += raw_data[: HEAD_BYTES - len(self.head)]
        self.digest.update(raw_data)
        self.file.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> UploadedFile:
        self.file.seek(0)
        self.file.size = file_size
        self.file.sha256 = self.digest.hexdigest()  # type: ignore[attr-defined]
        self.file.head = self.head  # type: ignore[attr-defined]
        return self.file


def uploaded_digest(upload: UploadedFile) -> tuple[str, int, bytes]:
    """(sha256, size, first bytes): from the hashing handler, or by reading the file in chunks (a file handed
    to the service by other code, e.g. a test or a management command)."""
    sha = getattr(upload, "sha256", None)
    if sha is not None:
        return sha, int(upload.size or 0), getattr(upload, "head", b"")
    digest = hashlib.sha256()
    size = 0
    head = b""
    upload.seek(0)
    for chunk in upload.chunks():
        if len(head) < HEAD_BYTES:
            head += chunk[: HEAD_BYTES - len(head)]
        digest.update(chunk)
        size += len(chunk)
    upload.seek(0)
    return digest.hexdigest(), size, head

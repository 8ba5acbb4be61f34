"""Artifacts: records and uploads added to a draft revision, with their path, format, digest and header checks."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, transaction

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.core.errors import Conflict, ValidationFailed
from workers.runners.base import SHA256_RE
from workers.runners.formats import SAFE_FORMATS, UNSAFE_FORMATS, format_from_extension

from .. import hooks
from ..blobs import blob_release, blob_store
from ..choices import ArtifactFormat
from ..formats import format_mismatch
from ..models import Artifact, Revision
from ..permissions import ensure_can_edit
from ..uploads import too_large, upload_limit, uploaded_digest
from ..weights import weights_header
from .validation import add_error


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# The paths clean_artifact_path takes, for the OpenAPI schema: once stripped of surrounding whitespace, segments of
# non-control characters other than the separators (slash, backslash), none of them empty, '.' or '..', and at
# most 500 characters in all.
_PATH_CHAR = r"[^\u0000-\u001f/\\]"
_PATH_SEGMENT = rf"(?!\.{{1,2}}[/\\]){_PATH_CHAR}+[/\\]"
_PATH_LAST = rf"(?!\.{{1,2}}\s*$){_PATH_CHAR}*[^\s\u0000-\u001f/\\]"
ARTIFACT_PATH_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 500,
    "pattern": rf"^\s*(?=\S)(?:{_PATH_SEGMENT})*{_PATH_LAST}\s*$",
}


def clean_artifact_path(path: Any, errors: dict[str, list[str]]) -> str:
    """A relative path inside the model repository, normalised to '/' separators (messages go to `errors`)."""
    if not isinstance(path, str) or not path.strip():
        add_error(errors, "path", "A relative file path is required, e.g. 'model.safetensors'.")
        return ""
    value = path.strip().replace("\\", "/")
    parts = value.split("/")
    if (
        len(value) > 500
        or value.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(ch) < 32 for ch in value)
    ):
        add_error(errors, "path", "Must be a relative path inside the model repository (no '..', no leading '/').")
    return value


def clean_artifact_format(path: str, declared: Any, errors: dict[str, list[str]]) -> str:
    """The declared format, checked against the file's extension, or the one the extension tells."""
    from_ext = format_from_extension(PurePosixPath(path))
    if declared:
        value = str(declared).lower()
        if value not in ArtifactFormat.values:
            add_error(errors, "format", f"Must be one of {', '.join(ArtifactFormat.values)}.")
        elif from_ext in UNSAFE_FORMATS and value not in UNSAFE_FORMATS:
            add_error(errors, "format", f"'{path}' has a pickle-based extension; it cannot be declared '{value}'.")
        elif from_ext in SAFE_FORMATS and value != from_ext:
            add_error(errors, "format", f"'{path}' is a .{from_ext} file, not '{value}'.")
        return value
    if from_ext:
        return from_ext
    add_error(errors, "format", "Required: the format cannot be told from the file name.")
    return ""


def _clean_uri(uri: Any, errors: dict[str, list[str]]) -> str:
    allowed = ["hf", "https", "s3", "gs"] + (["file"] if settings.MC_ARTIFACT_ALLOW_FILE_URIS else [])
    if not isinstance(uri, str) or not uri.strip():
        add_error(errors, "uri", "Required for a record: where the file lives, e.g. hf://org/name@commit/file.")
        return ""
    value = uri.strip()
    parsed = urlparse(value)
    if len(value) > 1000 or parsed.scheme not in allowed or not (parsed.netloc or parsed.path):
        add_error(errors, "uri", f"Must be a URI with scheme {', '.join(s + '://' for s in allowed)}.")
    return value


def _file_uri_mismatch(uri: str, fmt: str) -> str | None:
    """A file:// record (development only) names a file this server can read: its bytes must match a declared
    safe format like an upload's. Other URIs point elsewhere; workers check what they fetch."""
    if not uri.startswith("file://"):
        return None
    path = Path(uri[len("file://") :])
    try:
        if not path.is_file():  # not a FIFO or a device, which would block or never end
            return None
        with path.open("rb") as fh:
            return format_mismatch(fmt, fh, path.stat().st_size)
    except OSError:
        return None


@transaction.atomic
def artifact_add(
    *,
    revision: Revision,
    actor: User,
    path: Any = None,
    fmt: Any = None,
    sha256: Any = None,
    size_bytes: Any = None,
    uri: Any = None,
    upload: UploadedFile[bytes] | None = None,
    max_bytes: int | None = None,
) -> Artifact:
    """Add an artifact to a draft revision: a record (`uri`, `sha256`, `size_bytes`) or an uploaded file.

    For an upload the server's sha256 is the truth; a declared `sha256` that differs is refused, and so is
    content that contradicts a declared safe format. `max_bytes` caps the upload (default: the one-shot upload
    limit; a completed resumable upload passes MC_ARTIFACT_MAX_BYTES)."""
    revision = (
        Revision.objects.select_for_update(of=("self",), no_key=True)
        .select_related("variant__owner")
        .get(pk=revision.pk)
    )
    variant = revision.variant
    ensure_can_edit(actor, variant)
    if not revision.is_mutable:
        raise Conflict(
            f"Revision {revision.number} of {variant.full_name} is {revision.status} and immutable; "
            "open a new revision to change its artifacts.",
            current_status=revision.status,
        )
    errors: dict[str, list[str]] = {}
    if upload is not None and not path:
        path = upload.name
    clean_path = clean_artifact_path(path, errors)
    clean_fmt = clean_artifact_format(clean_path, fmt, errors) if clean_path else ""
    declared = sha256.strip().lower() if isinstance(sha256, str) and sha256.strip() else None
    if declared is not None and not SHA256_RE.match(declared):
        add_error(errors, "sha256", "Must be 64 hexadecimal characters.")
    if upload is not None:
        computed, size, _head = uploaded_digest(upload)
        if size > (upload_limit() if max_bytes is None else max_bytes):
            raise too_large(size)
        if declared and SHA256_RE.match(declared) and declared != computed:
            add_error(errors, "sha256", f"The uploaded file's sha256 is {computed}, not {declared}.")
        mismatch = format_mismatch(clean_fmt, upload, size) if clean_fmt else None
        if mismatch:
            add_error(errors, "format", f"Declared {clean_fmt}, but {mismatch}.")
        digest, clean_uri = computed, ""
    else:
        clean_uri = _clean_uri(uri, errors)
        if declared is None and "sha256" not in errors:
            add_error(errors, "sha256", "Required for a record: the file's sha256 (64 hex characters).")
        if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0:
            add_error(errors, "size_bytes", "Required for a record: the file size in bytes.")
        elif size_bytes > settings.MC_ARTIFACT_RECORD_MAX_BYTES:
            add_error(errors, "size_bytes", f"At most {settings.MC_ARTIFACT_RECORD_MAX_BYTES} bytes.")
        digest, size = declared or "", size_bytes if isinstance(size_bytes, int) else 0
        mismatch = _file_uri_mismatch(clean_uri, clean_fmt) if clean_fmt and "uri" not in errors else None
        if mismatch:
            add_error(errors, "format", f"Declared {clean_fmt}, but {mismatch}.")
    if errors:
        raise ValidationFailed("The artifact is not valid: see errors.", errors=errors)
    if revision.artifacts.filter(path=clean_path).exists():
        raise Conflict(
            f"Revision {revision.number} already has '{clean_path}'.",
            errors={"path": ["An artifact with this path already exists in the revision."]},
        )
    artifact = Artifact(
        revision=revision, path=clean_path, uri=clean_uri, sha256=digest, size_bytes=size, format=clean_fmt
    )
    written = False
    if upload is not None:
        artifact.header = weights_header(clean_fmt, upload, size) or {}
        artifact.file.name, written = blob_store(digest, upload)
    try:
        artifact.save()
        audit_record(
            actor=actor,
            verb="artifact.add",
            target=artifact,
            after={
                "revision": f"{variant.full_name}@{revision.number}",
                "path": clean_path,
                "sha256": digest,
                "size_bytes": size,
                "format": clean_fmt,
                "source": "upload" if upload is not None else clean_uri,
            },
        )
    except Exception:
        # The file is already in storage; with no row pointing at it, it must go (unless another row names it).
        # A failed query (the transaction is broken) keeps the blob: an orphan is harmless, a lost file is not.
        if upload is not None and written:
            with contextlib.suppress(DatabaseError):
                blob_release(artifact.file.name or "")
        raise
    hooks.run_on_commit(hooks.ARTIFACT_ADDED_HOOKS, revision_id=revision.pk, artifact_id=artifact.pk)
    return artifact


@transaction.atomic
def artifact_add_local_file(*, revision: Revision, source: Path, path: str, fmt: str, actor: User) -> Artifact:
    """Copy a local file into platform storage as an artifact (seeding and management commands)."""
    revision = Revision.objects.select_for_update(no_key=True).get(pk=revision.pk)
    if not revision.is_mutable:
        raise Conflict(f"Revision {revision.number} is {revision.status}; artifacts can only be added to drafts.")
    sha256, size = _sha256_of(source)
    artifact = Artifact(revision=revision, path=path, sha256=sha256, size_bytes=size, format=fmt)
    with source.open("rb") as fh:
        artifact.header = weights_header(fmt, fh, size) or {}
        artifact.file.name, _written = blob_store(sha256, File(fh))
    artifact.save()
    audit_record(
        actor=actor,
        verb="artifact.add",
        target=artifact,
        after={"path": path, "sha256": sha256, "size_bytes": size, "format": fmt},
    )
    hooks.run_on_commit(hooks.ARTIFACT_ADDED_HOOKS, revision_id=revision.pk, artifact_id=artifact.pk)
    return artifact

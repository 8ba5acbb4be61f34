"""Resumable uploads (SPEC §3): a session per file, chunks appended at the session's offset, completion into an
artifact through the registry's own `artifact_add` (the same path checks, format sniffing, audit and hooks as a
one-shot upload). How the sha256 is kept across chunks: see `partials`."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core.errors import Conflict, DomainError, ValidationFailed
from apps.registry import services as registry_services
from apps.registry.models import Artifact, Revision
from apps.registry.permissions import ensure_can_edit
from apps.registry.uploads import HEAD_BYTES, PayloadTooLarge
from workers.runners.base import SHA256_RE

from . import partials
from .choices import UploadStatus
from .models import UploadSession
from .selectors import revision_for_upload, variant_for_upload

logger = logging.getLogger(__name__)


class Gone(DomainError):
    status = 410
    title = "Upload expired"
    slug = "upload-expired"


class LengthRequired(DomainError):
    status = 411
    title = "Length required"
    slug = "length-required"


class OffsetMismatch(Conflict):
    title = "Wrong upload offset"
    slug = "upload-offset-mismatch"


def _expiry() -> Any:
    return timezone.now() + timedelta(seconds=settings.MC_UPLOAD_SESSION_TTL_S)


def _ensure_mutable(revision: Revision) -> None:
    if not revision.is_mutable:
        raise Conflict(
            f"Revision {revision.number} of {revision.variant.full_name} is {revision.status} and "
            "immutable; open a new revision to add files.",
            current_status=revision.status,
        )


def _ensure_open(session: UploadSession) -> None:
    if session.status == UploadStatus.COMPLETED:
        raise Conflict("This upload is complete; its file is an artifact now.", upload_status=session.status)
    if session.status == UploadStatus.FAILED:
        raise Conflict(f"This upload failed: {session.failure} Start a new one.", upload_status=session.status)
    if session.status == UploadStatus.EXPIRED or session.expires_at <= timezone.now():
        raise Gone("This upload session expired and its bytes were discarded; start a new one.")


@transaction.atomic
def upload_create(
    *, actor: User, variant: str, revision: int | None = None, path: Any, fmt: Any = None, size_bytes: Any, sha256: Any
) -> UploadSession:
    """Open a resumable upload of one file into a draft revision (the variant's current one by default).

    Only someone who may change the variant (its owner; maintainers for `commons`) may upload, and only to a
    draft. The path, format, size and sha256 are checked now, so that a bad declaration fails before any byte
    is sent; the sha256 is checked again over the whole file on completion."""
    target = variant_for_upload(actor, variant)
    rev = revision_for_upload(actor, target, revision)
    ensure_can_edit(actor, target, "upload files to")
    _ensure_mutable(rev)
    errors: dict[str, list[str]] = {}
    clean_path = registry_services.clean_artifact_path(path, errors)
    clean_fmt = registry_services.clean_artifact_format(clean_path, fmt, errors) if clean_path else ""
    declared = sha256.strip().lower() if isinstance(sha256, str) else ""
    if not SHA256_RE.match(declared):
        errors.setdefault("sha256", []).append("Must be the file's sha256: 64 hexadecimal characters.")
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0:
        errors.setdefault("size_bytes", []).append("Must be the file size in bytes (an integer, 0 or more).")
    if errors:
        raise ValidationFailed("The upload is not valid: see errors.", errors=errors)
    limit = int(settings.MC_ARTIFACT_MAX_BYTES)
    if size_bytes > limit:
        raise PayloadTooLarge(
            f"The file ({size_bytes} bytes) is larger than the {limit}-byte limit.",
            errors={"size_bytes": [f"At most {limit} bytes."]},
            limit_bytes=limit,
        )
    if rev.artifacts.filter(path=clean_path).exists():
        raise Conflict(
            f"Revision {rev.number} already has '{clean_path}'.",
            errors={"path": ["An artifact with this path already exists in the revision."]},
        )
    session = UploadSession.objects.create(
        revision=rev,
        created_by=actor,
        path=clean_path,
        format=clean_fmt,
        size_bytes=size_bytes,
        sha256=declared,
        expires_at=_expiry(),
    )
    partials.create(session.part_path)
    session.revision = rev
    return session


def upload_append(
    *, session: UploadSession, actor: User, offset: Any, stream: Any, length: int | None
) -> UploadSession:
    """Append one chunk (`length` bytes of `stream`) at `offset`, which must be the session's offset (409 with the
    right one otherwise). A chunk that would go past the declared size is refused before anything is read (413).
    Bytes are written and hashed as they arrive; if the connection breaks, what arrived is kept and the session's
    offset says where to resume."""
    _ensure_open(session)
    _ensure_mutable(session.revision)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValidationFailed(
            "Upload-Offset must be a byte offset.",
            errors={"Upload-Offset": ["Required: a non-negative integer, the session's offset."]},
        )
    if length is None:
        raise LengthRequired("A chunk needs a Content-Length.")
    if offset != session.offset:
        raise OffsetMismatch(
            f"The upload is at offset {session.offset}, not {offset}: send the chunk from there.", offset=session.offset
        )
    if offset + length > session.size_bytes:
        raise PayloadTooLarge(
            f"This chunk would end at byte {offset + length}, past the declared size of {session.size_bytes} bytes.",
            offset=session.offset,
            size_bytes=session.size_bytes,
        )
    chunk_limit = int(settings.MC_UPLOAD_MAX_BYTES)
    if length > chunk_limit:
        raise PayloadTooLarge(
            f"A chunk may be at most {chunk_limit} bytes; send smaller ones.", limit_bytes=chunk_limit
        )
    if length == 0:
        return session
    key = str(session.pk)
    with partials.locked(session.part_path) as fh:
        # Re-read under the lock: a request that held it may have moved the offset.
        current = UploadSession.objects.filter(pk=session.pk).values_list("offset", "status").first()
        if current is None or current[1] != UploadStatus.OPEN:
            raise Conflict("This upload is no longer open.")
        if current[0] != offset:
            raise OffsetMismatch(
                f"The upload is at offset {current[0]}, not {offset}: send the chunk from there.", offset=current[0]
            )
        hasher = partials.hasher_at(key, fh, offset)
        received = partials.append(fh, offset, stream, length, hasher)
        new_offset = offset + received
        updated = UploadSession.objects.filter(pk=session.pk, offset=offset, status=UploadStatus.OPEN).update(
            offset=new_offset, expires_at=_expiry(), updated_at=timezone.now()
        )
        if not updated:
            partials.forget(key)
            raise Conflict("The upload changed while this chunk was written; ask for its offset and resume.")
        partials.remember(key, new_offset, hasher)
    session.refresh_from_db()
    return session


# Django's File is generic in its stubs only (File[bytes] is no class at run time).
class AssembledUpload(UploadedFile):  # type: ignore[type-arg]
    """The finished partial file, handed to the registry's `artifact_add` like a streamed one-shot upload: it
    carries the sha256, size and first bytes already known, and a temporary path, so the file-system storage
    moves it into place instead of copying it."""

    def __init__(self, path: Path, *, name: str, size: int, sha256: str, head: bytes):
        super().__init__(path.open("rb"), name=name, content_type="application/octet-stream", size=size)
        self._path = path
        self.sha256 = sha256
        self.head = head

    def temporary_file_path(self) -> str:
        return str(self._path)


def _fail(session: UploadSession, reason: str) -> None:
    """Mark the session failed and drop its bytes: nothing half-made is kept."""
    UploadSession.objects.filter(pk=session.pk).update(
        status=UploadStatus.FAILED, failure=reason, updated_at=timezone.now()
    )
    partials.remove(session.part_path, str(session.pk))
    session.status, session.failure = UploadStatus.FAILED, reason


def upload_complete(*, session: UploadSession, actor: User) -> tuple[Artifact, bool]:
    """Turn a fully received upload into an artifact of its revision. Returns (artifact, created); completing a
    completed session again returns its artifact (a retried request after a lost response).

    The sha256 of the whole file must be the declared one; a mismatch, or bytes that contradict the declared
    format, fail the session (400) and discard its bytes. A file that is not all there is a 409 naming the
    offset to resume from."""
    if session.status == UploadStatus.COMPLETED and session.artifact is not None:
        return session.artifact, False
    _ensure_open(session)
    if session.offset < session.size_bytes:
        raise Conflict(
            f"The upload is incomplete: {session.offset} of {session.size_bytes} bytes received. Send "
            f"the rest from offset {session.offset}, then complete it.",
            offset=session.offset,
            size_bytes=session.size_bytes,
        )
    key = str(session.pk)
    with partials.locked(session.part_path) as fh:
        digest = partials.hasher_at(key, fh, session.size_bytes).hexdigest()
        fh.truncate(session.size_bytes)
        head = partials.head(fh, HEAD_BYTES)
    if digest != session.sha256:
        reason = f"The file's sha256 is {digest}, not the declared {session.sha256}."
        _fail(session, reason)
        raise ValidationFailed(f"{reason} The upload is discarded.", errors={"sha256": [reason]})
    upload = AssembledUpload(
        session.part_path, name=Path(session.path).name, size=session.size_bytes, sha256=digest, head=head
    )
    try:
        with transaction.atomic():
            locked = UploadSession.objects.select_for_update().get(pk=session.pk)
            if locked.status != UploadStatus.OPEN:
                raise Conflict("This upload was completed or closed by another request.", upload_status=locked.status)
            artifact = registry_services.artifact_add(
                revision=session.revision,
                actor=actor,
                path=session.path,
                fmt=session.format,
                sha256=digest,
                upload=upload,
                max_bytes=int(settings.MC_ARTIFACT_MAX_BYTES),
            )
            locked.status, locked.artifact = UploadStatus.COMPLETED, artifact
            locked.save(update_fields=["status", "artifact", "updated_at"])
    except ValidationFailed as exc:
        # The bytes contradict the declaration (e.g. not the declared format): no retry can fix them.
        upload.close()
        _fail(session, exc.detail)
        raise
    finally:
        upload.close()
    partials.remove(session.part_path, key)  # moved into storage already on the file system; gone either way
    session.status, session.artifact = UploadStatus.COMPLETED, artifact
    return artifact, True


def uploads_expire(*, now: Any = None) -> int:
    """Beat: close open sessions past their expiry and delete their partial files; forget closed sessions a TTL
    after their last change. Returns how many sessions expired now."""
    now = now or timezone.now()
    expired = 0
    for session in UploadSession.objects.filter(status=UploadStatus.OPEN, expires_at__lte=now).only("pk"):
        try:
            with partials.locked(session.part_path):
                if UploadSession.objects.filter(pk=session.pk, status=UploadStatus.OPEN, expires_at__lte=now).update(
                    status=UploadStatus.EXPIRED, updated_at=now
                ):
                    expired += 1
                    session.part_path.unlink(missing_ok=True)
        except partials.Busy:
            continue  # a chunk is arriving right now: it extends the expiry
        partials.forget(str(session.pk))
    keep = timedelta(seconds=settings.MC_UPLOAD_SESSION_TTL_S)
    UploadSession.objects.exclude(status=UploadStatus.OPEN).filter(updated_at__lt=now - keep).delete()
    _remove_orphans(now - keep)
    return expired


def _remove_orphans(before: Any) -> None:
    """Partial files left without an open session (its variant or revision was deleted, which deletes the
    session row): removed once they are older than a TTL."""
    folder = Path(settings.MC_UPLOAD_TEMP_DIR)
    if not folder.is_dir():
        return
    parts = {p.stem: p for p in folder.glob("*.part")}
    if not parts:
        return
    valid = {stem for stem in parts if re.fullmatch(r"[0-9a-f-]{36}", stem)}
    open_ids = {
        str(pk)
        for pk in UploadSession.objects.filter(pk__in=valid, status=UploadStatus.OPEN).values_list("pk", flat=True)
    }
    cutoff = before.timestamp()
    for stem, path in parts.items():
        try:
            if stem not in open_ids and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
        except OSError:
            continue

"""Reads for downloads and uploads. Each starts from what the user may see; anything else is NotFound (404)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from apps.core.errors import NotFound, ValidationFailed
from apps.registry.models import Artifact, Revision, Variant
from apps.registry.selectors import revision_for_user_or_404, variant_for_user_or_404
from apps.registry.services import clean_artifact_path

from .models import UploadSession

if TYPE_CHECKING:
    from apps.accounts.types import Viewer


def revision_for_files(user: Viewer, *, owner: str, name: str, number: int) -> Revision:
    """Revision `number` of `owner/name` with its artifacts loaded, if the user may see it (a draft is a 404 to
    everyone but the variant's insiders): the registry's access helper decides."""
    return revision_for_user_or_404(user, number=number, owner=owner, name=name)


def variant_for_upload(user: Viewer, full_name: Any) -> Variant:
    """The variant named `owner/name` if the user may see it (writes check more, in the service)."""
    owner, _, name = str(full_name).strip().partition("/")
    if not owner or not name or "/" in name:
        raise ValidationFailed("Name the variant as owner/name.", errors={"variant": ["Expected 'owner/name'."]})
    return variant_for_user_or_404(user, owner, name)


def revision_for_upload(user: Viewer, variant: Variant, number: int | None) -> Revision:
    """Revision `number` of the variant, or its current one, if the user may see it."""
    if number is None:
        if variant.current_revision is None:
            raise NotFound(f"{variant.full_name} has no revision.")
        number = variant.current_revision.number
    return revision_for_user_or_404(user, number=number, variant=variant)


def revision_artifacts(revision: Revision) -> list[Artifact]:
    """The revision's artifacts by path (prefetched by the access helper: no query)."""
    return sorted(revision.artifacts.all(), key=lambda a: a.path)


def clean_file_path(path: str) -> str:
    """A path as the registry stores it; '..', absolute paths and control characters are a 400."""
    errors: dict[str, list[str]] = {}
    clean = clean_artifact_path(path, errors)
    if errors:
        raise ValidationFailed("The file path is not valid: see errors.", errors=errors)
    return clean


def artifact_in(revision: Revision, path: str) -> Artifact:
    """The artifact at `path` in the revision; NotFound when there is none."""
    clean = clean_file_path(path)
    found = next((a for a in revision.artifacts.all() if a.path == clean), None)
    if found is None:
        raise NotFound(f"Revision {revision.number} of {revision.variant.full_name} has no file '{clean}'.")
    return found


def stored_artifact_in(revision: Revision, path: str) -> Artifact:
    """The artifact at `path` when its bytes are in platform storage; an artifact recorded by URI only is a
    NotFound that names where it lives."""
    artifact = artifact_in(revision, path)
    if not artifact.file:
        raise NotFound(
            f"'{artifact.path}' is recorded by URI and not stored here; fetch it from {artifact.uri}.", uri=artifact.uri
        )
    return artifact


def upload_for_user_or_404(user: Viewer, upload_id: uuid.UUID | str) -> UploadSession:
    """An upload session of the user's own; anyone else's (or none) is NotFound."""
    session = (
        UploadSession.objects.select_related("revision__variant__owner", "artifact")
        .filter(pk=upload_id, created_by_id=getattr(user, "pk", None))
        .first()
    )
    if session is None:
        raise NotFound("No such upload session.")
    return session


def stored_blob(sha256: str) -> Artifact:
    """An artifact whose bytes are stored under `sha256` (any revision, any visibility: the caller is a worker
    holding a token for this blob); NotFound when no stored artifact has these bytes. One query (by the sha256
    index)."""
    artifact = Artifact.objects.filter(sha256=sha256.lower()).exclude(file="").order_by("pk").first()
    if artifact is None:
        raise NotFound(f"No stored file has sha256 {sha256}.")
    return artifact

"""Registry writes. Each service locks what it changes and records an audit event in the same transaction."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.core.files import File
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidTransition

from .choices import PUBLIC_STATUSES, RevisionStatus
from .models import Artifact, Revision, Variant, VariantParent


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@transaction.atomic
def variant_create(*, owner: User, name: str, relation: str, parents: list[Variant] | tuple[Variant, ...] = (),
                   actor: User | None = None, **fields: Any) -> Variant:
    """Create a variant with its first (draft) revision."""
    variant = Variant.objects.create(owner=owner, name=name, relation=relation, **fields)
    VariantParent.objects.bulk_create([VariantParent(child=variant, parent=p) for p in parents])
    revision = Revision.objects.create(variant=variant, number=1, created_by=actor or owner)
    variant.current_revision = revision
    variant.save(update_fields=["current_revision"])
    audit_record(actor=actor or owner, verb="variant.create", target=variant,
                 after={"full_name": f"{owner.username}/{name}", "relation": relation,
                        "parents": [p.full_name for p in parents]})
    return variant


@transaction.atomic
def revision_create(*, variant: Variant, actor: User) -> Revision:
    variant = Variant.objects.select_for_update().get(pk=variant.pk)
    number = (variant.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    revision = Revision.objects.create(variant=variant, number=number, created_by=actor)
    variant.current_revision = revision
    variant.status = revision.status
    variant.save(update_fields=["current_revision", "status", "updated_at"])
    audit_record(actor=actor, verb="revision.create", target=revision, after={"number": number})
    return revision


@transaction.atomic
def artifact_add_local_file(*, revision: Revision, source: Path, path: str, fmt: str, actor: User) -> Artifact:
    """Copy a local file into platform storage as an artifact (seeding and management commands)."""
    revision = Revision.objects.select_for_update().get(pk=revision.pk)
    if not revision.is_mutable:
        raise Conflict(f"Revision {revision.number} is {revision.status}; artifacts can only be added to drafts.")
    sha256, size = _sha256_of(source)
    artifact = Artifact(revision=revision, path=path, sha256=sha256, size_bytes=size, format=fmt)
    with source.open("rb") as fh:
        artifact.file.save(Path(path).name, File(fh), save=False)
    artifact.save()
    audit_record(actor=actor, verb="artifact.add", target=artifact,
                 after={"path": path, "sha256": sha256, "size_bytes": size, "format": fmt})
    return artifact


@transaction.atomic
def revision_transition(*, revision: Revision, target: str, actor: User | None, reason: str = "",
                        verb: str | None = None) -> Revision:
    """Move a revision through the state machine (choices.TRANSITIONS), row-locked and audited."""
    revision = Revision.objects.select_for_update().select_related("variant").get(pk=revision.pk)
    if not revision.can_transition_to(target):
        raise InvalidTransition(current=revision.status, target=target, allowed=list(revision.allowed_transitions()))
    before = revision.status
    now = timezone.now()
    revision.status = target
    revision.status_changed_at = now
    if target == RevisionStatus.SUBMITTED:
        revision.submitted_at = now
    revision.save(update_fields=["status", "status_changed_at", "submitted_at"])
    variant = revision.variant
    if variant.current_revision_id == revision.pk:
        variant.status = target
    if target in PUBLIC_STATUSES:
        variant.is_public = True
    elif target == RevisionStatus.UNPUBLISHED:
        variant.is_public = False
    variant.save(update_fields=["status", "is_public", "updated_at"])
    audit_record(actor=actor, verb=verb or f"revision.{target}", target=revision,
                 before={"status": before}, after={"status": target, "reason": reason or None})
    return revision

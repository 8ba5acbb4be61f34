"""Variants: create, update (metadata, card and lineage while the current revision is a draft) and delete."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.core.conditional import check_if_match
from apps.core.errors import Conflict, PermissionDenied, ValidationFailed

from .. import hooks
from ..blobs import blob_release
from ..choices import RevisionStatus
from ..models import NAME_RE, Artifact, Revision, Variant
from ..permissions import can_create_in, ensure_can_edit, ensure_can_manage
from .lineage import license_compat_document, lock_lineage, parents_replace, set_parents, variant_license_compat_refresh
from .validation import EDITABLE_FIELDS, add_error, clean_variant_input

S = RevisionStatus


def _check_name(owner: User, name: str, errors: dict[str, list[str]]) -> None:
    if not isinstance(name, str) or not re.match(NAME_RE, name):
        add_error(
            errors,
            "name",
            "Must match [A-Za-z0-9][A-Za-z0-9._-]{0,95}: a letter or digit, then letters, "
            "digits, '.', '_' or '-', at most 96 characters.",
        )
    elif Variant.objects.filter(owner=owner, name__iexact=name).exists():
        add_error(errors, "name", f"{owner.username} already has a variant named '{name}' (names ignore case).")


@transaction.atomic
def variant_create(
    *,
    owner: User,
    name: str,
    relation: str | None = None,
    parents: Sequence[Variant | str] = (),
    actor: User | None = None,
    **fields: Any,
) -> Variant:
    """Register a variant with its first (draft) revision.

    `parents` are variants or references (`owner/name`, or a Hub id a variant records); `fields` are the
    metadata fields, `card` (markdown, optionally with Hub front matter) and `card_data`."""
    actor = actor or owner
    if not can_create_in(actor, owner):
        raise PermissionDenied(
            f"You may not create variants in {owner.username}'s namespace.",
            errors={"owner": ["Only maintainers may create in the commons namespace."]},
        )
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", errors={k: ["Not a variant field."] for k in sorted(unknown)})
    errors: dict[str, list[str]] = {}
    _check_name(owner, name, errors)
    data: dict[str, Any] = dict(fields)
    if relation is not None:
        data["relation"] = relation
    if parents:
        data["parents"] = list(parents)
    try:
        cleaned, resolved = clean_variant_input(actor=actor, data=data, existing=None, infer=True)
    except ValidationFailed as exc:
        for key, messages in (exc.errors or {}).items():
            errors.setdefault(key, []).extend(messages)
    if errors:
        raise ValidationFailed("The variant is not valid: see errors.", errors=errors)
    try:
        # No savepoint of its own: a duplicate name (a race past `_check_name`) ends this whole service, whose
        # atomic block rolls back, so there is nothing to keep below it (two round trips fewer per create).
        with transaction.atomic(savepoint=False):
            variant = Variant.objects.create(owner=owner, name=name, **cleaned)
    except IntegrityError:
        raise ValidationFailed(
            "The variant is not valid: see errors.",
            errors={"name": [f"{owner.username} already has a variant named '{name}'."]},
        )
    set_parents(variant, resolved or [], fresh=True)
    revision = Revision.objects.create(variant=variant, number=1, created_by=actor)
    variant.current_revision = revision
    variant.license_compat = license_compat_document(variant)
    variant.save(update_fields=["current_revision", "license_compat", "updated_at"])
    audit_record(
        actor=actor,
        verb="variant.create",
        target=variant,
        after={
            "full_name": variant.full_name,
            "relation": variant.relation,
            "parents": [p.full_name for p in resolved or []],
            "license": variant.license,
            "license_compat": variant.license_compat["status"],
        },
    )
    return variant


@transaction.atomic
def variant_update(
    *, variant: Variant, actor: User, if_match: str | None = None, infer: bool = False, **changes: Any
) -> Variant:
    """Change a variant's metadata, card or lineage while its current revision is a draft.

    `if_match` is the request's If-Match header: a stale ETag is a 412. A submitted revision is immutable,
    so changes after submission need a new revision first."""
    if {"parents", "card", "card_data"} & set(changes):
        # Lineage may change: take the lineage lock before any row lock, the order every writer uses.
        lock_lineage()
    # of=self: PostgreSQL cannot lock the nullable side of the outer join to current_revision.
    variant = (
        Variant.objects.select_for_update(of=("self",), no_key=True)
        .select_related("owner", "current_revision", "published_revision")
        .get(pk=variant.pk)
    )
    ensure_can_edit(actor, variant)
    check_if_match(if_match, variant.etag, what=variant.full_name)
    if "name" in changes:
        name = changes.pop("name")
        if name != variant.name:
            raise ValidationFailed("Variants cannot be renamed.", errors={"name": ["A variant cannot be renamed."]})
    unknown = set(changes) - set(EDITABLE_FIELDS) - {"relation", "parents"}
    if unknown:
        raise ValidationFailed("Unknown fields.", errors={k: ["Not a variant field."] for k in sorted(unknown)})
    current = variant.current_revision
    if current is None or current.status != S.DRAFT:
        number = current.number if current else 0
        status = current.status if current else "missing"
        raise Conflict(
            f"Revision {number} of {variant.full_name} is {status} and cannot change. Open a new "
            f"revision (POST .../revisions/) to change the variant.",
            current_status=status,
        )
    cleaned, parents = clean_variant_input(actor=actor, data=changes, existing=variant, infer=infer)
    cleaned = {k: v for k, v in cleaned.items() if getattr(variant, k) != v}
    if parents is not None and [p.pk for p in parents] == list(
        variant.parent_links.values_list("parent_id", flat=True)
    ):
        parents = None
    if not cleaned and parents is None:
        return variant  # nothing changes: no write, no audit event, the ETag stays valid
    before = {k: getattr(variant, k) for k in cleaned}
    if parents is not None:
        before["parents"] = [link.parent.full_name for link in variant.parent_links.select_related("parent__owner")]
        parents_replace(variant, parents)
    for key, value in cleaned.items():
        setattr(variant, key, value)
    # Only the columns that changed (and the stamp the ETag reads): the others were read under the row lock, and
    # writing them back rewrote the card (up to MC_CARD_MAX_CHARS) on every PATCH.
    variant.save(update_fields=[*cleaned, "updated_at"])
    changed = sorted(k for k in [*cleaned, *(["parents"] if parents is not None else [])])
    if {"license", "parents", "relation"} & set(changed):
        variant_license_compat_refresh(variant=variant, descendants=True)
    after = {k: getattr(variant, k) for k in cleaned}
    if parents is not None:
        after["parents"] = [p.full_name for p in parents]
    for big in ("card", "card_data"):
        # The audit log keeps a fingerprint of long texts, not the texts.
        for side in (before, after):
            if big in side:
                side[big] = hashlib.sha256(str(side[big]).encode()).hexdigest()
    audit_record(actor=actor, verb="variant.update", target=variant, before=before, after=after)
    hooks.run_on_commit(hooks.VARIANT_UPDATED_HOOKS, variant_id=variant.pk, fields=changed)
    return variant


@transaction.atomic
def variant_delete(*, variant: Variant, actor: User) -> None:
    """Delete a variant that never went further than draft (withdrawn and rejected count as that too)."""
    variant = Variant.objects.select_for_update(of=("self",), no_key=True).select_related("owner").get(pk=variant.pk)
    ensure_can_manage(actor, variant, "delete")
    engaged = list(
        variant.revisions.exclude(status__in=[S.DRAFT, S.WITHDRAWN, S.REJECTED]).values_list("number", "status")
    )
    if engaged:
        listed = ", ".join(f"revision {n} is {s}" for n, s in engaged)
        raise Conflict(
            f"{variant.full_name} cannot be deleted: {listed}. Withdraw it first; published variants "
            "are unpublished by maintainers."
        )
    children = [link.child for link in variant.child_links.select_related("child__owner")]
    if children:
        raise Conflict(
            f"{variant.full_name} cannot be deleted: {', '.join(c.full_name for c in children)} derive(s) from it."
        )
    files = sorted({a.file.name for a in Artifact.objects.filter(revision__variant=variant) if a.file and a.file.name})
    audit_record(
        actor=actor,
        verb="variant.delete",
        target=variant,
        before={"full_name": variant.full_name, "relation": variant.relation, "license": variant.license},
    )
    try:
        with transaction.atomic():
            variant.delete()
    except ProtectedError:
        raise Conflict(
            f"{variant.full_name} cannot be deleted: benchmark jobs ran on it, and their results "
            "must keep pointing at it."
        )

    def remove_files() -> None:
        for name in files:
            blob_release(name)

    transaction.on_commit(remove_files, robust=True)

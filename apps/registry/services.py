"""Registry writes. Each service locks what it changes, checks the rules, and records an audit event in the
same transaction; side effects (hooks of other apps, file clean-up) run after commit."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Max, ProtectedError
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.roles import is_maintainer
from apps.audit.services import audit_record
from apps.core.conditional import check_if_match
from apps.core.errors import Conflict, InvalidTransition, PermissionDenied, ValidationFailed
from workers.runners.base import SHA256_RE
from workers.runners.formats import SAFE_FORMATS, UNSAFE_FORMATS, format_from_extension

from . import hooks
from .blobs import blob_release, blob_store
from .cards import card_split, json_safe, metadata_to_fields, summary_from_body
from .choices import (
    NEW_REVISION_FROM,
    PIPELINE_TAGS,
    ArtifactFormat,
    Precision,
    Relation,
    RevisionStatus,
)
from .formats import format_mismatch
from .licenses import license_compat, license_lookup, license_suggestions
from .models import HUB_ID_RE, NAME_RE, Artifact, Revision, Variant, VariantParent
from .permissions import can_create_in, ensure_can_edit
from .selectors import ancestor_depths, descendant_ids, variants_resolve
from .uploads import too_large, upload_limit, uploaded_digest
from .weights import weights_header

S = RevisionStatus
EDITABLE_FIELDS = (
    "license",
    "parameters",
    "precision",
    "architecture",
    "task",
    "tags",
    "summary",
    "card",
    "card_data",
    "hub_id",
)
MAX_PARENTS = 32
MAX_TAGS = 50
MAX_PARAMETERS = 10**14
# Any constant works; it only has to be the same for every process touching lineage.
LINEAGE_LOCK_KEY = 0x6D630001


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _revision_target(revision: Revision, variant: Variant) -> tuple[str, int, str]:
    return ("registry.revision", revision.pk, f"{variant.full_name}@{revision.number}")


def _lock_lineage() -> None:
    """Serialise parent changes: two concurrent edits could each pass the cycle check and close a cycle
    together, and row locks on the two variants do not cover every path between them. Transaction-scoped and
    re-entrant, so taking it twice in one transaction is harmless."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LINEAGE_LOCK_KEY])
    # SQLite runs write transactions one at a time (IMMEDIATE mode), which already serialises them.


def _lock_revision(revision_pk: int) -> tuple[Revision, Variant]:
    """Lock a revision, then its variant: the order every writer that needs both takes them in (the review
    app too), so two of them never wait on each other. The variant is read after its lock, so a concurrent
    metadata edit is either fully in or fully out of what a submission snapshots."""
    revision = Revision.objects.select_for_update(no_key=True).get(pk=revision_pk)
    variant = (
        Variant.objects.select_for_update(of=("self",), no_key=True).select_related("owner").get(pk=revision.variant_id)
    )
    revision.variant = variant
    return revision, variant


# --- Input cleaning ----------------------------------------------------------------------------


def _license_error(value: str) -> str:
    suggestions = license_suggestions(value)
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    return f"Unknown licence id '{value}'. Use an SPDX id or a Hugging Face Hub licence id.{hint}"


def _add(errors: dict[str, list[str]], field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def _clean_fields(data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """Validate the plain metadata fields present in `data`; returns their normalised values."""
    out: dict[str, Any] = {}
    if "license" in data:
        value = data["license"] or ""
        if not isinstance(value, str):
            _add(errors, "license", "Must be a licence id string.")
        elif value.strip():
            lic = license_lookup(value)
            if lic is None:
                _add(errors, "license", _license_error(value))
            else:
                out["license"] = lic.id
        else:
            out["license"] = ""
    if "parameters" in data:
        value = data["parameters"]
        if value is None:
            out["parameters"] = None
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_PARAMETERS:
            _add(errors, "parameters", "Must be a whole number greater than 0.")
        else:
            out["parameters"] = value
    if "precision" in data:
        value = data["precision"] or ""
        if value and value not in Precision.values:
            _add(errors, "precision", f"Must be one of {', '.join(Precision.values)}.")
        else:
            out["precision"] = value
    if "architecture" in data:
        value = data["architecture"] or ""
        if not isinstance(value, str) or len(value) > 100:
            _add(errors, "architecture", "Must be a string of at most 100 characters.")
        else:
            out["architecture"] = value.strip()
    if "task" in data:
        value = data["task"] or ""
        if not isinstance(value, str) or (value and value not in PIPELINE_TAGS):
            close = difflib.get_close_matches(str(value), PIPELINE_TAGS, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            _add(errors, "task", f"'{value}' is not a Hugging Face Hub pipeline tag.{hint}")
        else:
            out["task"] = value
    if "tags" in data:
        value = data["tags"] if data["tags"] is not None else []
        if (
            not isinstance(value, list)
            or len(value) > MAX_TAGS
            or not all(isinstance(t, str) and 0 < len(t.strip()) <= 64 for t in value)
        ):
            _add(errors, "tags", f"Must be a list of at most {MAX_TAGS} tags of 1 to 64 characters.")
        else:
            out["tags"] = list(dict.fromkeys(t.strip() for t in value))
    if "summary" in data:
        value = data["summary"] or ""
        if not isinstance(value, str) or len(value) > 500:
            _add(errors, "summary", "Must be at most 500 characters.")
        else:
            out["summary"] = value.strip()
    if "card" in data:
        value = data["card"] or ""
        if not isinstance(value, str) or len(value) > settings.MC_CARD_MAX_CHARS:
            _add(errors, "card", f"Must be markdown of at most {settings.MC_CARD_MAX_CHARS} characters.")
        else:
            out["card"] = value
    if "hub_id" in data:
        value = data["hub_id"] or ""
        if not isinstance(value, str) or (value and not re.match(HUB_ID_RE, value)):
            _add(errors, "hub_id", "Must be a Hugging Face Hub repo id like 'org/name'.")
        else:
            out["hub_id"] = value
    if "card_data" in data:
        out["card_data"] = data["card_data"]
    return out


def _clean_variant_input(
    *, actor: User, data: dict[str, Any], existing: Variant | None, infer: bool
) -> tuple[dict[str, Any], list[Variant] | None]:
    """Validate a create or update. Returns (field values to set, new parents or None if unchanged).

    Card metadata (front matter in `card`, or `card_data`) fills the fields the request leaves out: the
    explicit fields win."""
    errors: dict[str, list[str]] = {}
    data = dict(data)
    if isinstance(data.get("card"), str):
        front, body = card_split(data["card"])
        if front is not None:
            if data.get("card_data") is not None:
                _add(errors, "card_data", "Give the metadata as the card's front matter or as card_data, not both.")
            data["card_data"] = front
            data["card"] = body
    meta = data.pop("card_data", None)
    if meta is not None:
        if not isinstance(meta, dict):
            _add(errors, "card_data", "Must be an object of Hub card metadata.")
        else:
            mapped, extras = metadata_to_fields(json_safe(meta), infer=infer)
            for key, value in mapped.items():
                data.setdefault(key, value)
            data["card_data"] = extras
    if infer and not data.get("summary") and isinstance(data.get("card"), str):
        data["summary"] = summary_from_body(data["card"])

    cleaned = _clean_fields(data, errors)

    relation = data.get("relation") or (existing.relation if existing else None)
    if "relation" in data:
        if data["relation"] not in Relation.values:
            _add(errors, "relation", f"Must be one of {', '.join(Relation.values)}.")
            relation = None
        else:
            cleaned["relation"] = data["relation"]
    elif existing is None:
        _add(errors, "relation", "This field is required.")

    parents: list[Variant] | None = None
    if "parents" in data and data["parents"] is not None:
        given = data["parents"]
        if not isinstance(given, list | tuple) or len(given) > MAX_PARENTS:
            _add(errors, "parents", f"Must be a list of at most {MAX_PARENTS} variants.")
        else:
            refs = [p for p in given if isinstance(p, str)]
            objs = [p for p in given if isinstance(p, Variant)]
            if len(refs) + len(objs) != len(given):
                _add(errors, "parents", "Each parent is a variant name 'owner/name'.")
            found, missing = variants_resolve(refs, actor) if refs else ([], [])
            if missing:
                _add(
                    errors,
                    "parents",
                    "Unknown variant(s): "
                    + ", ".join(missing)
                    + ". Register the base model first (by its owner/name, or a Hub id it records).",
                )
            # Keep the declared order: objects and resolved references interleave as given.
            resolved = iter(found)
            parents = [p if isinstance(p, Variant) else next(resolved) for p in given] if not missing else []
            if len({p.pk for p in parents}) != len(parents):
                _add(errors, "parents", "A parent is listed twice.")
            if existing is not None and any(p.pk == existing.pk for p in parents):
                _add(errors, "parents", "A variant cannot be its own parent.")

    final_parents = (
        parents
        if parents is not None
        else ([link.parent for link in existing.parent_links.select_related("parent__owner")] if existing else [])
    )
    if relation and not errors.get("parents"):
        if relation == Relation.ORIGINAL and final_parents:
            _add(errors, "parents", "An original has no parents.")
        elif relation == Relation.MERGE and len(final_parents) < 2:
            _add(errors, "parents", "A merge has at least two parents.")
        elif relation not in (Relation.ORIGINAL, Relation.MERGE) and len(final_parents) != 1:
            _add(errors, "parents", f"A {relation} variant has exactly one parent.")
    if errors:
        raise ValidationFailed("The variant is not valid: see errors.", errors=errors)
    if relation == Relation.ORIGINAL and "relation" in cleaned and not is_maintainer(actor):
        raise PermissionDenied(
            "Only maintainers register original models; a derived variant names its parents.",
            errors={"relation": ["Only maintainers may create originals."]},
        )
    return cleaned, parents


# --- Licence compatibility -------------------------------------------------------------------------


def _compat_document(variant: Variant) -> dict[str, Any]:
    depths = ancestor_depths(variant.pk)
    ancestors = [
        {"variant": a.full_name, "license": a.license, "depth": depths[a.pk]}
        for a in Variant.objects.filter(pk__in=list(depths)).select_related("owner")
    ]
    doc = license_compat(license_id=variant.license, name=variant.name, ancestors=ancestors)
    doc["computed_at"] = timezone.now().isoformat()
    return doc


def variant_license_compat_refresh(*, variant: Variant, descendants: bool = False) -> dict[str, Any]:
    """Recompute and store `license_compat` (read by the checklist); with `descendants`, for every variant
    below too, since a licence's terms are carried down the lineage."""
    variant.license_compat = compat = _compat_document(variant)
    variant.save(update_fields=["license_compat", "updated_at"])
    if descendants:
        for child in Variant.objects.filter(pk__in=descendant_ids(variant.pk)).select_related("owner"):
            child.license_compat = _compat_document(child)
            child.save(update_fields=["license_compat", "updated_at"])
    return compat


# --- Variants ----------------------------------------------------------------------------------


def _set_parents(variant: Variant, parents: Sequence[Variant]) -> None:
    VariantParent.objects.filter(child=variant).delete()
    VariantParent.objects.bulk_create(
        [VariantParent(child=variant, parent=p, position=i) for i, p in enumerate(parents)]
    )


def _check_name(owner: User, name: str, errors: dict[str, list[str]]) -> None:
    if not isinstance(name, str) or not re.match(NAME_RE, name):
        _add(
            errors,
            "name",
            "Must match [A-Za-z0-9][A-Za-z0-9._-]{0,95}: a letter or digit, then letters, "
            "digits, '.', '_' or '-', at most 96 characters.",
        )
    elif Variant.objects.filter(owner=owner, name__iexact=name).exists():
        _add(errors, "name", f"{owner.username} already has a variant named '{name}' (names ignore case).")


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
        cleaned, resolved = _clean_variant_input(actor=actor, data=data, existing=None, infer=True)
    except ValidationFailed as exc:
        for key, messages in (exc.errors or {}).items():
            errors.setdefault(key, []).extend(messages)
    if errors:
        raise ValidationFailed("The variant is not valid: see errors.", errors=errors)
    try:
        with transaction.atomic():
            variant = Variant.objects.create(owner=owner, name=name, **cleaned)
    except IntegrityError:
        raise ValidationFailed(
            "The variant is not valid: see errors.",
            errors={"name": [f"{owner.username} already has a variant named '{name}'."]},
        )
    _set_parents(variant, resolved or [])
    revision = Revision.objects.create(variant=variant, number=1, created_by=actor)
    variant.current_revision = revision
    variant.license_compat = _compat_document(variant)
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
        _lock_lineage()
    # of=self: PostgreSQL cannot lock the nullable side of the outer join to current_revision.
    variant = (
        Variant.objects.select_for_update(of=("self",), no_key=True)
        .select_related("owner", "current_revision")
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
    cleaned, parents = _clean_variant_input(actor=actor, data=changes, existing=variant, infer=infer)
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
        _lock_lineage()  # already held when parents were asked for; card metadata can bring them too
        below = descendant_ids(variant.pk)
        looping = [p.full_name for p in parents if p.pk in below]
        if looping:
            raise ValidationFailed(
                "That would make the lineage a cycle.",
                errors={
                    "parents": [
                        f"{', '.join(looping)} derive(s) from {variant.full_name}; "
                        "a variant cannot descend from itself."
                    ]
                },
            )
        _set_parents(variant, parents)
    for key, value in cleaned.items():
        setattr(variant, key, value)
    variant.save()
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
    ensure_can_edit(actor, variant, "delete")
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


# --- Revisions ---------------------------------------------------------------------------------


@transaction.atomic
def revision_create(*, variant: Variant, actor: User, notes: str = "", copy_artifacts: bool = True) -> Revision:
    """Open revision n+1 as a draft (the way to change a submitted or published variant).

    The artifacts of the previous revision are carried over as records unless `copy_artifacts` is False."""
    # of=self: PostgreSQL cannot lock the nullable side of the outer join to current_revision.
    variant = (
        Variant.objects.select_for_update(of=("self",), no_key=True)
        .select_related("owner", "current_revision")
        .get(pk=variant.pk)
    )
    ensure_can_edit(actor, variant)
    current = variant.current_revision
    if current is not None and current.status not in NEW_REVISION_FROM:
        why = (
            "is still a draft: change it instead" if current.status == S.DRAFT else "is under review: withdraw it first"
        )
        raise Conflict(f"Revision {current.number} of {variant.full_name} {why}.", current_status=current.status)
    number = (variant.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    revision = Revision.objects.create(variant=variant, number=number, created_by=actor, notes=notes[:10_000])
    if copy_artifacts and current is not None:
        Artifact.objects.bulk_create(
            [
                Artifact(
                    revision=revision,
                    path=a.path,
                    uri=a.uri,
                    file=a.file.name if a.file else "",
                    sha256=a.sha256,
                    size_bytes=a.size_bytes,
                    format=a.format,
                    header=a.header,
                )
                for a in current.artifacts.all()
            ]
        )
    variant.current_revision = revision
    variant.status = revision.status
    variant.save(update_fields=["current_revision", "status", "updated_at"])
    audit_record(
        actor=actor,
        verb="revision.create",
        target=_revision_target(revision, variant),
        after={"number": number, "copied_artifacts": revision.artifacts.count()},
    )
    return revision


# The paths _clean_path takes, for the OpenAPI schema: once stripped of surrounding whitespace, segments of
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


def _clean_path(path: Any, errors: dict[str, list[str]]) -> str:
    if not isinstance(path, str) or not path.strip():
        _add(errors, "path", "A relative file path is required, e.g. 'model.safetensors'.")
        return ""
    value = path.strip().replace("\\", "/")
    parts = value.split("/")
    if (
        len(value) > 500
        or value.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(ch) < 32 for ch in value)
    ):
        _add(errors, "path", "Must be a relative path inside the model repository (no '..', no leading '/').")
    return value


def _clean_format(path: str, declared: Any, errors: dict[str, list[str]]) -> str:
    from_ext = format_from_extension(PurePosixPath(path))
    if declared:
        value = str(declared).lower()
        if value not in ArtifactFormat.values:
            _add(errors, "format", f"Must be one of {', '.join(ArtifactFormat.values)}.")
        elif from_ext in UNSAFE_FORMATS and value not in UNSAFE_FORMATS:
            _add(errors, "format", f"'{path}' has a pickle-based extension; it cannot be declared '{value}'.")
        elif from_ext in SAFE_FORMATS and value != from_ext:
            _add(errors, "format", f"'{path}' is a .{from_ext} file, not '{value}'.")
        return value
    if from_ext:
        return from_ext
    _add(errors, "format", "Required: the format cannot be told from the file name.")
    return ""


def _clean_uri(uri: Any, errors: dict[str, list[str]]) -> str:
    allowed = ["hf", "https", "s3", "gs"] + (["file"] if settings.MC_ARTIFACT_ALLOW_FILE_URIS else [])
    if not isinstance(uri, str) or not uri.strip():
        _add(errors, "uri", "Required for a record: where the file lives, e.g. hf://org/name@commit/file.")
        return ""
    value = uri.strip()
    parsed = urlparse(value)
    if len(value) > 1000 or parsed.scheme not in allowed or not (parsed.netloc or parsed.path):
        _add(errors, "uri", f"Must be a URI with scheme {', '.join(s + '://' for s in allowed)}.")
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
    clean_path = _clean_path(path, errors)
    clean_fmt = _clean_format(clean_path, fmt, errors) if clean_path else ""
    declared = sha256.strip().lower() if isinstance(sha256, str) and sha256.strip() else None
    if declared is not None and not SHA256_RE.match(declared):
        _add(errors, "sha256", "Must be 64 hexadecimal characters.")
    if upload is not None:
        computed, size, _head = uploaded_digest(upload)
        if size > (upload_limit() if max_bytes is None else max_bytes):
            raise too_large(size)
        if declared and SHA256_RE.match(declared) and declared != computed:
            _add(errors, "sha256", f"The uploaded file's sha256 is {computed}, not {declared}.")
        mismatch = format_mismatch(clean_fmt, upload, size) if clean_fmt else None
        if mismatch:
            _add(errors, "format", f"Declared {clean_fmt}, but {mismatch}.")
        digest, clean_uri = computed, ""
    else:
        clean_uri = _clean_uri(uri, errors)
        if declared is None and "sha256" not in errors:
            _add(errors, "sha256", "Required for a record: the file's sha256 (64 hex characters).")
        if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes < 0:
            _add(errors, "size_bytes", "Required for a record: the file size in bytes.")
        elif size_bytes > settings.MC_ARTIFACT_RECORD_MAX_BYTES:
            _add(errors, "size_bytes", f"At most {settings.MC_ARTIFACT_RECORD_MAX_BYTES} bytes.")
        digest, size = declared or "", size_bytes if isinstance(size_bytes, int) else 0
        mismatch = _file_uri_mismatch(clean_uri, clean_fmt) if clean_fmt and "uri" not in errors else None
        if mismatch:
            _add(errors, "format", f"Declared {clean_fmt}, but {mismatch}.")
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


def _submission_problems(revision: Revision, variant: Variant) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not revision.artifacts.exists():
        problems["artifacts"] = ["Add at least one artifact: upload a file or record one by URI."]
    if not variant.license:
        problems["license"] = ["Declare a licence."]
    elif license_lookup(variant.license) is None:
        problems["license"] = [_license_error(variant.license)]
    card_chars = len(variant.card.strip())
    if card_chars < settings.MC_MIN_CARD_CHARS:
        problems["card"] = [
            f"Write a model card of at least {settings.MC_MIN_CARD_CHARS} characters "
            f"(it has {card_chars}): intended use, limitations, training data, evaluation."
        ]
    if variant.relation != Relation.ORIGINAL and not variant.parent_links.exists():
        problems["parents"] = ["A derived variant names its parents."]
    return problems


def _snapshot(variant: Variant) -> dict[str, Any]:
    """What the variant says now, stored in `Revision.metadata` when the revision is submitted: what reviewers
    judge, and what the public sees once that revision is published (apps.registry.selectors
    `variants_as_seen_by`)."""
    links = list(variant.parent_links.select_related("parent__owner"))
    return {
        "relation": variant.relation,
        "parents": [link.parent.full_name for link in links],
        "parent_ids": [link.parent_id for link in links],
        "license": variant.license,
        "license_compat": variant.license_compat,
        "parameters": variant.parameters,
        "precision": variant.precision,
        "architecture": variant.architecture,
        "task": variant.task,
        "tags": variant.tags,
        "summary": variant.summary,
        "hub_id": variant.hub_id,
        "card": variant.card,
        "card_data": variant.card_data,
    }


@transaction.atomic
def revision_submit(*, revision: Revision, actor: User) -> Revision:
    """The owner sends the current draft to review. It must hold an artifact, a valid licence and a card;
    from then on the revision is immutable. After commit the REVISION_SUBMITTED_HOOKS run."""
    revision, variant = _lock_revision(revision.pk)
    ensure_can_edit(actor, variant, "submit")
    if not revision.can_transition_to(S.SUBMITTED):
        raise InvalidTransition(
            current=revision.status, target=S.SUBMITTED, allowed=list(revision.allowed_transitions())
        )
    if variant.current_revision_id != revision.pk:
        raise Conflict(f"Only the current revision of {variant.full_name} can be submitted, not {revision.number}.")
    problems = _submission_problems(revision, variant)
    if problems:
        raise Conflict(
            f"Revision {revision.number} of {variant.full_name} is not ready to submit: see errors.", errors=problems
        )
    return revision_transition(revision=revision, target=S.SUBMITTED, actor=actor, verb="revision.submit")


@transaction.atomic
def revision_withdraw(*, revision: Revision, actor: User, reason: str = "") -> Revision:
    """The owner takes a draft, submitted or changes-requested revision out of the workflow for good."""
    revision, variant = _lock_revision(revision.pk)
    ensure_can_edit(actor, variant, "withdraw")
    return revision_transition(
        revision=revision, target=S.WITHDRAWN, actor=actor, reason=reason[:1000], verb="revision.withdraw"
    )


@transaction.atomic
def revision_transition(
    *, revision: Revision, target: str, actor: User | None, reason: str = "", verb: str | None = None
) -> Revision:
    """Move a revision through the state machine (choices.TRANSITIONS), row-locked and audited.

    The generic step under every lifecycle action (submit, withdraw, and the review app's approve, reject,
    publish, unpublish): it checks only the table; callers check who may act. Entering `submitted` snapshots
    the variant into `Revision.metadata` (the revision is immutable from then on). The variant's denormalised
    `status` (of its current revision), `is_public` (some revision published) and `published_revision` (the
    last published one: the snapshot the public sees) follow, and the audit event records a change of the
    public revision."""
    revision, variant = _lock_revision(revision.pk)
    if not revision.can_transition_to(target):
        raise InvalidTransition(current=revision.status, target=target, allowed=list(revision.allowed_transitions()))
    before = revision.status
    now = timezone.now()
    revision.status = target
    revision.status_changed_at = now
    revision.status_reason = reason
    fields = ["status", "status_changed_at", "status_reason", "submitted_at"]
    if target == S.SUBMITTED:
        revision.submitted_at = now
        revision.metadata = _snapshot(variant)
        fields.append("metadata")
    elif target == S.PUBLISHED and not revision.metadata and variant.current_revision_id == revision.pk:
        # A revision submitted before snapshots existed: the variant still says what it said then.
        revision.metadata = _snapshot(variant)
        fields.append("metadata")
    revision.save(update_fields=fields)
    if variant.current_revision_id == revision.pk:
        variant.status = target
    public_before = variant.published_revision_id
    published = variant.revisions.filter(status=S.PUBLISHED).order_by("-number").only("pk", "number").first()
    variant.is_public = published is not None
    variant.published_revision_id = published.pk if published is not None else None
    variant.save(update_fields=["status", "is_public", "published_revision", "updated_at"])
    after: dict[str, Any] = {"status": target, "reason": reason or None}
    if variant.published_revision_id != public_before:
        after["public_revision"] = published.number if published is not None else None
    audit_record(
        actor=actor,
        verb=verb or f"revision.{target}",
        target=_revision_target(revision, variant),
        before={"status": before},
        after=after,
    )
    hooks.run_on_commit(hooks.REVISION_TRANSITIONED_HOOKS, revision_id=revision.pk, before=before, after=target)
    if target == S.SUBMITTED:
        hooks.run_on_commit(hooks.REVISION_SUBMITTED_HOOKS, revision_id=revision.pk)
    return revision


def variant_import_card(*, owner: User, actor: User, text: str, name: str | None = None) -> tuple[Variant, bool]:
    """Create or update `owner/name` from a Hub README.md (YAML front matter + markdown body).

    Returns (variant, created). Without a name, the card's model-index name is used if it is a valid one.
    Someone who may not write in `owner`'s namespace gets one answer whether or not the name exists there
    (creating and updating would refuse with different messages, telling a stranger which drafts exist)."""
    if not can_create_in(actor, owner):
        raise PermissionDenied(
            f"You may not import cards into {owner.username}'s namespace.",
            errors={"owner": ["Import into your own namespace (maintainers: also commons)."]},
        )
    front, body = card_split(text)
    if front is None:
        raise ValidationFailed(
            "The card has no YAML front matter.",
            errors={"card": ["A Hub model card starts with YAML metadata between two '---' lines."]},
        )
    if not name:
        index = front.get("model-index")
        first = index[0] if isinstance(index, list) and index and isinstance(index[0], dict) else {}
        candidate = first.get("name")
        if isinstance(candidate, str) and re.match(NAME_RE, candidate.rsplit("/", 1)[-1]):
            name = candidate.rsplit("/", 1)[-1]
        else:
            raise ValidationFailed("Name the variant.", errors={"name": ["Required (the card does not name it)."]})
    with transaction.atomic():
        existing = Variant.objects.filter(owner=owner, name__iexact=name).first()
        if existing is not None:
            return variant_update(variant=existing, actor=actor, infer=True, card=body, card_data=front), False
        return variant_create(owner=owner, actor=actor, name=name, card=body, card_data=front), True

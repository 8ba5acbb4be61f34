"""Cleaning of variant input: the metadata fields, card front matter and the declared lineage, with the field
messages every registry service answers with."""

from __future__ import annotations

import difflib
import re
from typing import Any

from django.conf import settings
from django.db.models import prefetch_related_objects

from apps.accounts.models import User
from apps.accounts.roles import is_maintainer
from apps.core.errors import PermissionDenied, ValidationFailed

from ..cards import card_split, json_safe, metadata_to_fields, summary_from_body
from ..choices import PIPELINE_TAGS, Precision, Relation
from ..licenses import license_lookup, license_suggestions
from ..models import HUB_ID_RE, Variant
from ..querysets import parents_prefetch
from ..selectors import variants_resolve

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


def license_error(value: str) -> str:
    """The message for an unknown licence id, with the closest known ids."""
    suggestions = license_suggestions(value)
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    return f"Unknown licence id '{value}'. Use an SPDX id or a Hugging Face Hub licence id.{hint}"


def add_error(errors: dict[str, list[str]], field: str, message: str) -> None:
    """Add a field message to the errors a ValidationFailed will carry."""
    errors.setdefault(field, []).append(message)


def _clean_fields(data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """Validate the plain metadata fields present in `data`; returns their normalised values."""
    out: dict[str, Any] = {}
    if "license" in data:
        value = data["license"] or ""
        if not isinstance(value, str):
            add_error(errors, "license", "Must be a licence id string.")
        elif value.strip():
            lic = license_lookup(value)
            if lic is None:
                add_error(errors, "license", license_error(value))
            else:
                out["license"] = lic.id
        else:
            out["license"] = ""
    if "parameters" in data:
        value = data["parameters"]
        if value is None:
            out["parameters"] = None
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_PARAMETERS:
            add_error(errors, "parameters", "Must be a whole number greater than 0.")
        else:
            out["parameters"] = value
    if "precision" in data:
        value = data["precision"] or ""
        if value and value not in Precision.values:
            add_error(errors, "precision", f"Must be one of {', '.join(Precision.values)}.")
        else:
            out["precision"] = value
    if "architecture" in data:
        value = data["architecture"] or ""
        if not isinstance(value, str) or len(value) > 100:
            add_error(errors, "architecture", "Must be a string of at most 100 characters.")
        else:
            out["architecture"] = value.strip()
    if "task" in data:
        value = data["task"] or ""
        if not isinstance(value, str) or (value and value not in PIPELINE_TAGS):
            close = difflib.get_close_matches(str(value), PIPELINE_TAGS, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            add_error(errors, "task", f"'{value}' is not a Hugging Face Hub pipeline tag.{hint}")
        else:
            out["task"] = value
    if "tags" in data:
        value = data["tags"] if data["tags"] is not None else []
        if (
            not isinstance(value, list)
            or len(value) > MAX_TAGS
            or not all(isinstance(t, str) and 0 < len(t.strip()) <= 64 for t in value)
        ):
            add_error(errors, "tags", f"Must be a list of at most {MAX_TAGS} tags of 1 to 64 characters.")
        else:
            out["tags"] = list(dict.fromkeys(t.strip() for t in value))
    if "summary" in data:
        value = data["summary"] or ""
        if not isinstance(value, str) or len(value) > 500:
            add_error(errors, "summary", "Must be at most 500 characters.")
        else:
            out["summary"] = value.strip()
    if "card" in data:
        value = data["card"] or ""
        if not isinstance(value, str) or len(value) > settings.MC_CARD_MAX_CHARS:
            add_error(errors, "card", f"Must be markdown of at most {settings.MC_CARD_MAX_CHARS} characters.")
        else:
            out["card"] = value
    if "hub_id" in data:
        value = data["hub_id"] or ""
        if not isinstance(value, str) or (value and not re.match(HUB_ID_RE, value)):
            add_error(errors, "hub_id", "Must be a Hugging Face Hub repo id like 'org/name'.")
        else:
            out["hub_id"] = value
    if "card_data" in data:
        out["card_data"] = data["card_data"]
    return out


def _parent_links(variant: Variant) -> list[Any]:
    """The variant's parent links with their parents, loaded once and kept as its prefetched parents (the
    representation after an update reads them again)."""
    if "parent_links" not in getattr(variant, "_prefetched_objects_cache", {}):
        prefetch_related_objects([variant], parents_prefetch(Variant))
    return list(variant.parent_links.all())


def clean_variant_input(
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
                add_error(
                    errors, "card_data", "Give the metadata as the card's front matter or as card_data, not both."
                )
            data["card_data"] = front
            data["card"] = body
    meta = data.pop("card_data", None)
    if meta is not None:
        if not isinstance(meta, dict):
            add_error(errors, "card_data", "Must be an object of Hub card metadata.")
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
            add_error(errors, "relation", f"Must be one of {', '.join(Relation.values)}.")
            relation = None
        else:
            cleaned["relation"] = data["relation"]
    elif existing is None:
        add_error(errors, "relation", "This field is required.")

    parents: list[Variant] | None = None
    if "parents" in data and data["parents"] is not None:
        given = data["parents"]
        if not isinstance(given, list | tuple) or len(given) > MAX_PARENTS:
            add_error(errors, "parents", f"Must be a list of at most {MAX_PARENTS} variants.")
        else:
            refs = [p for p in given if isinstance(p, str)]
            objs = [p for p in given if isinstance(p, Variant)]
            if len(refs) + len(objs) != len(given):
                add_error(errors, "parents", "Each parent is a variant name 'owner/name'.")
            found, missing = variants_resolve(refs, actor) if refs else ([], [])
            if missing:
                add_error(
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
                add_error(errors, "parents", "A parent is listed twice.")
            if existing is not None and any(p.pk == existing.pk for p in parents):
                add_error(errors, "parents", "A variant cannot be its own parent.")

    final_parents = (
        parents if parents is not None else ([link.parent for link in _parent_links(existing)] if existing else [])
    )
    if relation and not errors.get("parents"):
        if relation == Relation.ORIGINAL and final_parents:
            add_error(errors, "parents", "An original has no parents.")
        elif relation == Relation.MERGE and len(final_parents) < 2:
            add_error(errors, "parents", "A merge has at least two parents.")
        elif relation not in (Relation.ORIGINAL, Relation.MERGE) and len(final_parents) != 1:
            add_error(errors, "parents", f"A {relation} variant has exactly one parent.")
    if errors:
        raise ValidationFailed("The variant is not valid: see errors.", errors=errors)
    if relation == Relation.ORIGINAL and "relation" in cleaned and not is_maintainer(actor):
        raise PermissionDenied(
            "Only maintainers register original models; a derived variant names its parents.",
            errors={"relation": ["Only maintainers may create originals."]},
        )
    return cleaned, parents

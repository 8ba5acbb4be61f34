"""Checklist templates, versioned: clean and create them, edit a version nobody answered yet, start a new
version, load one from a file, and the default template."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.audit.services import audit_record
from apps.core.errors import Conflict, NotFound, ValidationFailed

from ..choices import Evidence, Kind, Level
from ..detectives import DETECTIVES
from ..models import ITEM_KEY_RE, ChecklistTemplate, TemplateItem
from .problems import add_problem

if TYPE_CHECKING:
    from apps.accounts.types import Actor

ITEM_FIELDS = (
    "key",
    "title",
    "guidance",
    "required",
    "level",
    "kind",
    "detective",
    "needs_evidence",
    "na_allowed",
    "reviewer_verifies",
)
ITEM_DEFAULTS: dict[str, Any] = {
    "guidance": "",
    "required": True,
    "level": Level.PASSING,
    "kind": Kind.MANUAL,
    "detective": "",
    "needs_evidence": Evidence.NONE,
    "na_allowed": False,
    "reviewer_verifies": False,
}
MAX_ITEMS = 200


def template_items_clean(items: Any) -> list[dict[str, Any]]:
    """Check a template's items (types, choices, unique keys, a known detective for each automatic item).
    Raises ValidationFailed with errors keyed `items.<n>.<field>`."""
    errors: dict[str, list[str]] = {}
    if not isinstance(items, list) or not items:
        raise ValidationFailed("A template needs items.", errors={"items": ["Give a non-empty list of items."]})
    if len(items) > MAX_ITEMS:
        raise ValidationFailed("Too many items.", errors={"items": [f"At most {MAX_ITEMS} items."]})
    seen: set[str] = set()
    clean: list[dict[str, Any]] = []
    text_limits = {"key": 64, "title": 200, "guidance": 5000, "detective": 64}
    for n, raw in enumerate(items):
        at = f"items.{n}"
        if not isinstance(raw, dict):
            add_problem(errors, at, "Each item is an object.")
            continue
        unknown = sorted(set(raw) - set(ITEM_FIELDS))
        for field in unknown:
            add_problem(errors, f"{at}.{field}", "Not an item field.")
        item = {**ITEM_DEFAULTS, **{k: v for k, v in raw.items() if k in ITEM_FIELDS}}
        for field, limit in text_limits.items():
            value = item.get(field)
            if field in ("key", "title") and field not in raw:
                add_problem(errors, f"{at}.{field}", "This field is required.")
            elif not isinstance(value, str):
                add_problem(errors, f"{at}.{field}", "Must be a string.")
            elif len(value) > limit:
                add_problem(errors, f"{at}.{field}", f"At most {limit} characters.")
        for field in ("required", "na_allowed", "reviewer_verifies"):
            if not isinstance(item[field], bool):
                add_problem(errors, f"{at}.{field}", "Must be true or false.")
        for field, choices in (("level", Level), ("kind", Kind), ("needs_evidence", Evidence)):
            if item[field] not in choices.values:
                add_problem(errors, f"{at}.{field}", f"Must be one of: {', '.join(choices.values)}.")
        key = item.get("key")
        if isinstance(key, str) and "key" in raw:
            if not re.match(ITEM_KEY_RE, key):
                add_problem(
                    errors, f"{at}.key", "Lower-case letters, digits, '-' and '_', starting with a letter or digit."
                )
            elif key in seen:
                add_problem(errors, f"{at}.key", f"'{key}' is used by an earlier item.")
            seen.add(key)
        if isinstance(item.get("title"), str) and "title" in raw and not item["title"].strip():
            add_problem(errors, f"{at}.title", "A title is required.")
        detective = item.get("detective")
        if item["kind"] == Kind.AUTO and isinstance(detective, str):
            if not detective and isinstance(key, str) and key in DETECTIVES:
                item["detective"] = detective = key
            if detective not in DETECTIVES:
                add_problem(
                    errors,
                    f"{at}.detective",
                    f"An automatic item names its detective, one of: {', '.join(sorted(DETECTIVES))}.",
                )
        elif item["kind"] == Kind.MANUAL and detective:
            add_problem(errors, f"{at}.detective", "Only automatic items have a detective.")
        clean.append({k: item[k] for k in ITEM_FIELDS})
    if errors:
        raise ValidationFailed("The template's items are not valid: see errors.", errors=errors)
    return clean


def _template_snapshot(template: ChecklistTemplate) -> dict[str, Any]:
    return {
        "slug": template.slug,
        "version": template.version,
        "name": template.name,
        "is_default": template.is_default,
        "items": list(template.items.values_list("key", flat=True)),
    }


def template_make_default(template: ChecklistTemplate) -> None:
    ChecklistTemplate.objects.filter(is_default=True).exclude(pk=template.pk).update(is_default=False)
    if not template.is_default:
        template.is_default = True
        template.save(update_fields=["is_default"])


def _create_version(
    *,
    slug: str,
    version: int,
    name: str,
    description: str,
    items: list[dict[str, Any]],
    is_default: bool,
    actor: Actor | None,
    based_on: ChecklistTemplate | None,
) -> ChecklistTemplate:
    template = ChecklistTemplate.objects.create(
        slug=slug,
        version=version,
        name=name,
        description=description,
        is_default=False,
        based_on=based_on,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    TemplateItem.objects.bulk_create(
        [TemplateItem(template=template, position=n, **item) for n, item in enumerate(items)]
    )
    if is_default:
        template_make_default(template)
    return template


def _clean_header(slug: Any, name: Any, description: Any) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(slug, str) or not re.match(r"^[-a-zA-Z0-9_]{1,64}$", slug):
        add_problem(errors, "slug", "Letters, digits, '-' and '_' only, at most 64.")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        add_problem(errors, "name", "A name of 1 to 200 characters is required.")
    if not isinstance(description, str) or len(description) > 10_000:
        add_problem(errors, "description", "A string of at most 10000 characters.")
    if errors:
        raise ValidationFailed("The template is not valid: see errors.", errors=errors)


@transaction.atomic
def template_create(
    *, actor: Actor, slug: str, name: str, items: Any, description: str = "", is_default: bool = False
) -> ChecklistTemplate:
    """A new template, version 1. Editing it later goes through `template_update`."""
    _clean_header(slug, name, description)
    clean = template_items_clean(items)
    if ChecklistTemplate.objects.filter(slug__iexact=slug).exists():
        raise Conflict(
            f"A template '{slug}' exists; change it with PATCH, which makes a new version when it is in use."
        )
    try:
        with transaction.atomic():
            template = _create_version(
                slug=slug,
                version=1,
                name=name.strip(),
                description=description,
                items=clean,
                is_default=is_default,
                actor=actor,
                based_on=None,
            )
    except IntegrityError:
        raise Conflict(f"A template '{slug}' was just created by someone else.")
    audit_record(actor=actor, verb="checklist_template.create", target=template, after=_template_snapshot(template))
    return template


@transaction.atomic
def template_update(
    *,
    slug: str,
    actor: Actor,
    name: Any = None,
    description: Any = None,
    items: Any = None,
    is_default: bool | None = None,
) -> tuple[ChecklistTemplate, bool]:
    """Change a template. If its latest version is used by an instance, the change becomes the next version
    and existing instances keep theirs; otherwise the latest version is edited in place.

    Returns (the template version now current, whether a new version was made)."""
    latest = ChecklistTemplate.objects.select_for_update().filter(slug=slug).order_by("-version").first()
    if latest is None:
        raise NotFound(f"No checklist template '{slug}'.")
    new_name = latest.name if name is None else name
    new_description = latest.description if description is None else description
    _clean_header(latest.slug, new_name, new_description)
    current_items = [{f: getattr(i, f) for f in ITEM_FIELDS} for i in latest.items.all()]
    new_items = current_items if items is None else template_items_clean(items)
    content_changed = (
        new_name.strip() != latest.name or new_description != latest.description or new_items != current_items
    )
    before = _template_snapshot(latest)
    made_new = False
    template = latest
    if content_changed and latest.instances.exists():
        template = _create_version(
            slug=latest.slug,
            version=latest.version + 1,
            name=new_name.strip(),
            description=new_description,
            items=new_items,
            is_default=latest.is_default,
            actor=actor,
            based_on=latest,
        )
        made_new = True
    elif content_changed:
        latest.name, latest.description = new_name.strip(), new_description
        latest.save(update_fields=["name", "description"])
        if new_items != current_items:
            latest.items.all().delete()
            TemplateItem.objects.bulk_create(
                [TemplateItem(template=latest, position=n, **item) for n, item in enumerate(new_items)]
            )
    if is_default is True:
        template_make_default(template)
    elif is_default is False and template.is_default:
        template.is_default = False
        template.save(update_fields=["is_default"])
    audit_record(
        actor=actor,
        verb="checklist_template.version" if made_new else "checklist_template.update",
        target=template,
        before=before,
        after=_template_snapshot(template),
    )
    return template, made_new


@transaction.atomic
def template_new_version(*, template: ChecklistTemplate, actor: Actor) -> ChecklistTemplate:
    """Copy a template version into the next one, unchanged, so it can be edited (the admin's way in)."""
    latest = ChecklistTemplate.objects.select_for_update().filter(slug=template.slug).order_by("-version").first()
    assert latest is not None
    items = [{f: getattr(i, f) for f in ITEM_FIELDS} for i in template.items.all()]
    new = _create_version(
        slug=latest.slug,
        version=latest.version + 1,
        name=template.name,
        description=template.description,
        items=items,
        is_default=latest.is_default,
        actor=actor,
        based_on=template,
    )
    audit_record(
        actor=actor,
        verb="checklist_template.version",
        target=new,
        before=_template_snapshot(template),
        after=_template_snapshot(new),
    )
    return new


def default_template_file() -> Path:
    return Path(settings.FIXTURES_DIR, "checklists", settings.MC_CHECKLIST_DEFAULT_TEMPLATE_FILE)


@transaction.atomic
def template_load_file(*, path: Path, actor: Actor | None = None) -> tuple[ChecklistTemplate, bool]:
    """Load a template shipped as JSON (fixtures/checklists/) unless that slug and version exist already."""
    data = json.loads(Path(path).read_text())
    slug, version = data["slug"], int(data.get("version", 1))
    existing = ChecklistTemplate.objects.filter(slug=slug, version=version).first()
    if existing is not None:
        return existing, False
    _clean_header(slug, data.get("name", slug), data.get("description", ""))
    items = template_items_clean(data["items"])
    try:
        with transaction.atomic():
            template = _create_version(
                slug=slug,
                version=version,
                name=data.get("name", slug),
                description=data.get("description", ""),
                items=items,
                is_default=bool(data.get("is_default")),
                actor=actor,
                based_on=None,
            )
    except IntegrityError:  # another process loaded it at the same moment
        return ChecklistTemplate.objects.get(slug=slug, version=version), False
    audit_record(
        actor=actor,
        verb="checklist_template.load",
        target=template,
        after={**_template_snapshot(template), "file": Path(path).name},
    )
    return template, True


def template_default() -> ChecklistTemplate:
    """The template new instances use: the latest version of the default template, loaded from fixtures the
    first time it is needed."""
    template = ChecklistTemplate.objects.filter(is_default=True).order_by("-version").first()
    if template is not None:
        latest = ChecklistTemplate.objects.filter(slug=template.slug).order_by("-version").first()
        return latest or template
    shipped = json.loads(default_template_file().read_text())
    latest = ChecklistTemplate.objects.filter(slug=shipped["slug"]).order_by("-version").first()
    if latest is not None:
        return latest
    return template_load_file(path=default_template_file())[0]

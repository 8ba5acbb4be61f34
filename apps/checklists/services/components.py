"""MOF components of a revision (where each is released, under which licence), declared by its owner until
the revision is approved; a change re-runs the detectives that read them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from django.db import transaction

from apps.audit.services import audit_record
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision

from ..choices import MOF_COMPONENT_SPECS
from ..models import RevisionComponent
from .answers import can_answer
from .instances import checklist_reevaluate
from .problems import add_problem

if TYPE_CHECKING:
    from apps.accounts.types import Actor

S = RevisionStatus


# Components describe what is released; they may change until the revision is approved.
COMPONENT_EDITABLE_STATUSES = (S.DRAFT, S.SUBMITTED, S.CHANGES_REQUESTED)


def _lock_revision_for_components(revision: Revision, actor: Actor) -> Revision:
    revision = Revision.objects.select_for_update(no_key=True).select_related("variant__owner").get(pk=revision.pk)
    if not can_answer(actor, revision):
        raise PermissionDenied(f"Only the owner of {revision.variant.full_name} declares its components.")
    if revision.status not in COMPONENT_EDITABLE_STATUSES:
        raise Conflict(
            f"Revision {revision.number} is {revision.status}: its components can no longer change.",
            current_status=revision.status,
        )
    return revision


def _after_components_change(revision: Revision) -> None:
    revision_id = revision.pk
    transaction.on_commit(lambda: checklist_reevaluate(revision_id=revision_id, inputs={"components"}), robust=True)


@transaction.atomic
def component_set(
    *, revision: Revision, component: str, location: Any, license: Any, actor: Actor
) -> RevisionComponent:
    """Declare where a MOF component of the revision is released and under which licence (create or replace)."""
    from apps.registry.licenses import license_lookup, license_suggestions

    if component not in MOF_COMPONENT_SPECS:
        raise NotFound(f"No MOF component '{component}'.")
    revision = _lock_revision_for_components(revision, actor)
    errors: dict[str, list[str]] = {}
    if not isinstance(location, str) or not location.strip() or len(location) > 1000:
        add_problem(errors, "location", "Give a URL or an artifact path, at most 1000 characters.")
    elif "://" in location:
        parsed = urlparse(location.strip())
        if parsed.scheme not in ("http", "https", "hf", "s3", "gs") or not parsed.netloc:
            add_problem(errors, "location", "A URL must be http(s), hf://, s3:// or gs:// with a host.")
    if license is None:
        license = ""
    if not isinstance(license, str) or len(license) > 64:
        add_problem(errors, "license", "A licence id (SPDX or Hub), or empty for 'not specified'.")
    elif license.strip() and license_lookup(license) is None:
        hints = license_suggestions(license)
        add_problem(
            errors,
            "license",
            f"Unknown licence id '{license}'." + (f" Did you mean: {', '.join(hints)}?" if hints else ""),
        )
    if errors:
        raise ValidationFailed("The component is not valid: see errors.", errors=errors)
    canonical = license_lookup(license).id if license.strip() else ""  # type: ignore[union-attr]
    existing = RevisionComponent.objects.filter(revision=revision, component=component).first()
    before = {"location": existing.location, "license": existing.license} if existing else None
    row, _ = RevisionComponent.objects.update_or_create(
        revision=revision,
        component=component,
        defaults={"location": location.strip(), "license": canonical, "updated_by": actor},
    )
    audit_record(
        actor=actor,
        verb="revision_component.set",
        target=row,
        before=before,
        after={"revision": revision.pk, "component": component, "location": row.location, "license": row.license},
    )
    _after_components_change(revision)
    return row


@transaction.atomic
def component_delete(*, revision: Revision, component: str, actor: Actor) -> None:
    if component not in MOF_COMPONENT_SPECS:
        raise NotFound(f"No MOF component '{component}'.")
    revision = _lock_revision_for_components(revision, actor)
    row = RevisionComponent.objects.filter(revision=revision, component=component).first()
    if row is None:
        raise NotFound(f"Component '{component}' is not declared on revision {revision.number}.")
    audit_record(
        actor=actor,
        verb="revision_component.delete",
        target=row,
        before={"revision": revision.pk, "component": component, "location": row.location, "license": row.license},
    )
    row.delete()
    _after_components_change(revision)

"""The seams between the pages and the domain apps: one function per write, each calling that app's service,
and `variant_sections`, which gathers the read-only parts of the variant page from each app's selectors."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.benchmarks.api.serializers import JobSerializer
from apps.benchmarks.selectors import jobs_for_api, jobs_visible_to
from apps.core.errors import PermissionDenied, ValidationFailed
from apps.registry import selectors as registry_selectors
from apps.registry import services as registry_services
from apps.registry.choices import EXTENSION_FORMATS, RevisionStatus
from apps.registry.models import Artifact, Revision, Variant

ACTION_TARGETS = {
    "submit": RevisionStatus.SUBMITTED,
    "withdraw": RevisionStatus.WITHDRAWN,
    "publish": RevisionStatus.PUBLISHED,
    "unpublish": RevisionStatus.UNPUBLISHED,
    "reject": RevisionStatus.REJECTED,
}


def variant_propose(user: Any, form: Any) -> Variant:
    data = form.cleaned_data
    parents, missing = registry_selectors.variants_resolve(form.parent_names(), user)
    if missing:
        raise ValidationFailed("Unknown parent.",
                               errors={"parents": [f"No variant {m} that you can see." for m in missing]})
    card = data.get("card_file") or data.get("card") or ""
    fields = {k: data[k] for k in ("license", "parameters", "precision", "task", "architecture", "summary")
              if data.get(k) not in (None, "")}
    return registry_services.variant_create(owner=user, name=data["name"], relation=data["relation"],
                                            parents=parents, actor=user, card=card, **fields)


def artifact_upload(user: Any, revision: Revision, form: Any) -> Artifact:
    from .variants import save_upload_to_temp

    upload = form.cleaned_data["file"]
    path = form.cleaned_data.get("path") or upload.name
    fmt = form.cleaned_data.get("format") or EXTENSION_FORMATS.get("." + path.rsplit(".", 1)[-1].lower(), "other")
    if revision.variant.owner_id != user.pk:
        raise PermissionDenied("Only the owner uploads artifacts.")
    source = save_upload_to_temp(upload)
    return registry_services.artifact_add_local_file(revision=revision, source=source, path=path, fmt=fmt,
                                                     actor=user)


def revision_action(user: Any, revision: Revision, action: str, *, reason: str = "") -> Revision:
    target = ACTION_TARGETS.get(action)
    if target is None:
        raise ValidationFailed("Unknown action.", errors={"action": [f"Unknown action '{action}'."]})
    if action in ("submit", "withdraw") and revision.variant.owner_id != user.pk:
        raise PermissionDenied("Only the owner submits or withdraws a revision.")
    if action in ("publish", "unpublish", "reject"):
        raise PermissionDenied("Publishing goes through the publication gate, which is not available yet.")
    return registry_services.revision_transition(revision=revision, target=target, actor=user, reason=reason)


def variant_sections(request: HttpRequest, variant: Variant, current: Revision | None) -> dict[str, Any]:
    """Jobs and results for the variant; more sections join as the review and checklist apps land."""
    user = request.user
    jobs = jobs_for_api(jobs_visible_to(user).filter(revision__variant=variant)).order_by("-id")[:50]
    job_rows = JobSerializer(jobs, many=True, context={"request": request}).data
    return {"jobs": job_rows}


def dashboard_sections(request: HttpRequest) -> dict[str, Any]:
    """Notifications and the review queue, from the notifications and reviews apps."""
    return {}

"""Variant pages: browse, propose, the variant page and the forms posted from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.roles import is_maintainer, is_reviewer
from apps.core.errors import DomainError, NotFound, PermissionDenied
from apps.registry import selectors as registry_selectors
from apps.registry.models import Revision, Variant
from apps.registry.permissions import can_edit_variant, can_manage_variant

from ..forms import (
    ArtifactUploadForm,
    CollaboratorForm,
    FlagForm,
    TransferForm,
    VariantEditForm,
    VariantProposeForm,
    add_service_errors,
    license_choices,
)
from ..svg import lineage_layout
from . import AuthedRequest, WebRequest, sections


def _variant_or_404(request: WebRequest, owner: str, name: str) -> Variant:
    """The variant as stored (writes start from it); pages show it through `variant_as_seen_by`."""
    try:
        return registry_selectors.variant_for_user_or_404(request.user, owner, name)
    except NotFound:
        raise Http404


def variant_list(request: WebRequest) -> HttpResponse:
    qs = registry_selectors.variants_visible_to(request.user).order_by("-updated_at", "-id")
    q = request.GET.get("q", "").strip()
    if q:
        qs = qs.filter(name__icontains=q) | qs.filter(owner__username__icontains=q)
    page = Paginator(qs, 25).get_page(request.GET.get("page"))
    page.object_list = registry_selectors.variants_as_seen_by(request.user, list(page.object_list))
    return render(request, "web/variant_list.html", {"page": page, "q": q})


def parent_suggestions(request: WebRequest) -> HttpResponse:
    """htmx fragment: <option>s for the parent datalist, among variants the user may see."""
    q = request.GET.get("parents", request.GET.get("q", "")).split(",")[-1].strip()
    qs = registry_selectors.variants_visible_to(request.user)
    if q:
        owner, sep, name = q.partition("/")
        qs = (
            qs.filter(owner__username__icontains=owner, name__icontains=name)
            if sep
            else (qs.filter(name__icontains=q) | qs.filter(owner__username__icontains=q))
        )
    return render(request, "web/partials/parent_options.html", {"variants": qs.order_by("name")[:20]})


@login_required
def variant_propose(request: AuthedRequest) -> HttpResponse:
    form = VariantProposeForm(
        request.POST or None,
        request.FILES or None,
        initial={
            "parents": request.GET.get("parent", ""),
            **({"owner": request.GET["in"]} if "in" in request.GET else {}),
        },
        namespaces=sections.create_namespaces(request.user),
    )
    if request.method == "POST" and form.is_valid():
        try:
            variant = sections.variant_propose(request.user, form)
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{variant.full_name} created as a draft. Upload its files next.")
            return redirect("web:variant", owner=variant.owner.username, name=variant.name)
    return render(
        request,
        "web/variant_propose.html",
        {"form": form, "licenses": license_choices()},
        status=400 if form.errors else 200,
    )


@login_required
def variant_edit(request: AuthedRequest, owner: str, name: str) -> HttpResponse:
    variant = _variant_or_404(request, owner, name)
    if not can_edit_variant(request.user, variant):
        # Seeing a published variant is not editing it, and the form would show its unpublished draft.
        raise DjangoPermissionDenied
    initial = {
        "relation": variant.relation,
        "parents": ", ".join(link.parent.full_name for link in variant.parent_links.all()),
        "license": variant.license,
        "parameters": variant.parameters,
        "precision": variant.precision,
        "task": variant.task,
        "architecture": variant.architecture,
        "summary": variant.summary,
        "card": variant.card,
        "etag": variant.etag,
    }
    form = VariantEditForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            sections.variant_edit(request.user, variant, form)
        except PermissionDenied:
            raise DjangoPermissionDenied
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{variant.full_name} saved.")
            return redirect("web:variant", owner=variant.owner.username, name=variant.name)
    return render(
        request,
        "web/variant_edit.html",
        {"form": form, "variant": variant, "licenses": license_choices()},
        status=400 if form.errors else 200,
    )


def variant_detail(request: WebRequest, owner: str, name: str) -> HttpResponse:
    variant = _variant_or_404(request, owner, name)
    return render(request, "web/variant_detail.html", _variant_context(request, variant))


def _variant_context(request: WebRequest, variant: Variant, **extra: Any) -> dict[str, Any]:
    user = request.user
    # Decided on the stored row: its namespace's people and collaborators edit, the owner or org admins manage.
    can_edit = can_edit_variant(user, variant)
    can_manage = can_manage_variant(user, variant)
    collaborators = (
        list(registry_selectors.variant_collaborators(variant))
        if can_manage and not variant.owner.is_organization
        else None
    )
    variant = registry_selectors.variant_as_seen_by(user, variant)
    revisions = list(registry_selectors.revisions_visible_to(user, variant))
    current = next((r for r in revisions if r.pk == variant.current_revision_id), revisions[-1] if revisions else None)
    lineage = registry_selectors.variant_lineage(variant=variant, user=user)
    ctx: dict[str, Any] = {
        "variant": variant,
        "revisions": revisions,
        "current": current,
        "lineage": lineage,
        "lineage_svg": lineage_layout(lineage),
        "is_owner": can_edit,
        "can_manage": can_manage,
        "collaborators": collaborators,
        "transfer_form": extra.pop("transfer_form", None) or TransferForm(),
        "collaborator_form": extra.pop("collaborator_form", None) or CollaboratorForm(),
        "is_reviewer": is_reviewer(user),
        "is_maintainer": is_maintainer(user),
        "upload_form": extra.pop("upload_form", None) or ArtifactUploadForm(),
        "flag_form": extra.pop("flag_form", None) or FlagForm(),
    }
    ctx.update(sections.variant_sections(request, variant, current))
    ctx.update(extra)
    return ctx


@login_required
@require_POST
def artifact_upload(request: AuthedRequest, owner: str, name: str, number: int) -> HttpResponse:
    variant = _variant_or_404(request, owner, name)
    try:
        revision = registry_selectors.revision_for_user_or_404(request.user, variant=variant, number=number)
    except NotFound:
        raise Http404
    form = ArtifactUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            artifact = sections.artifact_upload(request.user, revision, form)
        except PermissionDenied:
            raise DjangoPermissionDenied
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            msg = f"Uploaded {artifact.path} ({artifact.size_bytes} bytes, sha256 {artifact.sha256[:12]}…)."
            if request.htmx or request.headers.get("X-Requested-With") == "XMLHttpRequest":
                return HttpResponse(msg, status=201)
            messages.success(request, msg)
            return redirect("web:variant", owner=variant.owner.username, name=variant.name)
    if request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return render(
            request,
            "web/partials/upload_form.html",
            {"upload_form": form, "variant": variant, "current": revision},
            status=400,
        )
    return render(request, "web/variant_detail.html", _variant_context(request, variant, upload_form=form), status=400)


@login_required
@require_POST
def revision_action(request: AuthedRequest, owner: str, name: str, number: int, action: str) -> HttpResponse:
    """submit / withdraw / publish / unpublish / reject, each through the registry's transition services."""
    variant = _variant_or_404(request, owner, name)
    try:
        revision = registry_selectors.revision_for_user_or_404(request.user, variant=variant, number=number)
    except NotFound:
        raise Http404
    try:
        sections.revision_action(request.user, revision, action, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        messages.error(request, _problem_text(exc))
    else:
        messages.success(request, f"Revision {revision.number}: {action} done.")
    return redirect("web:variant", owner=variant.owner.username, name=variant.name)


def _problem_text(exc: DomainError) -> str:
    parts = [exc.detail]
    for key, msgs in (exc.errors or {}).items():
        parts.append(f"{key}: {'; '.join(str(m) for m in msgs)}")
    return " — ".join(parts)


def _revision_or_404(request: WebRequest, owner: str, name: str, number: int) -> tuple[Variant, Revision]:
    variant = _variant_or_404(request, owner, name)
    try:
        return variant, registry_selectors.revision_for_user_or_404(request.user, variant=variant, number=number)
    except NotFound:
        raise Http404


@login_required
@require_POST
def checklist_answer(request: AuthedRequest, owner: str, name: str, number: int, key: str) -> HttpResponse:
    """Answer (owner) or verify (reviewer) one item. With htmx only that item's row comes back."""
    variant, revision = _revision_or_404(request, owner, name, number)
    error = None
    try:
        sections.checklist_answer(request.user, revision, key, request.POST)
    except NotFound:
        raise Http404
    except DomainError as exc:
        error = exc
    if request.htmx:
        ctx = _variant_context(request, variant)
        row = next((r for level in ctx["checklist"]["levels"] for r in level["rows"] if r.item.key == key), None)
        if row is None:
            raise Http404
        return render(
            request,
            "web/partials/checklist_item.html",
            {
                **ctx,
                **ctx["checklist"],
                "row": row,
                "error": error,
                "posted": request.POST if error else None,
            },
            status=400 if error else 200,
        )
    if error is not None:
        messages.error(request, _problem_text(error))
    else:
        messages.success(request, f"Checklist item “{key}” saved.")
    return redirect("web:variant", owner=variant.owner.username, name=variant.name)


@login_required
@require_POST
def review_submit(request: AuthedRequest, owner: str, name: str, number: int) -> HttpResponse:
    variant, revision = _revision_or_404(request, owner, name, number)
    try:
        review = sections.review_submit(request.user, revision, request.POST)
    except DomainError as exc:
        return render(
            request,
            "web/variant_detail.html",
            _variant_context(
                request, variant, review_errors=exc.errors or {"body": [exc.detail]}, review_posted=request.POST
            ),
            status=400 if exc.status < 500 else exc.status,
        )
    messages.success(request, f"Your review ({review.get_decision_display()}) is recorded.")
    return redirect("web:variant", owner=variant.owner.username, name=variant.name)


@login_required
@require_POST
def comment_create(request: AuthedRequest, owner: str, name: str) -> HttpResponse:
    variant = _variant_or_404(request, owner, name)
    try:
        sections.comment_create(request.user, variant, request.POST)
    except DomainError as exc:
        return render(
            request,
            "web/variant_detail.html",
            _variant_context(
                request, variant, comment_errors=exc.errors or {"body": [exc.detail]}, comment_posted=request.POST
            ),
            status=400,
        )
    messages.success(request, "Comment posted.")
    return redirect("web:variant", owner=variant.owner.username, name=variant.name)


def _variant_form_post(
    request: AuthedRequest,
    variant: Variant,
    form: Any,
    act: Callable[[], tuple[str, Variant]],
    **context: Any,
) -> HttpResponse:
    """A form on the variant page: on valid input the service runs (`act` returns the success message and the
    variant to go back to); its refusals go beside the fields, and the page comes back with 400."""
    if form.is_valid():
        try:
            message, variant = act()
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, message)
            return redirect("web:variant", owner=variant.owner.username, name=variant.name)
    return render(request, "web/variant_detail.html", _variant_context(request, variant, **context), status=400)


@login_required
@require_POST
def flag_create(request: AuthedRequest, owner: str, name: str) -> HttpResponse:
    """Anyone signed in flags a published variant; moderators resolve flags in the admin."""
    variant = _variant_or_404(request, owner, name)
    form = FlagForm(request.POST)

    def act() -> tuple[str, Variant]:
        sections.flag_create(request.user, variant, form)
        return "Thank you: the moderators will look at your flag.", variant

    return _variant_form_post(request, variant, form, act, flag_form=form, flag_open=True)


@login_required
@require_POST
def variant_transfer(request: AuthedRequest, owner: str, name: str) -> HttpResponse:
    """Move the variant to a user or an organization; its old name answers 308 to the new one from now on."""
    variant = _variant_or_404(request, owner, name)
    if not can_manage_variant(request.user, variant):
        raise DjangoPermissionDenied
    old_name = variant.full_name
    form = TransferForm(request.POST)

    def act() -> tuple[str, Variant]:
        moved = sections.variant_transfer(request.user, variant, form)
        return f"{old_name} is now {moved.full_name}; its old name redirects here.", moved

    return _variant_form_post(request, variant, form, act, transfer_form=form, manage_open=True)


@login_required
@require_POST
def collaborator_add(request: AuthedRequest, owner: str, name: str) -> HttpResponse:
    variant = _variant_or_404(request, owner, name)
    if not can_manage_variant(request.user, variant):
        raise DjangoPermissionDenied
    form = CollaboratorForm(request.POST)

    def act() -> tuple[str, Variant]:
        collaborator = sections.collaborator_add(request.user, variant, form)
        return f"{collaborator.user.username} may now edit {variant.full_name}.", variant

    return _variant_form_post(request, variant, form, act, collaborator_form=form, manage_open=True)


@login_required
@require_POST
def collaborator_remove(request: AuthedRequest, owner: str, name: str, username: str) -> HttpResponse:
    """The owner takes a collaborator off, or a collaborator leaves; a refusal is a message."""
    variant = _variant_or_404(request, owner, name)
    try:
        sections.collaborator_remove(request.user, variant, username)
    except PermissionDenied:
        raise DjangoPermissionDenied
    except NotFound:
        raise Http404
    except DomainError as exc:
        messages.error(request, _problem_text(exc))
    else:
        messages.success(request, f"{username} no longer edits {variant.full_name}.")
    return redirect("web:variant", owner=variant.owner.username, name=variant.name)

"""Organizations: the list, a new one, the profile (variants, members, leaderboard standing), its settings (the
profile's edit form and the deletion) and its members and invitations for its admins, and the signed-in user's own
invitations. Organizations and their members are
public; what an admin may do is decided by the orgs services (a refusal is a message, never a 500)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, NotFound, PermissionDenied
from apps.orgs import selectors as org_selectors
from apps.orgs import services as org_services
from apps.orgs.choices import InvitationStatus, OrgRole
from apps.orgs.models import Invitation, Organization
from apps.orgs.permissions import can_manage_org
from apps.registry import selectors as registry_selectors

from ..forms import InvitationForm, OrgCreateForm, OrgDeleteForm, OrgEditForm, add_service_errors
from . import AuthedRequest, WebRequest, sections


def _org_or_404(request: WebRequest, org: str) -> Organization:
    try:
        return org_selectors.org_get(name=org, user=request.user)
    except NotFound:
        raise Http404


def _problem_text(exc: DomainError) -> str:
    """The service's sentence; its field messages only when they add something."""
    extra = [str(m) for msgs in (exc.errors or {}).values() for m in msgs if str(m) not in exc.detail]
    return " ".join([exc.detail, *extra])


def org_list(request: WebRequest) -> HttpResponse:
    orgs = org_selectors.orgs_list(user=request.user)
    return render(request, "web/org_list.html", {"orgs": orgs})


@login_required
def org_create(request: AuthedRequest) -> HttpResponse:
    form = OrgCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = org_services.org_create(actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{org.name} created; you are its admin. Invite members next.")
            return redirect("web:org", org=org.name)
    return render(request, "web/org_new.html", {"form": form}, status=400 if form.errors else 200)


def org_detail(request: WebRequest, org: str) -> HttpResponse:
    organization = _org_or_404(request, org)
    variants = registry_selectors.variants_visible_to(request.user).filter(owner_id=organization.account_id)
    variants = variants.order_by("-updated_at", "-id")
    ctx: dict[str, Any] = {
        "org": organization,
        "variants": registry_selectors.variants_as_seen_by(request.user, list(variants[:100])),
        "members": list(org_selectors.org_members(org=organization)),
        "standing": sections.namespace_standing(organization.account_id) if organization.account_id else [],
        "is_member": getattr(organization, "my_role", None) is not None,
        "can_manage": _can_manage(request, organization),
    }
    return render(request, "web/org_detail.html", ctx)


def _settings_page(
    request: AuthedRequest, org: Organization, edit: OrgEditForm, delete: OrgDeleteForm, status: int = 200
) -> HttpResponse:
    return render(request, "web/org_settings.html", {"org": org, "form": edit, "delete_form": delete}, status=status)


def _edit_form(org: Organization, data: Any = None) -> OrgEditForm:
    """The profile's form, from the organization as read now (its ETag with it)."""
    initial = {"display_name": org.display_name, "description": org.description, "etag": org.etag}
    return OrgEditForm(data, initial=initial)


def _managed_org_or_403(request: AuthedRequest, org: str) -> Organization:
    organization = _org_or_404(request, org)
    if not _can_manage(request, organization):
        raise DjangoPermissionDenied  # the profile is public; its settings are the admins' (and maintainers')
    return organization


@login_required
def org_edit(request: AuthedRequest, org: str) -> HttpResponse:
    """The organization's settings: its display name and description (the name is its namespace and stays), with
    the page's ETag so that a concurrent change is not overwritten unseen; and the form that deletes it."""
    organization = _managed_org_or_403(request, org)
    form = _edit_form(organization, request.POST or None)
    delete = OrgDeleteForm(org_name=organization.name)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            org_services.org_update(
                org=organization,
                actor=request.user,
                display_name=data["display_name"],
                description=data["description"],
                if_match=data.get("etag") or None,
            )
        except PermissionDenied:
            raise DjangoPermissionDenied
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"The profile of {organization.name} is saved.")
            return redirect("web:org", org=organization.name)
    return _settings_page(request, organization, form, delete, status=400 if form.errors else 200)


@login_required
@require_POST
def org_delete(request: AuthedRequest, org: str) -> HttpResponse:
    """Delete the organization once its admin typed its name; a refusal (it still owns variants, it is the
    platform's own) is shown on the settings page, nothing is deleted."""
    organization = _managed_org_or_403(request, org)
    delete = OrgDeleteForm(request.POST, org_name=organization.name)
    edit = _edit_form(organization)
    if not delete.is_valid():
        return _settings_page(request, organization, edit, delete, status=400)
    try:
        org_services.org_delete(org=organization, actor=request.user)
    except PermissionDenied:
        raise DjangoPermissionDenied
    except DomainError as exc:
        delete.add_error(None, _problem_text(exc))
        return _settings_page(request, organization, edit, delete, status=exc.status)
    messages.success(request, f"{organization.name} is deleted, with its memberships and invitations.")
    return redirect("web:org-list")


def _can_manage(request: WebRequest, org: Organization) -> bool:
    """From the `my_role` the org was read with (no query), or the maintainers' standing."""
    if getattr(org, "my_role", None) == OrgRole.ADMIN:
        return True
    return bool(request.user.is_authenticated and can_manage_org(request.user, org))


def _members_context(request: WebRequest, org: Organization, **extra: Any) -> dict[str, Any]:
    can_manage = _can_manage(request, org)
    invitations: list[Invitation] = []
    if can_manage:
        invitations = list(
            org_selectors.org_invitations(org=org, user=request.user).filter(status=InvitationStatus.PENDING)
        )
    ctx: dict[str, Any] = {
        "org": org,
        "members": list(org_selectors.org_members(org=org)),
        "can_manage": can_manage,
        "invitations": invitations,
        "roles": OrgRole.choices,
        "invite_form": InvitationForm(),
        "admin_role": OrgRole.ADMIN,
    }
    ctx.update(extra)
    return ctx


def org_members(request: WebRequest, org: str) -> HttpResponse:
    """The member list (public) and, for the org's admins, invitations, roles and removals."""
    organization = _org_or_404(request, org)
    return render(request, "web/org_members.html", _members_context(request, organization))


@login_required
@require_POST
def org_invite(request: AuthedRequest, org: str) -> HttpResponse:
    organization = _org_or_404(request, org)
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation = org_services.invitation_create(
                org=organization,
                actor=request.user,
                username=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
            )
        except PermissionDenied:
            raise DjangoPermissionDenied
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"{invitation.invitee.username} is invited as {invitation.role}; "
                "they answer on their invitations page.",
            )
            return redirect("web:org-members", org=organization.name)
    return render(
        request, "web/org_members.html", _members_context(request, organization, invite_form=form), status=400
    )


def _act(request: AuthedRequest, action: Any, success: str) -> bool:
    """Run one membership service; a refusal (last admin, not an admin, no such member) becomes a message."""
    try:
        action()
    except DomainError as exc:
        messages.error(request, _problem_text(exc))
        return False
    messages.success(request, success)
    return True


@login_required
@require_POST
def member_role(request: AuthedRequest, org: str, username: str) -> HttpResponse:
    organization = _org_or_404(request, org)
    role = request.POST.get("role", "")
    _act(
        request,
        lambda: org_services.member_role_change(org=organization, username=username, role=role, actor=request.user),
        f"{username} is now {role} of {organization.name}.",
    )
    return redirect("web:org-members", org=organization.name)


@login_required
@require_POST
def member_remove(request: AuthedRequest, org: str, username: str) -> HttpResponse:
    organization = _org_or_404(request, org)
    leaving = username.lower() == request.user.username.lower()
    done = _act(
        request,
        lambda: org_services.member_remove(org=organization, username=username, actor=request.user),
        f"You left {organization.name}." if leaving else f"{username} is no longer a member of {organization.name}.",
    )
    return redirect("web:org" if done and leaving else "web:org-members", org=organization.name)


@login_required
@require_POST
def invitation_revoke(request: AuthedRequest, org: str, pk: int) -> HttpResponse:
    organization = _org_or_404(request, org)
    try:
        invitation = org_selectors.invitation_get(pk=pk, user=request.user, org=organization)
    except NotFound:
        raise Http404
    _act(
        request,
        lambda: org_services.invitation_revoke(invitation=invitation, actor=request.user),
        f"The invitation of {invitation.invitee.username} is revoked.",
    )
    return redirect("web:org-members", org=organization.name)


@login_required
def invitations(request: AuthedRequest) -> HttpResponse:
    """My invitations: pending ones to accept or decline, then the decided ones."""
    rows = list(org_selectors.invitations_received(user=request.user)[:100])
    pending = [i for i in rows if i.effective_status == InvitationStatus.PENDING]  # type: ignore[attr-defined]
    decided = [i for i in rows if i.effective_status != InvitationStatus.PENDING]  # type: ignore[attr-defined]
    return render(request, "web/invitations.html", {"pending": pending, "decided": decided})


@login_required
@require_POST
def invitation_decide(request: AuthedRequest, pk: int, decision: str) -> HttpResponse:
    try:
        invitation = org_selectors.invitation_get(pk=pk, user=request.user)
    except NotFound:
        raise Http404
    if invitation.invitee_id != request.user.pk:
        raise Http404  # an admin sees the invitation on the org's page; only its invitee decides it here
    try:
        if decision == "accept":
            org_services.invitation_accept(invitation=invitation, actor=request.user)
        else:
            org_services.invitation_decline(invitation=invitation, actor=request.user)
    except DomainError as exc:
        messages.error(request, _problem_text(exc))
        return redirect("web:invitations")
    if decision == "accept":
        messages.success(request, f"Welcome to {invitation.org.name}: you are one of its {invitation.role}s.")
        return redirect("web:org", org=invitation.org.name)
    messages.success(request, f"You declined the invitation to {invitation.org.name}.")
    return redirect("web:invitations")

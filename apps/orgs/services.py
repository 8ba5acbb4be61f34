"""Writes on organizations, memberships and invitations.

Each service runs in one transaction, locks the organization's row first (so two membership changes of one org
never interleave: the last-admin rule holds under concurrency), checks the rules, writes, records the audit event
and runs the org's hooks (notifications, webhooks) in the same transaction."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.namespaces import name_is_reserved
from apps.accounts.roles import is_maintainer
from apps.audit.services import audit_record
from apps.core.conditional import check_if_match
from apps.core.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationFailed

from . import hooks
from .choices import INVITATION_TRANSITIONS, InvitationStatus, OrgRole
from .models import ORG_NAME_MAX, ORG_NAME_RE, Invitation, Membership, Organization
from .permissions import ensure_can_manage

if TYPE_CHECKING:
    from apps.accounts.types import Actor

DISPLAY_NAME_MAX = 100
DESCRIPTION_MAX = 2000


# --- rules shared by the services ----------------------------------------------------------------------------


def org_name_problem(name: str) -> str | None:
    """Why a new organization may not be called `name`, or None. Users and organizations share one name space,
    compared without case, and the platform's own names are reserved."""
    if not re.fullmatch(ORG_NAME_RE, name):
        return (
            f"2 to {ORG_NAME_MAX} characters: letters, digits, “-”, “_” and “.”, starting and ending with a letter "
            "or a digit."
        )
    if name_is_reserved(name):
        return f"“{name}” is reserved by the platform; choose another name."
    if Organization.objects.filter(name__iexact=name).exists():
        return "An organization with this name already exists."
    if User.objects.filter(username__iexact=name).exists():
        return "A user already has this name (users and organizations share one name space)."
    return None


def _require_user(actor: Actor) -> None:
    if not (getattr(actor, "is_authenticated", False) and actor.is_active):
        raise PermissionDenied("Sign in to do this.")


def _profile_errors(*, display_name: str | None, description: str | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if display_name is not None and len(display_name) > DISPLAY_NAME_MAX:
        errors["display_name"] = [f"At most {DISPLAY_NAME_MAX} characters."]
    if description is not None and len(description) > DESCRIPTION_MAX:
        errors["description"] = [f"At most {DESCRIPTION_MAX} characters."]
    return errors


def _role_errors(role: str) -> dict[str, list[str]]:
    if role in OrgRole.values:
        return {}
    return {"role": [f"Must be one of: {', '.join(OrgRole.values)}."]}


def _lock(org: Organization) -> Organization:
    """Lock the organization's row: every membership change of one organization queues behind it."""
    try:
        return Organization.objects.select_for_update().get(pk=org.pk)
    except Organization.DoesNotExist:
        raise NotFound(f"No organization '{org.name}'.") from None


def _member(org: Organization, username: str) -> Membership:
    membership = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(org=org, user__username__iexact=username)
        .first()
    )
    if membership is None:
        raise NotFound(f"{username} is not a member of {org.name}.")
    return membership


def _touch(org: Organization) -> None:
    """A membership changed: the organization's version (its ETag, `members_count`, `my_role`) moves on."""
    org.save(update_fields=["updated_at"])


def _admins_count(org: Organization) -> int:
    return Membership.objects.filter(org=org, role=OrgRole.ADMIN).count()


def _refuse_commons_membership(org: Organization) -> None:
    if org.is_commons:
        raise Conflict(
            f"The admins of {org.name} are the maintainers: grant or revoke the maintainer role instead "
            "(PATCH /api/v1/users/{username}/)."
        )


def _new_account(name: str) -> User:
    """The organization's namespace account: owns its variants, never signs in."""
    account = User(username=name, is_active=False, is_organization=True)
    account.set_unusable_password()
    account.save()
    return account


def org_account(org: Organization) -> User:
    """The namespace account of `org`, created when missing (an organization from before accounts, or the
    commons user of an older database, which becomes the commons organization's account)."""
    if org.account_id is not None:
        return org.account  # type: ignore[return-value]
    account = User.objects.filter(username__iexact=org.name).first()
    if account is None:
        account = _new_account(org.name)
    else:
        account.is_organization, account.is_active = True, False
        account.set_unusable_password()
        account.save(update_fields=["is_organization", "is_active", "password"])
    org.account = account
    org.save(update_fields=["account"])
    return account


def _snapshot(org: Organization) -> dict[str, Any]:
    return {"name": org.name, "display_name": org.display_name, "description": org.description}


# --- organizations -------------------------------------------------------------------------------------------


@transaction.atomic
def org_create(*, name: str, actor: Actor, display_name: str = "", description: str = "") -> Organization:
    """Create an organization; its creator becomes its first admin."""
    _require_user(actor)
    name = name.strip()
    errors = _profile_errors(display_name=display_name, description=description)
    problem = org_name_problem(name)
    if problem:
        errors["name"] = [problem]
    if errors:
        raise ValidationFailed("Invalid organization.", errors=errors)
    try:
        with transaction.atomic():
            org = Organization.objects.create(
                name=name, display_name=display_name, description=description, account=_new_account(name)
            )
    except IntegrityError:  # created by someone else since the check
        raise ValidationFailed(
            "Invalid organization.", errors={"name": ["An organization with this name already exists."]}
        ) from None
    membership = Membership.objects.create(org=org, user=actor, role=OrgRole.ADMIN)
    audit_record(actor=actor, verb="org.create", target=org, after={**_snapshot(org), "admin": actor.username})
    hooks.run(hooks.MEMBER_ADDED_HOOKS, membership=membership, actor=actor, via="create")
    return org


@transaction.atomic
def org_update(
    *,
    org: Organization,
    actor: Actor,
    display_name: str | None = None,
    description: str | None = None,
    if_match: str | None = None,
    quota: dict[str, int | None] | None = None,
) -> Organization:
    """Change an organization's profile (admins). Its name is its namespace and does not change here.
    `if_match` is the request's If-Match header: a stale ETag is a 412. `quota` (``max_queued_jobs``,
    ``daily_compute_seconds``) is the maintainers' alone (:func:`org_quota_set`), in the same transaction: a
    request that mixes both is refused whole."""
    _require_user(actor)
    org = _lock(org)
    ensure_can_manage(actor, org, "change its profile")
    check_if_match(if_match, org.etag, what=f"The organization {org.name}")
    errors = _profile_errors(display_name=display_name, description=description)
    if errors:
        raise ValidationFailed("Invalid organization.", errors=errors)
    if quota:
        org = org_quota_set(org=org, actor=actor, **quota)
    changes = {
        key: value
        for key, value in (("display_name", display_name), ("description", description))
        if value is not None and getattr(org, key) != value
    }
    if not changes:
        return org  # nothing changes: no write, no audit event, the ETag stays valid
    before = {key: getattr(org, key) for key in changes}
    for key, value in changes.items():
        setattr(org, key, value)
    org.save(update_fields=[*changes, "updated_at"])
    audit_record(actor=actor, verb="org.update", target=org, before=before, after=changes)
    return org


#: The organization's quota fields and their bounds (as a user's quota: apps.accounts.api.serializers).
QUOTA_BOUNDS = {"max_queued_jobs": 100_000, "daily_compute_seconds": 10**8}


def _quota_errors(changes: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for key, value in changes.items():
        if key not in QUOTA_BOUNDS:
            errors[key] = [f"Not a quota field; give {' or '.join(QUOTA_BOUNDS)}."]
        elif value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= QUOTA_BOUNDS[key]
        ):
            errors[key] = [f"A whole number from 0 to {QUOTA_BOUNDS[key]}, or null for the platform default."]
    return errors


@transaction.atomic
def org_quota_set(*, org: Organization, actor: Actor, **changes: int | None) -> Organization:
    """Set an organization's quota (maintainers only): ``max_queued_jobs`` (jobs queued or running at once) and
    ``daily_compute_seconds``; None goes back to the platform default (MC_ORG_*). Jobs that its members submit
    on its variants are charged to it (apps.benchmarks.services.quota). Audited as ``org.quota``."""
    _require_user(actor)
    if not is_maintainer(actor):
        raise PermissionDenied(f"Only maintainers set the quota of {org.name}.")
    errors = _quota_errors(changes)
    if errors:
        raise ValidationFailed("Invalid quota.", errors=errors)
    org = _lock(org)
    changed = {key: value for key, value in changes.items() if getattr(org, key) != value}
    if not changed:
        return org
    before = {key: getattr(org, key) for key in changed}
    for key, value in changed.items():
        setattr(org, key, value)
    org.save(update_fields=[*changed, "updated_at"])
    audit_record(actor=actor, verb="org.quota", target=org, before=before, after=changed)
    return org


@transaction.atomic
def org_delete(*, org: Organization, actor: Actor) -> None:
    """Delete an organization (admins), with its memberships and invitations. `commons` stays, and so does an
    organization that something still hangs on (a guard in `hooks.ORG_DELETE_GUARDS` says what)."""
    _require_user(actor)
    org = _lock(org)
    ensure_can_manage(actor, org, "delete it")
    if org.is_commons:
        raise Conflict(f"{org.name} is the platform's own organization and cannot be deleted.")
    reasons = [reason for guard in list(hooks.ORG_DELETE_GUARDS) if (reason := guard(org=org))]
    if reasons:
        raise Conflict(f"{org.name} cannot be deleted yet: {' '.join(reasons)}", errors={"org": reasons})
    members = sorted(f"{username}:{role}" for username, role in org.memberships.values_list("user__username", "role"))
    audit_record(actor=actor, verb="org.delete", target=org, before={**_snapshot(org), "members": members})
    account = org.account
    org.delete()
    if account is not None:
        account.delete()


# --- invitations ---------------------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(*, org: Organization, username: str, actor: Actor, role: str = OrgRole.MEMBER) -> Invitation:
    """Invite a user by name (admins). One pending invitation per user and organization; it expires after
    MC_ORG_INVITATION_TTL_DAYS days."""
    _require_user(actor)
    org = _lock(org)
    ensure_can_manage(actor, org, "invite members")
    _refuse_commons_membership(org)
    errors = _role_errors(role)
    invitee = User.objects.filter(username__iexact=username.strip(), is_active=True).first()
    if invitee is None:
        errors["username"] = [f"No user '{username}'."]
    elif invitee.pk == actor.pk:
        errors["username"] = ["You cannot invite yourself."]
    if errors:
        raise ValidationFailed("Invalid invitation.", errors=errors)
    assert invitee is not None
    if Membership.objects.filter(org=org, user=invitee).exists():
        raise Conflict(
            f"{invitee.username} is already a member of {org.name}.",
            errors={"username": [f"{invitee.username} is already a member; change their role instead."]},
        )
    pending = Invitation.objects.select_for_update().filter(org=org, invitee=invitee, status="pending").first()
    if pending is not None:
        if not pending.is_expired:
            raise Conflict(
                f"{invitee.username} already has a pending invitation to {org.name}.",
                errors={"username": [f"Invited already; the invitation is open until {pending.expires_at:%Y-%m-%d}."]},
            )
        _mark_expired(pending, actor=actor)
    invitation = Invitation.objects.create(
        org=org,
        invitee=invitee,
        role=role,
        invited_by=actor,
        expires_at=timezone.now() + timedelta(days=settings.MC_ORG_INVITATION_TTL_DAYS),
    )
    audit_record(
        actor=actor,
        verb="org.invitation.create",
        target=invitation,
        after={"org": org.name, "invitee": invitee.username, "role": role, "expires_at": invitation.expires_at},
    )
    hooks.run(hooks.INVITATION_CREATED_HOOKS, invitation=invitation, actor=actor)
    return invitation


def _mark_expired(invitation: Invitation, *, actor: Actor) -> None:
    invitation.status = InvitationStatus.EXPIRED
    invitation.decided_at = invitation.expires_at
    invitation.save(update_fields=["status", "decided_at"])
    audit_record(
        actor=actor,
        verb="org.invitation.expire",
        target=invitation,
        before={"status": "pending"},
        after={"status": "expired"},
    )


def _locked_invitation(invitation: Invitation) -> tuple[Organization, Invitation]:
    org = _lock(invitation.org)
    locked = (
        Invitation.objects.select_for_update(of=("self",)).select_related("invitee", "invited_by").get(pk=invitation.pk)
    )
    locked.org = org
    return org, locked


DECISION_VERBS: dict[str, str] = {
    InvitationStatus.ACCEPTED: "org.invitation.accept",
    InvitationStatus.DECLINED: "org.invitation.decline",
    InvitationStatus.REVOKED: "org.invitation.revoke",
}


def _decide(invitation: Invitation, *, target: str, actor: Actor) -> Invitation:
    if invitation.is_expired:
        raise Conflict(
            f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC; ask an admin of "
            f"{invitation.org.name} for a new one.",
            current="expired",
            target=target,
        )
    if not invitation.can_transition_to(target):
        raise InvalidTransition(
            current=invitation.status, target=target, allowed=list(INVITATION_TRANSITIONS.get(invitation.status, ()))
        )
    invitation.status = target
    invitation.decided_at = timezone.now()
    invitation.save(update_fields=["status", "decided_at"])
    audit_record(
        actor=actor,
        verb=DECISION_VERBS[target],
        target=invitation,
        before={"status": "pending"},
        after={"status": target},
    )
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, actor: Actor) -> Invitation:
    """The invitee joins the organization with the invited role. An expired invitation cannot be accepted."""
    _require_user(actor)
    org, invitation = _locked_invitation(invitation)
    if invitation.invitee_id != actor.pk:
        raise PermissionDenied("Only the invitee may accept or decline an invitation.")
    invitation = _decide(invitation, target=InvitationStatus.ACCEPTED, actor=actor)
    membership, created = Membership.objects.get_or_create(org=org, user=actor, defaults={"role": invitation.role})
    if created:
        _touch(org)
        audit_record(
            actor=actor,
            verb="org.member.add",
            target=membership,
            after={"org": org.name, "username": actor.username, "role": membership.role, "via": "invitation"},
        )
    hooks.run(hooks.INVITATION_DECIDED_HOOKS, invitation=invitation, actor=actor)
    if created:
        hooks.run(hooks.MEMBER_ADDED_HOOKS, membership=membership, actor=actor, via="invitation")
    return invitation


@transaction.atomic
def invitation_decline(*, invitation: Invitation, actor: Actor) -> Invitation:
    """The invitee says no; the organization's admins hear of it."""
    _require_user(actor)
    _, invitation = _locked_invitation(invitation)
    if invitation.invitee_id != actor.pk:
        raise PermissionDenied("Only the invitee may accept or decline an invitation.")
    invitation = _decide(invitation, target=InvitationStatus.DECLINED, actor=actor)
    hooks.run(hooks.INVITATION_DECIDED_HOOKS, invitation=invitation, actor=actor)
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Actor) -> Invitation:
    """An admin withdraws a pending invitation."""
    _require_user(actor)
    org, invitation = _locked_invitation(invitation)
    ensure_can_manage(actor, org, "revoke invitations")
    return _decide(invitation, target=InvitationStatus.REVOKED, actor=actor)


# --- memberships ---------------------------------------------------------------------------------------------


@transaction.atomic
def member_role_change(*, org: Organization, username: str, role: str, actor: Actor) -> Membership:
    """Make a member an admin or an admin a member (admins). The last admin cannot be demoted."""
    _require_user(actor)
    org = _lock(org)
    ensure_can_manage(actor, org, "change roles")
    errors = _role_errors(role)
    if errors:
        raise ValidationFailed("Invalid role.", errors=errors)
    membership = _member(org, username)
    _refuse_commons_membership(org)
    if membership.role == role:
        return membership
    if membership.role == OrgRole.ADMIN and _admins_count(org) <= 1:
        raise Conflict(
            f"{membership.user.username} is the last admin of {org.name}: make another member an admin first.",
            errors={"role": ["An organization keeps at least one admin."]},
        )
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    _touch(org)
    audit_record(
        actor=actor,
        verb="org.member.role",
        target=membership,
        before={"org": org.name, "username": membership.user.username, "role": before},
        after={"role": role},
    )
    hooks.run(hooks.MEMBER_ROLE_CHANGED_HOOKS, membership=membership, before=before, actor=actor)
    return membership


@transaction.atomic
def member_remove(*, org: Organization, username: str, actor: Actor) -> None:
    """Remove a member (admins), or leave (any member). The last admin can neither leave nor be removed: they
    make someone else an admin first, or delete the organization."""
    _require_user(actor)
    org = _lock(org)
    membership = _member(org, username)
    leaving = membership.user_id == actor.pk
    if not leaving:
        ensure_can_manage(actor, org, "remove members")
    _refuse_commons_membership(org)
    user = membership.user
    if membership.role == OrgRole.ADMIN and _admins_count(org) <= 1:
        what = "leave" if leaving else "be removed"
        raise Conflict(
            f"{user.username} is the last admin of {org.name} and cannot {what}: make another member an admin "
            "first, or delete the organization.",
            errors={"username": ["An organization keeps at least one admin."]},
        )
    audit_record(
        actor=actor,
        verb="org.member.remove",
        target=membership,
        before={"org": org.name, "username": user.username, "role": membership.role},
        after={"left": leaving},
    )
    role = membership.role
    membership.delete()
    _touch(org)
    hooks.run(hooks.MEMBER_REMOVED_HOOKS, org=org, user=user, role=role, actor=actor)


# --- commons: its admins are the maintainers -----------------------------------------------------------------

COMMONS_DISPLAY_NAME = "Model Commons"
COMMONS_DESCRIPTION = "The maintainers' organization: original open models, registered for the community."


def commons_ensure() -> Organization:
    """The `commons` organization, created if missing (the data migration creates it; a flushed test database
    or a renamed MC_COMMONS_USERNAME may not have it)."""
    org, created = Organization.objects.get_or_create(
        name__iexact=settings.MC_COMMONS_USERNAME,
        defaults={
            "name": settings.MC_COMMONS_USERNAME,
            "display_name": COMMONS_DISPLAY_NAME,
            "description": COMMONS_DESCRIPTION,
        },
    )
    if created:
        audit_record(actor=None, verb="org.create", target=org, after=_snapshot(org))
    if org.account_id is None:
        org_account(org)
    return org


@transaction.atomic
def commons_sync_member(*, user: User, actor: Actor | None) -> Membership | None:
    """Keep `commons` in step with the maintainer role (accounts' ROLES_CHANGED_HOOKS call this in the role
    change's transaction): a maintainer (or superuser) is one of its admins, anyone else is not a member. The
    role change is the event people hear of, so this announces nothing itself; it is audited."""
    maintainer = is_maintainer(user) and user.is_active
    if not maintainer and not Organization.objects.filter(name__iexact=settings.MC_COMMONS_USERNAME).exists():
        return None
    org = _lock(commons_ensure())
    membership = Membership.objects.select_for_update().filter(org=org, user=user).first()
    if maintainer and membership is None:
        membership = Membership.objects.create(org=org, user=user, role=OrgRole.ADMIN)
        audit_record(
            actor=actor,
            verb="org.member.add",
            target=membership,
            after={"org": org.name, "username": user.username, "role": OrgRole.ADMIN, "via": "maintainer role"},
        )
    elif maintainer and membership is not None and membership.role != OrgRole.ADMIN:
        before = membership.role
        membership.role = OrgRole.ADMIN
        membership.save(update_fields=["role"])
        audit_record(
            actor=actor,
            verb="org.member.role",
            target=membership,
            before={"org": org.name, "username": user.username, "role": before},
            after={"role": OrgRole.ADMIN, "via": "maintainer role"},
        )
    elif not maintainer and membership is not None:
        audit_record(
            actor=actor,
            verb="org.member.remove",
            target=membership,
            before={"org": org.name, "username": user.username, "role": membership.role},
            after={"via": "maintainer role revoked"},
        )
        membership.delete()
        membership = None
    else:
        return membership
    _touch(org)
    return membership

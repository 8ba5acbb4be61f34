"""Who a variant belongs to: transfers between namespaces, and the collaborators an owner lets write.

A transfer moves the variant row to another namespace (a user, or an organization's account): everything that
hangs on the row (revisions, lineage, jobs, results, reviews, checklists, leaderboard entries) follows it by
foreign key. Its old full name is kept as a `VariantRedirect`, which answers 308 to the current name for good in
the API, on the pages and on the Hub-compatible paths (apps.registry.redirects), unless a variant takes that name
again. Names recorded as text are rewritten in the same transaction: the lineage snapshots of its children's
revisions (their declared `parents`), and the leaderboard rows through the registry's update hook."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

from .. import hooks
from ..models import Collaborator, Revision, Variant, VariantParent, VariantRedirect
from ..permissions import can_create_in, ensure_can_manage
from ..querysets import forget_access

#: At most this many collaborators on one variant (a team that needs more makes an organization).
MAX_COLLABORATORS = 50


def _locked(variant: Variant) -> Variant:
    return Variant.objects.select_for_update(of=("self",), no_key=True).select_related("owner").get(pk=variant.pk)


def _target_namespace(to: str) -> User:
    """The account named `to`: a person (active) or an organization's account."""
    name = (to or "").strip() if isinstance(to, str) else ""
    if not name:
        raise ValidationFailed("Say where to.", errors={"to": ["A user or organization name is required."]})
    account = User.objects.filter(username__iexact=name).first()
    if account is None or not (account.is_active or account.is_organization):
        raise ValidationFailed("Unknown namespace.", errors={"to": [f"No user or organization '{name}'."]})
    return account


def _rename_in_snapshots(child_ids: list[int], old: str, new: str) -> int:
    """Children's revision snapshots declare their parents by full name: rename this variant in them."""
    changed = []
    for revision in Revision.objects.filter(variant_id__in=child_ids).only("id", "metadata"):
        meta = revision.metadata if isinstance(revision.metadata, dict) else {}
        parents = meta.get("parents")
        if isinstance(parents, list) and any(isinstance(p, str) and p.lower() == old.lower() for p in parents):
            meta["parents"] = [new if isinstance(p, str) and p.lower() == old.lower() else p for p in parents]
            revision.metadata = meta
            changed.append(revision)
    Revision.objects.bulk_update(changed, ["metadata"])
    return len(changed)


@transaction.atomic
def variant_transfer(*, variant: Variant, to: str, actor: User) -> Variant:
    """Move a variant to the namespace `to` (a user or an organization name), keeping its name.

    The caller manages the variant (its owner, or an admin of the organization that owns it) and may create in
    the target (their own namespace, or an organization they belong to). A name taken in the target is a 409."""
    variant = _locked(variant)
    ensure_can_manage(actor, variant, "transfer")
    target = _target_namespace(to)
    if target.pk == variant.owner_id:
        raise ValidationFailed("Nothing to move.", errors={"to": [f"{variant.full_name} is already there."]})
    if not can_create_in(actor, target):
        raise PermissionDenied(
            f"You may not create variants in {target.username}'s namespace.",
            errors={"to": ["Transfer to yourself or to an organization you belong to."]},
        )
    if Variant.objects.filter(owner=target, name__iexact=variant.name).exclude(pk=variant.pk).exists():
        raise Conflict(
            f"{target.username} already has a variant named '{variant.name}'.",
            errors={"to": [f"{target.username}/{variant.name} exists; rename or remove it first."]},
        )
    old_owner, old_name = variant.owner.username, variant.full_name
    variant.owner = target
    try:
        with transaction.atomic():
            variant.save(update_fields=["owner", "updated_at"])
    except IntegrityError:  # the same name was taken there since the check
        raise Conflict(
            f"{target.username} already has a variant named '{variant.name}'.",
            errors={"to": [f"{target.username}/{variant.name} exists."]},
        ) from None
    new_name = variant.full_name
    # The old name redirects for good; the new name no longer does (a variant that comes back reclaims it).
    VariantRedirect.objects.filter(owner_name__iexact=target.username, name__iexact=variant.name).delete()
    redirect = VariantRedirect.objects.filter(owner_name__iexact=old_owner, name__iexact=variant.name).first()
    if redirect is None:
        VariantRedirect.objects.create(variant=variant, owner_name=old_owner, name=variant.name)
    elif redirect.variant_id != variant.pk:
        redirect.variant = variant
        redirect.save(update_fields=["variant"])
    # Collaborators were the previous owner's choice; in an organization its members write.
    dropped = sorted(Collaborator.objects.filter(variant=variant).values_list("user__username", flat=True))
    if target.is_organization:
        Collaborator.objects.filter(variant=variant).delete()
    child_ids = list(VariantParent.objects.filter(parent=variant).values_list("child_id", flat=True))
    renamed = _rename_in_snapshots(child_ids, old_name, new_name)
    audit_record(
        actor=actor,
        verb="variant.transfer",
        target=variant,
        before={"full_name": old_name, "owner": old_owner},
        after={
            "full_name": new_name,
            "owner": target.username,
            "collaborators_removed": dropped if target.is_organization else [],
            "snapshots_renamed": renamed,
        },
    )
    forget_access(actor)
    for variant_id in [variant.pk, *child_ids]:
        hooks.run_on_commit(hooks.VARIANT_UPDATED_HOOKS, variant_id=variant_id, fields=["owner", "parents"])
    return variant


# --- collaborators -------------------------------------------------------------------------------------------


def _collaborator_user(username: str) -> User:
    name = (username or "").strip() if isinstance(username, str) else ""
    user = User.objects.filter(username__iexact=name, is_active=True, is_organization=False).first() if name else None
    if user is None:
        raise ValidationFailed("Unknown user.", errors={"username": [f"No user '{name}'."]})
    return user


@transaction.atomic
def collaborator_add(*, variant: Variant, username: str, actor: User) -> Collaborator:
    """Let a user write to a variant of your own namespace (idempotent: adding them again changes nothing).

    An organization's variants have no collaborators: its members write (invite the person instead)."""
    variant = _locked(variant)
    ensure_can_manage(actor, variant, "choose the collaborators of")
    if variant.owner.is_organization:
        raise Conflict(
            f"{variant.full_name} belongs to the organization {variant.owner.username}: its members write to it; "
            "invite the person to the organization instead.",
            errors={"username": ["Organizations' variants take members, not collaborators."]},
        )
    user = _collaborator_user(username)
    if user.pk == variant.owner_id:
        raise ValidationFailed(
            "Already the owner.", errors={"username": [f"{user.username} owns {variant.full_name}."]}
        )
    existing = Collaborator.objects.filter(variant=variant, user=user).select_related("user").first()
    if existing is not None:
        return existing
    if Collaborator.objects.filter(variant=variant).count() >= MAX_COLLABORATORS:
        raise Conflict(
            f"{variant.full_name} has {MAX_COLLABORATORS} collaborators, the most a variant may have.",
            errors={"username": [f"At most {MAX_COLLABORATORS} collaborators."]},
        )
    collaborator = Collaborator.objects.create(variant=variant, user=user, added_by=actor)
    audit_record(
        actor=actor,
        verb="variant.collaborator.add",
        target=variant,
        after={"variant": variant.full_name, "username": user.username, "permission": "write"},
    )
    variant.save(update_fields=["updated_at"])
    return collaborator


@transaction.atomic
def collaborator_remove(*, variant: Variant, username: str, actor: User) -> None:
    """Take a collaborator off a variant: its owner does, or the collaborator leaves on their own."""
    variant = _locked(variant)
    name = (username or "").strip() if isinstance(username, str) else ""
    leaving = actor.is_authenticated and actor.username.lower() == name.lower()
    if not leaving:
        ensure_can_manage(actor, variant, "choose the collaborators of")
    row = Collaborator.objects.filter(variant=variant, user__username__iexact=name).select_related("user").first()
    if row is None:
        raise NotFound(f"{name} is not a collaborator on {variant.full_name}.")
    audit_record(
        actor=actor,
        verb="variant.collaborator.remove",
        target=variant,
        before={"variant": variant.full_name, "username": row.user.username, "permission": "write"},
        after={"left": leaving},
    )
    row.delete()
    forget_access(actor)
    variant.save(update_fields=["updated_at"])

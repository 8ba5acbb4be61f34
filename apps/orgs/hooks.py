"""Extension points of the organizations app, for the apps above it (orgs imports none of them).

    from apps.orgs import hooks
    hooks.MEMBER_ADDED_HOOKS.append(fn)          # in the subscriber's AppConfig.ready()

The event hooks run inside the transaction of the change they announce, with keyword arguments (model
instances, already locked and saved), the way the review app calls the notifications' announce functions: the
in-app notifications and webhook deliveries they write exist exactly when the change commits, and e-mails and
dispatches wait for the commit.

`register_org_quota_usage(fn)`: the benchmark engine (above) counts what an organization's namespace uses of its
quota, `fn(account_id) -> {"queued_or_running": int, "compute_seconds_used": float}`, for the quota object of
`GET /api/v1/orgs/{org}/` (as apps.accounts.hooks does for the quota on `/api/v1/me/`). Without a provider the
use reads as zero.

`ORG_DELETE_GUARDS` let an app that hangs things on an organization refuse its deletion: the registry, once
organizations own variants, says "it owns 3 variants; transfer or withdraw them first"."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Organization

Hook = Callable[..., Any]

#: fn(invitation=..., actor=...) after an invitation was created.
INVITATION_CREATED_HOOKS: list[Hook] = []
#: fn(invitation=..., actor=...) after an invitation was accepted or declined (its status says which).
INVITATION_DECIDED_HOOKS: list[Hook] = []
#: fn(membership=..., actor=..., via=...) after someone joined (via "invitation", "create" or "commons").
MEMBER_ADDED_HOOKS: list[Hook] = []
#: fn(membership=..., before=..., actor=...) after a member's role changed.
MEMBER_ROLE_CHANGED_HOOKS: list[Hook] = []
#: fn(org=..., user=..., role=..., actor=...) after a member left or was removed.
MEMBER_REMOVED_HOOKS: list[Hook] = []

#: fn(org=...) -> why the organization may not be deleted now (a sentence), or None.
ORG_DELETE_GUARDS: list[Callable[..., str | None]] = []


def run(hooks: list[Hook], **kwargs: Any) -> None:
    for hook in list(hooks):
        hook(**kwargs)


#: account id -> {"queued_or_running", "compute_seconds_used"}: one provider (the benchmark engine).
OrgQuotaUsage = Callable[[int], dict[str, Any]]
_org_quota_usage: list[OrgQuotaUsage] = []


def register_org_quota_usage(provider: OrgQuotaUsage) -> None:
    """Name the function that counts an organization's use of its quota; registering again replaces it."""
    _org_quota_usage[:] = [provider]


def org_quota_usage(org: Organization) -> dict[str, Any]:
    """The registered provider's count for the organization's namespace account (zeros without one)."""
    if not _org_quota_usage or org.account_id is None:
        return {"queued_or_running": 0, "compute_seconds_used": 0.0}
    return _org_quota_usage[0](org.account_id)

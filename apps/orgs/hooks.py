"""Extension points of the organizations app, for the apps above it (orgs imports none of them).

    from apps.orgs import hooks
    hooks.MEMBER_ADDED_HOOKS.append(fn)          # in the subscriber's AppConfig.ready()

The event hooks run inside the transaction of the change they announce, with keyword arguments (model
instances, already locked and saved), the way the review app calls the notifications' announce functions: the
in-app notifications and webhook deliveries they write exist exactly when the change commits, and e-mails and
dispatches wait for the commit.

`ORG_DELETE_GUARDS` let an app that hangs things on an organization refuse its deletion: the registry, once
organizations own variants, says "it owns 3 variants; transfer or withdraw them first"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

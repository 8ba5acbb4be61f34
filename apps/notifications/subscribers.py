"""Reactions to other apps' events: the engine's finished jobs are announced to their submitters (in-app and
`job.finished` webhooks), and the organizations' invitations and membership changes to the people concerned. The
announcing itself lives in `events.py` and `org_events.py` (other apps call `events` directly too)."""

from __future__ import annotations

from typing import Any

from .events import announce_jobs_finished
from .org_events import (
    announce_invitation_created,
    announce_invitation_decided,
    announce_member_added,
    announce_member_removed,
    announce_member_role_changed,
)


def register() -> None:
    """Called once from NotificationsConfig.ready(); idempotent (a hook is appended once)."""
    from apps.benchmarks.hooks import JOB_FINISHED_HOOKS
    from apps.orgs import hooks as org_hooks

    subscriptions: list[tuple[list[Any], Any]] = [
        (JOB_FINISHED_HOOKS, announce_jobs_finished),
        (org_hooks.INVITATION_CREATED_HOOKS, announce_invitation_created),
        (org_hooks.INVITATION_DECIDED_HOOKS, announce_invitation_decided),
        (org_hooks.MEMBER_ADDED_HOOKS, announce_member_added),
        (org_hooks.MEMBER_ROLE_CHANGED_HOOKS, announce_member_role_changed),
        (org_hooks.MEMBER_REMOVED_HOOKS, announce_member_removed),
    ]
    for hook_list, fn in subscriptions:
        if fn not in hook_list:
            hook_list.append(fn)

"""Extension point: other apps react when a checklist changes (an answer, a verification, a detective's new
finding), for example the review app's automatic publication once the gate holds.

    from apps.checklists.hooks import CHECKLIST_CHANGED_HOOKS
    CHECKLIST_CHANGED_HOOKS.append(fn)   # fn(revision_id=...), in the subscriber's subscribers.register()

Hooks run after the commit that changed the checklist, with ids only; one failing hook is logged and never
affects the others or the change."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction

CHECKLIST_CHANGED_HOOKS: list[Callable[..., Any]] = []


def checklist_changed_on_commit(revision_id: int) -> None:
    for hook in list(CHECKLIST_CHANGED_HOOKS):
        transaction.on_commit(functools.partial(hook, revision_id=revision_id), robust=True)

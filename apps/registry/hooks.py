"""Explicit extension points for other apps, run after the registry's transaction commits.

Other apps append a callable in their `subscribers.register()`, which their AppConfig.ready() calls; for
example the checklist app:

    from apps.registry.hooks import REVISION_SUBMITTED_HOOKS
    if on_revision_submitted not in REVISION_SUBMITTED_HOOKS:
        REVISION_SUBMITTED_HOOKS.append(on_revision_submitted)

Each hook receives ids only (keyword arguments), runs after commit, and an exception in one hook is logged
without affecting the others or the request (`robust=True`). No Django signals: the list is the contract.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import transaction

if TYPE_CHECKING:
    from apps.accounts.types import Viewer

Hook = Callable[..., Any]

# fn(revision_id=...) once a revision enters `submitted`.
REVISION_SUBMITTED_HOOKS: list[Hook] = []
# fn(revision_id=..., before=..., after=...) after every state change of a revision.
REVISION_TRANSITIONED_HOOKS: list[Hook] = []
# fn(revision_id=..., artifact_id=...) after an artifact is added to a revision.
ARTIFACT_ADDED_HOOKS: list[Hook] = []
# fn(variant_id=..., fields=[...]) after a variant's metadata or card changed (checklist items re-evaluate).
VARIANT_UPDATED_HOOKS: list[Hook] = []


def run_on_commit(hooks: list[Hook], **kwargs: Any) -> None:
    for hook in list(hooks):
        transaction.on_commit(functools.partial(hook, **kwargs), robust=True)


# --- Providers: a higher app answers a question the registry asks ------------------------------------------------

#: fn(variant, user) -> the variant's verified benchmark results the user may see, for the card's model-index.
VerifiedResults = Callable[[Any, Any], list[dict[str, Any]]]
_verified_results: list[VerifiedResults] = []


def register_verified_results(provider: VerifiedResults) -> None:
    """Name the function that reports verified results (the benchmark engine does, in its ``ready()``). One
    provider: registering it again changes nothing; a different one replaces it."""
    _verified_results[:] = [provider]


def verified_results(variant: Any, user: Viewer) -> list[dict[str, Any]]:
    """The registered provider's results; [] when no app provides them."""
    return _verified_results[0](variant, user) if _verified_results else []

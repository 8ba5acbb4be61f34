"""Extension points of the accounts app, for the apps above it (accounts imports none of them).

- The quota on a user's own profile (``/api/v1/me/``) is counted by the app that runs the jobs. Accounts stores a
  user's quota overrides but does not know what counts against them; the benchmark engine (a higher layer) does,
  and registers its counter in its ``AppConfig.ready()``::

      from apps.accounts.hooks import register_quota_status
      register_quota_status(quota_status)

  So accounts never imports the engine, and the profile still shows the engine's numbers.
- ``ROLES_CHANGED_HOOKS``: ``fn(user=..., actor=...)`` after a user's roles or superuser status changed. Unlike the
  registry's after-commit hooks, these run inside the transaction that changed the roles: what they keep in step
  (the ``commons`` organization's admins are the maintainers) commits or rolls back with the change itself.

See also ``namespaces.NAMESPACE_CLAIMS`` (users and organizations share one name space)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .types import Actor

#: user -> {"max_active_jobs", "daily_compute_seconds", "active_jobs", "compute_seconds_today"}
QuotaStatus = Callable[["Actor"], dict[str, Any]]
_quota_status: list[QuotaStatus] = []


def register_quota_status(provider: QuotaStatus) -> None:
    """Name the function that reports a user's quota. One provider: registering it again (a second ``ready()``)
    changes nothing; a different one replaces it."""
    _quota_status[:] = [provider]


def quota_status(user: Actor) -> dict[str, Any]:
    """The registered provider's report for ``user``."""
    if not _quota_status:
        raise ImproperlyConfigured("No app reports quota status: apps.benchmarks registers it in its ready().")
    return _quota_status[0](user)


#: fn(user=..., actor=...) after a user's roles or superuser status changed, in the same transaction.
ROLES_CHANGED_HOOKS: list[Callable[..., Any]] = []


def roles_changed(*, user: Actor, actor: Actor | None) -> None:
    for hook in list(ROLES_CHANGED_HOOKS):
        hook(user=user, actor=actor)

"""What the benchmark engine provides to the layers below it, registered from ``BenchmarksConfig.ready()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apps.accounts.hooks import register_quota_status
from apps.orgs.hooks import register_org_quota_usage
from apps.registry.hooks import register_verified_results

from .selectors import org_quota_usage, quota_status, verified_results

if TYPE_CHECKING:
    from apps.accounts.types import Actor


def _quota_status(user: Actor) -> dict[str, Any]:
    return quota_status(user=user)


def register() -> None:
    """The profile's quota (``/api/v1/me/``) is the engine's count of a user's jobs against the user's limits."""
    register_quota_status(_quota_status)
    # An organization's quota object (``GET /api/v1/orgs/{org}/``) counts the jobs charged to its namespace.
    register_org_quota_usage(org_quota_usage)
    # The registry's card export lists the verified results of the engine's jobs.
    register_verified_results(verified_results)

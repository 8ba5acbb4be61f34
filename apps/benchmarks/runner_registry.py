"""The engine's side of the runner registry (:mod:`workers.runners.registry`): a benchmark names a runner that
exists, and its config is checked against that runner's schema and artifact formats.

Resolution, the entry points and the cache live in the registry, below every app; this module only adds the
setting that lets tests and development name a runner by ``"module.path:Class"`` (``MC_ALLOW_RUNNER_PATHS``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from workers.runners import registry
from workers.runners.base import Runner


def registered_runners() -> dict[str, type[Runner]]:
    """Name -> Runner class of the runners registered here."""
    return registry.available_runners()


def runner_class(key: str) -> type[Runner] | None:
    """The Runner class for a key (or an allowed module path); None when there is no such runner."""
    return registry.runner_class(key, allow_paths=bool(getattr(settings, "MC_ALLOW_RUNNER_PATHS", False)))


def runner_loadable_formats(key: str) -> frozenset[str] | None:
    cls = runner_class(key)
    return None if cls is None else frozenset(getattr(cls, "loadable_formats", frozenset()))


def runner_config_schema(key: str) -> dict[str, Any] | None:
    cls = runner_class(key)
    return None if cls is None else dict(getattr(cls, "config_schema", {}) or {})

"""Which runners exist, asked of ``workers.runners`` without making the app import the worker world at load time.

Imports flow workers -> apps, so ``workers.runners.base`` (which has no Django imports) is imported inside the
functions that need it. A runner is named by a registered key (built-in or the ``modelcommons.runners``
entry-point group), or, when ``MC_ALLOW_RUNNER_PATHS`` is on (tests, development), by ``"module.path:Class"``.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.conf import settings

_cache: dict[str, Any] = {}


def registered_runners() -> dict[str, Any]:
    """Key -> Runner class. Cached per process: entry points are scanned once."""
    if "__all__" not in _cache:
        from workers.runners.base import available_runners

        _cache["__all__"] = available_runners()
    return dict(_cache["__all__"])


def forget_runners() -> None:
    """Drop the cache (tests that register runners)."""
    _cache.clear()


def runner_class(key: str) -> Any | None:
    """The Runner class for a key or an allowed module path; None when there is no such runner."""
    if key in _cache:
        return _cache[key]
    cls = registered_runners().get(key)
    if cls is None and ":" in key and getattr(settings, "MC_ALLOW_RUNNER_PATHS", False):
        from workers.runners.base import Runner

        module_name, _, attr = key.partition(":")
        try:
            candidate = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError):
            candidate = None
        if isinstance(candidate, type) and issubclass(candidate, Runner):
            cls = candidate
    if cls is not None:
        _cache[key] = cls
    return cls


def runner_loadable_formats(key: str) -> frozenset[str] | None:
    cls = runner_class(key)
    return None if cls is None else frozenset(getattr(cls, "loadable_formats", frozenset()))


def runner_config_schema(key: str) -> dict[str, Any] | None:
    cls = runner_class(key)
    return None if cls is None else dict(getattr(cls, "config_schema", {}) or {})

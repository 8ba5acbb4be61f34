"""The runner registry: the one place that turns a runner's name into its class. Django-free, like every module
under ``workers/runners``; the API (benchmark definitions), the worker and the sandbox child all ask it.

A runner is registered under the ``modelcommons.runners`` entry-point group: pyproject.toml lists the built-in
runners there, and another distribution adds its own the same way. A runner module whose extra is not installed
refuses to import (``hf_folder.require_extra``), so its entry point is left out, with one log line per process;
so is an entry point that is broken or does not name a :class:`Runner` subclass.

With ``allow_paths`` (the web and worker processes pass ``MC_ALLOW_RUNNER_PATHS``: tests and development) a runner
may also be named by ``"package.module:ClassName"``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging

from workers.runners.base import Runner, RunnerError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "modelcommons.runners"

_registered: dict[str, type[Runner]] = {}
_scanned = False
_by_path: dict[str, type[Runner]] = {}


def _scan() -> dict[str, type[Runner]]:
    try:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:  # a broken distribution's metadata must not take the worker down
        logger.warning("cannot list %s entry points: %s", ENTRY_POINT_GROUP, exc)
        return {}
    runners: dict[str, type[Runner]] = {}
    for ep in sorted(entry_points, key=lambda e: (e.name, e.value)):
        try:
            obj = ep.load()
        except ImportError as exc:  # its extra is not installed (or its module is gone)
            logger.info("runner %r is not available: %s", ep.name, exc)
            continue
        except Exception as exc:  # a broken extra must not take the other runners down
            logger.warning("runner %r is not available: cannot load %s: %s", ep.name, ep.value, exc)
            continue
        if not (isinstance(obj, type) and issubclass(obj, Runner)):
            logger.warning("runner %r is not available: %s is not a Runner subclass", ep.name, ep.value)
            continue
        if ep.name in runners and runners[ep.name] is not obj:
            logger.warning("runner %r: %s is skipped, the name is taken by another entry point", ep.name, ep.value)
            continue
        runners[ep.name] = obj
    return runners


def available_runners() -> dict[str, type[Runner]]:
    """Name -> Runner class of every registered runner that can run here. Entry points are scanned once per
    process (:func:`forget_runners` scans again)."""
    global _scanned
    if not _scanned:
        _registered.clear()
        _registered.update(_scan())
        _scanned = True
    return dict(_registered)


def forget_runners() -> None:
    """Forget what was found, so the next call scans the entry points again (tests that change them)."""
    global _scanned
    _scanned = False
    _registered.clear()
    _by_path.clear()


def _load_path(path: str) -> type[Runner]:
    """The Runner class at ``"module:Class"``; ``RunnerError("invalid_config")`` saying why there is none."""
    if path not in _by_path:
        module_name, _, attr = path.partition(":")
        try:
            candidate = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise RunnerError("invalid_config", f"cannot import runner {path!r}: {exc}") from exc
        if not (isinstance(candidate, type) and issubclass(candidate, Runner)):
            raise RunnerError("invalid_config", f"{path!r} is not a Runner subclass")
        _by_path[path] = candidate
    return _by_path[path]


def runner_class(name: str, *, allow_paths: bool = False) -> type[Runner] | None:
    """The Runner class registered as ``name`` or, with ``allow_paths``, at ``"module:Class"``; None when there is
    no such runner here."""
    try:
        return _resolve(name, allow_paths=allow_paths)
    except RunnerError:
        return None


def get_runner(name: str, *, allow_paths: bool = False) -> Runner:
    """An instance of the runner ``name`` (see :func:`runner_class`); ``RunnerError("invalid_config")`` saying why
    when there is none."""
    return _resolve(name, allow_paths=allow_paths)()


def _resolve(name: str, *, allow_paths: bool) -> type[Runner]:
    # A module path is imported as such, without scanning the entry points (the sandbox child starts faster).
    if allow_paths and ":" in name:
        return _load_path(name)
    runners = available_runners()
    if name in runners:
        return runners[name]
    known = ", ".join(sorted(runners)) or "none"
    raise RunnerError("invalid_config", f"unknown runner {name!r} (available: {known})")


__all__ = ["ENTRY_POINT_GROUP", "available_runners", "forget_runners", "get_runner", "runner_class"]

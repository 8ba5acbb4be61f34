"""One subscription pattern: an app that reacts to other apps' events has `subscribers.py` with `register()`,
called from its AppConfig.ready(), and nothing else in ready() touches a hook list or a signal."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from django.apps import apps
from django.db.models.signals import post_save, pre_save

PROJECT_APPS = [config for config in apps.get_app_configs() if config.name.startswith("apps.")]


def _hook_lists() -> dict[str, list[Callable[..., Any]]]:
    """Every extension point: the `*_HOOKS` lists of each app's hooks.py."""
    found = {}
    for config in PROJECT_APPS:
        if importlib.util.find_spec(f"{config.name}.hooks") is None:
            continue
        module = importlib.import_module(f"{config.name}.hooks")
        for name, value in vars(module).items():
            if name.endswith("_HOOKS") and isinstance(value, list):
                found[f"{config.label}.{name}"] = value
    return found


def _subscribers(config: Any) -> Any:
    if importlib.util.find_spec(f"{config.name}.subscribers") is None:
        return None
    return importlib.import_module(f"{config.name}.subscribers")


def _ready_calls(config: Any) -> list[str]:
    """The dotted names called in the app's ready() (`subscribers.register`, `complete_admin`, ...)."""
    ready = type(config).__dict__.get("ready")
    if ready is None:
        return []
    tree = ast.parse(textwrap.dedent(inspect.getsource(ready)))
    return [ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_hook_lists_exist():
    names = set(_hook_lists())
    assert {"benchmarks.JOB_FINISHED_HOOKS", "registry.REVISION_SUBMITTED_HOOKS"} <= names
    assert "checklists.CHECKLIST_CHANGED_HOOKS" in names


@pytest.mark.parametrize("config", PROJECT_APPS, ids=lambda c: c.label)
def test_ready_connects_only_through_subscribers_register(config):
    calls = _ready_calls(config)
    assert not [c for c in calls if c.endswith((".append", ".connect", ".extend", ".insert"))], calls
    if _subscribers(config) is not None:
        assert "subscribers.register" in calls, f"{config.name}.ready() must call subscribers.register()"
    else:
        assert "subscribers.register" not in calls


def test_every_hook_is_connected_by_a_register_and_exactly_once():
    hook_lists = _hook_lists()
    receivers = {signal: list(signal.receivers) for signal in (pre_save, post_save)}
    saved = {name: list(hooks) for name, hooks in hook_lists.items()}
    registers = [module.register for module in map(_subscribers, PROJECT_APPS) if module is not None]
    assert len(registers) >= 4  # checklists, leaderboards, notifications, reviews
    try:
        for hooks in hook_lists.values():
            hooks.clear()
        for register in registers:
            register()
        # What the registers connect is all that is connected: nothing else appends to a hook list.
        assert {n: list(h) for n, h in hook_lists.items()} == saved
        for register in registers:
            register()  # a second ready() (a reload) must not deliver twice
        for name, hooks in hook_lists.items():
            assert list(hooks) == saved[name], name
            assert len(set(hooks)) == len(hooks), f"{name} holds a subscriber twice"
        for signal, before in receivers.items():
            assert len(signal.receivers) == len(before)
    finally:
        for name, hooks in hook_lists.items():
            hooks[:] = saved[name]

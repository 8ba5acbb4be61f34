"""The runner registry: runners come from the ``modelcommons.runners`` entry points, and only from there."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers.runners import registry
from workers.runners.base import Runner, RunnerError
from workers.runners.noop import NoopRunner
from workers.runners.onnx_classification import OnnxClassificationRunner
from workers.runners.tests.fake_runners import SlowRunner

REPO = Path(__file__).resolve().parents[3]
RUNNERS_DIR = REPO / "workers" / "runners"
GROUP = registry.ENTRY_POINT_GROUP
HEAVY_RUNNER_MODULES = ("workers.runners.perplexity", "workers.runners.lm_eval", "workers.runners.sentence_similarity")


@pytest.fixture(autouse=True)
def _fresh_registry():
    registry.forget_runners()
    yield
    registry.forget_runners()


def fake_entry_points(monkeypatch, eps):
    def entry_points(**kwargs):
        assert kwargs == {"group": GROUP}
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def our_entry_points():
    return [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.value.startswith("workers.runners.")]


def pyproject_entry_points() -> dict[str, str]:
    import tomllib

    doc = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(doc["project"]["entry-points"][GROUP])


def test_every_runner_module_is_registered_in_pyproject_under_its_key():
    """The entry points are the one list of runners: every Runner subclass with a key in workers/runners is there."""
    declared = {}
    for path in sorted(RUNNERS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for stmt in node.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                value = getattr(stmt, "value", None)
                if names == ["key"] and isinstance(value, ast.Constant) and value.value:
                    declared[value.value] = f"workers.runners.{path.stem}:{node.name}"
    assert declared == pyproject_entry_points()


def test_the_installed_entry_points_are_pyprojects():
    """The venv's metadata matches pyproject.toml (`pip install -e .` after editing the entry points)."""
    assert {ep.name: ep.value for ep in our_entry_points()} == pyproject_entry_points()


def test_entry_points_name_runner_classes_with_their_own_key():
    runners = registry.available_runners()
    assert runners["noop"] is NoopRunner and runners["onnx-classification"] is OnnxClassificationRunner
    for name, cls in runners.items():
        assert issubclass(cls, Runner) and cls.key == name


def test_get_runner_and_unknown_names():
    assert isinstance(registry.get_runner("noop"), NoopRunner)
    with pytest.raises(RunnerError) as info:
        registry.get_runner("no-such-runner")
    assert info.value.reason == "invalid_config"
    assert "unknown runner 'no-such-runner' (available: " in info.value.message and "noop" in info.value.message
    assert registry.runner_class("no-such-runner") is None


def test_module_paths_only_when_allowed():
    path = "workers.runners.tests.fake_runners:SlowRunner"
    assert registry.runner_class(path) is None
    with pytest.raises(RunnerError, match="unknown runner"):
        registry.get_runner(path)
    assert registry.runner_class(path, allow_paths=True) is SlowRunner
    assert isinstance(registry.get_runner(path, allow_paths=True), SlowRunner)
    for bad, why in [
        ("workers.runners.tests.fake_runners:NotARunner", "is not a Runner subclass"),
        ("no_such_module_xyz:Runner", "cannot import runner 'no_such_module_xyz:Runner': No module named"),
        ("workers.runners.noop:Nothing", "cannot import runner"),
    ]:
        assert registry.runner_class(bad, allow_paths=True) is None
        with pytest.raises(RunnerError, match=why) as info:
            registry.get_runner(bad, allow_paths=True)
        assert info.value.reason == "invalid_config"


def test_broken_entry_points_are_skipped_and_the_first_of_a_name_wins(monkeypatch, caplog):
    fake_entry_points(
        monkeypatch,
        [
            importlib.metadata.EntryPoint("noop", "workers.runners.noop:NoopRunner", GROUP),
            importlib.metadata.EntryPoint("test-slow", "workers.runners.tests.fake_runners:SlowRunner", GROUP),
            importlib.metadata.EntryPoint("broken", "no_such_module_xyz:Runner", GROUP),
            importlib.metadata.EntryPoint("not-a-runner", "workers.runners.tests.fake_runners:NotARunner", GROUP),
            importlib.metadata.EntryPoint("noop", "workers.runners.tests.fake_runners:SlowRunner", GROUP),
        ],
    )
    with caplog.at_level(logging.INFO, logger="workers.runners.registry"):
        runners = registry.available_runners()
    assert runners == {"noop": NoopRunner, "test-slow": SlowRunner}
    assert "runner 'broken' is not available" in caplog.text
    assert "runner 'not-a-runner' is not available" in caplog.text and "not a Runner subclass" in caplog.text
    assert "the name is taken" in caplog.text
    assert isinstance(registry.get_runner("test-slow"), SlowRunner)


def test_an_entry_point_that_raises_on_load_is_skipped(monkeypatch, caplog):
    ep = importlib.metadata.EntryPoint("exploding", "workers.runners.tests.fake_runners:SlowRunner", GROUP)
    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", lambda self: (_ for _ in ()).throw(RuntimeError("boom")))
    fake_entry_points(monkeypatch, [ep])
    with caplog.at_level(logging.WARNING, logger="workers.runners.registry"):
        assert registry.available_runners() == {}
    assert "runner 'exploding' is not available: cannot load" in caplog.text and "boom" in caplog.text


def test_a_runner_whose_extra_is_missing_is_left_out_and_logged_once(monkeypatch, caplog):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "torch" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for module in HEAVY_RUNNER_MODULES:
        monkeypatch.delitem(sys.modules, module, raising=False)
    fake_entry_points(
        monkeypatch,
        [importlib.metadata.EntryPoint(name, value, GROUP) for name, value in pyproject_entry_points().items()],
    )
    with caplog.at_level(logging.INFO, logger="workers.runners.registry"):
        runners = registry.available_runners()
        registry.available_runners()  # scanned once per process
    for key in ("perplexity", "lm-eval", "sentence-similarity"):
        assert key not in runners
        assert caplog.text.count(f"runner {key!r} is not available") == 1
    assert "extra is not installed" in caplog.text
    assert {"noop", "onnx-classification"} <= set(runners)
    with pytest.raises(RunnerError) as info:
        registry.get_runner("perplexity")
    assert info.value.reason == "invalid_config"


def test_forget_runners_scans_again(monkeypatch):
    assert "test-slow" not in registry.available_runners()
    fake_entry_points(
        monkeypatch,
        [importlib.metadata.EntryPoint("test-slow", "workers.runners.tests.fake_runners:SlowRunner", GROUP)],
    )
    assert "test-slow" not in registry.available_runners()  # cached
    registry.forget_runners()
    assert registry.available_runners() == {"test-slow": SlowRunner}


def test_runner_modules_import_without_their_heavy_dependencies():
    """Loading every entry point (what the API and the worker do) costs little: torch and co. load in ``run``."""
    code = (
        "import importlib, sys\n"
        "from workers.runners.registry import available_runners\n"
        "available_runners()\n"
        "heavy = [m for m in ('torch', 'transformers', 'lm_eval', 'sentence_transformers', 'datasets', 'scipy')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.stdout.strip() == ""


def test_the_registry_imports_no_django():
    code = (
        "import sys\n"
        "from workers.runners.registry import available_runners\n"
        "available_runners()\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'apps'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.stdout.strip() == ""

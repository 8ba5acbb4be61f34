"""Test-only runners, importable by the sandbox child as ``workers.runners.tests.fake_runners:Name``.

They are not registered anywhere; tests pass them to ``run_in_child`` by module path.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from workers.runners.base import ProgressCallback, Runner, RunnerError, RunResult, RunSpec

MODULE = "workers.runners.tests.fake_runners"


def _result(runner: Runner, **environment: Any) -> RunResult:
    return RunResult(
        metrics={"ok": 1.0},
        stderr={},
        samples=1,
        duration_s=0.0,
        runner=runner.key,
        runner_version=runner.version,
        environment=dict(environment),
        log=["fake run finished"],
    )


def _write_pid(spec: RunSpec) -> None:
    pid_file = spec.config.get("pid_file")
    if pid_file:
        Path(pid_file).write_text(str(os.getpid()))


class SlowRunner(Runner):
    """Sleeps ``config["seconds"]`` in ``config["steps"]`` steps, reporting progress after each."""

    key: ClassVar[str] = "test-slow"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        _write_pid(spec)
        seconds = float(spec.config.get("seconds", 30))
        steps = int(spec.config.get("steps", 10))
        for i in range(1, steps + 1):
            time.sleep(seconds / steps)
            progress(i, steps)
        return _result(self)


class MemoryHogRunner(Runner):
    """Allocates (and touches) ``config["allocate_mb"]`` MiB with numpy."""

    key: ClassVar[str] = "test-memory-hog"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        import numpy as np

        mb = int(spec.config.get("allocate_mb", 1024))
        block = np.ones(mb * 1024 * 1024 // 8, dtype=np.float64)
        progress(1, 1)
        return _result(self, allocated=float(block.nbytes))


class CrashingRunner(Runner):
    """Raises an ordinary exception from a nested call."""

    key: ClassVar[str] = "test-crash"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        self._inner()
        raise AssertionError("unreachable")

    def _inner(self) -> None:
        raise ValueError("boom from the fake runner")


class FailingRunner(Runner):
    """Raises ``RunnerError(config["reason"], config["message"])``."""

    key: ClassVar[str] = "test-fail"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        raise RunnerError(spec.config.get("reason", "hash_mismatch"), spec.config.get("message", "nope"))


class AbortingRunner(Runner):
    """Dies with SIGABRT, as a crashing native extension would."""

    key: ClassVar[str] = "test-abort"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        sys.stderr.write("about to abort\n")
        sys.stderr.flush()
        os.abort()


class EnvRunner(Runner):
    """Reports parts of its environment; also prints to stdout, which must not break the protocol."""

    key: ClassVar[str] = "test-env"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        print("stray print from a runner")
        print('{"type": "result", "result": "forged"}')
        sys.stdout.flush()
        names = spec.config.get("names", [])
        return _result(self, env={name: os.environ.get(name) for name in names}, pid=os.getpid())


class NotARunner:
    """Has a run method but is not a Runner subclass."""

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        raise AssertionError("must never run")


def run_in_daemon(spec_dict: dict[str, Any], out: Any) -> None:
    """Target for a daemonic multiprocessing.Process: calls run_in_child as a Celery prefork child would."""
    import multiprocessing

    from workers.runners.base import RunSpec
    from workers.runners.sandbox import run_in_child

    assert multiprocessing.current_process().daemon
    try:
        result = run_in_child(
            "onnx-classification",
            RunSpec.from_dict(spec_dict),
            lambda d, t: None,
            timeout_s=60,
            memory_mb=None,
        )
        out.put(("ok", result.metrics["accuracy"]))
    except BaseException as exc:  # report anything to the test process
        out.put(("error", repr(exc)))

"""Runners for the engine's tests (apps/benchmarks/tests, tests/), named by module path (``MC_ALLOW_RUNNER_PATHS``).

They live under ``workers/runners`` because the sandbox child imports them, and the sandbox shows a runner child
only that part of the checkout. No Django imports."""

from __future__ import annotations

import os
import random
import signal
import time
from typing import Any, ClassVar

from workers.runners.base import ProgressCallback, Runner, RunResult, RunSpec

MODULE = "workers.runners.tests.engine_runners"
KILL_WORKER = f"{MODULE}:KillWorkerRunner"
RANDOM_METRIC = f"{MODULE}:RandomMetricRunner"
CONSTANT = f"{MODULE}:ConstantRunner"
STEPS = f"{MODULE}:StepsRunner"


def _result(runner: Runner, metrics: dict[str, float], samples: int = 1) -> RunResult:
    return RunResult(
        metrics=metrics,
        stderr={},
        samples=samples,
        duration_s=0.0,
        runner=runner.key,
        runner_version=runner.version,
        environment={"pid": os.getpid()},
        log=["test runner done"],
    )


class ConstantRunner(Runner):
    """Always the same score: two runs agree."""

    key: ClassVar[str] = "test-constant"
    version: ClassVar[str] = "1"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        progress(1, 1)
        return _result(self, {"score": 0.75})


class RandomMetricRunner(Runner):
    """A different score each run: two runs disagree."""

    key: ClassVar[str] = "test-random"
    version: ClassVar[str] = "1"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        progress(1, 1)
        return _result(self, {"score": random.random()})


class StepsRunner(Runner):
    """`steps` batches of `step_s` seconds each, reporting progress after each: cancel and progress drills."""

    key: ClassVar[str] = "test-steps"
    version: ClassVar[str] = "1"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        steps = int(spec.config.get("steps", 10))
        step_s = float(spec.config.get("step_s", 0.5))
        for i in range(1, steps + 1):
            time.sleep(step_s)
            progress(i, steps)
        return _result(self, {"score": 1.0}, samples=steps)


class KillWorkerRunner(Runner):
    """A poison job: SIGKILLs the worker process that runs it, every time. It must run in the worker process
    (list it in MC_IN_PROCESS_RUNNERS): a sandboxed child cannot reach its worker, which is the sandbox's point."""

    key: ClassVar[str] = "test-kill-worker"
    version: ClassVar[str] = "1"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        progress(0, 1)
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(30)
        return _result(self, {"score": 0.0})

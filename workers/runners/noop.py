"""``noop``: a runner that evaluates nothing, for pipeline throughput benchmarks and fault drills.

It needs no artifact and no dataset (a spec with either is accepted; neither is opened or
verified), and no dependency beyond the core install. It reports ``{"ok": 1.0}``.

Config:

- ``sleep_s`` (number, 0 to :data:`MAX_SLEEP_S`, default 0): sleep this long, in ``steps`` equal
  parts, reporting progress after each part, so that progress and cancellation between batches can
  be exercised. It runs inside the worker process (``MC_IN_PROCESS_RUNNERS``), so the cap keeps a job
  from holding a worker slot; the wall-clock limit of in-process runs stops it in any case;
- ``steps`` (integer >= 1, default 1): the number of parts;
- ``fail`` (bool, default false): fail with ``RunnerError("runner_error")`` instead of succeeding
  (after the sleep), for drills of the failure path.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from workers.runners.base import ProgressCallback, Runner, RunnerError, RunResult, RunSpec

#: The longest sleep a job may ask for (seconds).
MAX_SLEEP_S = 30


class NoopRunner(Runner):
    """Returns at once (or after ``sleep_s``) with the trivial metric ``ok = 1``."""

    key: ClassVar[str] = "noop"
    version: ClassVar[str] = "1.0.0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "noop config",
        "type": "object",
        "properties": {
            "sleep_s": {"type": "number", "minimum": 0, "maximum": MAX_SLEEP_S, "default": 0},
            "steps": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1},
            "fail": {"type": "boolean", "default": False},
            "seed": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": False,
    }

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        started = time.perf_counter()
        config = self.validate_config(spec.config)
        sleep_s = float(config["sleep_s"])
        steps = int(config["steps"])
        progress(0, steps)
        for step in range(1, steps + 1):
            if sleep_s > 0:
                time.sleep(sleep_s / steps)
            progress(step, steps)
        if config["fail"]:
            raise RunnerError("runner_error", "the noop runner was asked to fail (config fail=true)")
        # No environment_fingerprint(): it reads /proc and package metadata, which would dominate
        # the cost of a run whose point is to measure the pipeline around it.
        return RunResult(
            metrics={"ok": 1.0},
            stderr={},
            samples=steps,
            duration_s=time.perf_counter() - started,
            runner=self.key,
            runner_version=self.version,
            environment={"seed": spec.seed},
            log=[f"noop: {steps} step(s), slept {sleep_s:g} s"],
        )

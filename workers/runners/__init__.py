"""Benchmark runners: ``Runner.run(spec, progress) -> RunResult``, with no Django or Celery imports.

Built-in runners and the ``modelcommons.runners`` entry-point group are listed by
:func:`available_runners`; :func:`workers.runners.sandbox.run_in_child` runs one in a child process
with a wall-clock timeout and a memory limit.
"""

from workers.runners.base import (
    ENTRY_POINT_GROUP,
    FAILURE_REASONS,
    SAFE_FORMATS,
    UNSAFE_FORMATS,
    ArtifactSpec,
    DatasetSpec,
    JobCancelled,
    ProgressCallback,
    Runner,
    RunnerError,
    RunResult,
    RunSpec,
    available_runners,
    environment_fingerprint,
    get_runner,
    verify_sha256,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "FAILURE_REASONS",
    "SAFE_FORMATS",
    "UNSAFE_FORMATS",
    "ArtifactSpec",
    "DatasetSpec",
    "JobCancelled",
    "ProgressCallback",
    "RunResult",
    "RunSpec",
    "Runner",
    "RunnerError",
    "available_runners",
    "environment_fingerprint",
    "get_runner",
    "verify_sha256",
]

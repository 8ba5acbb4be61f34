"""The runner interface: ``Runner.run(spec, progress) -> RunResult``.

This module (and everything under ``workers/runners``) must stay free of Django and Celery imports:
runners are executed in a plain child process (see :mod:`workers.runners.sandbox`) and may be
installed by third parties through the ``modelcommons.runners`` entry-point group.

Safety contract for every runner:

1. refuse an artifact whose ``format`` or file suffix is in :data:`UNSAFE_FORMATS` with
   ``RunnerError("unsafe_format")`` *before* the file is opened;
2. call :func:`verify_sha256` on every artifact, and on the dataset when it has a sha256, *before*
   loading it.

:meth:`Runner.check_inputs` does both, in that order.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jsonschema

# The format rules live in their own module; re-exported here because runners (and third parties) import them
# from the runner interface.
from workers.runners.formats import SAFE_FORMATS, UNSAFE_FORMATS, is_unsafe

logger = logging.getLogger(__name__)

#: The failure reason codes a job can carry (SPEC, "Benchmark jobs").
FAILURE_REASONS: frozenset[str] = frozenset(
    {
        "artifact_unavailable",
        "hash_mismatch",
        "unsafe_format",
        "invalid_config",
        "timeout",
        "out_of_memory",
        "runner_error",
        "worker_lost",
        "cancelled",
        # The run ended on an operation the sandbox blocked (network, a file outside it, a process limit).
        "sandbox_violation",
        # This worker cannot set up the sandbox its policy asks for, and refuses the run.
        "sandbox_unavailable",
    }
)

_CHUNK = 1 << 20  # 1 MiB


@dataclass(frozen=True)
class ArtifactSpec:
    """One model file handed to a runner.

    ``path`` is a local filesystem path (the worker has already fetched the artifact);
    ``sha256`` is the expected lowercase hex digest; ``format`` is the declared serialization
    (``"onnx"``, ``"safetensors"``, ...). ``name`` is the file's path inside the model as the registry
    knows it (``Artifact.path``, e.g. ``"1_Pooling/config.json"``): runners that load a model folder
    lay the files out by it, since storage may keep each file elsewhere; ``None`` means the file
    name of ``path``.
    """

    path: str
    sha256: str
    format: str
    size_bytes: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """The evaluation data. ``format`` is jsonl, csv or npz; inferred from the file suffix when None."""

    path: str
    sha256: str | None = None
    format: str | None = None

    def resolved_format(self) -> str:
        """The declared format, or the lowercase file suffix without its dot."""
        if self.format:
            return self.format.lower()
        return Path(self.path).suffix.lstrip(".").lower()


@dataclass(frozen=True)
class RunSpec:
    """Everything a runner needs for one job attempt; contains only plain, JSON-serializable data."""

    job_id: str
    artifacts: tuple[ArtifactSpec, ...]
    dataset: DatasetSpec | None
    config: dict[str, Any]
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable representation (inverse of :meth:`from_dict`)."""
        return {
            "job_id": self.job_id,
            "artifacts": [
                {
                    "path": a.path,
                    "sha256": a.sha256,
                    "format": a.format,
                    "size_bytes": a.size_bytes,
                    "name": a.name,
                }
                for a in self.artifacts
            ],
            "dataset": (
                None
                if self.dataset is None
                else {"path": self.dataset.path, "sha256": self.dataset.sha256, "format": self.dataset.format}
            ),
            "config": dict(self.config),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        """Build a spec from :meth:`to_dict` output."""
        dataset = data.get("dataset")
        return cls(
            job_id=str(data["job_id"]),
            artifacts=tuple(ArtifactSpec(**a) for a in data.get("artifacts", ())),
            dataset=None if dataset is None else DatasetSpec(**dataset),
            config=dict(data.get("config") or {}),
            seed=int(data.get("seed", 0)),
        )


#: ``progress(done, total)``; called between batches. It may raise :class:`JobCancelled`, which the
#: runner lets propagate to stop the run.
ProgressCallback = Callable[[int, int], None]


@dataclass
class RunResult:
    """What a successful run produces.

    ``metrics`` maps metric names to values; ``stderr`` gives the standard error of the metrics
    that have one; ``environment`` is an :func:`environment_fingerprint` (plus the seed);
    ``log`` is a list of human-readable lines.
    """

    metrics: dict[str, float]
    stderr: dict[str, float]
    samples: int
    duration_s: float
    runner: str
    runner_version: str
    environment: dict[str, Any]
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable representation (inverse of :meth:`from_dict`)."""
        return {
            "metrics": dict(self.metrics),
            "stderr": dict(self.stderr),
            "samples": self.samples,
            "duration_s": self.duration_s,
            "runner": self.runner,
            "runner_version": self.runner_version,
            "environment": dict(self.environment),
            "log": list(self.log),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """Build a result from :meth:`to_dict` output."""
        return cls(
            metrics={str(k): float(v) for k, v in data["metrics"].items()},
            stderr={str(k): float(v) for k, v in (data.get("stderr") or {}).items()},
            samples=int(data["samples"]),
            duration_s=float(data["duration_s"]),
            runner=str(data["runner"]),
            runner_version=str(data["runner_version"]),
            environment=dict(data.get("environment") or {}),
            log=[str(line) for line in data.get("log") or []],
        )


class RunnerError(Exception):
    """A failure with one of the job reason codes (:data:`FAILURE_REASONS`) and a human message.

    ``log_tail`` may carry the last lines of output of the failed run (the sandbox fills it with
    the child's stderr).
    """

    def __init__(self, reason: str, message: str):
        reason = str(getattr(reason, "value", reason))  # accept str-valued enums, store a plain str
        message = str(message)
        if reason not in FAILURE_REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        super().__init__(reason, message)
        self.reason = reason
        self.message = message
        self.log_tail: list[str] = []

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class JobCancelled(Exception):
    """Raised by a progress callback to stop a run between batches."""


def refuse_unsafe(artifact: ArtifactSpec) -> None:
    """Raise ``RunnerError("unsafe_format")`` for an unsafe artifact. Never touches the file."""
    if is_unsafe(artifact.path, artifact.format):
        raise RunnerError(
            "unsafe_format",
            f"refusing to load {Path(artifact.path).name!r}: format {artifact.format!r} can execute code "
            f"when loaded; use one of {', '.join(sorted(SAFE_FORMATS))}",
        )


# The one spelling of a sha256 the platform accepts: 64 lowercase hex digits (registry, uploads, checklists, jobs).
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, streamed in 1 MiB chunks (raises OSError when it cannot be read)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str, expected: str) -> None:
    """Check a file's sha256 by streaming it in 1 MiB chunks.

    Raises ``RunnerError("artifact_unavailable")`` when the file is missing or unreadable and
    ``RunnerError("hash_mismatch")`` when the digest differs from ``expected`` (hex, any case,
    an optional ``sha256:`` prefix is accepted).
    """
    want = (expected or "").strip().lower()
    if want.startswith("sha256:"):
        want = want[len("sha256:") :]
    name = Path(path).name
    if not os.path.isfile(path):
        raise RunnerError("artifact_unavailable", f"{name!r} is not available at {path!r}")
    try:
        got = sha256_of(path)
    except OSError as exc:
        raise RunnerError("artifact_unavailable", f"cannot read {name!r}: {exc}") from exc
    if got != want:
        raise RunnerError("hash_mismatch", f"sha256 of {name!r} is {got}, expected {want or '(empty)'}")


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
                    return value.strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_fingerprint(packages: Iterable[str] = ()) -> dict[str, Any]:
    """Describe where a run happened: Python, OS, CPU, package versions (``None`` when absent)."""
    names = ["onnxruntime", "numpy"]
    for name in packages:
        if name not in names:
            names.append(name)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 0
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": cpus,
        "cpu_model": _cpu_model(),
        "gpu": None,
        "hostname": socket.gethostname(),
        "packages": {name: _package_version(name) for name in names},
    }


class RunLog:
    """The clock and the human-readable log of one run.

    Every line goes to the result's ``log`` and to ``logger`` at INFO.
    """

    def __init__(self, logger: logging.Logger):
        self.started = time.perf_counter()
        self.lines: list[str] = []
        self._logger = logger

    def note(self, line: str) -> None:
        """Record one log line."""
        self.lines.append(line)
        self._logger.info("%s", line)

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started


class Runner(ABC):
    """Base class of all runners.

    Subclasses set the class attributes and implement :meth:`run`. A runner instance holds no
    per-job state between calls of :meth:`run`.
    """

    #: Registry key, e.g. ``"onnx-classification"``.
    key: ClassVar[str]
    #: Version of the runner's evaluation logic; recorded with every result.
    version: ClassVar[str]
    #: Artifact formats this runner can load (all of them must be safe formats).
    loadable_formats: ClassVar[frozenset[str]]
    #: JSON Schema of the runner's ``RunSpec.config``.
    config_schema: ClassVar[dict[str, Any]]

    @abstractmethod
    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        """Evaluate ``spec``; call ``progress(done, total)`` between batches."""

    # -- helpers shared by runners -------------------------------------------------------------

    def begin(self, spec: RunSpec) -> tuple[RunLog, dict[str, Any]]:
        """Start the clock and the log of a run (logged under the runner's module), then validate the config.

        Returns the :class:`RunLog` and :meth:`validate_config`'s resolved config.
        """
        run_log = RunLog(logging.getLogger(type(self).__module__))
        return run_log, self.validate_config(spec.config)

    def result(
        self,
        run_log: RunLog,
        *,
        metrics: dict[str, float],
        stderr: dict[str, float],
        samples: int,
        environment: dict[str, Any],
    ) -> RunResult:
        """The :class:`RunResult` of a successful run, timed and logged by ``run_log``."""
        return RunResult(
            metrics=metrics,
            stderr=stderr,
            samples=samples,
            duration_s=run_log.elapsed(),
            runner=self.key,
            runner_version=self.version,
            environment=environment,
            log=run_log.lines,
        )

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``config`` against :attr:`config_schema` and return it with schema defaults filled in.

        Raises ``RunnerError("invalid_config")`` listing every violation.
        """
        if not isinstance(config, Mapping):
            raise RunnerError("invalid_config", "config must be a JSON object")
        validator_cls = jsonschema.validators.validator_for(self.config_schema)
        validator = validator_cls(self.config_schema)
        errors = sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.absolute_path))
        if errors:
            parts = []
            for err in errors:
                where = "/".join(str(p) for p in err.absolute_path) or "(config)"
                parts.append(f"{where}: {err.message}")
            raise RunnerError("invalid_config", "; ".join(parts))
        resolved = dict(config)
        for name, prop in (self.config_schema.get("properties") or {}).items():
            if name not in resolved and isinstance(prop, Mapping) and "default" in prop:
                resolved[name] = prop["default"]
        return resolved

    def check_inputs(self, spec: RunSpec) -> None:
        """Refuse unsafe artifacts (without opening them), then verify every sha256.

        All artifacts are screened for unsafe formats before any file is read. The dataset's hash
        is verified when the spec gives one.
        """
        self.refuse_unsafe_inputs(spec)
        self.verify_inputs(spec)

    def refuse_unsafe_inputs(self, spec: RunSpec) -> None:
        """``RunnerError("unsafe_format")`` if any artifact (or the dataset) is unsafe. Opens nothing."""
        for artifact in spec.artifacts:
            refuse_unsafe(artifact)
        if spec.dataset is not None and is_unsafe(spec.dataset.path, spec.dataset.format):
            raise RunnerError(
                "unsafe_format", f"refusing to load dataset {Path(spec.dataset.path).name!r}: unsafe format"
            )

    def verify_inputs(self, spec: RunSpec) -> None:
        """:func:`verify_sha256` on every artifact, and on the dataset when it has a sha256."""
        for artifact in spec.artifacts:
            verify_sha256(artifact.path, artifact.sha256)
        if spec.dataset is not None:
            if spec.dataset.sha256:
                verify_sha256(spec.dataset.path, spec.dataset.sha256)
            elif not os.path.isfile(spec.dataset.path):
                raise RunnerError("artifact_unavailable", f"dataset is not available at {spec.dataset.path!r}")

    def select_artifact(self, spec: RunSpec) -> ArtifactSpec:
        """The first artifact whose format this runner can load, else ``RunnerError("invalid_config")``."""
        for artifact in spec.artifacts:
            if artifact.format.strip().lower() in self.loadable_formats:
                return artifact
        raise RunnerError(
            "invalid_config",
            f"runner {self.key!r} needs an artifact in one of: {', '.join(sorted(self.loadable_formats))}",
        )


__all__ = [
    "FAILURE_REASONS",
    "SAFE_FORMATS",
    "UNSAFE_FORMATS",
    "ArtifactSpec",
    "DatasetSpec",
    "JobCancelled",
    "ProgressCallback",
    "RunLog",
    "RunResult",
    "RunSpec",
    "Runner",
    "RunnerError",
    "environment_fingerprint",
    "is_unsafe",
    "refuse_unsafe",
    "verify_sha256",
]

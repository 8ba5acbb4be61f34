"""``lm-eval``: EleutherAI lm-evaluation-harness ``simple_evaluate`` on a Hugging Face-format causal LM, offline.

Extra ``[lmeval]`` (``lm-eval[hf]``). The model folder is handed over file by file and staged as
described in :mod:`workers.runners.hf_folder` (pickle refused, every sha256 verified, safetensors
only, no remote code); the runner loads it itself (``use_safetensors=True``,
``local_files_only=True``) and gives lm-eval the loaded model (``HFLM(pretrained=model)``), on CPU.

Tasks (``config.tasks``) are lm-eval task, group or tag names:

- local YAML tasks from ``config.include_path``, one of the *allowed task folders* (or a folder inside
  one), given relative to the project root (e.g. ``fixtures/tinylm/tasks``) or absolute. YAML tasks can
  import Python (``!function``), so a job may only point at folders the operator vouches for: the
  allowlist is ``MC_LMEVAL_TASK_DIRS`` (comma-separated; the sandbox hands it to the child, and only
  those folders are visible in it), by default the task folder shipped with the platform. The folder of
  an uploaded artifact can never be one (uploads live in the media folder, which the worker keeps out of
  the allowlist). For a local task whose
  ``dataset_path`` is a file builder (``json``, ``csv``, ``parquet``, ``text``), relative
  ``data_files`` are resolved against the YAML's folder, and when the job has a dataset (the
  benchmark's, sha256-verified) it replaces the task's data files. The ``datasets`` cache of such
  a task is a private temporary folder, so a run never reads a stale cache;
- built-in lm-eval tasks: only usable when their dataset is already in the local Hugging Face
  cache, since nothing is downloaded (``HF_DATASETS_OFFLINE=1``); otherwise the job fails with
  ``artifact_unavailable``. The built-in index is only scanned when a name is not found locally.

Progress: lm-eval has no batch callback, so the runner counts requests itself. It wraps
``TaskManager.load`` to learn, as each task builds its requests, how many there are in all, and
wraps the model's ``loglikelihood`` / ``loglikelihood_rolling`` / ``generate_until`` to feed lm-eval's
own implementation ``batch_size`` requests at a time, calling ``progress(done, total)`` (in
requests) after each slice. A :class:`~workers.runners.base.JobCancelled` raised there stops the
evaluation between two batches.

Metrics: every numeric metric of lm-eval's ``results`` (and ``groups``). With one task the names
are lm-eval's (``acc``, ``acc_norm``, ...); with several, ``"<task>/<metric>"``. A filter other than
``none`` is appended as ``"<metric>:<filter>"``. ``stderr`` carries lm-eval's ``*_stderr`` values
(``bootstrap_iters`` controls the bootstrap ones; mean-based metrics such as ``acc`` get an
analytic stderr). ``samples`` is the number of documents evaluated.

Memory: lm-eval also imports datasets, pyarrow, pandas and scipy. Measured on the tiny LM: peak
2.25 GiB of address space, 0.69 GiB resident; ``run_in_child`` passed at ``memory_mb=2304`` (3 of 3)
and failed at 1536. Give it at least 3072 plus twice the model's weights.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from workers.runners.base import JobCancelled, ProgressCallback, RunnerError, RunResult, RunSpec
from workers.runners.hf_folder import FolderRunner, check_dataset, is_oom, load_causal_lm, require_extra
from workers.runners.sandbox import DEFAULT_TASK_DIRS, TASK_DIRS_ENV

require_extra("lmeval", "torch", "transformers", "lm_eval", "datasets")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: Packages recorded in the environment fingerprint.
PACKAGES = ("lm_eval", "torch", "transformers", "tokenizers", "safetensors", "datasets", "numpy")
#: The LM methods lm-eval dispatches requests to.
REQUEST_METHODS = ("loglikelihood", "loglikelihood_rolling", "generate_until")
#: ``datasets`` builders that read local files.
FILE_BUILDERS = frozenset({"json", "csv", "parquet", "text"})

_TASK_NAME = r"^[A-Za-z0-9_.\-*]+$"


class _RequestProgress:
    """Counts lm-eval requests: ``total`` as tasks build them, ``done`` as the model answers them."""

    def __init__(self, progress: ProgressCallback, chunk: int):
        self.progress = progress
        self.chunk = max(1, chunk)
        self.total = 0
        self.done = 0
        self.started = False

    def watch_tasks(self, loaded: dict[str, Any]) -> None:
        for task in loaded.get("tasks", {}).values():
            original = task.build_all_requests

            def build_all_requests(
                *args: Any, _original: Callable[..., Any] = original, _task: Any = task, **kwargs: Any
            ) -> Any:
                out = _original(*args, **kwargs)
                self.total += sum(int(getattr(inst, "repeats", 1) or 1) for inst in (_task.instances or ()))
                return out

            task.build_all_requests = build_all_requests

    def wrap(self, method: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        def sliced(requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
            if not self.started:
                self.started = True
                self.progress(0, max(self.total, len(requests)))
            results: list[Any] = []
            for start in range(0, len(requests), self.chunk):
                part = requests[start : start + self.chunk]
                results.extend(method(part, disable_tqdm=True))
                self.done += len(part)
                self.progress(self.done, max(self.total, self.done))
            return results

        return sliced


def allowed_task_dirs() -> list[Path]:
    """The task folders a job may name: ``MC_LMEVAL_TASK_DIRS`` (comma-separated), or the shipped one."""
    raw = os.environ.get(TASK_DIRS_ENV)
    dirs = DEFAULT_TASK_DIRS if raw is None else tuple(p for p in raw.split(",") if p.strip())
    return [Path(d.strip()).resolve() for d in dirs]


def _shown(folder: Path) -> str:
    return str(folder.relative_to(PROJECT_ROOT)) if PROJECT_ROOT in folder.parents else str(folder)


def _resolve_include_path(raw: str) -> Path:
    path = Path(raw)
    resolved = (path if path.is_absolute() else PROJECT_ROOT / path).resolve()
    allowed = allowed_task_dirs()
    if not any(resolved == root or root in resolved.parents for root in allowed):
        shown = ", ".join(_shown(d) for d in allowed)
        raise RunnerError(
            "invalid_config",
            f"include_path {raw!r} is not an allowed task folder (allowed: {shown or 'none'})",
        )
    if not resolved.is_dir():
        raise RunnerError("invalid_config", f"include_path {raw!r} is not a folder")
    return resolved


def _metric_name(task: str, key: str, prefix: bool) -> tuple[str, bool] | None:
    """``("acc", False)`` for ``"acc,none"``; ``("acc", True)`` for ``"acc_stderr,none"``; None if not a metric."""
    if "," not in key:
        return None
    metric, _, filter_name = key.partition(",")
    is_stderr = metric.endswith("_stderr")
    if is_stderr:
        metric = metric[: -len("_stderr")]
    name = metric if filter_name in ("none", "") else f"{metric}:{filter_name}"
    return (f"{task}/{name}" if prefix else name), is_stderr


def extract_metrics(results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float], int]:
    """``(metrics, stderr, samples)`` from a ``simple_evaluate`` result."""
    sections: dict[str, dict[str, Any]] = {}
    for section in ("results", "groups"):
        for task, values in (results.get(section) or {}).items():
            sections.setdefault(task, {}).update(values)
    prefix = len(sections) > 1
    metrics: dict[str, float] = {}
    stderr: dict[str, float] = {}
    for task, values in sections.items():
        for key, value in values.items():
            parsed = _metric_name(task, key, prefix)
            if parsed is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(float(value)):
                continue
            name, is_stderr = parsed
            (stderr if is_stderr else metrics)[name] = float(value)
    stderr = {k: v for k, v in stderr.items() if k in metrics}
    samples = 0
    for task, counts in (results.get("n-samples") or {}).items():
        if task in (results.get("results") or {}) and isinstance(counts, dict):
            samples += int(counts.get("effective", counts.get("original", 0)) or 0)
    return metrics, stderr, samples


class LmEvalRunner(FolderRunner):
    """lm-evaluation-harness on a local causal LM folder, with local-YAML or cached built-in tasks."""

    key: ClassVar[str] = "lm-eval"
    version: ClassVar[str] = "1.0.0"
    packages: ClassVar[tuple[str, ...]] = PACKAGES
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "lm-eval config",
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "items": {"type": "string", "pattern": _TASK_NAME, "maxLength": 200},
                "minItems": 1,
                "maxItems": 64,
                "uniqueItems": True,
            },
            "include_path": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "description": "an allowed folder of YAML tasks (MC_LMEVAL_TASK_DIRS), relative to the project root",
            },
            "num_fewshot": {"type": "integer", "minimum": 0, "maximum": 64},
            "limit": {"type": "integer", "minimum": 1, "description": "evaluate at most N documents per task"},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 256, "default": 8},
            "max_length": {"type": "integer", "minimum": 8, "maximum": 131072},
            "bootstrap_iters": {"type": "integer", "minimum": 0, "maximum": 100000, "default": 1000},
            "threads": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1},
            "seed": {"type": "integer", "minimum": 0},
        },
        "required": ["tasks"],
        "additionalProperties": False,
    }

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        run_log, config = self.begin(spec)
        note = run_log.note
        files = self.check_folder(spec)
        include_path = _resolve_include_path(config["include_path"]) if "include_path" in config else None
        dataset_path = None
        if spec.dataset is not None:
            dataset_path, _ = check_dataset(spec, runner_key=self.key, formats=("jsonl", "json", "csv", "parquet"))
            if len(config["tasks"]) != 1:
                raise RunnerError("invalid_config", "a job with a dataset must name exactly one (local) task")

        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[name] = "1"  # whatever the caller's environment says: never download
        torch = self.start_torch(config)
        try:
            import datasets

            datasets.disable_progress_bars()
            from lm_eval import simple_evaluate
            from lm_eval.models.huggingface import HFLM
            from lm_eval.tasks import TaskManager
            from lm_eval.tasks._yaml_loader import load_yaml
        except ImportError as exc:
            raise RunnerError("runner_error", f"the [lmeval] extra is not installed: {exc}") from exc

        with tempfile.TemporaryDirectory(prefix="mc-lmeval-") as scratch:
            task_manager, task_specs = self._tasks(
                TaskManager, load_yaml, config["tasks"], include_path, dataset_path, Path(scratch), note
            )
            counter = _RequestProgress(progress, int(config["batch_size"]))
            original_load = task_manager.load

            def load(task_list: Any) -> Any:
                loaded = original_load(task_list)
                counter.watch_tasks(loaded)
                return loaded

            task_manager.load = load

            tokenizer, model = load_causal_lm(files, torch)
            lm_kwargs: dict[str, Any] = {"batch_size": int(config["batch_size"]), "trust_remote_code": False}
            if "max_length" in config:
                lm_kwargs["max_length"] = int(config["max_length"])
            lm = HFLM(pretrained=model, tokenizer=tokenizer, **lm_kwargs)
            for method in REQUEST_METHODS:
                setattr(lm, method, counter.wrap(getattr(lm, method)))
            note(
                f"loaded {type(model).__name__} ({sum(p.numel() for p in model.parameters())} parameters) "
                f"from {len(files)} verified files; lm-eval {_version('lm_eval')}"
            )

            seed = int(spec.seed)
            try:
                results = simple_evaluate(
                    model=lm,
                    tasks=task_specs,
                    num_fewshot=config.get("num_fewshot"),
                    limit=config.get("limit"),
                    bootstrap_iters=int(config["bootstrap_iters"]),
                    task_manager=task_manager,
                    log_samples=False,
                    random_seed=seed,
                    numpy_random_seed=seed,
                    torch_random_seed=seed,
                    fewshot_random_seed=seed,
                )
            except (JobCancelled, RunnerError, MemoryError):
                raise
            except Exception as exc:
                raise _classify(exc) from exc
        if not results:
            raise RunnerError("runner_error", "lm-eval returned no results")

        metrics, stderr, samples = extract_metrics(results)
        if not metrics:
            raise RunnerError("runner_error", "lm-eval reported no numeric metric")
        for task, values in (results.get("results") or {}).items():
            shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items() if isinstance(v, float))
            note(
                f"{task}: {shown} (n-shot {(results.get('n-shot') or {}).get(task)}, "
                f"version {(results.get('versions') or {}).get(task)})"
            )
        note(f"{counter.done} requests answered; {samples} documents")
        environment = self.torch_environment(config, seed=seed, dtype="float32")
        versions, n_shot = results.get("versions") or {}, results.get("n-shot") or {}
        environment["lm_eval_tasks"] = {
            task: {"version": versions.get(task), "n_shot": n_shot.get(task)} for task in results.get("results") or {}
        }
        return self.result(run_log, metrics=metrics, stderr=stderr, samples=samples, environment=environment)

    def _tasks(
        self,
        task_manager_cls: Any,
        load_yaml: Callable[..., dict[str, Any]],
        names: list[str],
        include_path: Path | None,
        dataset_path: str | None,
        scratch: Path,
        note: Callable[[str], None],
    ) -> tuple[Any, list[Any]]:
        """The task manager and the task list for ``simple_evaluate`` (local YAML tasks as config dicts)."""
        local = task_manager_cls(include_path=str(include_path), include_defaults=False) if include_path else None
        local_names = set(local.all_tasks) if local is not None else set()
        task_manager: Any = local
        if local is None or not all(name in local_names for name in names):
            # Scanning lm-eval's thousands of built-in YAMLs takes seconds: only when needed.
            task_manager = task_manager_cls(include_path=str(include_path) if include_path else None)
        unknown = [n for n in names if n not in set(task_manager.all_tasks) and not any(c in n for c in "*?[")]
        if unknown:
            raise RunnerError("invalid_config", f"unknown lm-eval task(s): {', '.join(unknown)}")
        if dataset_path is not None and names[0] not in local_names:
            raise RunnerError(
                "invalid_config", f"the job's dataset can only be bound to a local task; {names[0]!r} is not one"
            )

        specs: list[Any] = []
        for name in names:
            entry = task_manager.task_index.get(name) if name in local_names else None
            yaml_path = getattr(entry, "yaml_path", None)
            if entry is None or yaml_path is None or getattr(entry.kind, "name", "") != "TASK":
                specs.append(name)
                continue
            cfg = load_yaml(yaml_path, resolve_func=True)
            builder = str(cfg.get("dataset_path") or "")
            if builder not in FILE_BUILDERS:
                if dataset_path is not None:
                    raise RunnerError(
                        "invalid_config",
                        f"task {name!r} reads {builder!r}, not local files: it cannot take the job's dataset",
                    )
                specs.append(name)
                continue
            kwargs = dict(cfg.get("dataset_kwargs") or {})
            data_files = kwargs.get("data_files")
            if dataset_path is not None:
                splits = sorted(data_files) if isinstance(data_files, dict) else [cfg.get("test_split") or "test"]
                data_files = {split: dataset_path for split in splits}
                note(f"task {name}: data of split(s) {', '.join(splits)} = {Path(dataset_path).name} (verified)")
            else:
                data_files = _resolve_data_files(data_files, Path(yaml_path).parent)
            kwargs["data_files"] = data_files
            kwargs["cache_dir"] = str(scratch / "datasets" / re.sub(r"[^\w.-]", "_", name))
            cfg["dataset_kwargs"] = kwargs
            specs.append(cfg)
        note(
            f"tasks: {', '.join(names)}"
            + (f" (local folder {_shown(include_path)})" if include_path is not None else "")
        )
        return task_manager, specs


def _resolve_data_files(data_files: Any, base: Path) -> Any:
    """Relative data file paths resolved against the task's folder (lists and split dicts too)."""
    if isinstance(data_files, str):
        path = Path(data_files)
        return str(path if path.is_absolute() else base / path)
    if isinstance(data_files, list):
        return [_resolve_data_files(item, base) for item in data_files]
    if isinstance(data_files, dict):
        return {key: _resolve_data_files(value, base) for key, value in data_files.items()}
    return data_files


def _classify(exc: Exception) -> RunnerError:
    """A ``RunnerError`` for an exception raised inside lm-eval."""
    text = f"{type(exc).__name__}: {exc}"
    if is_oom(exc):
        return RunnerError("out_of_memory", f"the evaluation ran out of memory: {text}")
    lowered = text.lower()
    if "offline" in lowered or isinstance(exc, ConnectionError) or "couldn't reach" in lowered:
        return RunnerError(
            "artifact_unavailable",
            f"a task needs data that is not available offline (workers never download): {text}",
        )
    if isinstance(exc, FileNotFoundError):
        return RunnerError("artifact_unavailable", f"a task's data file is missing: {text}")
    return RunnerError("runner_error", text)


def _version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


__all__ = ["LmEvalRunner", "extract_metrics"]

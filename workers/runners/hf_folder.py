"""Model folders (Hugging Face and sentence-transformers layouts) as verified artifacts.

A model of these runners is a *folder* (``config.json``, ``model.safetensors``, ``tokenizer.json``,
``1_Pooling/config.json`` ...), but the platform verifies, stores and hands over *files*. The
convention:

- each :class:`~workers.runners.base.ArtifactSpec` is one file of the folder; its ``name`` is the
  file's path inside the folder (the registry's ``Artifact.path``; ``None`` means the file name of
  ``path``). Names must be relative, without ``..``, and unique;
- the runner refuses unsafe formats (pickle ``.bin``/``.pt``/... ) before opening anything, then
  verifies the sha256 of every file, then :func:`stage_model_folder` lays the verified files out
  under their names in a fresh private directory (symbolic links, no copies) and the model is
  loaded from *that* directory. A file that was not handed over as a verified artifact -- a stray
  ``pytorch_model.bin`` next to the weights, a ``*.py`` of custom code -- is therefore never seen by
  ``from_pretrained``;
- at least one ``safetensors`` file is required: weights are only ever loaded from safetensors,
  and ``trust_remote_code`` is always off.

:func:`folder_artifacts` builds the artifact list of an existing folder (for tests, seeding and
the fixtures).

:class:`FolderRunner` is the base of the torch runners: input screening, torch set-up and the
environment fingerprint they share.

No Django here, and torch only inside :func:`configure_torch` (transformers inside the functions that
load a model): this module is imported by the runners before their heavy imports.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from workers.runners.base import (
    ArtifactSpec,
    Runner,
    RunnerError,
    RunSpec,
    environment_fingerprint,
    is_unsafe,
    sha256_of,
    verify_sha256,
)
from workers.runners.formats import format_from_extension
from workers.runners.sandbox_child import looks_like_oom

#: File formats a folder runner accepts, besides the weights themselves.
FOLDER_FORMATS: frozenset[str] = frozenset({"safetensors", "json", "txt"})


def require_extra(extra: str, *modules: str) -> None:
    """Raise ``ImportError`` naming the pip extra when one of ``modules`` is not installed.

    Runner modules call this at import time, so that the ``modelcommons.runners`` entry points of a
    runner whose extra is missing fail to load (and are skipped) instead of registering a runner
    that cannot run. It only looks the modules up: the heavy imports stay inside ``run``.
    """
    import importlib.util

    def installed(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    missing = [name for name in modules if not installed(name)]
    if missing:
        raise ImportError(
            f"the [{extra}] extra is not installed (missing: {', '.join(missing)}); "
            f"pip install torch==2.13.0 'modelcommons[{extra}]'"
        )


def format_for(path: str | Path) -> str:
    """The artifact format a file name implies (``"other"`` when unknown)."""
    return format_from_extension(path) or "other"


def folder_artifacts(folder: str | Path, *, formats: Iterable[str] | None = FOLDER_FORMATS) -> tuple[ArtifactSpec, ...]:
    """One :class:`ArtifactSpec` per file of ``folder`` (recursively, sorted, hidden files skipped).

    Only files whose format (by suffix) is in ``formats`` are listed; ``formats=None`` lists every
    file (unsafe ones included: useful to test their refusal).
    """
    root = Path(folder)
    wanted = None if formats is None else frozenset(formats)
    specs = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        fmt = format_for(path)
        if wanted is not None and (fmt not in wanted or path.suffix.lower() == ".md"):
            # Markdown (the model card) is text by its extension, but it is the revision's card, not a file
            # the runner loads.
            continue
        specs.append(
            ArtifactSpec(
                path=str(path),
                sha256=sha256_of(path),
                format=fmt,
                size_bytes=path.stat().st_size,
                name=rel.as_posix(),
            )
        )
    return tuple(specs)


def artifact_name(artifact: ArtifactSpec) -> str:
    """The artifact's path inside the model folder, checked to stay inside it."""
    raw = getattr(artifact, "name", None) or Path(artifact.path).name
    name = PurePosixPath(str(raw).replace("\\", "/"))
    if name.is_absolute() or not name.parts or any(part in ("..", "") for part in name.parts):
        raise RunnerError("invalid_config", f"artifact name {str(raw)!r} must be a relative path inside the model")
    return name.as_posix()


def check_folder_inputs(spec: RunSpec, *, runner_key: str) -> list[tuple[str, ArtifactSpec]]:
    """Screen and verify a folder model's artifacts; ``[(name, artifact)]`` sorted by name.

    Order matters: unsafe formats are refused before any file is read, names are checked, then
    every sha256 is verified. Raises :class:`RunnerError` (``unsafe_format``, ``invalid_config``,
    ``artifact_unavailable``, ``hash_mismatch``).
    """
    for artifact in spec.artifacts:
        if is_unsafe(artifact.path, artifact.format) or is_unsafe(artifact_name(artifact), None):
            raise RunnerError(
                "unsafe_format",
                f"refusing to load {artifact_name(artifact)!r}: format {artifact.format!r} can execute code "
                "when loaded; weights must be safetensors",
            )
    named: dict[str, ArtifactSpec] = {}
    for artifact in spec.artifacts:
        name = artifact_name(artifact)
        if name in named:
            raise RunnerError("invalid_config", f"two artifacts are named {name!r}")
        fmt = (artifact.format or "").strip().lower()
        if fmt not in FOLDER_FORMATS:
            raise RunnerError(
                "invalid_config",
                f"runner {runner_key!r} cannot use artifact {name!r} of format {fmt!r} "
                f"(accepted: {', '.join(sorted(FOLDER_FORMATS))})",
            )
        named[name] = artifact
    if not any((a.format or "").strip().lower() == "safetensors" for a in named.values()):
        raise RunnerError(
            "artifact_unavailable",
            f"runner {runner_key!r} needs the model's weights as safetensors; none among the artifacts "
            "(pickle-based weights are never loaded)",
        )
    for artifact in named.values():
        verify_sha256(artifact.path, artifact.sha256)
    return sorted(named.items())


class StagedFolder:
    """A private directory holding links to verified files under their names; removed on exit."""

    def __init__(self, files: list[tuple[str, ArtifactSpec]], *, prefix: str = "mc-model-"):
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.path = Path(self._tmp.name) / "model"
        self.path.mkdir()
        for name, artifact in files:
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.abspath(artifact.path), target)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        self._tmp.cleanup()


def stage_model_folder(spec: RunSpec, *, runner_key: str) -> StagedFolder:
    """:func:`check_folder_inputs`, then a :class:`StagedFolder` of the verified files."""
    return StagedFolder(check_folder_inputs(spec, runner_key=runner_key))


def check_dataset(spec: RunSpec, *, runner_key: str, formats: Iterable[str]) -> tuple[str, str]:
    """The dataset's ``(path, format)`` after screening and verifying it.

    ``invalid_config`` when there is none or its format is not one of ``formats``; then the sha256
    (when the spec gives one) or at least the file's presence is checked.
    """
    allowed = sorted(formats)
    if spec.dataset is None:
        raise RunnerError("invalid_config", f"runner {runner_key!r} needs a dataset ({', '.join(allowed)})")
    if is_unsafe(spec.dataset.path, spec.dataset.format):
        raise RunnerError("unsafe_format", f"refusing to load dataset {Path(spec.dataset.path).name!r}: unsafe format")
    fmt = spec.dataset.resolved_format()
    if fmt not in allowed:
        raise RunnerError(
            "invalid_config",
            f"runner {runner_key!r} cannot read dataset format {fmt!r} (use {', '.join(allowed)})",
        )
    if spec.dataset.sha256:
        verify_sha256(spec.dataset.path, spec.dataset.sha256)
    elif not os.path.isfile(spec.dataset.path):
        raise RunnerError("artifact_unavailable", f"dataset is not available at {spec.dataset.path!r}")
    return spec.dataset.path, fmt


def is_oom(exc: BaseException) -> bool:
    """Whether an exception, or one it was raised from, reports an allocation failure.

    Under the sandbox's address-space limit a failed allocation often surfaces as something else:
    an ``ImportError`` ("failed to map segment from shared object"), a ``RuntimeError`` from torch's
    allocator, a ``RuntimeError("can't start new thread")``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return True
        text = f"{type(current).__name__}: {current}"
        if looks_like_oom(text) or "failed to map segment" in text or "can't start new thread" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def _cap_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``), as ``MALLOC_ARENA_MAX`` would.

    Every thread that allocates may get an arena that reserves 64 MiB of *address space*; with the
    thread pools of torch, tokenizers and pyarrow that is hundreds of MiB counted against the
    sandbox's ``RLIMIT_AS`` for nothing (measured: 250-350 MiB of the runners' peak).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, int(arenas))  # -8 is M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def configure_torch(threads: int) -> Any:
    """Import torch for a CPU evaluation with ``threads`` intra-op threads; returns the module."""
    _cap_malloc_arenas()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Progress bars would crowd the log tail the sandbox keeps (they take effect in a fresh process).
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch

    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only settable once per process, before any parallel work
        pass
    return torch


def quiet_hf_logging() -> None:
    """Keep progress bars and advisory warnings out of the job's log tail."""
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except (ImportError, AttributeError):
        pass


@contextmanager
def model_loading(what: str = "model folder") -> Iterator[None]:
    """Map a failure to load the model to ``RunnerError``: ``out_of_memory`` when it is one, else ``runner_error``.

    A bare ``MemoryError`` passes through (the sandbox reports it as ``out_of_memory``).
    """
    try:
        yield
    except MemoryError:
        raise
    except Exception as exc:
        if is_oom(exc):
            raise RunnerError("out_of_memory", f"loading the model ran out of memory: {exc}") from exc
        raise RunnerError("runner_error", f"cannot load the {what}: {type(exc).__name__}: {exc}") from exc


@contextmanager
def out_of_memory_during(doing: str) -> Iterator[None]:
    """Map a ``RuntimeError`` that reports an allocation failure while ``doing`` to ``RunnerError("out_of_memory")``.

    Other errors pass through unchanged.
    """
    try:
        yield
    except MemoryError:
        raise
    except RuntimeError as exc:
        if is_oom(exc):
            raise RunnerError("out_of_memory", f"{doing} ran out of memory: {exc}") from exc
        raise


def load_causal_lm(files: list[tuple[str, ArtifactSpec]], torch: Any) -> tuple[Any, Any]:
    """``(tokenizer, model)`` of a causal LM folder, staged from verified files, in eval mode (float32, CPU).

    Safetensors weights only, local files only, no remote code.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with StagedFolder(files) as folder, model_loading():
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            trust_remote_code=False,
            local_files_only=True,
            use_safetensors=True,
            dtype=torch.float32,
        )
    model.eval()
    return tokenizer, model


class FolderRunner(Runner):
    """Base of the runners that evaluate a model folder with torch on CPU.

    Subclasses set :attr:`packages` and give their ``config_schema`` a ``threads`` property.
    """

    loadable_formats: ClassVar[frozenset[str]] = FOLDER_FORMATS
    #: Packages recorded in the environment fingerprint.
    packages: ClassVar[tuple[str, ...]]

    def check_folder(self, spec: RunSpec) -> list[tuple[str, ArtifactSpec]]:
        """Refuse unsafe inputs before any file is read, then :func:`check_folder_inputs`."""
        self.refuse_unsafe_inputs(spec)
        return check_folder_inputs(spec, runner_key=self.key)

    def start_torch(self, config: Mapping[str, Any]) -> Any:
        """:func:`configure_torch` with the config's ``threads``, and quiet Hugging Face logging; returns torch."""
        torch = configure_torch(int(config["threads"]))
        quiet_hf_logging()
        return torch

    def torch_environment(self, config: Mapping[str, Any], *, seed: int, dtype: str | None = None) -> dict[str, Any]:
        """The environment fingerprint of a CPU torch run (``dtype`` recorded when given)."""
        environment = environment_fingerprint(self.packages)
        environment["seed"] = seed
        environment["torch_threads"] = int(config["threads"])
        environment["device"] = "cpu"
        if dtype is not None:
            environment["dtype"] = dtype
        return environment


__all__ = [
    "FOLDER_FORMATS",
    "FolderRunner",
    "StagedFolder",
    "artifact_name",
    "check_dataset",
    "check_folder_inputs",
    "configure_torch",
    "folder_artifacts",
    "format_for",
    "is_oom",
    "load_causal_lm",
    "model_loading",
    "out_of_memory_during",
    "quiet_hf_logging",
    "require_extra",
    "sha256_of",
    "stage_model_folder",
]

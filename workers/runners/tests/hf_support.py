"""Helpers shared by the tests of the torch-based runners (imported by them, not a conftest).

The tiny causal LMs are built once per test process by ``fixtures/tinylm/build.py`` (about 20 s on
one core) into a temporary folder removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from workers.runners.base import ArtifactSpec, DatasetSpec, RunSpec
from workers.runners.hf_folder import folder_artifacts, sha256_of

# Never reach for a hub, whatever the developer's environment says. Set before transformers,
# datasets or huggingface_hub are imported (they read these at import time).
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[3]
TINYLM = REPO / "fixtures" / "tinylm"
EVAL_TXT = TINYLM / "eval.txt"
BASE_TXT = TINYLM / "corpus" / "base.txt"
FINETUNE_TXT = TINYLM / "corpus" / "finetune.txt"
TASKS_DIR = TINYLM / "tasks"
CLOZE_JSONL = TASKS_DIR / "tinylm_cloze.jsonl"
STS_JSONL = REPO / "fixtures" / "sts" / "sts-mini.jsonl"
#: Memory limit for the run_in_child tests: the default of MC_RUNNER_MEMORY_MB.
CHILD_MEMORY_MB = 4096


@functools.cache
def tinylm_dir() -> Path:
    """The folder holding ``tinylm-base``, ``tinylm-harbour`` and ``manifest.json``, built on first use."""
    spec = importlib.util.spec_from_file_location("tinylm_build", TINYLM / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = Path(tempfile.mkdtemp(prefix="mc-tinylm-"))
    atexit.register(shutil.rmtree, out, True)
    module.build(out, quiet=True)
    return out


def dataset(path: Path, **kwargs: Any) -> DatasetSpec:
    return DatasetSpec(path=str(path), sha256=sha256_of(path), **kwargs)


def model_spec(folder: Path, data: DatasetSpec | None, config: dict[str, Any] | None = None, **extra: Any) -> RunSpec:
    return RunSpec(
        job_id="test-job", artifacts=folder_artifacts(folder), dataset=data, config=dict(config or {}), **extra
    )


def with_artifact(spec: RunSpec, artifact: ArtifactSpec) -> RunSpec:
    return replace(spec, artifacts=(*spec.artifacts, artifact))


def swap_sha(spec: RunSpec, name: str, sha256: str) -> RunSpec:
    """The spec with the expected sha256 of artifact ``name`` replaced."""
    return replace(spec, artifacts=tuple(replace(a, sha256=sha256) if a.name == name else a for a in spec.artifacts))


class Touch:
    """Unpickling this creates ``marker`` (stands in for arbitrary code execution)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickle_weights(folder: Path, marker: Path) -> ArtifactSpec:
    """A ``pytorch_model.bin`` pickle in ``folder`` that would create ``marker`` if it were loaded."""
    import pickle

    path = folder / "pytorch_model.bin"
    path.write_bytes(pickle.dumps(Touch(marker)))
    return ArtifactSpec(path=str(path), sha256=sha256_of(path), format="bin", name="pytorch_model.bin")


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst

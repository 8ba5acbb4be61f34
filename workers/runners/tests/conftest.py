"""Fixtures for the runner tests. Plain pytest: nothing here needs Django or a database."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workers.runners.base import ArtifactSpec, DatasetSpec, RunSpec

DIGITS_DIR = Path(__file__).resolve().parents[3] / "fixtures" / "digits"


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    if not (DIGITS_DIR / "manifest.json").exists():
        pytest.fail("fixtures/digits is missing: run `python fixtures/digits/build.py`")
    return DIGITS_DIR


@pytest.fixture(scope="session")
def digits_manifest(digits_dir: Path) -> dict[str, dict[str, Any]]:
    """The manifest's file entries, by file name."""
    manifest = json.loads((digits_dir / "manifest.json").read_text())
    return {entry["path"]: entry for entry in manifest["files"]}


@pytest.fixture(scope="session")
def digits_spec(digits_dir: Path, digits_manifest: dict[str, dict[str, Any]]) -> Callable[..., RunSpec]:
    """``digits_spec(model=..., dataset=..., config=..., **overrides)`` -> a RunSpec on the fixture."""

    def make(
        model: str = "digits-mlp.onnx",
        dataset: str | None = "digits-test.npz",
        config: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> RunSpec:
        entry = digits_manifest[model]
        artifact = ArtifactSpec(
            path=str(digits_dir / model),
            sha256=entry["sha256"],
            format="onnx",
            size_bytes=entry["size_bytes"],
        )
        ds = None
        if dataset is not None:
            ds = DatasetSpec(path=str(digits_dir / dataset), sha256=digits_manifest[dataset]["sha256"])
        fields: dict[str, Any] = {
            "job_id": "test-job",
            "artifacts": (artifact,),
            "dataset": ds,
            "config": dict(config or {}),
            "seed": 0,
        }
        fields.update(overrides)
        return RunSpec(**fields)

    return make


class ProgressRecorder:
    """A progress callback that records its calls and can raise at a threshold."""

    def __init__(self, raise_at: int | None = None, exc: BaseException | None = None):
        self.calls: list[tuple[int, int]] = []
        self.raise_at = raise_at
        self.exc = exc

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))
        if self.raise_at is not None and done >= self.raise_at and self.exc is not None:
            raise self.exc


@pytest.fixture
def recorder() -> type[ProgressRecorder]:
    return ProgressRecorder


@pytest.fixture(autouse=True, scope="session")
def _sandbox_mode_for_this_kernel() -> Any:
    """On a kernel without namespaces the runner tests that are not about the sandbox run in its weak mode; the
    strict sandbox's own tests skip (``sandbox_support.requires_namespaces``)."""
    import os

    from workers.runners.tests.sandbox_support import KERNEL_REFUSES_NAMESPACES

    if KERNEL_REFUSES_NAMESPACES is None:
        yield
        return
    previous = os.environ.get("MC_SANDBOX")
    os.environ["MC_SANDBOX"] = "weak"
    yield
    if previous is None:
        os.environ.pop("MC_SANDBOX", None)
    else:
        os.environ["MC_SANDBOX"] = previous

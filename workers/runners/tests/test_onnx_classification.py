"""The onnx-classification runner, in process, on the digits fixture."""

from __future__ import annotations

import ast
import builtins
import csv
import hashlib
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from workers.runners import base
from workers.runners.base import (
    ArtifactSpec,
    DatasetSpec,
    JobCancelled,
    Runner,
    RunnerError,
    environment_fingerprint,
    verify_sha256,
)
from workers.runners.onnx_classification import OnnxClassificationRunner, load_dataset, macro_f1
from workers.runners.registry import available_runners, get_runner

RUNNERS_DIR = Path(__file__).resolve().parents[1]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def noop(done: int, total: int) -> None:
    pass


class Touch:
    """Unpickling this creates ``marker`` (stands in for arbitrary code execution)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --- accuracy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["digits-mlp.onnx", "digits-mlp-int8.onnx", "digits-mlp-pruned.onnx"])
@pytest.mark.parametrize("dataset", ["digits-test.npz", "digits-test.jsonl"])
def test_accuracy_matches_manifest(digits_spec, digits_manifest, model, dataset):
    result = OnnxClassificationRunner().run(digits_spec(model=model, dataset=dataset), noop)
    assert result.samples == 450
    assert result.metrics["accuracy"] > 0.9
    assert result.metrics["accuracy"] == pytest.approx(digits_manifest[model]["test_accuracy"], abs=1e-6)
    assert 0.9 < result.metrics["macro_f1"] <= 1.0
    assert result.metrics["model_size_bytes"] == digits_manifest[model]["size_bytes"]
    assert 0 < result.metrics["latency_p50_ms"] <= result.metrics["latency_p95_ms"]
    assert result.metrics["throughput_sps"] > 0
    p = result.metrics["accuracy"]
    assert result.stderr["accuracy"] == pytest.approx((p * (1 - p) / 450) ** 0.5)
    assert result.runner == "onnx-classification"
    assert result.runner_version == "1.0.0"
    assert result.duration_s > 0


def test_fp32_and_int8_above_090(digits_spec):
    for model in ("digits-mlp.onnx", "digits-mlp-int8.onnx"):
        result = OnnxClassificationRunner().run(digits_spec(model=model), noop)
        assert result.metrics["accuracy"] > 0.9, model


def test_csv_dataset_with_header(digits_spec, digits_dir, tmp_path):
    with np.load(digits_dir / "digits-test.npz") as data:
        X, y = data["X"], data["y"]
    path = tmp_path / "digits.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"f{i}" for i in range(64)] + ["label"])
        for row, label in zip(X, y, strict=True):
            writer.writerow([repr(float(v)) for v in row] + [int(label)])
    spec = replace(digits_spec(), dataset=DatasetSpec(path=str(path), sha256=sha256_file(path)))
    from_csv = OnnxClassificationRunner().run(spec, noop)
    from_npz = OnnxClassificationRunner().run(digits_spec(), noop)
    assert from_csv.samples == 450
    assert from_csv.metrics["accuracy"] == from_npz.metrics["accuracy"]


def test_probabilities_only_model_uses_argmax(digits_spec, digits_dir, tmp_path):
    import onnx

    model = onnx.load(str(digits_dir / "digits-mlp.onnx"))
    keep = [o for o in model.graph.output if o.name == "probabilities"]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    path = tmp_path / "probs-only.onnx"
    onnx.save(model, str(path))
    spec = replace(digits_spec(), artifacts=(ArtifactSpec(str(path), sha256_file(path), "onnx"),))
    result = OnnxClassificationRunner().run(spec, noop)
    baseline = OnnxClassificationRunner().run(digits_spec(), noop)
    assert result.metrics["accuracy"] == baseline.metrics["accuracy"]


def test_dataset_without_sha256_is_loaded(digits_spec, digits_dir):
    spec = replace(digits_spec(), dataset=DatasetSpec(path=str(digits_dir / "digits-test.jsonl")))
    assert OnnxClassificationRunner().run(spec, noop).metrics["accuracy"] > 0.9


def test_environment_and_log(digits_spec):
    result = OnnxClassificationRunner().run(digits_spec(seed=7), noop)
    env = result.environment
    assert env["seed"] == 7
    assert env["gpu"] is None
    assert env["packages"]["onnxruntime"] and env["packages"]["numpy"]
    for key in ("python", "platform", "machine", "cpu_count", "hostname", "cpu_model"):
        assert key in env
    text = "\n".join(result.log)
    assert "loaded digits-mlp.onnx" in text
    assert "inputs: input tensor(float)" in text
    for pct in (25, 50, 75, 100):
        assert f"progress {pct}%" in text
    assert "metrics: accuracy=" in text


def test_macro_f1_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, size=500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 7, size=500))
    assert macro_f1(y_true, y_pred) == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))


# --- progress, limit, cancel --------------------------------------------------------------------


def test_progress_is_monotonic_and_reaches_total(digits_spec, recorder):
    progress = recorder()
    OnnxClassificationRunner().run(digits_spec(config={"batch_size": 50}), progress)
    dones = [d for d, _ in progress.calls]
    assert all(t == 450 for _, t in progress.calls)
    assert dones == sorted(set(dones)), "done must strictly increase"
    assert dones[-1] == 450
    assert len([d for d in dones if d > 0]) == 9  # one call per batch of 50


def test_limit_is_respected(digits_spec, recorder):
    progress = recorder()
    result = OnnxClassificationRunner().run(
        digits_spec(dataset="digits-test.jsonl", config={"limit": 100, "batch_size": 32}), progress
    )
    assert result.samples == 100
    assert progress.calls[-1] == (100, 100)
    assert max(d for d, _ in progress.calls) == 100


def test_cancel_between_batches_stops_early(digits_spec, recorder):
    progress = recorder(raise_at=128, exc=JobCancelled())
    with pytest.raises(JobCancelled):
        OnnxClassificationRunner().run(digits_spec(config={"batch_size": 64}), progress)
    assert progress.calls[-1] == (128, 450)
    assert max(d for d, _ in progress.calls) == 128


# --- safety: hashes and unsafe formats ----------------------------------------------------------


def test_wrong_artifact_sha256_is_hash_mismatch(digits_spec):
    spec = digits_spec()
    bad = replace(spec.artifacts[0], sha256="0" * 64)
    with pytest.raises(RunnerError) as info:
        OnnxClassificationRunner().run(replace(spec, artifacts=(bad,)), noop)
    assert info.value.reason == "hash_mismatch"


def test_wrong_dataset_sha256_is_hash_mismatch(digits_spec):
    spec = digits_spec()
    with pytest.raises(RunnerError) as info:
        OnnxClassificationRunner().run(replace(spec, dataset=replace(spec.dataset, sha256="f" * 64)), noop)
    assert info.value.reason == "hash_mismatch"


def test_missing_artifact_is_unavailable(digits_spec, tmp_path):
    spec = digits_spec()
    gone = replace(spec.artifacts[0], path=str(tmp_path / "missing.onnx"))
    with pytest.raises(RunnerError) as info:
        OnnxClassificationRunner().run(replace(spec, artifacts=(gone,)), noop)
    assert info.value.reason == "artifact_unavailable"


def test_verify_sha256(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 5))
    digest = sha256_file(path)
    verify_sha256(str(path), digest)
    verify_sha256(str(path), "sha256:" + digest.upper())
    with pytest.raises(RunnerError) as info:
        verify_sha256(str(path), "a" * 64)
    assert info.value.reason == "hash_mismatch"
    with pytest.raises(RunnerError) as info:
        verify_sha256(str(tmp_path / "nope"), digest)
    assert info.value.reason == "artifact_unavailable"


@pytest.fixture
def pickle_bomb(tmp_path):
    """A .pkl whose unpickling creates a marker file. Returns (pkl path, marker path)."""
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(Touch(marker))
    # The payload really is live: loading a copy of it creates the marker.
    probe = tmp_path / "probe-marker"
    pickle.loads(pickle.dumps(Touch(probe)))
    assert probe.exists()
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(payload)
    return pkl, marker


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("model.pkl", "pickle"), ("model.pkl", "onnx"), ("model.onnx", "pickle"), ("model.pt", "pt")],
)
def test_unsafe_artifact_is_refused_without_opening(digits_spec, pickle_bomb, monkeypatch, name, fmt):
    pkl, marker = pickle_bomb
    path = pkl.with_name(name)
    if path != pkl:
        pkl.rename(path)
    opened: list[str] = []
    real_open = builtins.open

    def spy_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def no_hash(*args, **kwargs):
        raise AssertionError("sha256 must not be computed for an unsafe artifact")

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(base, "verify_sha256", no_hash)
    onnx_model = digits_spec().artifacts[0]
    unsafe = ArtifactSpec(path=str(path), sha256=sha256_file(path), format=fmt)
    # The unsafe artifact comes second: it must be refused before the first one is read.
    spec = replace(digits_spec(), artifacts=(onnx_model, unsafe))
    with pytest.raises(RunnerError) as info:
        OnnxClassificationRunner().run(spec, noop)
    assert info.value.reason == "unsafe_format"
    assert not marker.exists()
    assert str(path) not in opened


def test_no_loadable_artifact_is_invalid_config(digits_spec, digits_dir):
    spec = digits_spec()
    st = replace(spec.artifacts[0], format="safetensors")
    with pytest.raises(RunnerError) as info:
        OnnxClassificationRunner().run(replace(spec, artifacts=(st,)), noop)
    assert info.value.reason == "invalid_config"


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"batch_size": 0},
        {"batch_size": 4097},
        {"batch_size": "64"},
        {"limit": 0},
        {"limit": 1.5},
        {"warmup": -1},
        {"input_name": ""},
        {"unknown": 1},
        {"batch_size": True},
        {"seed": -1},
    ],
)
def test_invalid_config(digits_spec, config):
    with pytest.raises(RunnerError) as info:
        OnnxClassificationRunner().run(digits_spec(config=config), noop)
    assert info.value.reason == "invalid_config"


def test_unknown_input_name_is_invalid_config(digits_spec):
    with pytest.raises(RunnerError) as info:
        OnnxClassificationRunner().run(digits_spec(config={"input_name": "pixels"}), noop)
    assert info.value.reason == "invalid_config"
    assert "pixels" in info.value.message


def test_explicit_input_name_warmup_and_seed(digits_spec):
    result = OnnxClassificationRunner().run(
        digits_spec(config={"input_name": "input", "warmup": 0, "batch_size": 4096, "seed": 3}), noop
    )
    assert result.metrics["accuracy"] > 0.9


def test_missing_dataset_is_invalid_config(digits_spec):
    with pytest.raises(RunnerError) as info:
        OnnxClassificationRunner().run(digits_spec(dataset=None), noop)
    assert info.value.reason == "invalid_config"


def test_npz_with_object_array_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, X=np.array([{"a": 1}], dtype=object), y=np.array([1]))
    with pytest.raises(RunnerError) as info:
        load_dataset(str(path), "npz")
    assert info.value.reason == "runner_error"


# --- registry -----------------------------------------------------------------------------------


def test_registry_has_builtin():
    assert available_runners()["onnx-classification"] is OnnxClassificationRunner
    assert isinstance(get_runner("onnx-classification"), OnnxClassificationRunner)


def test_unknown_runner_is_invalid_config():
    with pytest.raises(RunnerError) as info:
        get_runner("no-such-runner")
    assert info.value.reason == "invalid_config"
    assert "unknown runner" in info.value.message


def test_runner_error_reasons_and_pickling():
    err = RunnerError("timeout", "too slow")
    assert (err.reason, err.message) == ("timeout", "too slow")
    err.log_tail = ["a"]
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.reason, copy.message, copy.log_tail) == ("timeout", "too slow", ["a"])
    with pytest.raises(ValueError):
        RunnerError("not-a-reason", "x")


def test_runner_is_abstract():
    assert issubclass(OnnxClassificationRunner, Runner)
    with pytest.raises(TypeError):
        Runner()  # type: ignore[abstract]


def test_environment_fingerprint_extra_packages():
    env = environment_fingerprint(["pytest", "surely-not-installed-pkg"])
    assert env["packages"]["pytest"]
    assert env["packages"]["surely-not-installed-pkg"] is None
    assert set(env["packages"]) >= {"onnxruntime", "numpy"}


def test_no_django_or_celery_imports_under_runners():
    for path in RUNNERS_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"django", "celery", "rest_framework", "apps"}, f"{path}: imports {name}"

"""``onnx-classification``: evaluate an ONNX classifier on a labelled JSONL, CSV or NPZ set.

Metrics: ``accuracy``, ``macro_f1``, ``latency_p50_ms``, ``latency_p95_ms`` (per-sample latency of a
batch: batch wall time / batch rows), ``throughput_sps`` (samples / total inference time) and
``model_size_bytes``. ``stderr`` carries the binomial standard error of the accuracy.

Dataset formats:

- ``npz``: arrays ``X`` (``[n, ...]``) and ``y`` (``[n]``); loaded with ``allow_pickle=False``;
- ``jsonl``: one ``{"x": [...], "label": n}`` object per line;
- ``csv``: numeric columns, the last one is the label; a non-numeric first row is a header.

No scikit-learn at run time: the metrics are computed with numpy.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from workers.runners.base import (
    ProgressCallback,
    Runner,
    RunnerError,
    RunResult,
    RunSpec,
    environment_fingerprint,
)

_ORT_FLOAT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}
_ORT_INT_TYPES = {f"tensor({t})" for t in ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8")}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-averaged F1 over the labels present in ``y_true`` or ``y_pred`` (as scikit-learn does)."""
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.size == 0:
        return 0.0
    labels = np.union1d(y_true, y_pred)
    scores = []
    for label in labels:
        t = y_true == label
        p = y_pred == label
        tp = float(np.sum(t & p))
        fp = float(np.sum(~t & p))
        fn = float(np.sum(t & ~p))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def _load_npz(path: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            x_key = next((k for k in ("X", "x", "features") if k in keys), None)
            y_key = next((k for k in ("y", "labels", "label") if k in keys), None)
            if x_key is None or y_key is None:
                raise RunnerError("invalid_config", f"NPZ dataset needs arrays 'X' and 'y', found {sorted(keys)}")
            X = data[x_key]
            y = data[y_key]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        # ValueError also covers object arrays, which would need pickle: refused.
        raise RunnerError("runner_error", f"cannot read NPZ dataset: {exc}") from exc
    if limit is not None:
        X, y = X[:limit], y[:limit]
    return X, y


def _load_jsonl(path: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    xs: list[list[float]] = []
    ys: list[int] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if limit is not None and len(ys) >= limit:
                break
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                x = row["x"]
                label = row["label"] if "label" in row else row["y"]
                xs.append([float(v) for v in x])
                ys.append(int(label))
            except (ValueError, KeyError, TypeError) as exc:
                raise RunnerError(
                    "runner_error",
                    f'JSONL dataset line {lineno}: expected {{"x": [...], "label": n}} ({exc})',
                ) from exc
    return _stack(xs, ys)


def _load_csv(path: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    xs: list[list[float]] = []
    ys: list[int] = []
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if limit is not None and len(ys) >= limit:
                break
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                values = [float(cell) for cell in row]
            except ValueError as exc:
                if lineno == 1 and not xs:
                    continue  # header
                raise RunnerError("runner_error", f"CSV dataset line {lineno}: {exc}") from exc
            if len(values) < 2:
                raise RunnerError("runner_error", f"CSV dataset line {lineno}: need features and a label")
            label = values[-1]
            if label != int(label):
                raise RunnerError("runner_error", f"CSV dataset line {lineno}: label {label} is not an integer")
            xs.append(values[:-1])
            ys.append(int(label))
    return _stack(xs, ys)


def _stack(xs: list[list[float]], ys: list[int]) -> tuple[np.ndarray, np.ndarray]:
    widths = {len(x) for x in xs}
    if len(widths) > 1:
        raise RunnerError("runner_error", f"dataset rows have different lengths: {sorted(widths)}")
    width = widths.pop() if widths else 0
    X = np.asarray(xs, dtype=np.float32).reshape(len(xs), width)
    return X, np.asarray(ys, dtype=np.int64)


def load_dataset(path: str, fmt: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load ``(X, y)`` from a dataset file; at most ``limit`` samples."""
    loaders = {"npz": _load_npz, "jsonl": _load_jsonl, "csv": _load_csv}
    if fmt not in loaders:
        raise RunnerError("invalid_config", f"unsupported dataset format {fmt!r} (use jsonl, csv or npz)")
    try:
        X, y = loaders[fmt](path, limit)
    except FileNotFoundError as exc:
        raise RunnerError("artifact_unavailable", f"dataset is not available at {path!r}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RunnerError("runner_error", f"cannot read dataset: {exc}") from exc
    y = np.asarray(y)
    if y.ndim != 1:
        y = y.reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise RunnerError("runner_error", f"dataset labels must be integers, got dtype {y.dtype}")
    if len(X) != len(y):
        raise RunnerError("runner_error", f"dataset has {len(X)} feature rows but {len(y)} labels")
    if len(y) == 0:
        raise RunnerError("runner_error", "dataset is empty")
    return X, y.astype(np.int64)


class OnnxClassificationRunner(Runner):
    """Accuracy, macro-F1, latency and throughput of an ONNX classifier on CPU (one thread)."""

    key: ClassVar[str] = "onnx-classification"
    version: ClassVar[str] = "1.0.0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset({"onnx"})
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "onnx-classification config",
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "description": "evaluate at most this many samples"},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 4096, "default": 64},
            "warmup": {
                "type": "integer",
                "minimum": 0,
                "maximum": 1000,
                "default": 1,
                "description": "untimed batches run before measuring",
            },
            "input_name": {"type": "string", "minLength": 1, "description": "model input to feed"},
            "seed": {
                "type": "integer",
                "minimum": 0,
                "description": "accepted for symmetry with other runners; evaluation is deterministic",
            },
        },
        "additionalProperties": False,
    }

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        run_log, config = self.begin(spec)
        note = run_log.note
        limit = int(config["limit"]) if "limit" in config else None
        batch_size = int(config["batch_size"])
        warmup = int(config["warmup"])
        # Unsafe formats are refused before any file is opened ...
        self.refuse_unsafe_inputs(spec)
        if spec.dataset is None:
            raise RunnerError("invalid_config", f"runner {self.key!r} needs a labelled dataset")
        dataset_format = spec.dataset.resolved_format()
        if dataset_format not in ("npz", "jsonl", "csv"):
            raise RunnerError(
                "invalid_config", f"unsupported dataset format {dataset_format!r} (use jsonl, csv or npz)"
            )
        artifact = self.select_artifact(spec)

        # ... and every sha256 is checked before anything is loaded.
        self.verify_inputs(spec)

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(artifact.path, sess_options=options, providers=["CPUExecutionProvider"])
        except MemoryError:
            raise
        except Exception as exc:
            if _looks_like_oom(str(exc)):
                raise RunnerError("out_of_memory", f"loading the model ran out of memory: {exc}") from exc
            raise RunnerError("runner_error", f"onnxruntime cannot load {Path(artifact.path).name!r}: {exc}") from exc
        model_size = os.path.getsize(artifact.path)
        inputs = session.get_inputs()
        outputs = session.get_outputs()
        note(
            f"loaded {Path(artifact.path).name} ({model_size} bytes, sha256 {artifact.sha256[:12]}) "
            f"with onnxruntime {ort.__version__}"
        )
        note("inputs: " + ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs))
        note("outputs: " + ", ".join(f"{o.name} {o.type} {o.shape}" for o in outputs))

        input_name = config.get("input_name") or inputs[0].name
        matching = [i for i in inputs if i.name == input_name]
        if not matching:
            raise RunnerError(
                "invalid_config",
                f"model has no input {input_name!r} (inputs: {', '.join(i.name for i in inputs)})",
            )
        model_input = matching[0]
        if len(inputs) > 1 and not config.get("input_name"):
            note(f"model has {len(inputs)} inputs; feeding {input_name!r}")
        input_dtype = _ORT_FLOAT_TYPES.get(model_input.type)
        if input_dtype is None:
            raise RunnerError(
                "runner_error", f"input {input_name!r} has type {model_input.type}; expected a float tensor"
            )

        X, y = load_dataset(spec.dataset.path, dataset_format, limit)
        X = _shape_for_input(X, model_input.shape, input_name).astype(input_dtype, copy=False)
        total = len(y)
        note(
            f"dataset {Path(spec.dataset.path).name}: {total} samples, {len(np.unique(y))} classes, "
            f"features {list(X.shape[1:])}; batch_size {batch_size}, warmup {warmup}"
        )
        progress(0, total)

        output_plan = _plan_outputs(outputs)
        for _ in range(warmup):
            session.run(None, {input_name: X[:batch_size]})

        predictions = np.empty(total, dtype=np.int64)
        latencies_ms: list[float] = []
        inference_s = 0.0
        next_report = 1
        done = 0
        while done < total:
            batch = X[done : done + batch_size]
            t0 = time.perf_counter()
            try:
                results = session.run(None, {input_name: batch})
            except MemoryError:
                raise
            except Exception as exc:
                if _looks_like_oom(str(exc)):
                    raise RunnerError("out_of_memory", f"inference ran out of memory: {exc}") from exc
                raise RunnerError("runner_error", f"inference failed on samples {done}..: {exc}") from exc
            elapsed = time.perf_counter() - t0
            rows = len(batch)
            predictions[done : done + rows] = _predictions(results, output_plan, rows)
            inference_s += elapsed
            latencies_ms.append(elapsed * 1000.0 / rows)
            done += rows
            while next_report <= 4 and done * 4 >= next_report * total:
                acc_so_far = float(np.mean(predictions[:done] == y[:done]))
                note(f"progress {next_report * 25}%: {done}/{total} samples, running accuracy {acc_so_far:.4f}")
                next_report += 1
            progress(done, total)

        correct = predictions == y
        accuracy = float(np.mean(correct))
        metrics = {
            "accuracy": accuracy,
            "macro_f1": macro_f1(y, predictions),
            "latency_p50_ms": float(np.percentile(latencies_ms, 50)),
            "latency_p95_ms": float(np.percentile(latencies_ms, 95)),
            "throughput_sps": float(total / inference_s) if inference_s > 0 else 0.0,
            "model_size_bytes": float(model_size),
        }
        stderr = {"accuracy": math.sqrt(accuracy * (1.0 - accuracy) / total)}
        note(
            "metrics: "
            + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items())
            + f" (accuracy stderr {stderr['accuracy']:.4g})"
        )
        environment = environment_fingerprint(["onnxruntime", "numpy"])
        environment["seed"] = spec.seed
        environment["onnxruntime_providers"] = ["CPUExecutionProvider"]
        environment["intra_op_num_threads"] = 1
        return self.result(run_log, metrics=metrics, stderr=stderr, samples=total, environment=environment)


def _looks_like_oom(message: str) -> bool:
    text = message.lower()
    return any(s in text for s in ("bad_alloc", "failed to allocate", "out of memory", "cannot allocate memory"))


def _shape_for_input(X: np.ndarray, shape: list[Any], name: str) -> np.ndarray:
    """Reshape ``[n, features]`` rows to the model's fixed per-sample shape when they differ."""
    per_sample = shape[1:] if len(shape) >= 1 else []
    if not per_sample or not all(isinstance(d, int) and d > 0 for d in per_sample):
        return X
    target = tuple(per_sample)
    if tuple(X.shape[1:]) == target:
        return X
    if int(np.prod(X.shape[1:])) == int(np.prod(target)):
        return X.reshape((len(X), *target))
    raise RunnerError(
        "runner_error",
        f"dataset samples have shape {list(X.shape[1:])} but input {name!r} expects {list(target)}",
    )


def _plan_outputs(outputs: list[Any]) -> tuple[str, int]:
    """Pick the output to read: ``("labels", i)`` for an integer tensor, else ``("scores", i)``."""
    for i, out in enumerate(outputs):
        if out.type in _ORT_INT_TYPES and len(out.shape or []) <= 2:
            return "labels", i
    for i, out in enumerate(outputs):
        if out.type in _ORT_FLOAT_TYPES and len(out.shape or []) == 2:
            return "scores", i
    for i, out in enumerate(outputs):
        if out.type in _ORT_FLOAT_TYPES:
            return "scores", i
    raise RunnerError(
        "runner_error",
        "model has neither an integer label output nor a float score output: "
        + ", ".join(f"{o.name} {o.type}" for o in outputs),
    )


def _predictions(results: list[Any], plan: tuple[str, int], rows: int) -> np.ndarray:
    kind, index = plan
    value = np.asarray(results[index])
    if kind == "labels":
        labels = value.reshape(-1)
        if labels.shape[0] != rows:
            raise RunnerError("runner_error", f"label output has {labels.shape[0]} values for {rows} samples")
        return labels.astype(np.int64)
    if value.ndim == 1 and value.shape[0] == rows:
        # one score per sample: a binary classifier's positive-class probability
        return (value >= 0.5).astype(np.int64)
    value = value.reshape(rows, -1)
    return np.argmax(value, axis=1).astype(np.int64)

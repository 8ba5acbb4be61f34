"""The perplexity runner on the tiny causal LMs built at test time (extra [hf])."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from . import hf_support as hf

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

from workers.runners.base import JobCancelled, RunnerError  # noqa: E402
from workers.runners.perplexity import PerplexityRunner, sliding_windows  # noqa: E402
from workers.runners.registry import available_runners  # noqa: E402
from workers.runners.sandbox import run_in_child  # noqa: E402


@pytest.fixture(scope="module")
def tinylm():
    return hf.tinylm_dir()


@pytest.fixture(scope="module")
def base_model(tinylm):
    return tinylm / "tinylm-base"


@pytest.fixture(scope="module")
def harbour_model(tinylm):
    return tinylm / "tinylm-harbour"


def run(folder, text=hf.EVAL_TXT, config=None, progress=None, **kwargs):
    spec = hf.model_spec(folder, hf.dataset(text), config or {}, **kwargs)
    return PerplexityRunner().run(spec, progress or (lambda d, t: None))


def test_registered():
    assert available_runners()["perplexity"] is PerplexityRunner


def test_build_writes_safetensors_folders_and_manifest(tinylm):
    manifest = json.loads((tinylm / "manifest.json").read_text())
    assert [m["name"] for m in manifest["models"]] == ["tinylm-base", "tinylm-harbour"]
    for model in manifest["models"]:
        names = {f["path"] for f in model["files"]}
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
        assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
        for entry in model["files"]:
            assert entry["sha256"] == hf.sha256_of(tinylm / model["name"] / entry["path"])
    assert manifest["recipe"]["n_layer"] == 2 and manifest["recipe"]["n_embd"] == 64
    assert manifest["models"][0]["train_loss"][-1] < manifest["models"][0]["train_loss"][0]


def test_finite_and_fine_tune_wins_on_its_own_text(base_model, harbour_model):
    base_own = run(base_model, hf.FINETUNE_TXT)
    tuned_own = run(harbour_model, hf.FINETUNE_TXT)
    for result in (base_own, tuned_own):
        assert math.isfinite(result.metrics["perplexity"]) and result.metrics["perplexity"] > 1
        assert result.metrics["bits_per_byte"] > 0
        assert result.stderr["perplexity"] > 0 and result.stderr["nll"] > 0
    assert tuned_own.metrics["perplexity"] < base_own.metrics["perplexity"]
    # ...and the base model wins on the text it was trained on.
    assert run(base_model, hf.BASE_TXT).metrics["perplexity"] < run(harbour_model, hf.BASE_TXT).metrics["perplexity"]
    # The held-out eval text is of the fine-tune's domain.
    assert run(harbour_model).metrics["perplexity"] < run(base_model).metrics["perplexity"]


def test_metrics_are_consistent(harbour_model):
    result = run(harbour_model)
    m = result.metrics
    assert m["windows"] == len(sliding_windows(int(m["tokens"]) + 1, 128, 64))  # the model's context, half of it
    assert m["perplexity"] == pytest.approx(math.exp(m["nll"]))
    assert result.samples == m["tokens"]
    text_bytes = len(hf.EVAL_TXT.read_bytes())
    assert m["bits_per_byte"] == pytest.approx(m["nll"] * m["tokens"] / math.log(2) / text_bytes)
    assert result.stderr["perplexity"] == pytest.approx(m["perplexity"] * result.stderr["nll"])
    assert result.environment["packages"]["torch"].startswith("2.13.0")
    assert result.environment["torch_threads"] == 1


def test_single_window_matches_the_models_own_loss(harbour_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = run(harbour_model, config={"max_length": 128, "limit_tokens": 100})
    tok = AutoTokenizer.from_pretrained(harbour_model)
    model = AutoModelForCausalLM.from_pretrained(harbour_model).eval()
    ids = [tok.bos_token_id, *tok(hf.EVAL_TXT.read_text(), add_special_tokens=False)["input_ids"]][:100]
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert result.metrics["tokens"] == 99
    assert result.metrics["windows"] == 1
    assert result.metrics["nll"] == pytest.approx(loss, rel=1e-5)


def test_stride_changes_context_not_the_scored_tokens(harbour_model):
    overlapping = run(harbour_model, config={"max_length": 128, "stride": 64})
    disjoint = run(harbour_model, config={"max_length": 128, "stride": 127})
    assert overlapping.metrics["tokens"] == disjoint.metrics["tokens"]
    assert overlapping.metrics["windows"] > disjoint.metrics["windows"]
    assert overlapping.metrics["perplexity"] != disjoint.metrics["perplexity"]


@pytest.mark.parametrize("n,max_length,stride", [(10, 4, 2), (1000, 256, 128), (257, 256, 255), (5, 8, 4), (9, 3, 1)])
def test_sliding_windows_score_every_token_but_the_first_once(n, max_length, stride):
    windows = sliding_windows(n, max_length, stride)
    scored = []
    for begin, end, target_len in windows:
        assert 0 <= begin < end <= n and end - begin <= max_length
        scored.extend(range(max(begin + 1, end - target_len), end))
    assert scored == list(range(1, n))


def test_progress_is_monotonic_and_reaches_total(harbour_model, recorder):
    progress = recorder()
    result = run(harbour_model, config={"max_length": 64, "stride": 32, "batch_size": 3}, progress=progress)
    total = int(result.metrics["windows"])
    assert progress.calls[0] == (0, total)
    dones = [d for d, _ in progress.calls]
    assert dones == sorted(set(dones)) and dones[-1] == total
    assert all(t == total for _, t in progress.calls)
    assert len(progress.calls) > 5


def test_cancel_between_batches(harbour_model, recorder):
    progress = recorder(raise_at=4, exc=JobCancelled())
    with pytest.raises(JobCancelled):
        run(harbour_model, config={"max_length": 64, "stride": 32, "batch_size": 2}, progress=progress)
    assert progress.calls[-1][0] == 4


def test_limit_tokens(harbour_model):
    result = run(harbour_model, config={"limit_tokens": 50})
    assert result.metrics["tokens"] == 49


def test_jsonl_dataset(harbour_model, tmp_path):
    paragraphs = [p for p in hf.EVAL_TXT.read_text().split("\n\n") if p.strip()]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({"text": p}) + "\n" for p in paragraphs))
    result = run(harbour_model, path)
    assert math.isfinite(result.metrics["perplexity"])
    assert abs(result.metrics["perplexity"] - run(harbour_model).metrics["perplexity"]) < 5


def test_pickle_weights_refused_and_never_loaded(harbour_model, tmp_path):
    marker = tmp_path / "pwned"
    folder = hf.copy_folder(harbour_model, tmp_path / "model")
    spec = hf.with_artifact(hf.model_spec(folder, hf.dataset(hf.EVAL_TXT)), hf.pickle_weights(folder, marker))
    with pytest.raises(RunnerError) as info:
        PerplexityRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "unsafe_format"
    assert not marker.exists()


def test_stray_pickle_in_the_folder_is_not_loaded(harbour_model, tmp_path):
    marker = tmp_path / "pwned"
    folder = hf.copy_folder(harbour_model, tmp_path / "model")
    spec = hf.model_spec(folder, hf.dataset(hf.EVAL_TXT))  # listed before the pickle exists
    hf.pickle_weights(folder, marker)
    (folder / "model.safetensors").unlink()
    # Without its safetensors artifact the model cannot be loaded; the pickle next to it is not a way out.
    spec = replace(spec, artifacts=tuple(a for a in spec.artifacts if a.name != "model.safetensors"))
    with pytest.raises(RunnerError) as info:
        PerplexityRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "artifact_unavailable"
    assert not marker.exists()


def test_sha_mismatch_refused(harbour_model):
    spec = hf.swap_sha(hf.model_spec(harbour_model, hf.dataset(hf.EVAL_TXT)), "model.safetensors", "0" * 64)
    with pytest.raises(RunnerError) as info:
        PerplexityRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "hash_mismatch"


def test_dataset_sha_mismatch_refused(harbour_model):
    spec = hf.model_spec(harbour_model, hf.DatasetSpec(str(hf.EVAL_TXT), "1" * 64))
    with pytest.raises(RunnerError) as info:
        PerplexityRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "hash_mismatch"


@pytest.mark.parametrize(
    "config",
    [{"max_length": 512}, {"max_length": 64, "stride": 64}, {"batch_size": 0}, {"nope": 1}],
)
def test_invalid_config(harbour_model, config):
    with pytest.raises(RunnerError) as info:
        run(harbour_model, config=config)
    assert info.value.reason == "invalid_config"


def test_needs_a_text_dataset(harbour_model):
    spec = hf.model_spec(harbour_model, None)
    with pytest.raises(RunnerError) as info:
        PerplexityRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "invalid_config"


def test_in_child_process(harbour_model, recorder):
    progress = recorder()
    spec = hf.model_spec(harbour_model, hf.dataset(hf.EVAL_TXT), {})
    result = run_in_child("perplexity", spec, progress, timeout_s=300, memory_mb=hf.CHILD_MEMORY_MB)
    in_process = run(harbour_model)
    assert result.metrics["perplexity"] == pytest.approx(in_process.metrics["perplexity"], rel=1e-6)
    assert progress.calls[-1] == (int(result.metrics["windows"]), int(result.metrics["windows"]))

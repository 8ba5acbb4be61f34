"""The lm-eval runner on the tiny causal LM with the local YAML task, offline (extra [lmeval])."""

from __future__ import annotations

import shutil

import pytest

from . import hf_support as hf

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("lm_eval")

from workers.runners.base import JobCancelled, RunnerError  # noqa: E402
from workers.runners.lm_eval import LmEvalRunner, extract_metrics  # noqa: E402
from workers.runners.registry import available_runners  # noqa: E402
from workers.runners.sandbox import run_in_child  # noqa: E402

TASK = {"tasks": ["tinylm_cloze"], "include_path": "fixtures/tinylm/tasks"}
ITEMS = sum(1 for line in hf.CLOZE_JSONL.read_text().splitlines() if line.strip())


@pytest.fixture(scope="module")
def harbour_model():
    return hf.tinylm_dir() / "tinylm-harbour"


def run(folder, config=None, data="bound", progress=None):
    dataset = hf.dataset(hf.CLOZE_JSONL) if data == "bound" else data
    spec = hf.model_spec(folder, dataset, {**TASK, **(config or {})})
    return LmEvalRunner().run(spec, progress or (lambda d, t: None))


def test_registered():
    assert available_runners()["lm-eval"] is LmEvalRunner


def test_local_task_gives_acc_with_stderr(harbour_model, recorder):
    progress = recorder()
    result = run(harbour_model, progress=progress)
    assert set(result.metrics) == {"acc", "acc_norm"}
    for name in ("acc", "acc_norm"):
        assert 0.0 <= result.metrics[name] <= 1.0
        p = result.metrics[name]
        # lm-eval's stderr of a mean of 0/1 values: the sample standard error.
        assert result.stderr[name] == pytest.approx((p * (1 - p) / (ITEMS - 1)) ** 0.5, rel=1e-6)
    assert result.samples == ITEMS
    assert result.runner == "lm-eval"
    assert result.environment["packages"]["lm_eval"]
    assert result.environment["lm_eval_tasks"] == {"tinylm_cloze": {"version": 1.0, "n_shot": 0}}
    # One request per choice: four per item.
    assert progress.calls[0] == (0, 4 * ITEMS)
    assert progress.calls[-1] == (4 * ITEMS, 4 * ITEMS)
    dones = [d for d, _ in progress.calls]
    assert dones == sorted(set(dones))
    assert len(progress.calls) == 1 + -(-4 * ITEMS // 8)  # one call per batch of 8 requests


def test_fine_tune_and_base_are_evaluated_alike(harbour_model):
    base = run(harbour_model.parent / "tinylm-base")
    tuned = run(harbour_model)
    assert base.samples == tuned.samples == ITEMS
    again = run(harbour_model)
    assert again.metrics == tuned.metrics  # deterministic


def test_yaml_data_files_are_used_without_a_job_dataset(harbour_model):
    bound = run(harbour_model)
    from_yaml = run(harbour_model, data=None)
    assert from_yaml.metrics == bound.metrics
    assert any("data of split" in line for line in bound.log)
    assert not any("data of split" in line for line in from_yaml.log)


def test_limit_and_batch_size(harbour_model, recorder):
    progress = recorder()
    result = run(harbour_model, {"limit": 10, "batch_size": 16}, progress=progress)
    assert result.samples == 10
    assert progress.calls == [(0, 40), (16, 40), (32, 40), (40, 40)]


def test_cancel_between_batches(harbour_model, recorder):
    progress = recorder(raise_at=16, exc=JobCancelled())
    with pytest.raises(JobCancelled):
        run(harbour_model, {"batch_size": 8}, progress=progress)
    assert progress.calls[-1][0] == 16


def test_pickle_weights_refused_and_never_loaded(harbour_model, tmp_path):
    marker = tmp_path / "pwned"
    folder = hf.copy_folder(harbour_model, tmp_path / "model")
    spec = hf.with_artifact(hf.model_spec(folder, hf.dataset(hf.CLOZE_JSONL), TASK), hf.pickle_weights(folder, marker))
    with pytest.raises(RunnerError) as info:
        LmEvalRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "unsafe_format"
    assert not marker.exists()


def test_sha_mismatch_refused(harbour_model):
    spec = hf.swap_sha(hf.model_spec(harbour_model, hf.dataset(hf.CLOZE_JSONL), TASK), "config.json", "a" * 64)
    with pytest.raises(RunnerError) as info:
        LmEvalRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "hash_mismatch"


def test_dataset_sha_mismatch_refused(harbour_model):
    spec = hf.model_spec(harbour_model, hf.DatasetSpec(str(hf.CLOZE_JSONL), "b" * 64), TASK)
    with pytest.raises(RunnerError) as info:
        LmEvalRunner().run(spec, lambda d, t: None)
    assert info.value.reason == "hash_mismatch"


@pytest.mark.parametrize(
    "config",
    [
        {"include_path": "/tmp"},
        {"include_path": "../.."},
        {"include_path": "fixtures/no-such-folder"},
        {"tasks": []},
        {"tasks": ["tinylm_cloze; rm -rf /"]},
        {"batch_size": 0},
        {"tasks": ["tinylm_cloze", "tinylm_cloze2"]},  # a bound dataset needs exactly one task
    ],
)
def test_invalid_config(harbour_model, config):
    with pytest.raises(RunnerError) as info:
        run(harbour_model, config)
    assert info.value.reason == "invalid_config"


def test_builtin_task_without_cached_data_is_unavailable_offline(harbour_model):
    # arc_easy is a built-in task whose dataset would come from the hub: never downloaded.
    with pytest.raises(RunnerError) as info:
        run(harbour_model, {"tasks": ["arc_easy"], "limit": 2}, data=None)
    assert info.value.reason in ("artifact_unavailable", "invalid_config")
    assert info.value.reason == "artifact_unavailable" or "arc_easy" in info.value.message


def test_extract_metrics_names_stderr_and_samples():
    results = {
        "results": {
            "a": {
                "alias": "a",
                "acc,none": 0.5,
                "acc_stderr,none": 0.1,
                "em,strict": 0.25,
                "em_stderr,strict": "N/A",
                "flag,none": True,
            },
            "b": {"acc,none": 0.75, "acc_stderr,none": 0.05, "word_perplexity,none": float("inf")},
        },
        "groups": {"g": {"acc,none": 0.6, "acc_stderr,none": 0.02}},
        "n-samples": {"a": {"original": 10, "effective": 4}, "b": {"original": 6, "effective": 6}},
    }
    metrics, stderr, samples = extract_metrics(results)
    assert metrics == {"a/acc": 0.5, "a/em:strict": 0.25, "b/acc": 0.75, "g/acc": 0.6}
    assert stderr == {"a/acc": 0.1, "b/acc": 0.05, "g/acc": 0.02}
    assert samples == 10
    single, single_err, _ = extract_metrics({"results": {"a": {"acc,none": 0.5, "acc_stderr,none": 0.1}}})
    assert single == {"acc": 0.5} and single_err == {"acc": 0.1}


def test_in_child_process(harbour_model, recorder):
    progress = recorder()
    spec = hf.model_spec(harbour_model, hf.dataset(hf.CLOZE_JSONL), TASK)
    result = run_in_child("lm-eval", spec, progress, timeout_s=600, memory_mb=hf.CHILD_MEMORY_MB)
    assert result.metrics == run(harbour_model).metrics
    assert set(result.stderr) == {"acc", "acc_norm"}
    assert progress.calls[-1] == (4 * ITEMS, 4 * ITEMS)


EVIL_TASK = """task: evil_task
dataset_path: json
dataset_kwargs:
  data_files:
    test: tinylm_cloze.jsonl
output_type: multiple_choice
test_split: test
doc_to_text: !function evil.doc_to_text
doc_to_choice: choices
doc_to_target: label
metric_list:
  - metric: acc
"""


def uploaded_task_folder(root, marker):  # type: ignore[no-untyped-def]
    """A task folder as an uploader would craft it: YAML whose !function imports an uploaded .py."""
    folder = root / "media" / "artifacts" / "mallory" / "tasks"
    folder.mkdir(parents=True)
    (folder / "evil_task.yaml").write_text(EVIL_TASK)
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('code ran')\n\ndef doc_to_text(doc):\n    return doc['context']\n"
    )
    (folder / "tinylm_cloze.jsonl").write_text(hf.CLOZE_JSONL.read_text())
    return folder


@pytest.fixture
def inside_the_project():  # type: ignore[no-untyped-def]
    """A folder where uploads used to live: var/media inside the checkout (the old default MEDIA_ROOT)."""
    import uuid

    root = hf.REPO / "var" / f"test-uploads-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_uploaded_task_yaml_with_function_is_refused_and_never_imported(harbour_model, tmp_path, inside_the_project):
    marker = tmp_path / "PWNED"
    folder = uploaded_task_folder(inside_the_project, marker)
    relative = str(folder.relative_to(hf.REPO))
    for include_path in (relative, str(folder), "fixtures/tinylm/tasks/../../../" + relative):
        with pytest.raises(RunnerError) as info:
            run(harbour_model, {"tasks": ["evil_task"], "include_path": include_path}, data=None)
        assert info.value.reason == "invalid_config"
        assert "not an allowed task folder" in info.value.message
    assert not marker.exists()


def test_the_task_folder_allowlist_is_the_operators(harbour_model, tmp_path, monkeypatch):
    shipped = tmp_path / "operator-tasks"
    shutil.copytree(hf.TASKS_DIR, shipped)
    monkeypatch.setenv("MC_LMEVAL_TASK_DIRS", str(shipped))
    result = run(harbour_model, {"include_path": str(shipped), "limit": 2})
    assert result.samples == 2
    # The shipped folder is no longer allowed once the operator's list leaves it out.
    with pytest.raises(RunnerError) as info:
        run(harbour_model, {"limit": 2})
    assert info.value.reason == "invalid_config"

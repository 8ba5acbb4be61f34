"""Folder artifacts (no extra needed): naming, refusal before reading, verification, staging, registration."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from workers.runners.base import ArtifactSpec, DatasetSpec, RunnerError, RunSpec
from workers.runners.hf_folder import (
    StagedFolder,
    artifact_name,
    check_dataset,
    check_folder_inputs,
    folder_artifacts,
    format_for,
    is_oom,
)

REPO = Path(__file__).resolve().parents[3]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (folder / "model.safetensors").write_bytes(b"not really safetensors, never parsed here")
    (folder / "vocab.txt").write_text("a\nb\n")
    (folder / ".gitattributes").write_text("*.bin lfs")
    (folder / "README.md").write_text("# card")
    return folder


def spec_of(artifacts, dataset=None) -> RunSpec:
    return RunSpec(job_id="j", artifacts=tuple(artifacts), dataset=dataset, config={})


def test_folder_artifacts_lists_loadable_files_with_names_and_hashes(model_folder):
    arts = folder_artifacts(model_folder)
    assert [(a.name, a.format) for a in arts] == [
        ("1_Pooling/config.json", "json"),
        ("config.json", "json"),
        ("model.safetensors", "safetensors"),
        ("vocab.txt", "txt"),
    ]
    for a in arts:
        assert a.sha256 == sha(Path(a.path).read_bytes())
        assert a.size_bytes == Path(a.path).stat().st_size
    everything = folder_artifacts(model_folder, formats=None)
    assert "README.md" in {a.name for a in everything}
    assert ".gitattributes" not in {a.name for a in everything}


def test_format_for():
    assert format_for("x/model.safetensors") == "safetensors"
    assert format_for("pytorch_model.BIN") == "bin"
    assert format_for("weights.pt") == "pt"
    assert format_for("tokenizer.model") == "other"


def test_run_spec_round_trips_artifact_names(model_folder):
    spec = spec_of(folder_artifacts(model_folder))
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.artifacts[0].name == "1_Pooling/config.json"
    # A serialized spec from before names existed still loads.
    old = spec.to_dict()
    for a in old["artifacts"]:
        del a["name"]
    assert RunSpec.from_dict(old).artifacts[0].name is None


def test_staging_lays_files_out_by_name_and_leaves_the_rest_out(model_folder, tmp_path):
    # Storage keeps every file in its own directory; only the names give the layout back.
    stored = []
    for a in folder_artifacts(model_folder):
        where = tmp_path / "storage" / a.sha256[:16]
        where.mkdir(parents=True, exist_ok=True)
        target = where / Path(a.path).name
        target.write_bytes(Path(a.path).read_bytes())
        stored.append(ArtifactSpec(path=str(target), sha256=a.sha256, format=a.format, name=a.name))
    (model_folder / "pytorch_model.bin").write_bytes(b"stray pickle next to the weights")
    files = check_folder_inputs(spec_of(stored), runner_key="t")
    with StagedFolder(files) as staged:
        listing = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if not p.is_dir())
        assert listing == ["1_Pooling/config.json", "config.json", "model.safetensors", "vocab.txt"]
        assert (staged / "1_Pooling" / "config.json").read_text() == '{"pooling_mode_mean_tokens": true}'
        root = staged
    assert not root.exists()


@pytest.mark.parametrize("fmt,name", [("bin", "pytorch_model.bin"), ("pickle", "weights"), ("json", "model.pt")])
def test_unsafe_artifact_refused_before_any_file_is_read(model_folder, tmp_path, fmt, name):
    missing = tmp_path / "nowhere" / name  # were it opened, this would be artifact_unavailable
    arts = [*folder_artifacts(model_folder), ArtifactSpec(str(missing), "0" * 64, fmt, name=name)]
    with pytest.raises(RunnerError) as info:
        check_folder_inputs(spec_of(arts), runner_key="t")
    assert info.value.reason == "unsafe_format"


def test_sha_mismatch_refused(model_folder):
    arts = list(folder_artifacts(model_folder))
    arts[1] = ArtifactSpec(arts[1].path, "f" * 64, arts[1].format, name=arts[1].name)
    with pytest.raises(RunnerError) as info:
        check_folder_inputs(spec_of(arts), runner_key="t")
    assert info.value.reason == "hash_mismatch"
    assert "config.json" in info.value.message


def test_missing_file_is_unavailable(model_folder):
    arts = list(folder_artifacts(model_folder))
    os.unlink(arts[0].path)
    with pytest.raises(RunnerError) as info:
        check_folder_inputs(spec_of(arts), runner_key="t")
    assert info.value.reason == "artifact_unavailable"


def test_weights_must_be_safetensors(model_folder):
    arts = [a for a in folder_artifacts(model_folder) if a.format != "safetensors"]
    with pytest.raises(RunnerError) as info:
        check_folder_inputs(spec_of(arts), runner_key="t")
    assert info.value.reason == "artifact_unavailable"
    assert "safetensors" in info.value.message


@pytest.mark.parametrize("name", ["../escape.json", "/etc/passwd.json", "a/../../b.json", "."])
def test_names_stay_inside_the_folder(model_folder, name):
    arts = [*folder_artifacts(model_folder)]
    arts[0] = ArtifactSpec(arts[0].path, arts[0].sha256, "json", name=name)
    with pytest.raises(RunnerError) as info:
        check_folder_inputs(spec_of(arts), runner_key="t")
    assert info.value.reason == "invalid_config"


def test_duplicate_names_refused(model_folder):
    # Without names, "config.json" and "1_Pooling/config.json" collide.
    arts = [ArtifactSpec(a.path, a.sha256, a.format) for a in folder_artifacts(model_folder)]
    with pytest.raises(RunnerError) as info:
        check_folder_inputs(spec_of(arts), runner_key="t")
    assert info.value.reason == "invalid_config"
    assert "config.json" in info.value.message


def test_other_formats_refused(model_folder, tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"x")
    arts = [*folder_artifacts(model_folder), ArtifactSpec(str(onnx), sha(b"x"), "onnx", name="model.onnx")]
    with pytest.raises(RunnerError) as info:
        check_folder_inputs(spec_of(arts), runner_key="t")
    assert info.value.reason == "invalid_config"


def test_artifact_name_defaults_to_file_name():
    assert artifact_name(ArtifactSpec("/x/y/config.json", "0" * 64, "json")) == "config.json"
    assert artifact_name(ArtifactSpec("/x/y/z", "0" * 64, "json", name="sub\\tok.json")) == "sub/tok.json"


def test_check_dataset(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"a": 1}\n')
    spec = spec_of([], DatasetSpec(str(data), sha(data.read_bytes())))
    assert check_dataset(spec, runner_key="t", formats=("jsonl",)) == (str(data), "jsonl")
    for bad, reason in [
        (DatasetSpec(str(data), "0" * 64), "hash_mismatch"),
        (DatasetSpec(str(tmp_path / "absent.jsonl")), "artifact_unavailable"),
        (DatasetSpec(str(data), format="csv"), "invalid_config"),
        (DatasetSpec(str(tmp_path / "d.pkl")), "unsafe_format"),
    ]:
        with pytest.raises(RunnerError) as info:
            check_dataset(spec_of([], bad), runner_key="t", formats=("jsonl",))
        assert info.value.reason == reason
    with pytest.raises(RunnerError) as info:
        check_dataset(spec_of([]), runner_key="t", formats=("jsonl",))
    assert info.value.reason == "invalid_config"


def test_is_oom_follows_the_exception_chain():
    try:
        try:
            raise OSError("libfoo.so: failed to map segment from shared object")
        except OSError as inner:
            raise ImportError("the install seems broken") from inner
    except ImportError as exc:
        assert is_oom(exc)
    assert is_oom(MemoryError())
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: (Cannot allocate memory)"))
    assert not is_oom(ValueError("bad value"))


# --- extras -------------------------------------------------------------------------------------


def test_require_extra_names_the_extra():
    from workers.runners.hf_folder import require_extra

    require_extra("core", "json", "os")
    with pytest.raises(ImportError, match=r"\[hf\] extra is not installed \(missing: no_such_module_4\)"):
        require_extra("hf", "json", "no_such_module_4")

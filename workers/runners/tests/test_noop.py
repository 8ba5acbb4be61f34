"""The noop runner: no inputs, trivial metric, progress, cancel, failure drill; also through the sandbox."""

from __future__ import annotations

import pytest

from workers.runners.base import JobCancelled, RunnerError, RunSpec
from workers.runners.noop import NoopRunner
from workers.runners.registry import available_runners, get_runner
from workers.runners.sandbox import run_in_child


def bare_spec(config=None, **kwargs) -> RunSpec:
    return RunSpec(job_id="noop-job", artifacts=(), dataset=None, config=dict(config or {}), **kwargs)


def test_registered_as_a_core_runner():
    assert available_runners()["noop"] is NoopRunner
    assert isinstance(get_runner("noop"), NoopRunner)


def test_returns_trivial_metric_without_artifacts_or_dataset(recorder):
    progress = recorder()
    result = NoopRunner().run(bare_spec(seed=3), progress)
    assert result.metrics == {"ok": 1.0}
    assert result.stderr == {}
    assert result.runner == "noop" and result.runner_version == "1.0.0"
    assert result.environment["seed"] == 3
    assert progress.calls == [(0, 1), (1, 1)]


def test_sleep_in_steps_reports_monotonic_progress(recorder):
    progress = recorder()
    result = NoopRunner().run(bare_spec({"sleep_s": 0.05, "steps": 5}), progress)
    assert progress.calls == [(i, 5) for i in range(6)]
    assert result.samples == 5
    assert result.duration_s >= 0.05


def test_cancel_between_steps(recorder):
    progress = recorder(raise_at=2, exc=JobCancelled())
    with pytest.raises(JobCancelled):
        NoopRunner().run(bare_spec({"steps": 10}), progress)
    assert progress.calls[-1] == (2, 10)


def test_fail_drill_is_a_runner_error():
    with pytest.raises(RunnerError) as info:
        NoopRunner().run(bare_spec({"fail": True}), lambda d, t: None)
    assert info.value.reason == "runner_error"


@pytest.mark.parametrize("config", [{"sleep_s": -1}, {"steps": 0}, {"fail": "yes"}, {"unknown": 1}, {"sleep_s": "1"}])
def test_invalid_config(config):
    with pytest.raises(RunnerError) as info:
        NoopRunner().run(bare_spec(config), lambda d, t: None)
    assert info.value.reason == "invalid_config"


def test_ignores_artifacts_and_dataset_it_does_not_need(tmp_path):
    from workers.runners.base import ArtifactSpec, DatasetSpec

    spec = RunSpec(
        job_id="noop-job",
        artifacts=(ArtifactSpec(path=str(tmp_path / "absent.onnx"), sha256="0" * 64, format="onnx"),),
        dataset=DatasetSpec(path=str(tmp_path / "absent.jsonl")),
        config={},
    )
    assert NoopRunner().run(spec, lambda d, t: None).metrics == {"ok": 1.0}


def test_in_child_process(recorder):
    progress = recorder()
    result = run_in_child("noop", bare_spec({"steps": 3}), progress, timeout_s=60, memory_mb=512)
    assert result.metrics == {"ok": 1.0}
    assert progress.calls[-1] == (3, 3)
    assert [d for d, _ in progress.calls] == sorted(d for d, _ in progress.calls)


def test_in_child_process_failure_and_cancel(recorder):
    with pytest.raises(RunnerError) as info:
        run_in_child("noop", bare_spec({"fail": True}), lambda d, t: None, timeout_s=60, memory_mb=None)
    assert info.value.reason == "runner_error"
    progress = recorder(raise_at=1, exc=JobCancelled())
    with pytest.raises(JobCancelled):
        run_in_child("noop", bare_spec({"sleep_s": 20, "steps": 20}), progress, timeout_s=60, memory_mb=None)
    assert progress.calls[-1][0] == 1

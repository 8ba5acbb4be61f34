"""run_in_child: the runner in a child process, with timeout, memory limit and cancellation."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import time
from dataclasses import replace
from pathlib import Path

import pytest

from workers.runners.base import ArtifactSpec, JobCancelled, RunnerError, RunSpec
from workers.runners.onnx_classification import OnnxClassificationRunner
from workers.runners.sandbox import child_environment, run_in_child
from workers.runners.tests.fake_runners import MODULE

TIMEOUT = 60


def noop(done: int, total: int) -> None:
    pass


def fake_spec(**config) -> RunSpec:
    return RunSpec(job_id="fake", artifacts=(), dataset=None, config=config)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)
    except OSError:
        return False


def assert_dead(pid_file: Path) -> None:
    """The child whose pid is in ``pid_file`` no longer exists (or is at most a zombie being reaped)."""
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if _is_zombie(pid):  # exited, waiting for a (possibly non-reaping) init to reap it
            return
        time.sleep(0.05)
    pytest.fail(f"child {pid} is still alive")


def test_success_matches_in_process(digits_spec, recorder):
    spec = digits_spec(model="digits-mlp-int8.onnx", config={"batch_size": 64})
    progress = recorder()
    in_child = run_in_child("onnx-classification", spec, progress, timeout_s=TIMEOUT, memory_mb=None)
    in_process = OnnxClassificationRunner().run(spec, noop)
    assert in_child.metrics["accuracy"] == in_process.metrics["accuracy"]
    assert in_child.metrics["accuracy"] > 0.9
    assert in_child.metrics["macro_f1"] == in_process.metrics["macro_f1"]
    assert in_child.samples == 450
    assert in_child.runner == "onnx-classification"
    assert in_child.stderr["accuracy"] == pytest.approx(in_process.stderr["accuracy"])
    dones = [d for d, _ in progress.calls]
    assert dones == sorted(set(dones)) and dones[-1] == 450
    assert any(line.startswith("metrics: accuracy=") for line in in_child.log)
    assert in_child.environment["seed"] == 0


def test_success_with_a_generous_memory_limit(digits_spec):
    result = run_in_child("onnx-classification", digits_spec(), noop, timeout_s=TIMEOUT, memory_mb=2048)
    assert result.metrics["accuracy"] > 0.9


def test_timeout_kills_the_child(tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(RunnerError) as info:
        run_in_child(
            f"{MODULE}:SlowRunner",
            fake_spec(seconds=60, steps=60, pid_file=str(pid_file)),
            noop,
            timeout_s=2.0,
            memory_mb=None,
        )
    assert info.value.reason == "timeout"
    assert "2 s" in info.value.message
    assert time.monotonic() - started < 15
    assert_dead(pid_file)


def test_memory_limit_breach_is_out_of_memory():
    with pytest.raises(RunnerError) as info:
        run_in_child(
            f"{MODULE}:MemoryHogRunner", fake_spec(allocate_mb=1024), noop, timeout_s=TIMEOUT, memory_mb=200
        )
    assert info.value.reason == "out_of_memory"
    assert "200 MiB" in info.value.message


def test_allocation_within_the_limit_succeeds():
    result = run_in_child(
        f"{MODULE}:MemoryHogRunner", fake_spec(allocate_mb=16), noop, timeout_s=TIMEOUT, memory_mb=1024
    )
    assert result.environment["allocated"] == 16 * 1024 * 1024


def test_cancel_kills_the_child_and_reraises(tmp_path, recorder):
    pid_file = tmp_path / "pid"
    progress = recorder(raise_at=2, exc=JobCancelled())
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        run_in_child(
            f"{MODULE}:SlowRunner",
            fake_spec(seconds=30, steps=100, pid_file=str(pid_file)),
            progress,
            timeout_s=TIMEOUT,
            memory_mb=None,
        )
    assert time.monotonic() - started < 15
    assert max(d for d, _ in progress.calls) < 100
    assert_dead(pid_file)


def test_cancel_onnx_run_between_batches(digits_spec, recorder):
    progress = recorder(raise_at=1, exc=JobCancelled())
    with pytest.raises(JobCancelled):
        run_in_child(
            "onnx-classification",
            digits_spec(config={"batch_size": 1}),
            progress,
            timeout_s=TIMEOUT,
            memory_mb=None,
        )
    assert max(d for d, _ in progress.calls) < 450


def test_runner_error_keeps_reason_and_message():
    with pytest.raises(RunnerError) as info:
        run_in_child(
            f"{MODULE}:FailingRunner",
            fake_spec(reason="artifact_unavailable", message="object store said 404"),
            noop,
            timeout_s=TIMEOUT,
            memory_mb=None,
        )
    assert info.value.reason == "artifact_unavailable"
    assert info.value.message == "object store said 404"


def test_other_exception_is_runner_error_with_traceback():
    with pytest.raises(RunnerError) as info:
        run_in_child(f"{MODULE}:CrashingRunner", fake_spec(), noop, timeout_s=TIMEOUT, memory_mb=None)
    assert info.value.reason == "runner_error"
    assert "ValueError: boom from the fake runner" in info.value.message
    assert "fake_runners.py" in info.value.message and "_inner" in info.value.message
    assert any("Traceback" in line for line in info.value.log_tail)


def test_hard_crash_is_runner_error():
    with pytest.raises(RunnerError) as info:
        run_in_child(f"{MODULE}:AbortingRunner", fake_spec(), noop, timeout_s=TIMEOUT, memory_mb=None)
    assert info.value.reason == "runner_error"
    assert "SIGABRT" in info.value.message
    assert "about to abort" in info.value.log_tail


def test_child_environment_is_offline(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db/x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("MC_HARMLESS", "kept")
    names = [
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTPS_PROXY",
        "http_proxy",
        "HF_TOKEN",
        "DATABASE_URL",
        "MC_HARMLESS",
    ]
    result = run_in_child(
        f"{MODULE}:EnvRunner", fake_spec(names=names), noop, timeout_s=TIMEOUT, memory_mb=None
    )
    env = result.environment["env"]
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HTTPS_PROXY"] is None and env["http_proxy"] is None
    assert env["HF_TOKEN"] is None and env["DATABASE_URL"] is None
    assert env["MC_HARMLESS"] == "kept"
    assert result.environment["pid"] != os.getpid()
    # Stray prints, even one that looks like a protocol message, end up in the log, not the result.
    assert result.metrics == {"ok": 1.0}
    assert any("stray print from a runner" in line for line in result.log)


def test_child_environment_helper():
    env = child_environment(
        256, base={"PATH": "/bin", "ALL_PROXY": "socks5://x", "AWS_SECRET_ACCESS_KEY": "s"}
    )
    assert env["PATH"] == "/bin"
    assert "ALL_PROXY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(__file__).resolve().parents[3])


def test_unsafe_artifact_refused_in_child(digits_spec, tmp_path):
    marker = tmp_path / "PWNED"
    from workers.runners.tests.test_onnx_classification import Touch

    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(Touch(marker)))
    unsafe = ArtifactSpec(str(pkl), hashlib.sha256(pkl.read_bytes()).hexdigest(), "pickle")
    with pytest.raises(RunnerError) as info:
        run_in_child(
            "onnx-classification",
            replace(digits_spec(), artifacts=(unsafe,)),
            noop,
            timeout_s=TIMEOUT,
            memory_mb=None,
        )
    assert info.value.reason == "unsafe_format"
    assert not marker.exists()


def test_hash_mismatch_in_child(digits_spec):
    spec = digits_spec()
    bad = replace(spec.artifacts[0], sha256="0" * 64)
    with pytest.raises(RunnerError) as info:
        run_in_child(
            "onnx-classification", replace(spec, artifacts=(bad,)), noop, timeout_s=TIMEOUT, memory_mb=None
        )
    assert info.value.reason == "hash_mismatch"


@pytest.mark.parametrize("key", ["no-such-runner", "no_such_module_xyz:Runner", f"{MODULE}:NotARunner"])
def test_unknown_runner_is_invalid_config(key):
    with pytest.raises(RunnerError) as info:
        run_in_child(key, fake_spec(), noop, timeout_s=TIMEOUT, memory_mb=None)
    assert info.value.reason == "invalid_config"


def test_works_from_a_daemonic_process(digits_spec):
    """Celery prefork children are daemonic: multiprocessing could not start a child there."""
    from workers.runners.tests.fake_runners import run_in_daemon

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=run_in_daemon, args=(digits_spec().to_dict(), out), daemon=True)
    proc.start()
    try:
        status, value = out.get(timeout=120)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    assert status == "ok", value
    assert value > 0.9


def test_child_exits_when_the_worker_is_killed(tmp_path):
    """A SIGKILLed worker must not leave its runner child computing: the child sees stdin EOF."""
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "pid"
    script = (
        "from workers.runners.base import RunSpec\n"
        "from workers.runners.sandbox import run_in_child\n"
        f"spec = RunSpec('x', (), None, {{'seconds': 60, 'steps': 60, 'pid_file': {str(pid_file)!r}}})\n"
        f"run_in_child('{MODULE}:SlowRunner', spec, lambda d, t: None, timeout_s=120, memory_mb=None)\n"
    )
    root = Path(__file__).resolve().parents[3]
    worker = subprocess.Popen(
        [sys.executable, "-c", script], cwd=root, env={**os.environ, "PYTHONPATH": str(root)}
    )
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()):
            assert time.monotonic() < deadline, "the runner child never started"
            assert worker.poll() is None, "the worker script exited early"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert_dead(pid_file)
    finally:
        if worker.poll() is None:
            worker.kill()

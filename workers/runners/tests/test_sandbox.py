"""run_in_child: the runner in a sandboxed child process, with timeout, limits, cancellation, and the sandbox's
confinement (user, network, files, environment, processes)."""

from __future__ import annotations

import glob
import hashlib
import multiprocessing
import os
import pickle
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from workers.runners.base import ArtifactSpec, DatasetSpec, JobCancelled, RunnerError, RunSpec
from workers.runners.onnx_classification import OnnxClassificationRunner
from workers.runners.sandbox import SandboxPolicy, child_environment, run_in_child, sandbox_status
from workers.runners.tests.fake_runners import MODULE, ProbeRunner
from workers.runners.tests.sandbox_support import (
    assert_gone,
    assert_namespace_empty,
    is_runner_child,
    requires_namespaces,
    requires_root,
    runner_children,
)

TIMEOUT = 60
PROJECT_ROOT = Path(__file__).resolve().parents[3]
PROBE = f"{MODULE}:ProbeRunner"


def noop(done: int, total: int) -> None:
    pass


def fake_spec(**config) -> RunSpec:
    return RunSpec(job_id="fake", artifacts=(), dataset=None, config=config)


class Watcher:
    """A progress callback that notes the sandbox processes while the run is on (use it with a runner that is
    still running when it reports)."""

    def __init__(self, raise_at: int | None = None):
        self.raise_at = raise_at
        self.calls: list[tuple[int, int]] = []
        self.pids: set[int] = set()

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))
        self.pids |= runner_children()
        if self.raise_at is not None and done >= self.raise_at:
            raise JobCancelled()


def probe(policy: SandboxPolicy | None = None, spec: RunSpec | None = None, progress=noop, **config):
    return run_in_child(PROBE, spec or fake_spec(**config), progress, timeout_s=TIMEOUT, memory_mb=None, policy=policy)


def in_process(**config):
    """The same probe without a sandbox: the control that shows the target is really there."""
    return ProbeRunner().run(fake_spec(**config), noop)


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


def test_timeout_kills_the_child():
    watcher = Watcher()
    started = time.monotonic()
    with pytest.raises(RunnerError) as info:
        run_in_child(f"{MODULE}:SlowRunner", fake_spec(seconds=60, steps=60), watcher, timeout_s=2.0, memory_mb=None)
    assert info.value.reason == "timeout"
    assert "2 s" in info.value.message
    assert time.monotonic() - started < 15
    assert_gone(watcher.pids)


def test_memory_limit_breach_is_out_of_memory():
    with pytest.raises(RunnerError) as info:
        run_in_child(f"{MODULE}:MemoryHogRunner", fake_spec(allocate_mb=1024), noop, timeout_s=TIMEOUT, memory_mb=200)
    assert info.value.reason == "out_of_memory"
    assert "200 MiB" in info.value.message


def test_allocation_within_the_limit_succeeds():
    result = run_in_child(
        f"{MODULE}:MemoryHogRunner", fake_spec(allocate_mb=16), noop, timeout_s=TIMEOUT, memory_mb=1024
    )
    assert result.environment["allocated"] == 16 * 1024 * 1024


def test_cancel_kills_the_child_and_reraises():
    watcher = Watcher(raise_at=2)
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        run_in_child(
            f"{MODULE}:SlowRunner", fake_spec(seconds=30, steps=100), watcher, timeout_s=TIMEOUT, memory_mb=None
        )
    assert time.monotonic() - started < 15
    assert max(d for d, _ in watcher.calls) < 100
    assert_gone(watcher.pids)


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


def test_child_environment_is_an_allowlist(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db/x")
    monkeypatch.setenv("SECRET_KEY", "django-secret")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("MC_HARMLESS", "looks harmless, still not passed")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("PATH", "/opt/evil/bin:" + os.environ["PATH"])
    result = run_in_child(f"{MODULE}:EnvRunner", fake_spec(names=[]), noop, timeout_s=TIMEOUT, memory_mb=None)
    assert result.environment["pid"] != os.getpid()
    env = probe(action="whoami").environment["env"]
    for name in (
        "HTTPS_PROXY",
        "http_proxy",
        "HF_TOKEN",
        "DATABASE_URL",
        "SECRET_KEY",
        "MC_HARMLESS",
        "DJANGO_SETTINGS_MODULE",
        "CELERY_BROKER_URL",
        "VIRTUAL_ENV",
    ):
        assert name not in env, name
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1" and env["HF_DATASETS_OFFLINE"] == "1"
    assert env["OMP_NUM_THREADS"] == "3"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["LANG"] == "C.UTF-8"
    assert env["HOME"] == env["TMPDIR"] and Path(env["HOME"]).name == "tmp"
    # Stray prints, even one that looks like a protocol message, end up in the log, not the result.
    assert result.metrics == {"ok": 1.0}
    assert any("stray print from a runner" in line for line in result.log)


def test_child_environment_helper():
    env = child_environment(
        256,
        base={
            "PATH": "/bin",
            "ALL_PROXY": "socks5://x",
            "AWS_SECRET_ACCESS_KEY": "s",
            "OMP_NUM_THREADS": "2",
            "SECRET_KEY": "k",
            "PYTHONPATH": "/elsewhere",
        },
        home="/run/private",
        task_dirs=("/srv/tasks", "/srv/more"),
    )
    assert set(env) >= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONPATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert "ALL_PROXY" not in env and "AWS_SECRET_ACCESS_KEY" not in env and "SECRET_KEY" not in env
    assert env["HOME"] == env["TMPDIR"] == "/run/private"
    assert env["OMP_NUM_THREADS"] == "2" and env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["PYTHONPATH"] == str(PROJECT_ROOT)
    assert env["MC_LMEVAL_TASK_DIRS"] == "/srv/tasks,/srv/more"


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
        run_in_child("onnx-classification", replace(spec, artifacts=(bad,)), noop, timeout_s=TIMEOUT, memory_mb=None)
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


def test_child_exits_when_the_worker_is_killed():
    """A SIGKILLed worker must not leave its runner child computing: the child sees stdin EOF."""
    import signal
    import subprocess

    script = (
        "from workers.runners.base import RunSpec\n"
        "from workers.runners.sandbox import run_in_child\n"
        "spec = RunSpec('x', (), None, {'seconds': 60, 'steps': 60})\n"
        f"run_in_child('{MODULE}:SlowRunner', spec, lambda d, t: None, timeout_s=120, memory_mb=None)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    )
    try:
        deadline = time.monotonic() + 60
        seen: set[int] = set()
        while not any(is_runner_child(pid) for pid in seen):
            assert time.monotonic() < deadline, "the runner child never started"
            assert worker.poll() is None, "the worker script exited early"
            time.sleep(0.05)
            seen = runner_children(worker.pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert_gone(seen)
    finally:
        if worker.poll() is None:
            worker.kill()


# -- the sandbox ----------------------------------------------------------------------------------------


@requires_namespaces
def test_strict_sandbox_is_available_here():
    status = sandbox_status(SandboxPolicy())
    assert status.available, status.detail
    assert status.mode == "strict" and status.namespaces
    assert status.user == ("nobody" if os.geteuid() == 0 else None)


@requires_namespaces
def test_child_runs_unprivileged_in_its_own_namespaces_and_folder(tmp_path):
    artifact = tmp_path / "weights.onnx"
    artifact.write_text("staged bytes")
    data = tmp_path / "data.jsonl"
    data.write_text("{}\n")
    spec = RunSpec(
        job_id="x",
        artifacts=(ArtifactSpec(str(artifact), "0" * 64, "onnx"),),
        dataset=DatasetSpec(str(data)),
        config={"action": "whoami"},
    )
    env = probe(spec=spec).environment
    if os.geteuid() == 0:
        assert env["uid"] == 65534 and env["gid"] == 65534 and set(env["groups"]) <= {65534}
    assert env["hostname"] == "sandbox"
    for kind in ("pid", "net", "mnt", "ipc"):
        assert env["namespaces"][kind] != os.readlink(f"/proc/self/ns/{kind}"), f"the child shares our {kind} namespace"
    assert env["pid"] <= 3  # bubblewrap's init is 1 in the child's own PID space
    # Inputs are staged into the run's private folder (the originals are not handed over), names kept.
    [staged] = env["inputs"]
    assert staged != str(artifact) and Path(staged).name == "weights.onnx"
    assert env["contents"] == ["staged bytes"]
    assert env["dataset"] != str(data) and Path(env["dataset"]).name == "data.jsonl"
    assert Path(env["cwd"]) == Path(env["env"]["HOME"])
    assert not Path(staged).exists(), "the private run folder outlives the run"


def _device(path: str) -> int:
    return os.stat(path).st_dev


@requires_namespaces
@pytest.mark.parametrize("work_dir", ["", "/dev/shm"])
def test_inputs_are_shared_not_copied_and_read_only(tmp_path, work_dir):
    if work_dir and (not os.path.isdir(work_dir) or _device(work_dir) == _device(str(tmp_path))):
        pytest.skip(f"{work_dir} is not another filesystem here")
    artifact = tmp_path / "weights.onnx"
    artifact.write_text("the original")
    artifact.chmod(0o644)
    spec = RunSpec(
        job_id="x",
        artifacts=(ArtifactSpec(str(artifact), "0" * 64, "onnx"),),
        dataset=None,
        config={"action": "whoami"},
    )
    policy = SandboxPolicy(work_dir=work_dir)
    env = probe(policy, spec=spec).environment
    # The same file (a hard link, or across filesystems a read-only mount of it), not a copy of gigabytes.
    assert env["inodes"] == [os.stat(artifact).st_ino]
    with pytest.raises(RunnerError) as info:
        probe(policy, spec=replace(spec, config={"action": "tamper"}))
    assert info.value.reason == "sandbox_violation"
    assert artifact.read_text() == "the original"


@requires_namespaces
def test_opening_a_socket_is_a_sandbox_violation():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert in_process(action="connect", host="127.0.0.1", port=port).environment["connected"]  # control
        for host, target in (("127.0.0.1", port), ("192.0.2.1", 80)):
            with pytest.raises(RunnerError) as info:
                probe(action="connect", host=host, port=target)
            assert info.value.reason == "sandbox_violation", info.value.message
            assert "no network" in info.value.message


@pytest.fixture
def checkout(tmp_path):
    """A checkout laid out like the real one (workers/, .env, var/ with a SQLite database), whose workers/runners
    the child imports: what it must not read sits where it sits in a real deployment."""
    root = tmp_path / "checkout"
    shutil.copytree(PROJECT_ROOT / "workers", root / "workers", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".env").write_text("SECRET_KEY=the-platform-secret\nDATABASE_URL=postgres://u:p@db/x\n")
    (root / "var").mkdir()
    with sqlite3.connect(root / "var" / "modelcommons.sqlite3") as db:
        db.execute("CREATE TABLE accounts_token (digest TEXT)")
    (root / "platform" / "modelcommons").mkdir(parents=True)
    (root / "platform" / "modelcommons" / "settings.py").write_text("SECRET_KEY = 'also secret'\n")
    return root


@requires_namespaces
@pytest.mark.parametrize("target", [".env", "var/modelcommons.sqlite3", "platform/modelcommons/settings.py"])
def test_reading_the_platforms_files_is_a_sandbox_violation(checkout, target):
    path = checkout / target
    assert in_process(action="read", path=str(path)).environment["size"] > 0  # control: it is there and readable
    policy = SandboxPolicy(code_root=str(checkout), task_dirs=())
    with pytest.raises(RunnerError) as info:
        probe(policy, action="read", path=str(path))
    assert info.value.reason == "sandbox_violation", info.value.message
    assert str(path) in info.value.message
    # The same child reads its own inputs, so it is the sandbox, not a broken child, that said no.
    assert probe(policy, action="whoami").environment["uid"] is not None


@requires_namespaces
@pytest.mark.parametrize("relative", ["pyproject.toml", ".git/config", "apps/accounts/models.py"])
def test_the_real_code_tree_is_not_visible(relative):
    path = PROJECT_ROOT / relative
    if not path.exists():
        pytest.skip(f"{relative} is not part of this checkout")
    with pytest.raises(RunnerError) as info:
        probe(action="read", path=str(path))
    assert info.value.reason == "sandbox_violation", info.value.message


@requires_namespaces
def test_reading_another_jobs_artifact_is_a_sandbox_violation(tmp_path):
    # Stored artifacts, as Django's storage leaves them: world-readable files in the media folder.
    media = tmp_path / "media" / "artifacts" / "bob"
    media.mkdir(parents=True)
    bobs = media / "private-weights.onnx"
    bobs.write_bytes(b"bob's weights")
    bobs.chmod(0o644)
    assert in_process(action="read", path=str(bobs)).environment["size"] == 13  # control
    with pytest.raises(RunnerError) as info:
        probe(action="read", path=str(bobs))
    assert info.value.reason == "sandbox_violation", info.value.message

    # And the staged copy of a job that runs at the same moment.
    spec = RunSpec(
        job_id="bob",
        artifacts=(ArtifactSpec(str(bobs), "0" * 64, "onnx"),),
        dataset=None,
        config={"seconds": 30, "steps": 300},
    )
    stop = threading.Event()

    def stop_soon(done: int, total: int) -> None:
        if stop.is_set():
            raise JobCancelled()

    errors: list[BaseException] = []

    def run_bob() -> None:
        try:
            run_in_child(f"{MODULE}:SlowRunner", spec, stop_soon, timeout_s=TIMEOUT, memory_mb=None)
        except JobCancelled:
            pass
        except BaseException as exc:
            errors.append(exc)

    bob = threading.Thread(target=run_bob)
    bob.start()
    try:
        pattern = os.path.join(tempfile.gettempdir(), "mc-sandbox-*", "inputs", "000", "private-weights.onnx")
        deadline = time.monotonic() + 30
        while not (staged := glob.glob(pattern)):
            assert time.monotonic() < deadline and bob.is_alive(), errors
            time.sleep(0.05)
        assert Path(staged[0]).read_bytes() == b"bob's weights"  # control: the staged copy is there
        with pytest.raises(RunnerError) as info:
            probe(action="read", path=staged[0])
        assert info.value.reason == "sandbox_violation", info.value.message
        # The other runs' private folders are not even listed.
        listed = probe(action="listdir", path=tempfile.gettempdir()).environment["entries"]
        assert len([e for e in listed if e.startswith("mc-sandbox-")]) == 1
    finally:
        stop.set()
        bob.join(timeout=30)
    assert not errors


@requires_namespaces
def test_a_fork_bomb_hits_the_process_limit_and_leaves_nothing_behind():
    watcher = Watcher()
    with pytest.raises(RunnerError) as info:
        probe(SandboxPolicy(max_processes=64), action="fork_bomb", progress=watcher)
    assert info.value.reason == "sandbox_violation", info.value.message
    assert "process limit (64" in info.value.message
    # The bomb's PID namespace, reported before it went off (after the probe's opening ``progress(0, 1)``, which the
    # runner may or may not have flushed yet). Forked copies may flush the same report again from their inherited
    # buffer before the limit stops them, so the report can come more than once, always the same.
    inodes = {total for _, total in watcher.calls if total != 1}
    assert len(inodes) == 1, watcher.calls
    (inode,) = inodes
    assert_namespace_empty(f"pid:[{inode}]")


@requires_namespaces
def test_writing_past_the_file_size_limit_is_a_sandbox_violation():
    # Relative paths: in the run's private folder (its working directory).
    assert probe(SandboxPolicy(max_file_mb=4), action="write", path="small", size_mb=2)
    with pytest.raises(RunnerError) as info:
        probe(SandboxPolicy(max_file_mb=4), action="write", path="big", size_mb=8)
    assert info.value.reason == "sandbox_violation", info.value.message
    assert "file-size limit (4 MiB)" in info.value.message


@requires_namespaces
def test_writing_outside_the_private_folder_is_refused(tmp_path):
    with pytest.raises(RunnerError) as info:
        probe(action="write", path=str(PROJECT_ROOT / "workers" / "runners" / "planted.py"), size_mb=1)
    assert info.value.reason == "sandbox_violation", info.value.message
    assert not (PROJECT_ROOT / "workers" / "runners" / "planted.py").exists()


def test_missing_bubblewrap_refuses_the_run():
    policy = SandboxPolicy(bwrap="/nonexistent/bwrap")
    with pytest.raises(RunnerError) as info:
        run_in_child("noop", fake_spec(), noop, timeout_s=TIMEOUT, memory_mb=None, policy=policy)
    assert info.value.reason == "sandbox_unavailable"
    assert "bubblewrap" in info.value.message and "MC_SANDBOX=weak" in info.value.message
    assert not sandbox_status(policy).available


@requires_root
def test_unknown_sandbox_user_refuses_the_run():
    with pytest.raises(RunnerError) as info:
        probe(SandboxPolicy(user="no-such-user-mc"), action="whoami")
    assert info.value.reason == "sandbox_unavailable"
    assert "no-such-user-mc" in info.value.message


def test_weak_mode_keeps_the_environment_allowlist_the_private_folder_and_the_originals(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "django-secret")
    policy = SandboxPolicy(mode="weak", user="")
    status = sandbox_status(policy)
    assert status.available and status.mode == "weak" and not status.namespaces
    assert "no namespaces" in status.detail
    env = probe(policy, action="whoami").environment
    assert "SECRET_KEY" not in env["env"]
    assert Path(env["cwd"]).name == "tmp" and env["env"]["HOME"] == env["cwd"]
    # Without namespaces or another user, the child could write a shared file: it gets a copy.
    artifact = tmp_path / "weights.onnx"
    artifact.write_text("the original")
    spec = RunSpec(
        job_id="x",
        artifacts=(ArtifactSpec(str(artifact), "0" * 64, "onnx"),),
        dataset=None,
        config={"action": "tamper"},
    )
    assert probe(policy, spec=spec).environment["tampered"]
    assert artifact.read_text() == "the original"


@requires_root
def test_weak_mode_refuses_when_protected_files_are_readable_by_others():
    folder = Path(tempfile.mkdtemp(prefix="mc-test-protected-"))  # in /tmp: traversable by everyone
    try:
        folder.chmod(0o755)
        secret = folder / ".env"
        secret.write_text("SECRET_KEY=x")
        secret.chmod(0o644)
        exposed = SandboxPolicy(mode="weak", protected_paths=(str(secret),))
        status = sandbox_status(exposed)
        assert not status.available
        assert str(secret) in status.detail and "readable by other users" in status.detail
        with pytest.raises(RunnerError) as info:
            probe(exposed, action="whoami")
        assert info.value.reason == "sandbox_unavailable"
        secret.chmod(0o600)
        assert "readable by other users" not in sandbox_status(replace(exposed, max_file_mb=1023)).detail
    finally:
        shutil.rmtree(folder)


def test_invalid_mode_is_refused():
    with pytest.raises(ValueError, match="MC_SANDBOX"):
        SandboxPolicy(mode="off")

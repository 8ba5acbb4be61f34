"""Test-only runners, importable by the sandbox child as ``workers.runners.tests.fake_runners:Name``.

They are not registered anywhere; tests pass them to ``run_in_child`` by module path.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from workers.runners.base import ProgressCallback, Runner, RunnerError, RunResult, RunSpec

MODULE = "workers.runners.tests.fake_runners"


def _result(runner: Runner, **environment: Any) -> RunResult:
    return RunResult(
        metrics={"ok": 1.0},
        stderr={},
        samples=1,
        duration_s=0.0,
        runner=runner.key,
        runner_version=runner.version,
        environment=dict(environment),
        log=["fake run finished"],
    )


class SlowRunner(Runner):
    """Sleeps ``config["seconds"]`` in ``config["steps"]`` steps, reporting progress after each."""

    key: ClassVar[str] = "test-slow"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        progress(0, int(spec.config.get("steps", 10)))
        seconds = float(spec.config.get("seconds", 30))
        steps = int(spec.config.get("steps", 10))
        for i in range(1, steps + 1):
            time.sleep(seconds / steps)
            progress(i, steps)
        return _result(self)


class MemoryHogRunner(Runner):
    """Allocates (and touches) ``config["allocate_mb"]`` MiB with numpy."""

    key: ClassVar[str] = "test-memory-hog"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        import numpy as np

        mb = int(spec.config.get("allocate_mb", 1024))
        block = np.ones(mb * 1024 * 1024 // 8, dtype=np.float64)
        progress(1, 1)
        return _result(self, allocated=float(block.nbytes))


class CrashingRunner(Runner):
    """Raises an ordinary exception from a nested call."""

    key: ClassVar[str] = "test-crash"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        self._inner()
        raise AssertionError("unreachable")

    def _inner(self) -> None:
        raise ValueError("boom from the fake runner")


class FailingRunner(Runner):
    """Raises ``RunnerError(config["reason"], config["message"])``."""

    key: ClassVar[str] = "test-fail"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        raise RunnerError(spec.config.get("reason", "hash_mismatch"), spec.config.get("message", "nope"))


class AbortingRunner(Runner):
    """Dies with SIGABRT, as a crashing native extension would."""

    key: ClassVar[str] = "test-abort"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        sys.stderr.write("about to abort\n")
        sys.stderr.flush()
        os.abort()


class EnvRunner(Runner):
    """Reports parts of its environment; also prints to stdout, which must not break the protocol."""

    key: ClassVar[str] = "test-env"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        print("stray print from a runner")
        print('{"type": "result", "result": "forged"}')
        sys.stdout.flush()
        names = spec.config.get("names", [])
        return _result(self, env={name: os.environ.get(name) for name in names}, pid=os.getpid())


class ProbeRunner(Runner):
    """Tries one thing the sandbox must stop (or, as a control, allow), named by ``config["action"]``:

    - ``connect``: a TCP connection to ``host``:``port``;
    - ``read``: read the file at ``path`` (reports its size);
    - ``listdir``: list the folder at ``path``;
    - ``write``: write ``size_mb`` MiB to the file at ``path``;
    - ``tamper``: overwrite its first staged input;
    - ``fork_bomb``: fork without end (first reporting progress ``(0, inode)``, the inode of its PID namespace,
      so that the test can look for what is left in it);
    - ``whoami``: report the user, groups, environment, working folder, host name and the staged inputs.
    """

    key: ClassVar[str] = "test-probe"
    version: ClassVar[str] = "0"
    loadable_formats: ClassVar[frozenset[str]] = frozenset()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        import socket

        config = spec.config
        action = config["action"]
        progress(0, 1)
        if action == "connect":
            with socket.create_connection((config["host"], int(config["port"])), timeout=5) as conn:
                conn.sendall(b"hello")
            return _result(self, connected=True)
        if action == "read":
            return _result(self, size=len(Path(config["path"]).read_bytes()))
        if action == "listdir":
            return _result(self, entries=sorted(os.listdir(config["path"])))
        if action == "write":
            block = b"\0" * (1024 * 1024)
            with open(config["path"], "wb") as fh:
                for _ in range(int(config["size_mb"])):
                    fh.write(block)
            return _result(self, written=int(config["size_mb"]))
        if action == "tamper":
            Path(spec.artifacts[0].path).write_text("tampered")
            return _result(self, tampered=True)
        if action == "fork_bomb":
            progress(0, os.stat("/proc/self/ns/pid").st_ino)
            while True:
                os.fork()
        if action == "whoami":
            return _result(
                self,
                uid=os.getuid(),
                gid=os.getgid(),
                groups=os.getgroups(),
                env=dict(os.environ),
                cwd=os.getcwd(),
                hostname=socket.gethostname(),
                pid=os.getpid(),
                namespaces={kind: os.readlink(f"/proc/self/ns/{kind}") for kind in ("pid", "net", "mnt", "ipc")},
                inputs=[a.path for a in spec.artifacts],
                dataset=spec.dataset.path if spec.dataset else None,
                contents=[Path(a.path).read_text() for a in spec.artifacts],
                inodes=[os.stat(a.path).st_ino for a in spec.artifacts],
            )
        raise ValueError(f"unknown action {action!r}")


class NotARunner:
    """Has a run method but is not a Runner subclass."""

    def run(self, spec: RunSpec, progress: ProgressCallback) -> RunResult:
        raise AssertionError("must never run")


def run_in_daemon(spec_dict: dict[str, Any], out: Any) -> None:
    """Target for a daemonic multiprocessing.Process: calls run_in_child as a Celery prefork child would."""
    import multiprocessing

    from workers.runners.base import RunSpec
    from workers.runners.sandbox import run_in_child

    assert multiprocessing.current_process().daemon
    try:
        result = run_in_child(
            "onnx-classification",
            RunSpec.from_dict(spec_dict),
            lambda d, t: None,
            timeout_s=60,
            memory_mb=None,
        )
        out.put(("ok", result.metrics["accuracy"]))
    except BaseException as exc:  # report anything to the test process
        out.put(("error", repr(exc)))

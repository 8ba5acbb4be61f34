"""Run a runner in a child process with a wall-clock timeout and a memory limit.

:func:`run_in_child` starts ``python -m workers.runners.sandbox_child`` with :class:`subprocess.Popen`
(not :mod:`multiprocessing`, which cannot start a process from a daemonic Celery prefork worker) and
talks to it with JSON lines: the request on the child's stdin, progress and the outcome on its
stdout. See :mod:`workers.runners.sandbox_child` for the protocol.

- The child runs in its own session (process group); every way out of :func:`run_in_child` kills
  that group if it is still alive, so no orphan keeps computing.
- The child exits by itself if its stdin reaches EOF, i.e. if the parent dies.
- ``memory_mb`` becomes the child's soft ``RLIMIT_AS`` (address space, which includes the
  interpreter and its libraries: onnxruntime alone maps about 200 MiB), applied after the runner's
  module has been imported and before ``run`` is called.
- The child gets an environment without network proxies or obvious credentials, with
  ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from workers.runners.base import ProgressCallback, RunnerError, RunResult, RunSpec
from workers.runners.sandbox_child import (
    EXIT_BAD_REQUEST,
    EXIT_OUT_OF_MEMORY,
    EXIT_PARENT_GONE,
    looks_like_oom,
)

#: How many lines of the child's stderr are kept for the log.
STDERR_TAIL_LINES = 50
#: How many traceback lines go into a ``runner_error`` message.
TRACEBACK_LINES = 12
#: Seconds the child gets to exit after it reported its outcome.
_EXIT_GRACE_S = 5.0

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
    "NO_PROXY": "*",
    "no_proxy": "*",
}
# Variables the child must not inherit: network proxies, and credentials of the platform itself
# (database, broker, Django secret, cloud and hub tokens). Runners need none of them.
_STRIPPED_ENV = re.compile(
    r"(^|_)(PROXY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|API_KEY|ACCESS_KEY)($|_)"
    r"|^(AWS|GOOGLE|AZURE|DJANGO|CELERY|DATABASE|REDIS|POSTGRES|PG)[A-Z_]*$"
    r"|_URL$",
    re.IGNORECASE,
)
_KEEP_ENV = {"NO_PROXY", "no_proxy"}


def child_environment(memory_mb: int | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a sandbox child, derived from ``base`` (default: this process's)."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k in _KEEP_ENV or not _STRIPPED_ENV.search(k)}
    env.update(_OFFLINE_ENV)
    pythonpath = [_PROJECT_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(pythonpath))
    if memory_mb:
        # OpenBLAS reserves address space per thread; under RLIMIT_AS that budget is better spent
        # on the model.
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _read_stdout(stream: IO[bytes], events: queue.Queue[tuple[str, Any]]) -> None:
    try:
        for raw in stream:
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                message = json.loads(text)
            except ValueError:
                events.put(("noise", text))
                continue
            if isinstance(message, dict):
                events.put(("message", message))
            else:
                events.put(("noise", text))
    except (OSError, ValueError):
        pass
    finally:
        events.put(("eof", None))


def _read_stderr(stream: IO[bytes], tail: deque[str]) -> None:
    try:
        for raw in stream:
            tail.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
    except (OSError, ValueError):
        pass


def _error(reason: str, message: str, tail: list[str]) -> RunnerError:
    err = RunnerError(reason, message)
    err.log_tail = list(tail)
    return err


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_in_child(
    runner_key: str,
    spec: RunSpec,
    progress: ProgressCallback,
    *,
    timeout_s: float,
    memory_mb: int | None,
) -> RunResult:
    """Run ``runner_key`` on ``spec`` in a child process and return its result.

    ``runner_key`` is a registered key or ``"package.module:ClassName"``. ``progress`` is called
    in this process for the child's progress reports (consecutive reports that queue up while
    ``progress`` is busy are merged into the latest one); if it raises :class:`JobCancelled`, the
    child is killed and ``JobCancelled`` is re-raised.

    Raises :class:`RunnerError` with reason ``timeout`` (wall clock exceeded), ``out_of_memory``
    (a ``MemoryError`` in the child or a child killed by an allocation failure), the child's own
    reason for a ``RunnerError`` raised there, or ``runner_error`` otherwise. The error's
    ``log_tail`` holds the last lines of the child's stderr. On success the stderr lines that are
    not already in ``RunResult.log`` are appended to it.
    """
    if timeout_s <= 0:
        raise RunnerError("invalid_config", "timeout_s must be positive")
    request = json.dumps({"runner": runner_key, "spec": spec.to_dict(), "memory_mb": memory_mb}) + "\n"
    deadline = time.monotonic() + timeout_s
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.runners.sandbox_child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_environment(memory_mb),
        close_fds=True,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out_thread = threading.Thread(target=_read_stdout, args=(proc.stdout, events), daemon=True)
    err_thread = threading.Thread(target=_read_stderr, args=(proc.stderr, stderr_tail), daemon=True)
    out_thread.start()
    err_thread.start()

    def tail() -> list[str]:
        err_thread.join(timeout=1.0)
        return list(stderr_tail)

    outcome: dict[str, Any] | None = None
    last_progress: tuple[int, int] | None = None
    try:
        try:
            proc.stdin.write(request.encode("utf-8"))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child died at once; its exit status tells why

        pending: tuple[str, Any] | None = None
        while outcome is None:
            if pending is not None:
                kind, payload = pending
                pending = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    kind, payload = events.get(timeout=remaining)
                except queue.Empty:
                    continue
            if kind == "eof":
                break
            if kind == "noise":
                stderr_tail.append(f"[stdout] {payload}")
                continue
            mtype = payload.get("type")
            if mtype == "progress":
                # Merge reports that queued up while the callback was busy.
                while True:
                    try:
                        nxt = events.get_nowait()
                    except queue.Empty:
                        break
                    if nxt[0] == "message" and nxt[1].get("type") == "progress":
                        payload = nxt[1]
                        continue
                    pending = nxt
                    break
                last_progress = (int(payload["done"]), int(payload["total"]))
                try:
                    progress(*last_progress)
                except BaseException:  # JobCancelled above all: stop the child now, then re-raise
                    _kill_group(proc)
                    raise
            elif mtype in ("result", "error"):
                outcome = payload
            else:
                stderr_tail.append(f"[stdout] {payload}")

        if outcome is None and time.monotonic() >= deadline and proc.poll() is None:
            _kill_group(proc)
            raise _timeout_error(timeout_s, last_progress, tail())

        # The child reported (or closed stdout); let it exit.
        wait_s = max(0.1, deadline - time.monotonic()) if outcome is None else _EXIT_GRACE_S
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            if outcome is None:
                raise _timeout_error(timeout_s, last_progress, tail())
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        _kill_group(proc)
        # The child is gone: the readers hit EOF promptly (unless a grandchild kept the pipes).
        out_thread.join(timeout=1.0)
        err_thread.join(timeout=1.0)
        for stream in (proc.stdout, proc.stderr):
            if not (out_thread.is_alive() or err_thread.is_alive()):
                with contextlib.suppress(OSError):
                    stream.close()

    lines = list(stderr_tail)
    if outcome is not None and outcome.get("type") == "result":
        result = RunResult.from_dict(outcome["result"])
        known = set(result.log)
        extra = [line for line in lines if not any(line.endswith(k) for k in known if k)]
        if extra:
            result.log.extend(f"[stderr] {line}" for line in extra)
        return result
    if outcome is not None:
        reason = str(outcome.get("reason") or "runner_error")
        message = str(outcome.get("message") or "")
        if reason == "runner_error" and outcome.get("traceback"):
            tb_lines = [ln for ln in str(outcome["traceback"]).rstrip().splitlines() if ln.strip()]
            message = message + "\n" + "\n".join(tb_lines[-TRACEBACK_LINES:])
        try:
            err = RunnerError(reason, message)
        except ValueError:
            err = RunnerError("runner_error", f"{reason}: {message}")
        err.log_tail = lines
        raise err
    raise _exit_status_error(proc.returncode, memory_mb, lines)


def _timeout_error(timeout_s: float, last_progress: tuple[int, int] | None, lines: list[str]) -> RunnerError:
    where = f" at {last_progress[0]}/{last_progress[1]} samples" if last_progress else ""
    return _error("timeout", f"the run exceeded its wall-clock limit of {timeout_s:g} s{where}", lines)


def _exit_status_error(returncode: int | None, memory_mb: int | None, lines: list[str]) -> RunnerError:
    """Explain a child that exited without reporting an outcome."""
    text = "\n".join(lines)
    last = "; ".join(line for line in lines[-3:] if line.strip())
    if returncode == EXIT_OUT_OF_MEMORY:
        return _error("out_of_memory", f"the run exceeded its memory limit of {memory_mb} MiB", lines)
    if returncode is not None and returncode < 0:
        sig = -returncode
        if sig == signal.SIGKILL:
            return _error(
                "out_of_memory",
                "the runner process was killed (SIGKILL), most likely by the out-of-memory killer",
                lines,
            )
        if looks_like_oom(text) or (memory_mb and sig in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS)):
            limit = f" of {memory_mb} MiB" if memory_mb else ""
            return _error(
                "out_of_memory",
                f"the runner process died with {_signal_name(sig)} after an allocation failure "
                f"(memory limit{limit})",
                lines,
            )
        return _error("runner_error", f"the runner process died with {_signal_name(sig)}: {last}", lines)
    if looks_like_oom(text):
        return _error("out_of_memory", f"the runner process ran out of memory: {last}", lines)
    if returncode == EXIT_PARENT_GONE:
        return _error("runner_error", "the runner process lost its connection to the worker", lines)
    if returncode == EXIT_BAD_REQUEST:
        return _error("runner_error", f"the runner process could not read its request: {last}", lines)
    return _error(
        "runner_error", f"the runner process exited with status {returncode} without a result: {last}", lines
    )


__all__ = ["child_environment", "run_in_child"]

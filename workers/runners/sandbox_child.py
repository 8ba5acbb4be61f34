"""Child side of :func:`workers.runners.sandbox.run_in_child`.

Run as ``python -m workers.runners.sandbox_child``.

Protocol (JSON lines):

- stdin, one line from the parent: ``{"runner": key, "spec": RunSpec.to_dict(), "memory_mb": int | null,
  "limits": {"nproc": n, "fsize_mb": n, "nofile": n, "cpu_s": n}, "visible": [path, ...]}``; stdin then stays
  open: when it reaches EOF (the parent closed it or died) the child exits at once;
- stdout, from the child: ``{"type": "progress", "done": n, "total": n}`` per progress call, then exactly
  one ``{"type": "result", "result": RunResult.to_dict()}`` or
  ``{"type": "error", "reason": ..., "message": ..., "exception": ..., "traceback": ...}``.

File descriptor 1 is redirected to stderr before the runner is imported, so stray ``print`` calls
of a runner or its libraries cannot corrupt the protocol; the protocol uses a private duplicate of
the original stdout. Log records (level INFO and up) go to stderr, which the parent keeps a tail of.

``limits`` become the child's rlimits (soft and hard, so the runner cannot raise them) before the runner
is imported; ``memory_mb`` becomes ``RLIMIT_AS`` after the import. ``visible`` lists the folders the
sandbox shows: a run that ends on a missing file outside them, a denied file or network operation, or a
process or file-size limit is reported as ``sandbox_violation`` (:func:`sandbox_violation`).
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import socket
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from workers.runners.base import JobCancelled, RunnerError, RunSpec
from workers.runners.registry import get_runner

#: Exit status when the child ran out of memory and could not even report it.
EXIT_OUT_OF_MEMORY = 86
#: Exit status when the parent went away (stdin reached EOF) before the run finished.
EXIT_PARENT_GONE = 87
#: Exit status for a request the child could not parse.
EXIT_BAD_REQUEST = 88

_OOM_HINTS = (
    "bad_alloc",
    "failed to allocate",
    "out of memory",
    "cannot allocate memory",
    "memoryerror",
    "failed to map segment",
    "memory allocation failed",
)


def looks_like_oom(text: str) -> bool:
    """Heuristic: does an error text describe an allocation failure?"""
    lowered = text.lower()
    return any(hint in lowered for hint in _OOM_HINTS)


_MIB = 1024 * 1024
_NETWORK_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETDOWN, errno.EAFNOSUPPORT}
)
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _set_limit(resource_id: int, soft: int, hard: int | None = None) -> None:
    import resource

    hard = soft if hard is None else hard
    _cur_soft, cur_hard = resource.getrlimit(resource_id)
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(resource_id, (soft, hard))


def apply_limits(limits: Mapping[str, Any] | None) -> None:
    """Lower this process's rlimits, soft and hard: processes, file size, open files, CPU time, core dumps."""
    import resource

    limits = limits or {}
    _set_limit(resource.RLIMIT_CORE, 0)
    if limits.get("nproc"):
        _set_limit(resource.RLIMIT_NPROC, int(limits["nproc"]))
    if limits.get("fsize_mb"):
        _set_limit(resource.RLIMIT_FSIZE, int(limits["fsize_mb"]) * _MIB)
    if limits.get("nofile"):
        _set_limit(resource.RLIMIT_NOFILE, int(limits["nofile"]))
    if limits.get("cpu_s"):
        # SIGXCPU at the soft limit, SIGKILL at the hard one.
        _set_limit(resource.RLIMIT_CPU, int(limits["cpu_s"]), int(limits["cpu_s"]) + 5)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _inside(path: str, roots: list[str]) -> bool:
    path = os.path.abspath(path)
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def sandbox_violation(exc: BaseException, visible: list[str] | None, limits: Mapping[str, Any] | None) -> str | None:
    """What the sandbox blocked, when ``exc`` (or an exception it was raised from) is the sandbox saying no:
    a network operation, a file outside the folders it shows (``visible``, strict mode only), a denied
    access, the process, file-size or open-files limit. None for anything else."""
    limits = limits or {}
    for err in _chain(exc):
        if isinstance(err, RuntimeError) and "can't start new thread" in str(err):
            return f"the sandbox's process limit ({limits.get('nproc')} processes and threads) was reached: {err}"
        if not isinstance(err, OSError):
            continue
        where = f" ({err.filename})" if err.filename else ""
        if isinstance(err, socket.gaierror) or err.errno in _NETWORK_ERRNOS:
            return f"the sandbox has no network: {type(err).__name__}: {err}"
        if err.errno in _DENIED_ERRNOS:
            return f"the sandbox denied an operation{where}: {err.strerror or err}"
        if (
            err.errno == errno.ENOENT
            and isinstance(err.filename, str)
            and visible
            and not _inside(err.filename, visible)
        ):
            return f"{err.filename} is outside the sandbox (it only shows the runner's code and staged inputs)"
        if err.errno == errno.EAGAIN and isinstance(err, BlockingIOError) and not err.filename:
            return f"the sandbox's process limit ({limits.get('nproc')} processes and threads) was reached: {err}"
        if err.errno == errno.EFBIG:
            return f"the sandbox's file-size limit ({limits.get('fsize_mb')} MiB) was reached{where}"
        if err.errno in (errno.EMFILE, errno.ENFILE):
            return f"the sandbox's open-files limit ({limits.get('nofile')}) was reached"
    return None


def _apply_memory_limit(memory_mb: int | None) -> None:
    """Lower the soft RLIMIT_AS (address space) to ``memory_mb`` MiB."""
    if not memory_mb:
        return
    import resource

    # The hard limit leaves room to report a MemoryError (_relax_memory_limit), and no more: the runner
    # cannot lift it.
    limit = int(memory_mb) * _MIB
    _set_limit(resource.RLIMIT_AS, limit, limit + 256 * _MIB)


def _relax_memory_limit() -> None:
    """Give the address space back so that an out-of-memory failure can still be reported."""
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


class _Channel:
    """Thread-safe JSON-lines writer on the private protocol descriptor."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, default=str) + "\n"
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, OSError):
                os._exit(EXIT_PARENT_GONE)


def _watch_parent() -> None:
    """Exit as soon as stdin reaches EOF: the parent closed it or died."""
    try:
        while os.read(sys.stdin.fileno(), 65536):
            pass
    except (OSError, ValueError):
        pass
    os._exit(EXIT_PARENT_GONE)


def _exit(code: int) -> None:
    for stream in (sys.stderr, sys.stdout):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main() -> None:
    """Read one request, run the runner, report, and exit (never returns)."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    channel = _Channel(protocol)

    line = sys.stdin.buffer.readline()
    try:
        request = json.loads(line)
        runner_ref = str(request["runner"])
        spec = RunSpec.from_dict(request["spec"])
        memory_mb = request.get("memory_mb")
        limits = dict(request.get("limits") or {})
        visible = [str(p) for p in request.get("visible") or []]
    except (ValueError, KeyError, TypeError) as exc:
        print(f"sandbox child: bad request: {exc}", file=sys.stderr)
        _exit(EXIT_BAD_REQUEST)
        return
    threading.Thread(target=_watch_parent, name="parent-watch", daemon=True).start()

    def progress(done: int, total: int) -> None:
        channel.send({"type": "progress", "done": int(done), "total": int(total)})

    try:
        apply_limits(limits)
        # The parent resolved the name already (and decided whether module paths are allowed).
        runner = get_runner(runner_ref, allow_paths=True)
        _apply_memory_limit(memory_mb)
        result = runner.run(spec, progress)
        message: dict[str, Any] = {"type": "result", "result": result.to_dict()}
        del result
        channel.send(message)
        _exit(0)
    except MemoryError:
        _relax_memory_limit()
        gc.collect()
        try:
            channel.send(
                {
                    "type": "error",
                    "reason": "out_of_memory",
                    "message": (
                        f"the run exceeded its memory limit of {memory_mb} MiB"
                        if memory_mb
                        else "the run ran out of memory"
                    ),
                    "exception": "MemoryError",
                }
            )
        except MemoryError:
            _exit(EXIT_OUT_OF_MEMORY)
        _exit(0)
    except RunnerError as exc:
        _relax_memory_limit()
        channel.send({"type": "error", "reason": exc.reason, "message": exc.message, "exception": "RunnerError"})
        _exit(0)
    except JobCancelled as exc:
        channel.send({"type": "error", "reason": "cancelled", "message": str(exc) or "cancelled"})
        _exit(0)
    except BaseException as exc:  # noqa: BLE001 - everything else is a runner error
        _relax_memory_limit()
        text = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        blocked = sandbox_violation(exc, visible, limits)
        if blocked is not None:
            reason, explanation = "sandbox_violation", blocked
        elif looks_like_oom(text):
            reason = "out_of_memory"
            limit = f"its memory limit of {memory_mb} MiB" if memory_mb else "the available memory"
            explanation = f"the run exceeded {limit} ({text})"
        else:
            reason, explanation = "runner_error", text
        channel.send(
            {
                "type": "error",
                "reason": reason,
                "message": explanation,
                "exception": type(exc).__name__,
                "traceback": tb,
            }
        )
        _exit(0)


if __name__ == "__main__":
    main()

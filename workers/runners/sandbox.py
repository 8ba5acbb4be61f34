"""Run a runner in a sandboxed child process, with a wall-clock timeout and resource limits.

:func:`run_in_child` starts ``python -m workers.runners.sandbox_child`` with :class:`subprocess.Popen`
(not :mod:`multiprocessing`, which cannot start a process from a daemonic Celery prefork worker) and
talks to it with JSON lines: the request on the child's stdin, progress and the outcome on its
stdout. See :mod:`workers.runners.sandbox_child` for the protocol.

Every run gets a private folder (``mkdtemp``, removed afterwards) holding ``inputs/`` -- the spec's
artifacts and dataset, staged there by hard link (or by copy when a link cannot be made or would
not be readable) -- and ``tmp/``, the child's ``HOME`` and ``TMPDIR``. The child is handed the staged
paths only.

Two modes (:class:`SandboxPolicy`, ``MC_SANDBOX``):

``strict`` (the default) -- the child runs under bubblewrap (``bwrap``) in new user (when the worker
  is not root), PID, network, IPC, UTS and cgroup namespaces and a mount namespace that holds only
  what a runner needs, read-only: ``/usr`` and the system libraries, the Python installation and
  virtualenv, ``workers/runners`` of the checkout (nothing else of it: no ``.env``, no settings), the
  allowed task folders, and the run's ``inputs/``; its ``tmp/`` is the only writable place. There is
  no network (a fresh network namespace has only a loopback of its own). A root worker also drops
  the child to an unprivileged user (``nobody`` by default) with ``setpriv`` -- no capabilities, no
  supplementary groups, ``no_new_privs``. A worker that is not root cannot switch users; the
  namespaces still apply, and :func:`sandbox_status` says so. When bubblewrap is missing or the
  kernel refuses namespaces, sandboxed runs are refused with ``sandbox_unavailable``.

``weak`` (an operator's explicit choice, for hosts without namespaces) -- no namespaces: the child
  runs as the unprivileged user when the worker is root (refused if the Python installation is not
  readable by that user, or if one of the protected paths -- ``.env``, the database file, the data
  and media folders -- is readable by others), otherwise as the worker's own user, which can read
  whatever the worker can. The environment allowlist, the private folder and the limits still apply.

In both modes:

- the environment is an allowlist (:func:`child_environment`): ``PATH``, ``HOME``/``TMPDIR`` (the
  private ``tmp/``), ``LANG``, offline switches for the Hugging Face libraries, thread counts, and
  the allowed task folders; nothing of the worker's (no ``SECRET_KEY``, ``DATABASE_URL``, tokens);
- the child sets its own rlimits before the runner is imported (soft and hard: the runner cannot
  raise them): processes (``RLIMIT_NPROC``: a fork bomb stops there), file size, open files, CPU
  time, no core dumps; ``memory_mb`` becomes ``RLIMIT_AS`` once the runner's module is imported
  (address space, which includes the interpreter and its libraries: onnxruntime alone maps about
  200 MiB);
- the child runs in its own session; every way out of :func:`run_in_child` kills it (the process
  group; under bubblewrap, killing ``bwrap`` ends the PID namespace and every process in it), so no
  orphan keeps computing; the child also exits by itself if its stdin reaches EOF, i.e. if the
  parent dies;
- an operation the sandbox blocked (a network connection, a file outside the sandbox or not
  readable, the process or file-size limit) that ends the run is reported as ``sandbox_violation``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import queue
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from workers.runners.base import DatasetSpec, ProgressCallback, RunnerError, RunResult, RunSpec
from workers.runners.sandbox_child import (
    EXIT_BAD_REQUEST,
    EXIT_OUT_OF_MEMORY,
    EXIT_PARENT_GONE,
    looks_like_oom,
)

logger = logging.getLogger(__name__)

#: How many lines of the child's stderr are kept for the log.
STDERR_TAIL_LINES = 50
#: How many traceback lines go into a ``runner_error`` message.
TRACEBACK_LINES = 12
#: Seconds the child gets to exit after it reported its outcome.
_EXIT_GRACE_S = 5.0

STRICT = "strict"
WEAK = "weak"
MODES = (STRICT, WEAK)

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
#: The lm-eval task folders a job may name by default: the ones shipped with the platform.
DEFAULT_TASK_DIRS = (str(Path(_PROJECT_ROOT) / "fixtures" / "tinylm" / "tasks"),)
#: The environment variable that hands the task folder allowlist to the runner (comma-separated).
TASK_DIRS_ENV = "MC_LMEVAL_TASK_DIRS"

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "NO_PROXY": "*",
    "no_proxy": "*",
}
#: Variables copied from the worker's environment when set (thread counts only: they change speed, not results).
_PASSED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM")
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own empty tmpfs, not a file in the host's /tmp


@dataclass(frozen=True)
class SandboxPolicy:
    """How runner children are confined (the worker builds one from the ``MC_SANDBOX*`` settings).

    ``user`` is the user a root worker runs children as (a name or a numeric uid; empty: no switch).
    ``work_dir`` is where the private run folders are made (default: the system temporary folder; on
    the same filesystem as the media folder, artifacts are hard-linked instead of copied).
    ``task_dirs`` are the folders of task definitions a runner may read (lm-eval's ``include_path``
    allowlist); ``readonly_paths`` are further folders the child may read (the code of a runner
    installed outside the virtualenv). ``protected_paths`` must not be readable by the sandbox user in
    weak mode. ``code_root`` is the checkout whose ``workers/runners`` the child imports.
    """

    mode: str = STRICT
    user: str = "nobody"
    work_dir: str = ""
    task_dirs: tuple[str, ...] = DEFAULT_TASK_DIRS
    readonly_paths: tuple[str, ...] = ()
    protected_paths: tuple[str, ...] = ()
    max_processes: int = 512
    max_file_mb: int = 1024
    max_open_files: int = 4096
    code_root: str = _PROJECT_ROOT
    bwrap: str = "bwrap"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"MC_SANDBOX must be one of {', '.join(MODES)}, not {self.mode!r}")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SandboxPolicy:
        """The policy the ``MC_SANDBOX``, ``MC_SANDBOX_USER`` and ``MC_LMEVAL_TASK_DIRS`` environment variables
        describe (callers without Django settings: tests, scripts)."""
        source = os.environ if environ is None else environ
        defaults = cls()
        task_dirs = source.get(TASK_DIRS_ENV)
        return cls(
            mode=source.get("MC_SANDBOX", defaults.mode),
            user=source.get("MC_SANDBOX_USER", defaults.user),
            task_dirs=defaults.task_dirs if task_dirs is None else tuple(p for p in task_dirs.split(",") if p),
        )

    @classmethod
    def from_settings(cls, settings: Any) -> SandboxPolicy:
        """The worker's policy from its Django settings object (read by attribute: no Django import here).

        The protected paths are the project's ``.env``, the data folder, the media folder and a SQLite
        database file. A task folder inside the media or data folder is dropped: uploads never become
        task definitions."""
        media, var = str(settings.MEDIA_ROOT), str(settings.VAR_DIR)
        protected = [str(Path(settings.BASE_DIR) / ".env"), var, media]
        database = settings.DATABASES.get("default", {})
        if str(database.get("ENGINE", "")).endswith("sqlite3") and database.get("NAME"):
            protected.append(str(database["NAME"]))
        uploads = [os.path.realpath(media), os.path.realpath(var)]
        task_dirs = tuple(d for d in settings.MC_LMEVAL_TASK_DIRS if not _covered(os.path.realpath(d), uploads))
        return cls(
            mode=settings.MC_SANDBOX,
            user=settings.MC_SANDBOX_USER,
            work_dir=settings.MC_SANDBOX_DIR,
            task_dirs=task_dirs,
            readonly_paths=tuple(settings.MC_SANDBOX_READONLY_PATHS),
            protected_paths=tuple(protected),
            max_processes=settings.MC_SANDBOX_MAX_PROCESSES,
            max_file_mb=settings.MC_SANDBOX_MAX_FILE_MB,
        )


@dataclass(frozen=True)
class SandboxStatus:
    """What :func:`sandbox_status` found: can this process run sandboxed children, and how confined."""

    mode: str
    available: bool
    namespaces: bool
    user: str | None  # the user children run as when it differs from the worker's; None: no switch
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "available": self.available,
            "namespaces": self.namespaces,
            "user": self.user,
            "detail": self.detail,
        }


@dataclass
class _Run:
    """The private folder of one run."""

    root: Path
    inputs: Path
    tmp: Path
    visible: list[str] = field(default_factory=list)
    # (source, placeholder): inputs bubblewrap mounts read-only over their placeholder in inputs/ (strict mode,
    # where a hard link cannot be made: another filesystem)
    binds: list[tuple[str, str]] = field(default_factory=list)


# -- users and paths -----------------------------------------------------------------------------------


def _target_ids(policy: SandboxPolicy) -> tuple[int, int, str] | None:
    """``(uid, gid, name)`` of the sandbox user when this process is root and a user is configured."""
    if os.geteuid() != 0 or not policy.user:
        return None
    name = policy.user
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid, entry.pw_name
    except KeyError:
        if name.isdigit():
            return int(name), int(name), name
        raise RunnerError("sandbox_unavailable", f"the sandbox user {name!r} does not exist on this worker") from None


def _python_roots() -> list[str]:
    """The folders the interpreter needs: its installation and the virtualenv."""
    roots = {sys.base_prefix, sys.prefix, sys.exec_prefix, str(Path(os.path.realpath(sys.executable)).parents[1])}
    return sorted(r for r in roots if r)


def _covered(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _readable_by_others(path: str) -> bool:
    """Could a user that is neither the owner nor in the group reach and read ``path``?"""
    target = Path(path)
    if not target.exists():
        return False
    for parent in [*reversed(target.parents)][1:]:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(target).st_mode
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return bool(mode & need == need)


# -- the command ---------------------------------------------------------------------------------------


def _bwrap_args(policy: SandboxPolicy, run: _Run, ids: tuple[int, int, str] | None) -> list[str]:
    bwrap = shutil.which(policy.bwrap)
    if bwrap is None:
        raise RunnerError(
            "sandbox_unavailable",
            "bubblewrap (bwrap) is not installed on this worker: install it (apt-get install bubblewrap), or set "
            "MC_SANDBOX=weak to accept a sandbox without namespaces",
        )
    args = [
        bwrap,
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
    ]
    if os.geteuid() != 0:
        args.append("--unshare-user")
    bound = ["/usr"]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
            bound.append(name)
    # bubblewrap makes missing mount points 0700: every folder on the way to a mount is made 0755 first.
    for folder in ("/etc", "/sys", "/sys/devices", "/sys/devices/system"):
        args += ["--perms", "0755", "--dir", folder]
    for name in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        args += ["--ro-bind-try", name, name]
    # CPU topology only: thread pools (OpenMP, onnxruntime) size themselves from it.
    args += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    # An empty /tmp of its own (the run's folder is mounted inside it below).
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", _SANDBOX_TMP]
    made = {"/", _SANDBOX_TMP, "/proc", "/dev", "/etc", "/sys", "/sys/devices", "/sys/devices/system"}

    def mount(kind: str, source: str) -> None:
        for parent in reversed(Path(source).parents):
            if str(parent) not in made and not _covered(str(parent), bound):
                args.extend(["--perms", "0755", "--dir", str(parent)])
                made.add(str(parent))
        args.extend([kind, source, source])

    for root in _python_roots():
        if not _covered(root, bound):
            mount("--ro-bind", root)
            bound.append(root)
    code = Path(policy.code_root) / "workers"
    mount("--ro-bind", str(code / "__init__.py"))
    mount("--ro-bind", str(code / "runners"))
    for extra in (*policy.task_dirs, *policy.readonly_paths):
        real = os.path.realpath(extra)
        if os.path.exists(real) and not _covered(real, bound):
            mount("--ro-bind", real)
            bound.append(real)
    mount("--ro-bind", str(run.inputs))
    for source, placeholder in run.binds:
        args += ["--ro-bind", source, placeholder]
    mount("--bind", str(run.tmp))
    args += ["--chdir", str(run.tmp)]
    run.visible = [*bound, str(code / "runners"), str(run.inputs), str(run.tmp), "/proc", "/dev"]
    args.append("--")
    if ids is not None:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise RunnerError(
                "sandbox_unavailable",
                "setpriv (util-linux) is missing: a root worker cannot drop the runner child to an unprivileged user",
            )
        uid, gid, _ = ids
        args += [
            setpriv,
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return args


def _command(policy: SandboxPolicy, run: _Run, argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The full command line and the extra ``Popen`` arguments (the user switch in weak mode)."""
    ids = _target_ids(policy)
    if policy.mode == STRICT:
        return [*_bwrap_args(policy, run, ids), *argv], {}
    run.visible = []
    if ids is None:
        return argv, {}
    uid, gid, _ = ids
    return argv, {"user": uid, "group": gid, "extra_groups": []}


def child_environment(
    memory_mb: int | None = None,
    base: Mapping[str, str] | None = None,
    *,
    home: str | None = None,
    task_dirs: tuple[str, ...] = DEFAULT_TASK_DIRS,
    code_root: str = _PROJECT_ROOT,
) -> dict[str, str]:
    """The environment of a sandbox child: an allowlist, never the worker's secrets.

    From ``base`` (default: this process's environment) only the thread-count variables are kept;
    the rest is fixed: ``PATH``, ``HOME``/``TMPDIR`` (``home``, the run's private folder), ``LANG``,
    ``PYTHONPATH`` (the checkout, for ``workers.runners``), the Hugging Face offline switches, and the
    task folder allowlist.
    """
    source = os.environ if base is None else base
    env = {name: source[name] for name in _PASSED_ENV if name in source}
    env.update(_OFFLINE_ENV)
    env.update(
        {
            "PATH": _SAFE_PATH,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONPATH": code_root,
            TASK_DIRS_ENV: ",".join(task_dirs),
            "USER": "sandbox",
            "LOGNAME": "sandbox",
        }
    )
    if home:
        env.update(
            {
                "HOME": home,
                "TMPDIR": home,
                "HF_HOME": os.path.join(home, "hf"),
                "XDG_CACHE_HOME": os.path.join(home, "cache"),
            }
        )
    if memory_mb:
        # OpenBLAS reserves address space per thread; under RLIMIT_AS that budget is better spent
        # on the model.
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


# -- availability --------------------------------------------------------------------------------------


_STATUS: dict[SandboxPolicy, tuple[SandboxStatus, float]] = {}
_STATUS_LOCK = threading.Lock()
#: Seconds before a failed probe is tried again (a success holds for the life of the process).
RETRY_PROBE_AFTER_S = 60.0


def sandbox_status(policy: SandboxPolicy) -> SandboxStatus:
    """Can this process start sandboxed children under ``policy``? Probed once per process and policy (a failure
    again after :data:`RETRY_PROBE_AFTER_S`), and logged (a warning when runs will be refused).

    The probe starts the real command (bubblewrap, the user switch, the interpreter) on an empty run
    and imports the child module, so a missing tool, a kernel without namespaces or an interpreter the
    sandbox user cannot read all show up here, with the reason.
    """
    with _STATUS_LOCK:
        known = _STATUS.get(policy)
        if known is not None and (known[0].available or time.monotonic() - known[1] < RETRY_PROBE_AFTER_S):
            return known[0]
        status = _probe(policy)
        _STATUS[policy] = (status, time.monotonic())
    if status.available:
        logger.info("runner sandbox: %s", status.detail)
    else:
        logger.warning("runner sandbox unavailable, sandboxed jobs will be refused: %s", status.detail)
    return status


def _probe(policy: SandboxPolicy) -> SandboxStatus:
    try:
        ids = _target_ids(policy)
    except RunnerError as exc:
        return SandboxStatus(policy.mode, False, policy.mode == STRICT, None, exc.message)
    user = ids[2] if ids else None
    who = (
        f"children run as {user!r}"
        if user
        else "children run as the worker's own user (a worker that is not root cannot switch users)"
    )
    if policy.mode == WEAK and ids is not None:
        exposed = [p for p in policy.protected_paths if _readable_by_others(p)]
        if exposed:
            return SandboxStatus(
                WEAK,
                False,
                False,
                user,
                f"weak sandbox refused: readable by other users: {', '.join(exposed)} (chmod o-rwx them)",
            )
    try:
        with _private_run(policy, ids) as run:
            argv, extra = _command(policy, run, [sys.executable, "-c", "import workers.runners.sandbox_child"])
            env = child_environment(home=str(run.tmp), task_dirs=policy.task_dirs, code_root=policy.code_root)
            done = subprocess.run(
                argv,
                env=env,
                cwd=str(run.tmp),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                check=False,
                **extra,
            )
    except RunnerError as exc:
        return SandboxStatus(policy.mode, False, policy.mode == STRICT, user, exc.message)
    except (OSError, subprocess.SubprocessError) as exc:
        return SandboxStatus(
            policy.mode, False, policy.mode == STRICT, user, f"the sandbox cannot start a child: {exc}"
        )
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        hint = (
            "; install bubblewrap where the kernel allows namespaces, or set MC_SANDBOX=weak to accept a "
            "sandbox without them"
            if policy.mode == STRICT
            else ""
        )
        return SandboxStatus(
            policy.mode,
            False,
            policy.mode == STRICT,
            user,
            f"the sandbox cannot start a child (status {done.returncode}): {' '.join(err)}{hint}",
        )
    if policy.mode == STRICT:
        detail = (
            "strict: namespaces (no network, a private mount namespace showing only the runner's code and "
            f"staged inputs, own PID space); {who}"
        )
    else:
        detail = f"weak: no namespaces (the network and every file readable by that user stay reachable); {who}"
    return SandboxStatus(policy.mode, True, policy.mode == STRICT, user, detail)


# -- the private run folder ----------------------------------------------------------------------------


@contextlib.contextmanager
def _private_run(policy: SandboxPolicy, ids: tuple[int, int, str] | None) -> Any:
    root = Path(tempfile.mkdtemp(prefix="mc-sandbox-", dir=policy.work_dir or None))
    try:
        inputs, tmp = root / "inputs", root / "tmp"
        inputs.mkdir(mode=0o755)
        tmp.mkdir(mode=0o700)
        if ids is not None:
            uid, gid, _ = ids
            os.chown(tmp, uid, gid)
            os.chown(root, uid, gid)  # 0700: another sandbox user (weak mode) cannot look in
        yield _Run(root=root, inputs=inputs, tmp=tmp)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stage_file(source: str, dest: Path, run: _Run, *, strict: bool, switching: bool) -> str:
    """Put ``source`` at ``dest``, readable by the child and never writable through it; a missing source stays
    where it is (the runner then reports it unavailable).

    A hard link costs nothing; it is used when the child could not write the original through it (strict mode
    mounts inputs/ read-only; a switched user does not own the file). Across filesystems, strict mode mounts
    the file itself read-only over a placeholder. Otherwise (or when the sandbox user could not read the file)
    it is copied."""
    if not os.path.isfile(source):
        return source
    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = os.stat(source)
    readable = not switching or bool(st.st_mode & stat.S_IROTH)
    shareable = strict or (switching and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
    if readable and shareable:
        try:
            os.link(source, dest)
            return str(dest)
        except OSError:
            if strict:
                dest.touch(mode=0o444)
                run.binds.append((os.path.realpath(source), str(dest)))
                return str(dest)
    shutil.copyfile(source, dest)
    os.chmod(dest, 0o444)
    return str(dest)


def _stage(spec: RunSpec, run: _Run, *, strict: bool, switching: bool) -> RunSpec:
    """The spec with its artifacts and dataset staged into the run's ``inputs/`` (names kept)."""
    # One folder per artifact: files of a model folder may share a name ("1_Pooling/config.json" and
    # "config.json"); the file name itself is kept, since runners read the format from its suffix.
    artifacts = tuple(
        replace(
            a,
            path=_stage_file(
                a.path, run.inputs / f"{i:03d}" / Path(a.path).name, run, strict=strict, switching=switching
            ),
        )
        for i, a in enumerate(spec.artifacts)
    )
    dataset: DatasetSpec | None = spec.dataset
    if dataset is not None:
        staged = _stage_file(
            dataset.path, run.inputs / "dataset" / Path(dataset.path).name, run, strict=strict, switching=switching
        )
        dataset = replace(dataset, path=staged)
    return replace(spec, artifacts=artifacts, dataset=dataset)


# -- running -------------------------------------------------------------------------------------------


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


def _limits(policy: SandboxPolicy, timeout_s: float) -> dict[str, int]:
    # CPU time backs up the wall clock (which the parent enforces): every core busy for the whole run, plus slack.
    cpus = os.cpu_count() or 1
    return {
        "nproc": policy.max_processes,
        "fsize_mb": policy.max_file_mb,
        "nofile": policy.max_open_files,
        "cpu_s": int(timeout_s * cpus) + 60,
    }


def run_in_child(
    runner_key: str,
    spec: RunSpec,
    progress: ProgressCallback,
    *,
    timeout_s: float,
    memory_mb: int | None,
    policy: SandboxPolicy | None = None,
) -> RunResult:
    """Run ``runner_key`` on ``spec`` in a sandboxed child process and return its result.

    ``runner_key`` is a registered key or ``"package.module:ClassName"`` (its module must be under
    ``workers/runners`` or a path the policy makes readable). ``policy`` defaults to
    :meth:`SandboxPolicy.from_environ`. ``progress`` is called in this process for the child's
    progress reports (consecutive reports that queue up while ``progress`` is busy are merged into the
    latest one); if it raises :class:`JobCancelled`, the child is killed and ``JobCancelled`` is
    re-raised.

    Raises :class:`RunnerError` with reason ``sandbox_unavailable`` (the policy's sandbox cannot be
    set up here), ``timeout`` (wall clock or CPU time exceeded), ``out_of_memory`` (a ``MemoryError``
    in the child or a child killed by an allocation failure), ``sandbox_violation`` (the run ended on
    an operation the sandbox blocked), the child's own reason for a ``RunnerError`` raised there, or
    ``runner_error`` otherwise. The error's ``log_tail`` holds the last lines of the child's stderr.
    On success the stderr lines that are not already in ``RunResult.log`` are appended to it.
    """
    if timeout_s <= 0:
        raise RunnerError("invalid_config", "timeout_s must be positive")
    policy = policy or SandboxPolicy.from_environ()
    status = sandbox_status(policy)
    if not status.available:
        raise RunnerError("sandbox_unavailable", f"this worker refuses sandboxed runs: {status.detail}")
    ids = _target_ids(policy)
    with _private_run(policy, ids) as run:
        staged = _stage(spec, run, strict=policy.mode == STRICT, switching=ids is not None)
        argv, extra = _command(policy, run, [sys.executable, "-m", "workers.runners.sandbox_child"])
        env = child_environment(memory_mb, home=str(run.tmp), task_dirs=policy.task_dirs, code_root=policy.code_root)
        request = {
            "runner": runner_key,
            "spec": staged.to_dict(),
            "memory_mb": memory_mb,
            "limits": _limits(policy, timeout_s),
            "visible": run.visible,
        }
        return _run_child(
            argv,
            extra,
            env,
            str(run.tmp),
            request,
            progress,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            via_bwrap=policy.mode == STRICT,
        )


def _run_child(
    argv: list[str],
    extra: dict[str, Any],
    env: dict[str, str],
    cwd: str,
    request_data: dict[str, Any],
    progress: ProgressCallback,
    *,
    timeout_s: float,
    memory_mb: int | None,
    via_bwrap: bool,
) -> RunResult:
    request = json.dumps(request_data) + "\n"
    deadline = time.monotonic() + timeout_s
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            close_fds=True,
            start_new_session=True,
            **extra,
        )
    except OSError as exc:
        raise RunnerError("sandbox_unavailable", f"the sandbox cannot start the runner child: {exc}") from exc
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
                try:
                    last_progress = (int(payload["done"]), int(payload["total"]))
                except (KeyError, TypeError, ValueError):
                    stderr_tail.append(f"[stdout] {payload}")
                    continue
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
                raise _timeout_error(timeout_s, last_progress, tail()) from None
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
        try:
            result = RunResult.from_dict(outcome["result"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _error("runner_error", f"the runner child reported a malformed result: {exc}", lines) from exc
        known = set(result.log)
        extra_lines = [line for line in lines if not any(line.endswith(k) for k in known if k)]
        if extra_lines:
            result.log.extend(f"[stderr] {line}" for line in extra_lines)
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
    returncode = proc.returncode
    if via_bwrap and returncode is not None and returncode > 128:
        returncode = 128 - returncode  # bubblewrap exits with 128 + N for a child killed by signal N
    raise _exit_status_error(returncode, memory_mb, lines)


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
        if sig == signal.SIGXCPU:
            return _error("timeout", "the runner process exceeded its CPU-time limit", lines)
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
                f"the runner process died with {_signal_name(sig)} after an allocation failure (memory limit{limit})",
                lines,
            )
        return _error("runner_error", f"the runner process died with {_signal_name(sig)}: {last}", lines)
    if looks_like_oom(text):
        return _error("out_of_memory", f"the runner process ran out of memory: {last}", lines)
    if returncode == EXIT_PARENT_GONE:
        return _error("runner_error", "the runner process lost its connection to the worker", lines)
    if returncode == EXIT_BAD_REQUEST:
        return _error("runner_error", f"the runner process could not read its request: {last}", lines)
    return _error("runner_error", f"the runner process exited with status {returncode} without a result: {last}", lines)


__all__ = [
    "DEFAULT_TASK_DIRS",
    "MODES",
    "STRICT",
    "TASK_DIRS_ENV",
    "WEAK",
    "SandboxPolicy",
    "SandboxStatus",
    "child_environment",
    "run_in_child",
    "sandbox_status",
]

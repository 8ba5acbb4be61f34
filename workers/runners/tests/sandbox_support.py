"""Helpers for the sandbox tests: does this kernel make namespaces, and which processes are a sandbox's."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest


def _kernel_refuses_namespaces() -> str | None:
    """Why this kernel cannot make the namespaces of the strict sandbox (None: it can). Probed with util-linux's
    unshare, independently of bubblewrap: a missing bwrap is an installation fault and must fail, not skip."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None  # cannot tell: let the strict tests run and say what is missing
    args = [unshare, "--net", "--pid", "--fork", "true"]
    if os.geteuid() != 0:
        args[1:1] = ["--user", "--map-root-user"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else f"the kernel refuses namespaces: {done.stderr.strip()}"


KERNEL_REFUSES_NAMESPACES = _kernel_refuses_namespaces()

requires_namespaces = pytest.mark.skipif(KERNEL_REFUSES_NAMESPACES is not None, reason=KERNEL_REFUSES_NAMESPACES or "")
requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker switches the child's user")


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (host PIDs, namespaces or not)."""
    children = _children()
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_zombie(pid: int) -> bool:
    try:
        return any(
            line.startswith("State:") and "Z" in line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
    except OSError:
        return False


def _nested(pid: int) -> bool:
    """Is ``pid`` in a PID namespace below the host's (its NSpid line lists more than one PID)?"""
    try:
        return any(
            line.startswith("NSpid:") and len(line.split()) > 2
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
    except OSError:
        return False


def is_runner_child(pid: int) -> bool:
    """The sandbox child itself: ``python -m workers.runners.sandbox_child``, or (whose command line a process
    that switched users may not show) the interpreter inside a sandbox's PID namespace."""
    if "workers.runners.sandbox_child" in _cmdline(pid):
        return True
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return name.startswith("python") and _nested(pid)


def runner_children(below: int | None = None) -> set[int]:
    """The sandbox children below ``below`` (default: this process), and the bubblewrap processes around them."""
    return {pid for pid in descendants(below or os.getpid()) if is_runner_child(pid) or "bwrap" in _cmdline(pid)}


def assert_gone(pids: set[int], timeout: float = 10) -> None:
    """Every process in ``pids`` exits (or is at most a zombie waiting for a non-reaping parent)."""
    assert pids, "no sandbox process was seen"
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if Path(f"/proc/{pid}").exists() and not _is_zombie(pid)}
        if alive:
            time.sleep(0.05)
    assert not alive, f"sandbox processes still alive: {[(p, _cmdline(p)) for p in sorted(alive)]}"


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def assert_namespace_empty(namespace: str, timeout: float = 10) -> None:
    """No process is left in the PID namespace ``namespace`` (a fork bomb's included)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [
            int(e)
            for e in os.listdir("/proc")
            if e.isdigit() and pid_namespace(int(e)) == namespace and not _is_zombie(int(e))
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"processes left in the sandbox's PID namespace: {left}"

"""The bytes of a resumable upload: one partial file per session, and a running sha256 per web process.

Why not store the hash state with the session: hashlib objects cannot be saved (pickled), and a pure-Python
SHA-256 would be far too slow for a 5 GiB file. So each web process keeps in memory, for the sessions it has
served, the sha256 of the prefix it has seen (offset + hasher). A chunk is hashed while it is written, in the
same pass. When a chunk arrives at an offset this process's hasher has not reached (another process took the
previous chunks, or this one restarted), the hasher first catches up by reading just the missing bytes from the
partial file. Completion takes the digest the same way: free in the common case (the process that took the last
chunk), one sequential read of the file at worst (after a restart). Each process reads any byte at most once, so
with k web processes the hashing never costs more than k reads of the file.

Writers of one session are serialised by an exclusive, non-blocking `flock` on its partial file (a second
concurrent writer is refused, not queued), so the partial file and the session's offset always agree. The lock
is advisory and per host: every web process must share MC_UPLOAD_TEMP_DIR on one machine (or a volume with
working locks).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from apps.core.errors import Conflict

BLOCK_SIZE = 1024 * 1024
# Sessions whose running hash one process keeps; older ones fall back to catching up from the file.
MAX_RUNNING = 64

_running: OrderedDict[str, tuple[int, Any]] = OrderedDict()
_running_lock = threading.Lock()


class Busy(Conflict):
    title = "Upload busy"
    slug = "upload-busy"


def create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)


def remove(path: Path, session_id: str) -> None:
    forget(session_id)
    path.unlink(missing_ok=True)


def forget(session_id: str) -> None:
    with _running_lock:
        _running.pop(session_id, None)


@contextmanager
def locked(path: Path) -> Iterator[IO[bytes]]:
    """The partial file, open for reading and writing under an exclusive lock; Busy if another request holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fh = os.fdopen(fd, "r+b")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy("Another request is writing to this upload; retry once it has finished (HEAD tells the offset).")
        yield fh
    finally:
        fh.close()  # closing releases the lock


def hasher_at(session_id: str, fh: IO[bytes], offset: int) -> Any:
    """A sha256 of the first `offset` bytes of the (locked) partial file: this process's running hash, caught up
    from the file when it is behind, or a new one when it is missing or ahead (a write that was not kept)."""
    with _running_lock:
        entry = _running.pop(session_id, None)
    done, hasher = entry if entry is not None and entry[0] <= offset else (0, hashlib.sha256())
    if done < offset:
        fh.seek(done)
        left = offset - done
        while left > 0:
            block = fh.read(min(BLOCK_SIZE, left))
            if not block:
                raise Conflict("The partial upload file is shorter than its recorded offset.")
            hasher.update(block)
            left -= len(block)
    return hasher


def remember(session_id: str, offset: int, hasher: Any) -> None:
    with _running_lock:
        _running[session_id] = (offset, hasher)
        _running.move_to_end(session_id)
        while len(_running) > MAX_RUNNING:
            _running.popitem(last=False)


def append(fh: IO[bytes], offset: int, stream: Any, length: int, hasher: Any) -> int:
    """Write up to `length` bytes of `stream` at `offset` (dropping anything past `offset` first: bytes of a write
    that was never recorded), hashing them on the way. Returns how many arrived: fewer than `length` when the
    client's connection broke, and those are kept (the client resumes from the new offset)."""
    fh.truncate(offset)
    fh.seek(offset)
    received = 0
    while received < length:
        try:
            block = stream.read(min(BLOCK_SIZE, length - received))
        except OSError:  # the client went away mid-chunk (Django's UnreadablePostError, gunicorn's NoMoreData)
            break
        if not block:
            break
        fh.write(block)
        hasher.update(block)
        received += len(block)
    fh.flush()
    return received


def head(fh: IO[bytes], size: int) -> bytes:
    fh.seek(0)
    return fh.read(size)

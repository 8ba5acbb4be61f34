"""Moving files: `push` through the resumable upload API and `pull` with Range resumption and sha256
verification. Both read and write in blocks; no file is ever held whole in memory."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import httpx

from .errors import BadRequest, Conflict, IntegrityError, NetworkError, NotFound
from .models import FileEntry, PulledFile, PushedFile

if TYPE_CHECKING:
    from .client import Client

BLOCK = 256 * 1024
PART_SUFFIX = ".mc-part"
# Extensions the server tells the format of; any other file is declared `other`.
KNOWN_EXTENSIONS = frozenset(
    {".safetensors", ".onnx", ".gguf", ".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".json", ".txt", ".md"}
)
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints"})
# How many times in a row a transfer may break without progress before giving up.
MAX_STALLS = 5


def file_sha256(path: Path, on_progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
            done += len(block)
            if on_progress:
                on_progress(done)
    return digest.hexdigest()


# --- push ---------------------------------------------------------------------------------------------------


class UploadState:
    """Upload sessions in progress, remembered on disk so that a push that was interrupted (even killed)
    resumes the same session: {key of (server, variant, revision, path, sha256, size): upload id}."""

    def __init__(self, directory: Path):
        self.path = directory / "uploads.json"

    @staticmethod
    def key(url: str, variant: str, revision: int, path: str, sha256: str, size: int) -> str:
        return hashlib.sha256(f"{url}|{variant.lower()}|{revision}|{path}|{sha256}|{size}".encode()).hexdigest()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def get(self, key: str) -> str | None:
        entry = self._read().get(key)
        return str(entry["id"]) if isinstance(entry, dict) and entry.get("id") else None

    def put(self, key: str, upload_id: str, **info: Any) -> None:
        data = self._read()
        data[key] = {"id": upload_id, "at": int(time.time()), **info}
        self._write(data)

    def drop(self, key: str) -> None:
        data = self._read()
        if data.pop(key, None) is not None:
            self._write(data)


def _chunk(path: Path, offset: int, length: int, on_sent: Callable[[int], None] | None) -> Iterator[bytes]:
    sent = 0
    with path.open("rb") as fh:
        fh.seek(offset)
        while sent < length:
            block = fh.read(min(BLOCK, length - sent))
            if not block:
                raise OSError(f"{path} shrank while it was being uploaded")
            sent += len(block)
            yield block
            if on_sent:
                on_sent(sent)


def upload_file(
    client: Client,
    variant: str,
    revision: int,
    local: Path,
    path: str,
    *,
    sha256: str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> PushedFile:
    """One file through a resumable session; see :meth:`Uploads.upload_file`."""
    uploads = client.uploads
    size = local.stat().st_size
    report = on_progress or (lambda phase, done, total: None)
    sha = sha256 or file_sha256(local, lambda done: report("hash", done, size))
    state = UploadState(client.cache_dir)
    key = state.key(client.url, variant, revision, path, sha, size)
    upload_id = state.get(key)
    offset = 0
    if upload_id:
        try:
            offset = uploads.offset(upload_id)
        except (NotFound, Conflict):  # expired, completed elsewhere, or failed: start afresh
            state.drop(key)
            upload_id = None
    resumed_from = offset
    if not upload_id:
        fmt = None if PurePosixPath(path).suffix.lower() in KNOWN_EXTENSIONS else "other"
        session = uploads.create(variant, path, size_bytes=size, sha256=sha, revision=revision, format=fmt)
        upload_id, offset = session.id, session.offset
        state.put(key, upload_id, variant=variant, revision=revision, path=path, local=str(local))
    report("upload", offset, size)
    stalls = 0
    while offset < size:
        length = min(client.chunk_size, size - offset)
        start = offset
        try:

            def body(s: int = start, n: int = length) -> Iterator[bytes]:
                return _chunk(local, s, n, lambda sent: report("upload", s + sent, size))

            session = uploads.append(upload_id, start, body, length)
            offset = session.offset
            stalls = 0
            continue
        except Conflict as exc:
            known = uploads.offset(upload_id)
            if exc.status != 409 or known == start:
                raise  # not a stale offset: the session or the revision refuses
            offset = known
            continue
        except (NetworkError, httpx.TransportError):
            known = uploads.offset(upload_id)  # what arrived is kept: go on from there
            stalls = 0 if known > start else stalls + 1
            if stalls >= MAX_STALLS:
                raise
            if stalls:
                time.sleep(min(30.0, 0.5 * 2**stalls))
            offset = known
            report("upload", offset, size)
    try:
        artifact = uploads.complete(upload_id)
    except (BadRequest, Conflict):
        state.drop(key)  # the session is spent (a hash mismatch fails it): the next push starts afresh
        raise
    state.drop(key)
    action = "resumed" if resumed_from else "uploaded"
    return PushedFile(
        path=path,
        local_path=str(local),
        sha256=sha,
        size_bytes=size,
        action=action,
        resumed_from=resumed_from,
        artifact=artifact,
    )


def collect(paths: list[Path]) -> list[tuple[Path, str]]:
    """(local file, path in the model) for each file argument and each file under each folder argument (a folder's
    files keep their path relative to it; version-control and cache folders are left out)."""
    found: list[tuple[Path, str]] = []
    for given in paths:
        if given.is_dir():
            for root, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
                for name in sorted(files):
                    if name.endswith(PART_SUFFIX):
                        continue
                    local = Path(root) / name
                    found.append((local, local.relative_to(given).as_posix()))
        elif given.is_file():
            found.append((given, given.name))
        else:
            raise BadRequest(
                400,
                {
                    "title": "No such file",
                    "detail": f"{given}: no such file or folder",
                    "errors": {"paths": [f"{given} does not exist."]},
                },
            )
    seen: dict[str, Path] = {}
    for local, remote in found:
        if remote in seen:
            raise BadRequest(
                400,
                {
                    "title": "Two files, one path",
                    "detail": f"{seen[remote]} and {local} would both be '{remote}'.",
                    "errors": {"paths": ["Each file needs its own path."]},
                },
            )
        seen[remote] = local
    return found


def push(
    client: Client,
    variant: str,
    paths: list[Path],
    *,
    revision: int | None,
    new_revision: bool,
    on_file: Callable[[str, int], None] | None,
    on_progress: Callable[[str, str, int, int], None] | None,
    on_done: Callable[[PushedFile], None] | None,
) -> tuple[int, list[PushedFile]]:
    plan = collect(paths)
    if new_revision:
        number = client.revisions.create(variant).number
    else:
        number = client.revisions.resolve(variant, revision)
    existing = {f.path: f for f in client.files.list(variant, number)}
    results: list[PushedFile] = []
    for local, remote in plan:
        size = local.stat().st_size
        if on_file:
            on_file(remote, size)

        def report(phase: str, done: int, total: int, remote: str = remote) -> None:
            if on_progress:
                on_progress(remote, phase, done, total)

        def hashed(done: int, size: int = size, report: Callable[[str, int, int], None] = report) -> None:
            report("hash", done, size)

        sha = file_sha256(local, hashed)
        there = existing.get(remote)
        if there is not None:
            if there.sha256 != sha:
                raise Conflict(
                    409,
                    {
                        "title": "Conflict",
                        "detail": f"revision {number} already has '{remote}' with "
                        f"other bytes (sha256 {there.sha256[:12]}...); push to a new revision "
                        "(--new-revision)",
                        "errors": {"path": [f"'{remote}' differs."]},
                    },
                )
            result = PushedFile(path=remote, local_path=str(local), sha256=sha, size_bytes=size, action="skipped")
        else:
            result = upload_file(client, variant, number, local, remote, sha256=sha, on_progress=report)
        results.append(result)
        if on_done:
            on_done(result)
    return number, results


# --- pull ---------------------------------------------------------------------------------------------------


def safe_target(directory: Path, path: str) -> Path:
    """Where a file of the model goes under `directory`; a path that would leave it is refused."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or not pure.parts or any(part in ("", ".", "..") for part in pure.parts) or "\\" in path:
        raise IntegrityError(path, "a relative path inside the model", "a path that leaves the target folder")
    return directory.joinpath(*pure.parts)


def _fetch(
    client: Client, url: str, part: Path, entry: FileEntry, on_progress: Callable[[int, int], None] | None
) -> int:
    """Download `url` into `part`, appending from its current size (Range); returns where it resumed
    from (0 for a whole download). Network breaks resume from what arrived, MAX_STALLS times in a row at most."""
    stalls = 0
    resumed_from: int | None = None
    while True:
        have = part.stat().st_size if part.exists() else 0
        if have > entry.size_bytes:
            part.unlink()
            have = 0
        if have == entry.size_bytes and have > 0:
            return resumed_from if resumed_from is not None else have
        headers = {"Accept": "*/*"}
        if have:
            # No If-Range: a stored file never changes, and the sha256 check after the download catches a part that
            # came from other bytes. (A presigned object-store URL the server redirects to has an ETag of its own.)
            headers["Range"] = f"bytes={have}-"
        try:
            response = client.http.send("GET", url, headers=headers, stream=True, ok=(416,))
            try:
                if response.status_code == 416:
                    part.unlink(missing_ok=True)
                    continue
                if response.status_code != 206:
                    have = 0  # the whole file is coming
                if resumed_from is None:
                    resumed_from = have
                done = have
                with part.open("r+b" if have else "wb") as fh:
                    fh.seek(have)
                    fh.truncate()
                    for block in response.iter_bytes(BLOCK):
                        fh.write(block)
                        done += len(block)
                        if on_progress:
                            on_progress(done, entry.size_bytes)
            finally:
                response.close()
            if entry.size_bytes == 0 or done >= entry.size_bytes:
                return resumed_from
            raise httpx.RemoteProtocolError("the download ended early")
        except (httpx.TransportError, NetworkError):
            now = part.stat().st_size if part.exists() else 0
            stalls = 0 if now > have else stalls + 1
            if stalls >= MAX_STALLS:
                raise NetworkError(
                    f"{entry.path}: the download kept breaking ({now} of {entry.size_bytes} bytes "
                    f"kept in {part}; run pull again to resume)"
                ) from None
            time.sleep(min(30.0, 0.5 * 2**stalls) if stalls else 0)


def download_file(
    client: Client,
    variant: str,
    revision: int,
    entry: FileEntry,
    target: Path,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> PulledFile:
    result = PulledFile(
        path=entry.path, local_path=str(target), sha256=entry.sha256, size_bytes=entry.size_bytes, uri=entry.uri
    )
    if not entry.stored:
        result.action = "skipped"
        return result
    if target.is_file() and target.stat().st_size == entry.size_bytes and file_sha256(target) == entry.sha256:
        result.action = "unchanged"
        if on_progress:
            on_progress(entry.size_bytes, entry.size_bytes)
        return result
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    url = client.files.url(variant, revision, entry.path)
    resumed_from = _fetch(client, url, part, entry, on_progress)
    actual = file_sha256(part)
    if actual != entry.sha256 and resumed_from:
        # The kept part was not a prefix of this file: download it whole once.
        part.unlink()
        resumed_from = _fetch(client, url, part, entry, on_progress)
        actual = file_sha256(part)
    if actual != entry.sha256:
        part.unlink()
        raise IntegrityError(entry.path, entry.sha256, actual)
    os.replace(part, target)
    result.action = "resumed" if resumed_from else "downloaded"
    result.resumed_from = resumed_from
    return result


def pull(
    client: Client,
    variant: str,
    revision: int | str | None,
    directory: Path,
    *,
    on_file: Callable[[FileEntry], None] | None,
    on_progress: Callable[[FileEntry, int, int], None] | None,
    on_done: Callable[[PulledFile], None] | None,
) -> tuple[int, list[PulledFile]]:
    number = client.revisions.resolve(variant, revision)
    entries = client.files.list(variant, number)
    targets = [(entry, safe_target(directory, entry.path)) for entry in entries]
    results: list[PulledFile] = []
    for entry, target in targets:
        if on_file:
            on_file(entry)

        def report(done: int, total: int, entry: FileEntry = entry) -> None:
            if on_progress:
                on_progress(entry, done, total)

        result = download_file(client, variant, number, entry, target, on_progress=report)
        results.append(result)
        if on_done:
            on_done(result)
    return number, results

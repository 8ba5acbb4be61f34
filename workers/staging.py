"""A worker's content-addressed local cache of the files its jobs read (issue 13 part 5: workers need no shared
disk). No Django here: the worker runtime (workers/execution.py) builds the cache and its sources from the
settings and names the blobs a job needs.

Layout under the cache folder (MC_WORKER_CACHE_DIR)::

    blobs/sha256/<aa>/<bb>/<sha256>   verified bytes, read-only, named by their sha256
    locks/<sha256>.lock               one lock file per blob (flock); kept, so every process locks the same inode
    tmp/<sha256>.part                 a fetch in progress, renamed into blobs/ once its sha256 is right

- **Fetching** streams from a source into tmp/, hashing while it writes; only bytes of the recorded size and
  sha256 are renamed into place (atomic on one file system), so blobs/ never holds a partial or wrong file.
  Sources are tried in order, each twice; the second attempt resumes a broken transfer where it stopped
  (``Range``), and starts over after a sha256 mismatch. When every attempt failed the job fails with
  ``artifact_unavailable`` (or ``hash_mismatch`` when every source delivered wrong bytes) and a clear message.
- **A hit is re-hashed in full** (size, then sha256) before it is used, not trusted on a "verified" marker: a
  marker proves the file was right when it was written, not that it still is (a disk error, a write through a
  hard link, an edit that keeps size and mtime). Runners check every sha256 again before loading, so a corrupt
  entry passed by a cheap check would fail the job with ``hash_mismatch``, while the cache can delete it and
  fetch it again. Hashing runs at disk speed, small next to an evaluation.
- **Pins and concurrency**: a job holds a shared lock (flock) on each blob it staged until it ends. Deleting or
  fetching a blob takes the exclusive lock: eviction skips a pinned blob (non-blocking), and of two pool
  processes staging one blob one fetches while the other waits and then finds it there (fetched once).
- **Size cap**: after each fetch, entries are evicted least recently used first (by access time, set on every
  use) until the cache fits its cap, skipping pinned ones. A blob bigger than the cap stays while it is pinned
  and goes at the next eviction after that.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workers.runners.base import SHA256_RE, RunnerError, sha256_of

logger = logging.getLogger(__name__)

CHUNK = 1 << 20  # 1 MiB
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", re.IGNORECASE)
ATTEMPTS_PER_SOURCE = 2


@dataclass(frozen=True)
class Blob:
    """One file a job needs: its sha256 and recorded size, its path in the revision (for messages) and its
    storage name (the S3 object key)."""

    sha256: str
    size_bytes: int | None = None
    name: str = ""
    key: str = ""

    @property
    def label(self) -> str:
        return repr(self.name) if self.name else f"blob {self.sha256[:12]}"


class FetchError(Exception):
    """A source could not deliver a blob's bytes (network, HTTP status, storage error)."""


@dataclass
class Stream:
    """A source's answer: the bytes from ``offset`` on (0 when the source could not resume) as chunks."""

    offset: int
    chunks: Iterable[bytes]
    close: Callable[[], None] = field(default=lambda: None)


class BlobSource(Protocol):
    """Where blobs come from: the platform over HTTP, or the S3 bucket itself."""

    description: str

    def open(self, blob: Blob, offset: int = 0) -> Stream:
        """The blob's bytes from ``offset`` on; raises :class:`FetchError`."""
        ...


def normalized_sha256(value: str) -> str:
    digest = (value or "").strip().lower().removeprefix("sha256:")
    if not SHA256_RE.match(digest):
        raise RunnerError("artifact_unavailable", f"{value!r} is not a sha256 (64 hex digits).")
    return digest


def _content_range_start(header: str | None) -> int | None:
    match = _CONTENT_RANGE_RE.match(header or "")
    return int(match.group(1)) if match else None


def _problem_detail(error: urllib.error.HTTPError) -> str:
    """The `detail` of a problem+json answer, else the HTTP reason."""
    try:
        body = json.loads(error.read(64 * 1024) or b"{}")
    except (ValueError, OSError):
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail or error.reason)


class HttpSource:
    """The platform's internal blob endpoint, ``GET <base>/api/v1/internal/blobs/<sha256>/``, authenticated by a
    short-lived token bound to the blob (``token_for(sha256)``, minted per request). The token is sent to the
    platform only: a redirect (the platform on S3 answers with a presigned URL) is followed without it."""

    def __init__(self, base_url: str, token_for: Callable[[str], str], *, timeout_s: float = 60.0):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the platform URL must be http(s), not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token_for = token_for
        self.timeout_s = timeout_s
        self.description = f"the platform at {self.base_url}"

    def url(self, sha256: str) -> str:
        return f"{self.base_url}/api/v1/internal/blobs/{sha256}/"

    def open(self, blob: Blob, offset: int = 0) -> Stream:
        request = urllib.request.Request(self.url(blob.sha256))  # noqa: S310 - http(s), checked in __init__
        # Unredirected: urllib would otherwise send it on to the storage a redirect points at.
        request.add_unredirected_header("Authorization", f"Worker {self.token_for(blob.sha256)}")
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            answer = urllib.request.urlopen(request, timeout=self.timeout_s)  # noqa: S310 - http(s), checked in __init__
        except urllib.error.HTTPError as exc:
            raise FetchError(f"HTTP {exc.code} from {self.url(blob.sha256)}: {_problem_detail(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"cannot reach {self.base_url}: {reason}") from None
        start = 0
        if answer.status == 206:
            start_at = _content_range_start(answer.headers.get("Content-Range"))
            if start_at != offset:
                answer.close()
                raise FetchError(f"asked for bytes from {offset}, got {answer.headers.get('Content-Range')!r}")
            start = offset
        return Stream(start, iter(lambda: answer.read(CHUNK), b""), answer.close)


class S3Source:
    """The blob straight from the S3-compatible bucket the platform stores it in (``get_object`` on its key),
    with the worker's own credentials: no request to the platform."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket
        self.description = f"the bucket {bucket}"

    def open(self, blob: Blob, offset: int = 0) -> Stream:
        from botocore.exceptions import BotoCoreError, ClientError

        if not blob.key:
            raise FetchError("the file has no storage key")
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": blob.key}
        if offset:
            arguments["Range"] = f"bytes={offset}-"
        try:
            answer = self.client.get_object(**arguments)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise FetchError(f"{error.get('Code', 'error')} for s3://{self.bucket}/{blob.key}") from None
        except BotoCoreError as exc:
            raise FetchError(f"cannot reach the bucket {self.bucket}: {exc}") from None
        body = answer["Body"]
        start = 0
        if offset and answer.get("ContentRange"):
            if _content_range_start(answer["ContentRange"]) != offset:
                body.close()
                raise FetchError(f"asked for bytes from {offset}, got {answer['ContentRange']!r}")
            start = offset
        return Stream(start, iter(lambda: body.read(CHUNK), b""), body.close)


@dataclass
class _Pin:
    fd: int
    count: int = 1


class BlobCache:
    """The content-addressed cache (see the module docstring). One instance per process; pins are per process
    (a flock belongs to an open file, so this process keeps one per blob and counts its users)."""

    def __init__(self, root: str | Path, *, max_bytes: int, lock_timeout_s: float = 3600.0):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.lock_timeout_s = lock_timeout_s
        self._pins: dict[str, _Pin] = {}
        for folder in ("blobs/sha256", "locks", "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------------------

    def path_for(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256[2:4] / sha256

    def _lock_path(self, sha256: str) -> Path:
        return self.root / "locks" / f"{sha256}.lock"

    def _tmp_path(self, sha256: str) -> Path:
        return self.root / "tmp" / f"{sha256}.part"

    def entries(self) -> list[tuple[str, int]]:
        """(sha256, size) of every cached blob."""
        found = []
        for path in (self.root / "blobs" / "sha256").glob("*/*/*"):
            with contextlib.suppress(FileNotFoundError):
                found.append((path.name, path.stat().st_size))
        return found

    def pinned(self) -> set[str]:
        """The blobs this process holds."""
        return set(self._pins)

    # -- staging -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Callable[[Blob, Sequence[BlobSource]], str]]:
        """``with cache.session() as stage: path = stage(blob, sources)``: every blob staged in the block stays
        pinned (never evicted) until the block ends."""
        held: list[str] = []

        def stage(blob: Blob, sources: Sequence[BlobSource]) -> str:
            path = self.acquire(blob, sources)
            held.append(normalized_sha256(blob.sha256))
            return path

        try:
            yield stage
        finally:
            for sha256 in held:
                self.release(sha256)

    def acquire(self, blob: Blob, sources: Sequence[BlobSource]) -> str:
        """The local path of the blob's verified bytes, fetched from the first source that delivers them when
        the cache has no right copy, and pinned until :meth:`release`."""
        sha256 = normalized_sha256(blob.sha256)
        blob = Blob(sha256, blob.size_bytes, blob.name, blob.key)
        path = self.path_for(sha256)
        pin = self._pins.get(sha256)
        if pin is not None:  # this process holds it already (verified then; a shared lock keeps it there)
            pin.count += 1
            return str(path)
        try:
            fd = os.open(self._lock_path(sha256), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RunnerError("artifact_unavailable", f"The worker cache at {self.root} is not usable: {exc}") from None
        try:
            for _ in range(3):
                # Shared first: a blob other processes use is read alongside them, not waited for.
                self._lock(fd, fcntl.LOCK_SH, blob)
                if self._intact(path, blob):
                    break
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._lock(fd, fcntl.LOCK_EX, blob)
                fetched = False
                if not self._intact(path, blob):  # nobody fetched it while this process waited
                    self._fetch(blob, sources, path)
                    fetched = True
                # Back to shared (flock converts by unlocking first, so eviction could slip in: checked above).
                self._lock(fd, fcntl.LOCK_SH, blob)
                if fetched:
                    self._evict(keep=sha256)
                if path.is_file():
                    break
            else:
                raise RunnerError("artifact_unavailable", f"{blob.label} kept disappearing from the worker cache.")
        except OSError as exc:  # the cache's own disk (full, read-only, permissions): a clear reason, no traceback
            os.close(fd)
            raise RunnerError(
                "artifact_unavailable", f"{blob.label} could not be staged in the worker cache at {self.root}: {exc}"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # the access time orders eviction; a file of another user keeps its own
            os.utime(path)
        self._pins[sha256] = _Pin(fd)
        return str(path)

    def release(self, sha256: str) -> None:
        """Unpin a blob acquired by this process (once per acquire)."""
        pin = self._pins.get(sha256)
        if pin is None:
            return
        pin.count -= 1
        if pin.count <= 0:
            del self._pins[sha256]
            os.close(pin.fd)  # releases the shared lock

    # -- internals -----------------------------------------------------------------------------------------

    def _lock(self, fd: int, mode: int, blob: Blob) -> None:
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunnerError(
                        "artifact_unavailable",
                        f"{blob.label} is being fetched by another process of this worker for more than "
                        f"{self.lock_timeout_s:.0f}s.",
                    ) from None
                time.sleep(0.05)

    def _intact(self, path: Path, blob: Blob) -> bool:
        """Whether the cached copy exists with the right size and sha256 (a wrong one is logged; the caller
        replaces it under the exclusive lock)."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        if blob.size_bytes is not None and size != blob.size_bytes:
            logger.warning("cache entry %s has %d bytes, expected %d: fetching it again", path, size, blob.size_bytes)
            return False
        try:
            got = sha256_of(path)
        except OSError as exc:
            logger.warning("cache entry %s is unreadable (%s): fetching it again", path, exc)
            return False
        if got != blob.sha256:
            logger.warning("cache entry %s is corrupt (sha256 %s): fetching it again", path, got)
            return False
        return True

    def _fetch(self, blob: Blob, sources: Sequence[BlobSource], path: Path) -> None:
        """Fetch the blob into place (the caller holds the exclusive lock)."""
        tmp = self._tmp_path(blob.sha256)
        path.unlink(missing_ok=True)  # a corrupt copy
        failures: list[str] = []
        mismatches = 0
        for source in sources:
            tmp.unlink(missing_ok=True)
            for attempt in range(1, ATTEMPTS_PER_SOURCE + 1):
                try:
                    digest, size = self._download(blob, source, tmp)
                except (FetchError, OSError) as exc:
                    failures.append(f"{source.description} (attempt {attempt}): {exc}")
                    continue  # the next attempt resumes where this one stopped
                if blob.size_bytes is not None and size != blob.size_bytes:
                    failures.append(
                        f"{source.description} (attempt {attempt}): the transfer ended after {size} of "
                        f"{blob.size_bytes} bytes"
                    )
                    continue
                if digest != blob.sha256:
                    mismatches += 1
                    failures.append(f"{source.description} (attempt {attempt}): delivered bytes with sha256 {digest}")
                    tmp.unlink(missing_ok=True)
                    continue
                os.chmod(tmp, 0o444)
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
                logger.info("staged %s (%s bytes) from %s", blob.label, size, source.description)
                return
        tmp.unlink(missing_ok=True)
        if not sources:
            failures.append("no source is configured")
        reason = "hash_mismatch" if failures and mismatches == len(failures) else "artifact_unavailable"
        what = "sha256 does not match" if reason == "hash_mismatch" else "could not be fetched"
        raise RunnerError(
            reason,
            f"{blob.label} (sha256 {blob.sha256}) {what}: " + "; ".join(failures[-4:]),
        )

    def _download(self, blob: Blob, source: BlobSource, tmp: Path) -> tuple[str, int]:
        """Write the blob to `tmp`, continuing a partial file; returns (sha256 hex, size) of the whole file."""
        digest = hashlib.sha256()
        have = tmp.stat().st_size if tmp.exists() else 0
        if blob.size_bytes is not None and have > blob.size_bytes:
            have = 0
        if have:
            with open(tmp, "rb") as fh:
                left = have
                while left and (chunk := fh.read(min(CHUNK, left))):
                    digest.update(chunk)
                    left -= len(chunk)
        if blob.size_bytes is not None and have == blob.size_bytes:
            return digest.hexdigest(), have
        stream = source.open(blob, have)
        try:
            if stream.offset != have:  # the source sent the whole file: start over
                digest, have = hashlib.sha256(), 0
            with open(tmp, "r+b" if tmp.exists() else "wb") as out:
                out.seek(have)
                out.truncate()
                for chunk in stream.chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    have += len(chunk)
                    if blob.size_bytes is not None and have > blob.size_bytes:
                        raise FetchError(f"more bytes than the recorded {blob.size_bytes}")
                out.flush()
                os.fsync(out.fileno())
        finally:
            stream.close()
        return digest.hexdigest(), have

    def _evict(self, *, keep: str) -> None:
        """Delete least recently used blobs until the cache fits its cap; pinned blobs (a shared lock held by
        any process) are skipped."""
        entries = []
        total = 0
        for path in (self.root / "blobs" / "sha256").glob("*/*/*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_atime, path))
            total += st.st_size
        if total <= self.max_bytes:
            return
        for _, path in sorted(entries):
            if total <= self.max_bytes:
                break
            sha256 = path.name
            if sha256 == keep or sha256 in self._pins:
                continue
            fd = os.open(self._lock_path(sha256), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # pinned by a job of another process
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                path.unlink(missing_ok=True)
                total -= size
                logger.info("evicted %s (%d bytes) from the worker cache", sha256, size)
            finally:
                os.close(fd)
        if total > self.max_bytes:
            logger.warning(
                "the worker cache holds %d bytes, over its cap of %d: the rest is in use", total, self.max_bytes
            )

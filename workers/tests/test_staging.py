"""The worker's blob cache (workers/staging.py), without Django: hits and misses, LRU eviction under the cap,
pins, a corrupt entry fetched again, wrong bytes refused, a broken transfer resumed, and two processes staging
one blob."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from workers.runners.base import RunnerError
from workers.staging import Blob, BlobCache, FetchError, Stream


def blob_of(data: bytes, name: str = "model.onnx") -> Blob:
    return Blob(hashlib.sha256(data).hexdigest(), len(data), name, f"blobs/{name}")


class MemorySource:
    """Serves blobs from a dict; counts opens, can break a transfer after `break_after` bytes once."""

    description = "memory"

    def __init__(self, files: dict[str, bytes], break_after: int | None = None):
        self.files = files
        self.opens: list[tuple[str, int]] = []
        self.break_after = break_after

    def open(self, blob: Blob, offset: int = 0) -> Stream:
        self.opens.append((blob.sha256, offset))
        if blob.sha256 not in self.files:
            raise FetchError("HTTP 404: no such blob")
        data = self.files[blob.sha256][offset:]
        cut, self.break_after = self.break_after, None

        def chunks():  # type: ignore[no-untyped-def]
            for i in range(0, len(data), 7):
                if cut is not None and i >= cut:
                    raise ConnectionResetError("connection reset by peer")
                yield data[i : i + 7]

        return Stream(offset, chunks())


A, B, C = b"a" * 100, b"b" * 100, b"c" * 100


@pytest.fixture
def files() -> dict[str, bytes]:
    return {hashlib.sha256(d).hexdigest(): d for d in (A, B, C)}


def test_a_miss_fetches_and_a_hit_does_not(tmp_path, files):
    cache, source = BlobCache(tmp_path, max_bytes=10_000), MemorySource(files)
    with cache.session() as stage:
        path = stage(blob_of(A), [source])
        assert Path(path).read_bytes() == A
        sha = blob_of(A).sha256
        assert Path(path) == tmp_path / "blobs/sha256" / sha[:2] / sha[2:4] / sha
        assert oct(os.stat(path).st_mode & 0o777) == "0o444"
        assert stage(blob_of(A), [source]) == path  # the same blob twice in one job
    with cache.session() as stage:
        assert stage(blob_of(A), [source]) == path
    assert source.opens == [(blob_of(A).sha256, 0)]
    assert cache.pinned() == set() and list((tmp_path / "tmp").iterdir()) == []


def test_least_recently_used_blobs_go_first_when_over_the_cap(tmp_path, files):
    cache, source = BlobCache(tmp_path, max_bytes=250), MemorySource(files)
    with cache.session() as stage:
        a, b = stage(blob_of(A), [source]), stage(blob_of(B), [source])
    os.utime(a, (1000, 1000))
    os.utime(b, (2000, 2000))
    with cache.session() as stage:
        stage(blob_of(A), [source])  # a hit: A is now the most recently used
    with cache.session() as stage:
        stage(blob_of(C), [source])
    assert {sha for sha, _ in cache.entries()} == {blob_of(A).sha256, blob_of(C).sha256}
    assert sum(size for _, size in cache.entries()) <= 250
    with cache.session() as stage:
        stage(blob_of(B), [source])  # evicted, so fetched again
    assert [sha for sha, _ in source.opens].count(blob_of(B).sha256) == 2


def test_a_pinned_blob_is_never_evicted_by_this_or_another_process(tmp_path, files):
    cache, source = BlobCache(tmp_path, max_bytes=150), MemorySource(files)
    # A second cache on the same folder locks through its own open files, as another pool process would.
    other = BlobCache(tmp_path, max_bytes=150)
    with other.session() as other_stage:
        a = other_stage(blob_of(A), [source])  # pinned by "the other process" while its job runs
        os.utime(a, (1000, 1000))  # and the least recently used
        with cache.session() as stage:
            b = stage(blob_of(B), [source])
            c = stage(blob_of(C), [source])  # over the cap: only unpinned blobs may go, and B is pinned here too
            assert Path(a).read_bytes() == A and Path(b).read_bytes() == B and Path(c).read_bytes() == C
    with cache.session() as stage:
        stage(blob_of(A), [source])  # nothing pinned now: staging (a hit) evicts nothing, a fetch would
    assert len(cache.entries()) == 3
    with cache.session() as stage:
        os.utime(a, (1000, 1000))
        cache._evict(keep="")
    assert len(cache.entries()) == 1  # down to the cap (150 bytes: one blob), least recently used first


def test_a_corrupt_entry_is_detected_deleted_and_fetched_again(tmp_path, files):
    cache, source = BlobCache(tmp_path, max_bytes=10_000), MemorySource(files)
    with cache.session() as stage:
        path = stage(blob_of(A), [source])
    os.chmod(path, 0o644)
    Path(path).write_bytes(b"x" * 100)  # same size, other bytes (bit rot, or a write through a hard link)
    with cache.session() as stage:
        assert Path(stage(blob_of(A), [source])).read_bytes() == A
    Path(path).unlink()
    with cache.session() as stage:
        assert Path(stage(blob_of(A), [source])).read_bytes() == A
    assert len(source.opens) == 3


def test_wrong_bytes_are_refused_after_a_retry_and_never_cached(tmp_path, files):
    cache = BlobCache(tmp_path, max_bytes=10_000)
    lying = MemorySource({blob_of(A).sha256: B})  # right size, wrong bytes
    with pytest.raises(RunnerError) as exc, cache.session() as stage:
        stage(blob_of(A, "weights.onnx"), [lying])
    assert exc.value.reason == "hash_mismatch"
    assert "'weights.onnx'" in exc.value.message and hashlib.sha256(B).hexdigest() in exc.value.message
    assert len(lying.opens) == 2
    assert cache.entries() == [] and list((tmp_path / "tmp").iterdir()) == [] and cache.pinned() == set()


def test_an_unreachable_blob_fails_as_artifact_unavailable_after_a_retry(tmp_path):
    cache, source = BlobCache(tmp_path, max_bytes=10_000), MemorySource({})
    with pytest.raises(RunnerError) as exc, cache.session() as stage:
        stage(blob_of(A, "weights.onnx"), [source])
    assert exc.value.reason == "artifact_unavailable"
    assert "'weights.onnx'" in exc.value.message and "HTTP 404" in exc.value.message
    assert len(source.opens) == 2
    with pytest.raises(RunnerError) as exc, cache.session() as stage:
        stage(Blob("not-a-sha", 3), [source])
    assert exc.value.reason == "artifact_unavailable"


def test_a_broken_transfer_resumes_where_it_stopped_and_sources_are_tried_in_order(tmp_path, files):
    cache = BlobCache(tmp_path, max_bytes=10_000)
    flaky = MemorySource(files, break_after=49)
    with cache.session() as stage:
        assert Path(stage(blob_of(A), [flaky])).read_bytes() == A
    assert flaky.opens == [(blob_of(A).sha256, 0), (blob_of(A).sha256, 49)]

    down, up = MemorySource({}), MemorySource(files)
    with cache.session() as stage:
        assert Path(stage(blob_of(B), [down, up])).read_bytes() == B
    assert len(down.opens) == 2 and len(up.opens) == 1


class SlowLoggingSource:
    """Serves one blob slowly and writes a line per fetch to a log shared by the processes."""

    description = "slow"

    def __init__(self, data: bytes, log: str):
        self.data, self.log = data, log

    def open(self, blob: Blob, offset: int = 0) -> Stream:
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")

        def chunks():  # type: ignore[no-untyped-def]
            for i in range(0, len(self.data), 1000):
                time.sleep(0.02)
                yield self.data[i : i + 1000]

        return Stream(offset, chunks())


def _stage_in_a_process(root: str, data: bytes, log: str, start_at: float) -> str:
    time.sleep(max(0.0, start_at - time.time()))
    cache = BlobCache(root, max_bytes=10**9)
    with cache.session() as stage:
        path = stage(blob_of(data), [SlowLoggingSource(data, log)])
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_two_processes_staging_one_blob_fetch_it_once(tmp_path):
    data = os.urandom(20_000)
    log = str(tmp_path / "fetches.log")
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0  # both processes are up by then and race for the blob
    with context.Pool(2) as pool:
        digests = pool.starmap(_stage_in_a_process, [(str(tmp_path / "cache"), data, log, start_at)] * 2)
    assert digests == [hashlib.sha256(data).hexdigest()] * 2
    assert len(Path(log).read_text().splitlines()) == 1


def test_a_broken_cache_folder_fails_with_a_reason_not_a_traceback(tmp_path, files):
    cache = BlobCache(tmp_path, max_bytes=10_000)
    (tmp_path / "locks").rmdir()
    (tmp_path / "locks").write_text("not a folder")
    with pytest.raises(RunnerError) as exc, cache.session() as stage:
        stage(blob_of(A), [MemorySource(files)])
    assert exc.value.reason == "artifact_unavailable" and str(tmp_path) in exc.value.message

"""Transfers benchmark (issue 13 targets). Run by `make bench`; it prints numbers, it asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> python tests/perf/bench_transfers.py [--size-mib 1024]

1. Creates a throw-away database (`test_<db>`, destroyed at the end), migrates it, and registers alice's draft
   variant with a write token.
2. Starts the web process as production runs it (gunicorn, one sync worker, production settings) on that
   database, and uploads a `--size-mib` safetensors file to it through the resumable upload API in 64 MiB
   chunks, generated on the fly by the client.
3. Downloads the stored file from the API (one GET), and the same file from a static file server
   (`python -m http.server` over the media folder) in the same run, each timed end to end by the same client.
4. Prints the download rate against the static server's (target >= 0.5x) and the worker's peak RSS (VmHWM)
   after the upload and after the download (target < 150 MiB).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
from tests.perf.common import ratio_line  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelcommons.settings.test")
WORK = Path(tempfile.mkdtemp(prefix="mc-bench-transfers-"))
os.environ.setdefault("MC_VAR_DIR", str(WORK / "var"))
MIB = 1024 * 1024
CHUNK = 64 * MIB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def blocks(data_bytes: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes [start, end) of a safetensors file holding `data_bytes` pseudo-random bytes, in 1 MiB blocks."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [data_bytes], "data_offsets": [0, data_bytes]}}).encode()
    header += b" " * (-len(header) % 8)
    header = struct.pack("<Q", len(header)) + header
    size = len(header) + data_bytes
    end = size if end is None else end
    pos = start
    while pos < end:
        if pos < len(header):
            block = header[pos : min(end, len(header))]
        else:
            index, within = divmod(pos - len(header), MIB)
            seed = hashlib.sha256(index.to_bytes(8, "little")).digest() * (MIB // 32)
            block = seed[within : within + min(MIB - within, end - pos)]
        yield block
        pos += len(block)


def setup() -> tuple[Any, str, str]:
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        print(f"note: running on {connection.vendor}; the targets are measured on PostgreSQL (set DATABASE_URL)")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    from apps.accounts.services import token_create
    from apps.registry.tests.factories import make_original, make_variant
    from tests.factories import UserFactory

    maintainer, alice = UserFactory(username="maintainer"), UserFactory(username="alice")
    from apps.accounts.services import user_set_roles

    user_set_roles(user=maintainer, roles=["maintainer"], actor=None)
    make_variant(alice, "big", [make_original(maintainer)])
    token = token_create(user=alice, name="bench", scopes=["read", "write"])[1]
    settings_dict = connection.settings_dict
    url = (
        f"postgres://{settings_dict.get('USER') or 'root'}@{settings_dict.get('HOST') or '127.0.0.1'}:"
        f"{settings_dict.get('PORT') or 5432}/{settings_dict['NAME']}"
    )
    if connection.vendor != "postgresql":
        url = f"sqlite:///{settings_dict['NAME']}"
    connection.close()
    return old_name, token, url


def worker_pid(master: int) -> int:
    deadline = time.time() + 30
    while time.time() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.2)
    raise RuntimeError("gunicorn started no worker")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def request(
    port: int, method: str, path: str, token: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"Bearer {token}", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def timed_download(port: int, path: str, token: str | None) -> tuple[float, int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    digest, received = hashlib.sha256(), 0
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    while block := resp.read(MIB):
        received += len(block)
        digest.update(block)
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, received, digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    data_bytes = args.size_mib * MIB
    old_name, token, database_url = setup()
    media, uploads = WORK / "media", WORK / "uploads"
    port, static_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "modelcommons.settings.prod",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "MEDIA_ROOT": str(media),
        "MC_UPLOAD_TEMP_DIR": str(uploads),
        "MC_VAR_DIR": str(WORK / "var"),
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "THROTTLE_USER": "100000/min",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "modelcommons.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "600",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    static = None
    try:
        wait_port(port)
        worker = worker_pid(server.pid)
        digest = hashlib.sha256()
        size = 0
        for block in blocks(data_bytes):
            digest.update(block)
            size += len(block)
        status, _, body = request(
            port,
            "POST",
            "/api/v1/uploads/",
            token,
            json.dumps(
                {"variant": "alice/big", "path": "model.safetensors", "size_bytes": size, "sha256": digest.hexdigest()}
            ).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 201, body
        upload_id = json.loads(body)["id"]
        started = time.perf_counter()
        offset = 0
        while offset < size:
            length = min(CHUNK, size - offset)
            status, _, body = request(
                port,
                "PATCH",
                f"/api/v1/uploads/{upload_id}/",
                token,
                blocks(data_bytes, offset, offset + length),
                {
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                    "Content-Length": str(length),
                },
            )
            assert status == 200, body
            offset = json.loads(body)["offset"]
        status, _, body = request(port, "POST", f"/api/v1/uploads/{upload_id}/complete/", token)
        assert status == 201, body
        upload_s = time.perf_counter() - started
        rss_upload = peak_rss_mib(worker)

        ours_s, got, sha = timed_download(port, "/api/v1/variants/alice/big/revisions/1/files/model.safetensors", token)
        assert got == size and sha == digest.hexdigest()
        rss_download = peak_rss_mib(worker)
        from apps.registry.blobs import blob_name

        # Uploads are stored content-addressed (blobs/sha256/..): the static server reads that same file.
        stored = media / blob_name(digest.hexdigest())
        assert stored.is_file() and stored.stat().st_size == size, stored
        static = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                str(static_port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(stored.parent),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(static_port)
        static_s, got, _ = timed_download(static_port, f"/{stored.name}", None)
        assert got == size
        mib = size / MIB
        print(f"file: {mib:.0f} MiB")
        print(
            f"upload (resumable, {CHUNK // MIB} MiB chunks, sha256 checked): {upload_s:.1f} s, "
            f"{mib / upload_s:.0f} MiB/s"
        )
        print(
            f"download, API: {ours_s:.2f} s, {mib / ours_s:.0f} MiB/s; static server (http.server): "
            f"{static_s:.2f} s, {mib / static_s:.0f} MiB/s; ratio {static_s / ours_s:.2f}x (target >= 0.5x)"
        )
        print(
            f"web worker peak RSS: {rss_upload:.0f} MiB after the upload, {rss_download:.0f} MiB after the "
            f"download (target < 150 MiB)"
        )
        ratio_line(
            "download_vs_static",
            static_s / ours_s,
            ours=mib / ours_s,
            baseline=mib / static_s,
            unit="MiB/s",
            target=">=0.5",
        )
        ratio_line("transfer_web_peak_rss_mib", max(rss_upload, rss_download), unit="MiB", target="<150")
        return 0
    finally:
        for proc in (static, server):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        from django.db import connection

        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""A multi-hundred-MiB resumable upload through a live server, chunk by chunk over real HTTP, with a connection
that breaks halfway through a chunk, then the file downloaded back in ranges: nothing is ever held whole in
memory (the test's and the server's Python allocations are traced: they stay far below one chunk)."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import tracemalloc
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from apps.accounts.services import token_create
from apps.registry.models import Artifact
from apps.registry.tests.factories import make_variant
from apps.transfers.models import UploadSession
from apps.transfers.tests.conftest import private_transfer_state, safetensors_header  # noqa: F401

pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024
DATA_BYTES = 300 * MIB
CHUNK = 100 * MIB


def _blocks(total: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes [start, end) of a safetensors file whose tensor holds `total` pseudo-random bytes, in 1 MiB blocks
    made on the fly (the same bytes every time, never the whole file)."""
    header = safetensors_header(total)
    size = len(header) + total
    end = size if end is None else end
    pos = start
    while pos < end:
        if pos < len(header):
            block = header[pos : min(end, len(header))]
        else:
            index, within = divmod(pos - len(header), MIB)
            seed = hashlib.sha256(index.to_bytes(8, "little")).digest()
            block = (seed * (MIB // len(seed)))[within : within + min(MIB - within, end - pos)]
        yield block
        pos += len(block)


class Api:
    def __init__(self, base_url: str, token: str):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.auth = {"Authorization": f"Bearer {token}"}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers={**self.auth, **(headers or {})})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def send_chunk(
        self, upload_id: str, offset: int, length: int, blocks: Iterator[bytes], break_after: int | None = None
    ) -> tuple[int, dict[str, object]]:
        """PATCH `length` bytes from `blocks`; with `break_after`, the connection ends after that many bytes."""
        sock = socket.create_connection((self.host, self.port), timeout=120)
        head = (
            f"PATCH /api/v1/uploads/{upload_id}/ HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: {self.auth['Authorization']}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        sent = 0
        for block in blocks:
            if break_after is not None and sent + len(block) > break_after:
                block = block[: break_after - sent]
            sock.sendall(block)
            sent += len(block)
            if break_after is not None and sent >= break_after:
                break
        sock.shutdown(socket.SHUT_WR)  # the client stops sending: the server sees the body end early
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        sock.close()
        status = int(raw.split(b" ", 2)[1])
        return status, json.loads(raw.split(b"\r\n\r\n", 1)[1] or b"{}")


def test_a_large_resumable_upload_and_download(live_server, make_user, maintainer, settings):
    from apps.registry.tests.factories import make_original

    alice = make_user("alice")
    base = make_original(maintainer)
    make_variant(alice, "big", [base])
    token = token_create(user=alice, name="upload", scopes=["read", "write"])[1]
    api = Api(live_server.url, token)
    size = len(safetensors_header(DATA_BYTES)) + DATA_BYTES
    digest = hashlib.sha256()
    for block in _blocks(DATA_BYTES):
        digest.update(block)
    sha256 = digest.hexdigest()

    status, _, body = api.request(
        "POST",
        "/api/v1/uploads/",
        json.dumps(
            {"variant": "alice/big", "path": "model.safetensors", "size_bytes": size, "sha256": sha256}
        ).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201, body
    upload_id = json.loads(body)["id"]

    tracemalloc.start()
    try:
        offset = 0
        # The first chunk's connection breaks halfway: what arrived is kept.
        status, resp = api.send_chunk(
            upload_id, 0, CHUNK, _blocks(DATA_BYTES, 0, CHUNK), break_after=CHUNK // 2 + 12345
        )
        assert status == 200, resp
        status, headers, _ = api.request("HEAD", f"/api/v1/uploads/{upload_id}/")
        offset = int(headers["Upload-Offset"])
        assert status == 200 and offset == CHUNK // 2 + 12345
        # A chunk at a stale offset is refused; the client resumes from the offset the server gave.
        status, resp = api.send_chunk(upload_id, 0, 10, _blocks(DATA_BYTES, 0, 10))
        assert status == 409 and resp["offset"] == offset
        # Measured from here: after a broken body, Django's development server (not gunicorn) drains what the
        # client announced but never sent with one read() of that size, which tracemalloc would count.
        tracemalloc.reset_peak()
        while offset < size:
            length = min(CHUNK, size - offset)
            status, resp = api.send_chunk(upload_id, offset, length, _blocks(DATA_BYTES, offset, offset + length))
            assert status == 200, resp
            offset = int(resp["offset"])  # type: ignore[arg-type]
        status, _, body = api.request("POST", f"/api/v1/uploads/{upload_id}/complete/")
        assert status == 201, body
        _, upload_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert upload_peak < 32 * MIB, f"the upload allocated {upload_peak / MIB:.0f} MiB at its peak"

    artifact = Artifact.objects.get(revision__variant__name="big", path="model.safetensors")
    assert artifact.sha256 == sha256 and artifact.size_bytes == size and artifact.format == "safetensors"
    session = UploadSession.objects.get(pk=upload_id)
    assert not session.part_path.exists()

    # Downloaded back in two ranges (a resumed download), hashed as it streams.
    url = "/api/v1/variants/alice/big/revisions/1/files/model.safetensors"
    check = hashlib.sha256()
    conn = http.client.HTTPConnection(api.host, api.port, timeout=120)
    tracemalloc.start()
    try:
        for range_header, expected in ((f"bytes=0-{CHUNK - 1}", 206), (f"bytes={CHUNK}-", 206)):
            conn.request("GET", url, headers={**api.auth, "Range": range_header})
            resp = conn.getresponse()
            assert resp.status == expected
            while block := resp.read(MIB):
                check.update(block)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        conn.close()
    assert check.hexdigest() == sha256
    assert download_peak < 32 * MIB, f"the download allocated {download_peak / MIB:.0f} MiB at its peak"
